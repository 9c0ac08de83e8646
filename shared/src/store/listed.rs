//! Reading the items a list names. The lists' index (`gsi1`) projects only keys: DynamoDB
//! writes an index's copy of an item on every write that touches what the index holds, and an
//! index holding whole items made each such write cost twice (the contact refreshed by every
//! inbound message, a message marked handled, each status of a sent message). Holding keys,
//! the index is written only when an item enters, moves in or leaves a list; a list is then
//! read in two requests — the index for the keys, in order, and the items by key — and a read
//! costs a fraction of a write.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::KeysAndAttributes;

use super::{Item, Store, StoreError, key_item, keys};

impl Store {
    /// BatchGetItem over any number of keys (100 per call, unprocessed keys asked again),
    /// eventually consistent.
    pub(crate) async fn batch_get(&self, keys: Vec<Item>, operation: &'static str) -> Result<Vec<Item>, StoreError> {
        self.batch_get_with(keys, false, operation).await
    }

    /// [`Self::batch_get`], strongly consistent.
    pub(crate) async fn batch_get_consistent(
        &self,
        keys: Vec<Item>,
        operation: &'static str,
    ) -> Result<Vec<Item>, StoreError> {
        self.batch_get_with(keys, true, operation).await
    }

    async fn batch_get_with(
        &self,
        keys: Vec<Item>,
        consistent: bool,
        operation: &'static str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(consistent)
                    .build()
                    .expect("keys set"),
            );
            for attempt in 0..super::ASKS_BEFORE_GIVING_UP {
                let Some(request) = pending.take() else { break };
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| StoreError::aws(operation, e))?;
                let mut responses: HashMap<String, Vec<Item>> = output.responses.unwrap_or_default();
                items.extend(responses.remove(&self.table).unwrap_or_default());
                // What DynamoDB could not read (throttled, or past 16 MB) is asked again, as
                // consistent as asked.
                pending = output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty())
                    .map(|k| KeysAndAttributes::builder().set_keys(Some(k.keys)).consistent_read(consistent).build())
                    .transpose()
                    .expect("keys set");
                if pending.is_some() {
                    super::pause_before_asking_again(attempt).await;
                }
            }
            if pending.is_some() {
                return Err(StoreError::Aws { operation, reason: "DynamoDB kept some keys unprocessed".into() });
            }
        }
        Ok(items)
    }

    /// The items of the index entries a list query answered, in the index's order, read
    /// strongly consistent. An item deleted since, or no longer where the query looked
    /// (`still_listed` says, from the item's own index keys), is left out, as the index itself
    /// would have left it out a moment later.
    pub(crate) async fn listed_items(
        &self,
        entries: Vec<Item>,
        still_listed: impl Fn(&str, &str) -> bool,
        operation: &'static str,
    ) -> Result<Vec<Item>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let listed: Vec<(String, String)> = entries.iter().filter_map(table_key).collect();
        // An item that moved in its list while a query read several pages is named twice;
        // BatchGetItem refuses a repeated key, and the list shows it once (where first met).
        let mut seen = std::collections::HashSet::new();
        let unique = listed.iter().filter(|key| seen.insert(*key)).cloned().map(key_item).collect();
        let found = self.batch_get_consistent(unique, operation).await?;
        Ok(in_list_order(&listed, found, still_listed))
    }
}

/// The items found for these keys, in the keys' order, keeping those still in the list.
fn in_list_order(keys: &[(String, String)], found: Vec<Item>, still_listed: impl Fn(&str, &str) -> bool) -> Vec<Item> {
    let mut found: HashMap<(String, String), Item> =
        found.into_iter().filter_map(|item| table_key(&item).map(|key| (key, item))).collect();
    keys.iter()
        .filter_map(|key| found.remove(key))
        .filter(|item| match (text(item, "gsi1pk"), text(item, "gsi1sk")) {
            (Some(pk), Some(sk)) => still_listed(pk, sk),
            _ => false,
        })
        .collect()
}

fn text<'a>(item: &'a Item, attribute: &str) -> Option<&'a str> {
    item.get(attribute).and_then(|value| value.as_s().ok()).map(String::as_str)
}

fn table_key(item: &Item) -> Option<(String, String)> {
    Some((text(item, keys::PK)?.to_owned(), text(item, keys::SK)?.to_owned()))
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;

    fn item(pairs: &[(&str, &str)]) -> Item {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), AttributeValue::S((*v).to_owned()))).collect()
    }

    fn listed(pk: &str, list: &str, at: &str) -> Item {
        item(&[("pk", pk), ("sk", "X"), ("gsi1pk", list), ("gsi1sk", at)])
    }

    #[test]
    fn a_list_keeps_the_index_order_and_drops_what_left_it_since() {
        let keys = ["a", "b", "c", "d"].map(|pk| (pk.to_owned(), "X".to_owned()));
        // BatchGetItem answers in any order; `b` was deleted, `d` moved to another list.
        let found = vec![listed("d", "OTHER", "1"), listed("c", "L", "3"), listed("a", "L", "1")];
        let kept = in_list_order(&keys, found, |pk, _| pk == "L");
        let pks: Vec<&str> = kept.iter().map(|i| text(i, "pk").unwrap()).collect();
        assert_eq!(pks, ["a", "c"]);
    }

    #[test]
    fn an_item_named_twice_is_listed_once_where_first_met() {
        let keys = ["a", "b", "a"].map(|pk| (pk.to_owned(), "X".to_owned()));
        let found = vec![listed("b", "L", "2"), listed("a", "L", "3")];
        let kept = in_list_order(&keys, found, |pk, _| pk == "L");
        let pks: Vec<&str> = kept.iter().map(|i| text(i, "pk").unwrap()).collect();
        assert_eq!(pks, ["a", "b"]);
    }

    #[test]
    fn an_item_moved_past_the_query_s_bound_is_left_out() {
        let keys = [("job".to_owned(), "X".to_owned())];
        let due_before_5 = |pk: &str, sk: &str| pk == "SWEEP" && sk < "5";
        assert!(in_list_order(&keys, vec![listed("job", "SWEEP", "9")], due_before_5).is_empty());
        assert_eq!(in_list_order(&keys, vec![listed("job", "SWEEP", "4")], due_before_5).len(), 1);
    }
}
