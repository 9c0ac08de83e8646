//! The writes a table write makes to the table's global secondary indexes, which DynamoDB bills
//! as write request units of their own (at the size of the index's copy of the item), for
//! `make bench-cost`. The rules, from DynamoDB's documentation on GSI write costs:
//! - an item put with the index's key attributes: one index write;
//! - an update that changes (or removes) an index key attribute: the old index entry deleted
//!   and the new one put, two writes (one when the key is removed);
//! - an update that changes only attributes the index projects, of an item in the index: one;
//! - anything else, and a write refused by its condition: none.
//!
//! What is read from a recorded request (the attributes an update sets, removes or sets only if
//! absent) is exact; whether the item was in the index before an update is not recorded, so an
//! update setting a key counts the delete of an old entry even on an item's first write (an
//! upper bound by at most one write).

use serde_json::{Map, Value};

/// What an index holds of an item besides its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projected {
    All,
    KeysOnly,
    Include(Vec<String>),
}

/// One global secondary index of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondaryIndex {
    pub name: String,
    /// The partition key attribute and, when it has one, the sort key attribute.
    pub keys: Vec<String>,
    pub projected: Projected,
}

/// The attributes an `UpdateExpression` writes, by how.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UpdatedAttributes {
    /// Set to a value (`SET a = :v`, `ADD a :v`), or computed from one (`SET a = a + :v`).
    pub set: Vec<String>,
    /// Set only when absent (`SET a = if_not_exists(a, :v)`): an item's existing value stays.
    pub set_if_absent: Vec<String>,
    /// `REMOVE a`, `DELETE a :v`.
    pub removed: Vec<String>,
}

impl UpdatedAttributes {
    fn all(&self) -> impl Iterator<Item = &String> {
        self.set.iter().chain(&self.set_if_absent).chain(&self.removed)
    }
}

/// Reads an `UpdateExpression`, `#names` resolved through `ExpressionAttributeNames`.
pub fn updated_attributes(expression: &str, names: &Map<String, Value>) -> UpdatedAttributes {
    let resolve = |name: &str| {
        let name = name.trim();
        names.get(name).and_then(Value::as_str).unwrap_or(name).to_owned()
    };
    let mut updated = UpdatedAttributes::default();
    for (clause, body) in clauses(expression) {
        for action in split_top_level(body) {
            let action = action.trim();
            if action.is_empty() {
                continue;
            }
            match clause {
                "SET" => {
                    let Some((target, value)) = action.split_once('=') else { continue };
                    let target = resolve(target);
                    if value.trim_start().starts_with("if_not_exists(") {
                        updated.set_if_absent.push(target);
                    } else {
                        updated.set.push(target);
                    }
                }
                "REMOVE" => updated.removed.push(resolve(action)),
                "ADD" => updated.set.push(resolve(action.split_whitespace().next().unwrap_or(action))),
                "DELETE" => updated.removed.push(resolve(action.split_whitespace().next().unwrap_or(action))),
                _ => {}
            }
        }
    }
    updated
}

/// The writes one successful table write makes to `index`. `item_after` is the item as stored
/// after the write (`None` when it is gone), in DynamoDB's JSON.
pub fn index_writes(index: &SecondaryIndex, operation: &str, request: &Value, item_after: Option<&Value>) -> u32 {
    let has_keys = |item: &Value| index.keys.iter().all(|key| item.get(key).is_some());
    match operation {
        "PutItem" => u32::from(has_keys(&request["Item"])),
        "UpdateItem" => {
            let names = request["ExpressionAttributeNames"].as_object().cloned().unwrap_or_default();
            let updated = updated_attributes(request["UpdateExpression"].as_str().unwrap_or(""), &names);
            let in_index_after = item_after.is_some_and(has_keys);
            let key_changed = updated.set.iter().chain(&updated.removed).any(|a| index.keys.contains(a));
            let projected_changed = updated.all().any(|attribute| match &index.projected {
                Projected::All => true,
                Projected::KeysOnly => false,
                Projected::Include(attributes) => attributes.contains(attribute),
            });
            match (key_changed, in_index_after) {
                (true, true) => 2,
                (true, false) => 1,
                (false, true) => u32::from(projected_changed),
                (false, false) => 0,
            }
        }
        // A delete removes the item's index entries, when it had them: what it deleted is not
        // recorded, and no unit measured deletes an indexed item.
        _ => 0,
    }
}

/// Whether a recorded response is a refusal by the write's condition (no index is written).
pub fn refused_by_condition(response: &Value) -> bool {
    response["__type"].as_str().is_some_and(|kind| kind.contains("ConditionalCheckFailed"))
        || response["CancellationReasons"].is_array()
}

