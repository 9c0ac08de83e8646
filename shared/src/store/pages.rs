//! Paged reads for list endpoints. A cursor is DynamoDB's `LastEvaluatedKey`, made opaque
//! (hex of its JSON). It cannot be forged to reach another workspace: every key it may carry
//! is workspace-first, and a cursor whose keys are not under the caller's workspace is refused.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{Item, Store, StoreError};
use crate::domain::WorkspaceId;

/// One page of a list, and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next: self.next }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is not one this API gave out for this list")]
pub struct BadCursor;

/// The cursor for a `LastEvaluatedKey` (all of our keys are strings).
fn encode(key: &Item) -> String {
    let plain: HashMap<&str, &str> =
        key.iter().filter_map(|(name, value)| value.as_s().ok().map(|v| (name.as_str(), v.as_str()))).collect();
    hex::encode(serde_json::to_vec(&plain).unwrap_or_default())
}

/// The `ExclusiveStartKey` a cursor stands for: exactly the index's and table's keys, of an
/// item in this very list (`gsi1pk`), under the caller's workspace.
fn decode(cursor: &str, workspace: &WorkspaceId, list: &str) -> Result<Item, BadCursor> {
    let bytes = hex::decode(cursor).map_err(|_| BadCursor)?;
    let plain: HashMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| BadCursor)?;
    let own = format!("WS#{workspace}#");
    let complete = plain.len() == 4 && ["pk", "sk", "gsi1pk", "gsi1sk"].iter().all(|k| plain.contains_key(*k));
    let ours = plain.get("gsi1pk").is_some_and(|k| k == list) && plain.get("pk").is_some_and(|k| k.starts_with(&own));
    if !complete || !ours {
        return Err(BadCursor);
    }
    Ok(plain.into_iter().map(|(k, v)| (k, AttributeValue::S(v))).collect())
}

/// Which way a list runs by its sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    OldestFirst,
    NewestFirst,
}

impl Store {
    /// One page of the items under a workspace's `gsi1pk`.
    pub(crate) async fn index_page(
        &self,
        workspace: &WorkspaceId,
        gsi1pk: String,
        order: Order,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Result<Page<Item>, BadCursor>, StoreError> {
        let start = match cursor.map(|c| decode(c, workspace, &gsi1pk)).transpose() {
            Ok(start) => start,
            Err(bad) => return Ok(Err(bad)),
        };
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(gsi1pk.clone()))
            .scan_index_forward(order == Order::OldestFirst)
            .limit(limit.clamp(1, 100))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query page", e))?;
        let next = page.last_evaluated_key.as_ref().map(encode);
        let items =
            self.listed_items(page.items.unwrap_or_default(), |pk, _| pk == gsi1pk, "BatchGetItem page").await?;
        Ok(Ok(Page { items, next }))
    }
}

impl Store {
    /// One page of a workspace's entities of one kind, listed under `gsi1pk`.
    pub(crate) async fn listed_page<T: serde::de::DeserializeOwned>(
        &self,
        workspace: &WorkspaceId,
        gsi1pk: String,
        order: Order,
        limit: i32,
        cursor: Option<&str>,
        entity: &'static str,
    ) -> Result<Result<Page<T>, BadCursor>, StoreError> {
        Ok(match self.index_page(workspace, gsi1pk, order, limit, cursor).await? {
            Ok(page) => Ok(Page {
                items: page
                    .items
                    .into_iter()
                    .map(|item| {
                        serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt { entity, reason: e.to_string() })
                    })
                    .collect::<Result<_, _>>()?,
                next: page.next,
            }),
            Err(bad) => Err(bad),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pairs: &[(&str, &str)]) -> Item {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), AttributeValue::S((*v).to_owned()))).collect()
    }

    #[test]
    fn a_cursor_reads_back_as_the_key_it_was_made_from() {
        let acme = WorkspaceId::parse("acme").unwrap();
        let last = key(&[("pk", "WS#acme#CONV#x"), ("sk", "CONV"), ("gsi1pk", "WS#acme#CONVS"), ("gsi1sk", "1")]);
        assert_eq!(decode(&encode(&last), &acme, "WS#acme#CONVS").unwrap(), last);
        assert_eq!(decode(&encode(&last), &acme, "WS#acme#CONTACTS"), Err(BadCursor), "another list's cursor");
    }

    #[test]
    fn a_cursor_cannot_reach_another_workspace() {
        let acme = WorkspaceId::parse("acme").unwrap();
        let list = "WS#acme#CONVS";
        let theirs = key(&[("pk", "WS#globex#CONV#x"), ("sk", "CONV"), ("gsi1pk", "WS#globex#CONVS"), ("gsi1sk", "1")]);
        assert_eq!(decode(&encode(&theirs), &acme, list), Err(BadCursor));
        let mixed = key(&[("pk", "WS#globex#CONV#x"), ("sk", "CONV"), ("gsi1pk", list), ("gsi1sk", "1")]);
        assert_eq!(decode(&encode(&mixed), &acme, list), Err(BadCursor), "our list, their item");
        let prefix_trick = key(&[("pk", "WS#acmeX#CONV#x"), ("sk", "CONV"), ("gsi1pk", list), ("gsi1sk", "1")]);
        assert_eq!(decode(&encode(&prefix_trick), &acme, list), Err(BadCursor));
        let partial = key(&[("sk", "x")]);
        assert_eq!(decode(&encode(&partial), &acme, list), Err(BadCursor));
        assert_eq!(decode("not hex", &acme, list), Err(BadCursor));
        assert_eq!(decode(&hex::encode("{}"), &acme, list), Err(BadCursor));
    }
}