/// `SET a = :x, b = :y REMOVE c` → `[("SET", "a = :x, b = :y "), ("REMOVE", "c")]`.
fn clauses(expression: &str) -> Vec<(&'static str, &str)> {
    const KEYWORDS: [&str; 4] = ["SET", "REMOVE", "ADD", "DELETE"];
    let mut starts: Vec<(usize, &'static str)> = Vec::new();
    let bytes = expression.as_bytes();
    for keyword in KEYWORDS {
        let mut from = 0;
        while let Some(found) = expression[from..].find(keyword) {
            let at = from + found;
            let end = at + keyword.len();
            let before_ok = at == 0 || bytes[at - 1].is_ascii_whitespace();
            let after_ok = end == bytes.len() || bytes[end].is_ascii_whitespace();
            if before_ok && after_ok {
                starts.push((at, keyword));
            }
            from = end;
        }
    }
    starts.sort_unstable();
    starts
        .iter()
        .enumerate()
        .map(|(i, (at, keyword))| {
            let end = starts.get(i + 1).map_or(expression.len(), |(next, _)| *next);
            (*keyword, &expression[at + keyword.len()..end])
        })
        .collect()
}

/// Splits on the commas outside parentheses.
fn split_top_level(body: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in body.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&body[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gsi1() -> SecondaryIndex {
        SecondaryIndex { name: "gsi1".into(), keys: vec!["gsi1pk".into(), "gsi1sk".into()], projected: Projected::All }
    }

    fn gsi2() -> SecondaryIndex {
        SecondaryIndex {
            name: "gsi2".into(),
            keys: vec!["gsi2pk".into(), "gsi2sk".into()],
            projected: Projected::Include(vec!["state".into(), "wamid".into()]),
        }
    }

    #[test]
    fn an_update_expression_says_what_it_sets_sets_if_absent_and_removes() {
        let names = json!({"#state": "state", "#claim": "claim"});
        let updated = updated_attributes(
            "SET #state = :s, sent_at = if_not_exists(sent_at, :at), n = n + :one REMOVE #claim, lease ADD tat :i",
            names.as_object().unwrap(),
        );
        assert_eq!(updated.set, ["state", "n", "tat"]);
        assert_eq!(updated.set_if_absent, ["sent_at"]);
        assert_eq!(updated.removed, ["claim", "lease"]);
    }

    #[test]
    fn a_new_item_with_the_index_keys_is_one_index_write() {
        let put = json!({"Item": {"pk": {"S": "a"}, "gsi1pk": {"S": "x"}, "gsi1sk": {"S": "1"}}});
        assert_eq!(index_writes(&gsi1(), "PutItem", &put, None), 1);
        assert_eq!(index_writes(&gsi2(), "PutItem", &put, None), 0);
    }

    #[test]
    fn moving_an_item_in_the_index_is_a_delete_and_a_put() {
        let update =
            json!({"UpdateExpression": "SET gsi1sk = :sk, #s = :s", "ExpressionAttributeNames": {"#s": "state"}});
        let after = json!({"gsi1pk": {"S": "x"}, "gsi1sk": {"S": "2"}, "state": {"S": "SENT"}});
        assert_eq!(index_writes(&gsi1(), "UpdateItem", &update, Some(&after)), 2);
    }

    #[test]
    fn a_projected_attribute_changed_in_place_is_one_write_and_another_is_none() {
        let after = json!({"gsi2pk": {"S": "x"}, "gsi2sk": {"S": "2"}, "state": {"S": "SENT"}});
        let state = json!({"UpdateExpression": "SET #s = :s", "ExpressionAttributeNames": {"#s": "state"}});
        assert_eq!(index_writes(&gsi2(), "UpdateItem", &state, Some(&after)), 1);
        let other = json!({"UpdateExpression": "SET updated_at = :now"});
        assert_eq!(index_writes(&gsi2(), "UpdateItem", &other, Some(&after)), 0);
        assert_eq!(index_writes(&gsi1(), "UpdateItem", &other, Some(&after)), 0, "not in gsi1");
    }

    #[test]
    fn a_key_set_only_if_absent_does_not_move_the_item() {
        let update = json!({"UpdateExpression": "SET gsi1pk = if_not_exists(gsi1pk, :k), v = :v"});
        let after = json!({"gsi1pk": {"S": "x"}, "gsi1sk": {"S": "2"}});
        assert_eq!(index_writes(&gsi1(), "UpdateItem", &update, Some(&after)), 1);
    }

    #[test]
    fn removing_the_key_takes_the_item_out_of_the_index() {
        let update = json!({"UpdateExpression": "REMOVE gsi1pk, gsi1sk"});
        assert_eq!(index_writes(&gsi1(), "UpdateItem", &update, Some(&json!({"pk": {"S": "a"}}))), 1);
    }

    #[test]
    fn a_write_refused_by_its_condition_is_recognised() {
        assert!(refused_by_condition(
            &json!({"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"})
        ));
        assert!(!refused_by_condition(&json!({"Attributes": {}})));
    }
}
