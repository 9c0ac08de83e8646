//! Broadcasts: the broadcast item (its spec, state and fan-out cursor), listed under
//! `WS#{ws}#BROADCASTS`; a CSV audience's recipients; the broadcast's send jobs, read back
//! through the sharded `gsi2` for the report; and the portfolio's reached customers for
//! Meta's messaging limit.
//!
//! The report is tallied from the jobs, not from counters: a counter bumped after a state
//! change is lost when the process dies between the two, a job's state is not. Each job is
//! in one of [`BROADCAST_SHARDS`] index partitions, so at 1,000 sends a second (≈4 job writes
//! each) an index key takes ≈125 writes a second.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update as TxUpdate};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::contacts::ContactRecord;
use super::pages::{BadCursor, Order, Page};
use super::update::{Update, n, s};
use super::{Item, Store, StoreError, item_at, key_item, keys};
use crate::broadcasts::spec::{BroadcastRecord, BroadcastState};
use crate::domain::{BroadcastId, Channel, ContactId, JobState, WorkspaceId};
use crate::policy::messaging_limit::{hour_bucket, rolling_window, window_hours};

/// Index partitions per broadcast for its jobs.
pub const BROADCAST_SHARDS: u32 = 32;
/// Partitions of the active-broadcasts index (one write per page of each running fan-out).
pub const ACTIVE_SHARDS: u32 = 8;

/// The active-broadcasts partition of a broadcast.
pub fn active_shard_key(workspace: &WorkspaceId, broadcast: &BroadcastId) -> String {
    let hash = Sha256::digest(format!("{workspace}/{broadcast}"));
    keys::active_broadcasts(u32::from(hash[0]) % ACTIVE_SHARDS)
}

/// Counter partitions per portfolio and hour for newly reached customers.
pub const REACH_SHARDS: u32 = 8;

/// The `gsi2` partition of a broadcast's job for `contact`.
pub fn broadcast_shard_key(workspace: &WorkspaceId, broadcast: &str, contact: &str) -> String {
    let hash = Sha256::digest(contact.as_bytes());
    let shard = u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]) % BROADCAST_SHARDS;
    format!("WS#{workspace}#BCAST#{broadcast}#{shard:02}")
}

/// One recipient's job as the report sees it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JobLine {
    /// The recipient (the index sort key).
    #[serde(rename = "gsi2sk")]
    pub contact: String,
    pub state: JobState,
    #[serde(default)]
    pub error_code: Option<i64>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub wamid: Option<String>,
    #[serde(default)]
    pub read: bool,
}

/// A new broadcast's item, listed in its workspace's broadcasts.
fn broadcast_item(record: &BroadcastRecord) -> Result<super::Item, StoreError> {
    let ws = &record.workspace_id;
    let mut item = item_at(keys::broadcast(ws, &record.broadcast_id), record, "broadcast")?;
    // An absent value is no attribute at all (not NULL), so `if_not_exists` sets it later.
    item.retain(|_, value| !matches!(value, AttributeValue::Null(_)));
    item.insert("gsi1pk".into(), s(keys::workspace_broadcasts(ws)));
    item.insert("gsi1sk".into(), s(format!("{:013}#{}", record.created_at.timestamp_millis(), record.broadcast_id)));
    Ok(item)
}

fn corrupt(entity: &'static str, e: impl ToString) -> StoreError {
    StoreError::Corrupt { entity, reason: e.to_string() }
}

impl Store {
    /// Stores a new broadcast; `false` when its id exists.
    pub async fn create_broadcast(&self, record: &BroadcastRecord) -> Result<bool, StoreError> {
        self.put_new(broadcast_item(record)?, "PutItem broadcast").await
    }

    /// Writes a new broadcast: `None` when written, or the broadcast already under its id
    /// (which may be this write's own first try, its answer lost).
    pub async fn create_broadcast_or_existing(
        &self,
        record: &BroadcastRecord,
    ) -> Result<Option<BroadcastRecord>, StoreError> {
        self.put_new_or_existing(broadcast_item(record)?, "PutItem broadcast", "broadcast").await
    }

    pub async fn broadcast(
        &self,
        workspace: &WorkspaceId,
        id: &BroadcastId,
    ) -> Result<Option<BroadcastRecord>, StoreError> {
        let (pk, sk) = keys::broadcast(workspace, id);
        self.get(pk, sk, "broadcast").await
    }

    pub async fn broadcasts_page(
        &self,
        workspace: &WorkspaceId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Result<Page<BroadcastRecord>, BadCursor>, StoreError> {
        let list = keys::workspace_broadcasts(workspace);
        self.listed_page(workspace, list, Order::NewestFirst, limit, cursor, "broadcast").await
    }

    /// Applies `update` if the broadcast is in one of `from`; `false` when it is not.
    pub async fn move_broadcast(
        &self,
        workspace: &WorkspaceId,
        id: &BroadcastId,
        from: &[BroadcastState],
        update: Update,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let states: Vec<AttributeValue> = from
            .iter()
            .map(|state| {
                s(serde_json::to_value(state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())
            })
            .collect();
        let placeholders: Vec<String> = (0..states.len()).map(|i| format!("{{{i}}}")).collect();
        let update = update.set("updated_at", s(now.to_rfc3339())).condition(
            &format!("{{state}} IN ({})", placeholders.join(", ")),
            &["state"],
            states,
        );
        self.update_broadcast_once(workspace, id, update).await
    }

    /// Applies `update` (with its own condition) at most once, recognising its own first try
    /// ([`Store::update_once`]); `false` when another writer's move refused it.
    pub async fn update_broadcast_once(
        &self,
        workspace: &WorkspaceId,
        id: &BroadcastId,
        update: Update,
    ) -> Result<bool, StoreError> {
        self.update_once(keys::broadcast(workspace, id), update, "UpdateItem broadcast").await
    }

    /// Broadcasts under way or paused whose last move (or due resumption) is before
    /// `before`, as (workspace, broadcast).
    pub async fn stalled_broadcasts(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<(WorkspaceId, BroadcastId)>, StoreError> {
        let mut stalled = Vec::new();
        for shard in 0..ACTIVE_SHARDS {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi2")
                .key_condition_expression("gsi2pk = :pk AND gsi2sk < :before")
                .expression_attribute_values(":pk", s(keys::active_broadcasts(shard)))
                .expression_attribute_values(":before", s(keys::sortable_millis(before.timestamp_millis())))
                .send()
                .await
                .map_err(|e| StoreError::aws("Query stalled broadcasts", e))?;
            for item in page.items.unwrap_or_default() {
                // `WS#{ws}#BROADCAST#{id}`: typed ids hold no `#`.
                let pk = item.get(keys::PK).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                let parts: Vec<&str> = pk.split('#').collect();
                if let [_, ws, _, id] = parts.as_slice()
                    && let (Ok(ws), Ok(id)) = (WorkspaceId::parse(*ws), BroadcastId::parse(*id))
                {
                    stalled.push((ws, id));
                }
            }
        }
        Ok(stalled)
    }

    /// Writes a CSV audience (recipients already normalised and de-duplicated).
    pub async fn put_broadcast_audience(
        &self,
        workspace: &WorkspaceId,
        id: &BroadcastId,
        recipients: &[ContactId],
    ) -> Result<(), StoreError> {
        let pk = keys::broadcast_audience(workspace, id);
        for chunk in recipients.chunks(25) {
            let mut requests: Vec<aws_sdk_dynamodb::types::WriteRequest> = chunk
                .iter()
                .map(|contact| {
                    let item = key_item((pk.clone(), contact.as_str().to_owned()));
                    let put =
                        aws_sdk_dynamodb::types::PutRequest::builder().set_item(Some(item)).build().expect("item set");
                    aws_sdk_dynamodb::types::WriteRequest::builder().put_request(put).build()
                })
                .collect();
            // BatchWriteItem may hand back what it did not write: write those again.
            for attempt in 0..super::ASKS_BEFORE_GIVING_UP {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|e| StoreError::aws("BatchWriteItem broadcast audience", e))?;
                requests = output.unprocessed_items.and_then(|mut u| u.remove(&self.table)).unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                super::pause_before_asking_again(attempt).await;
            }
            if !requests.is_empty() {
                return Err(StoreError::Aws {
                    operation: "BatchWriteItem broadcast audience",
                    reason: "DynamoDB kept some items unprocessed".into(),
                });
            }
        }
        Ok(())
    }

    /// Up to `limit` recipients of a CSV audience after `after` (a recipient), in order.
    pub async fn broadcast_audience_page(
        &self,
        workspace: &WorkspaceId,
        id: &BroadcastId,
        after: Option<&str>,
        limit: i32,
    ) -> Result<Vec<String>, StoreError> {
        let pk = keys::broadcast_audience(workspace, id);
        let start = after.map(|sk| key_item((pk.clone(), sk.to_owned())));
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(&pk))
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query broadcast audience", e))?;
        Ok(page
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|item| item.get(keys::SK).and_then(|v| v.as_s().ok()).cloned())
            .collect())
    }

    /// One page of the workspace's WhatsApp contacts, in order, after `cursor` (this method's
    /// own earlier answer); the next cursor is `None` after the last page.
    pub async fn whatsapp_contacts_page(
        &self,
        workspace: &WorkspaceId,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<ContactRecord>, Option<String>), StoreError> {
        let (list, whatsapp) = (keys::workspace_contacts(workspace), format!("{}#", Channel::WhatsApp.as_str()));
        let start: Option<Item> = match cursor {
            None => None,
            Some(c) => {
                let plain: HashMap<String, String> =
                    serde_json::from_str(c).map_err(|e| corrupt("broadcast cursor", e))?;
                Some(plain.into_iter().map(|(k, v)| (k, s(v))).collect())
            }
        };
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :pk AND begins_with(gsi1sk, :wa)")
            .expression_attribute_values(":pk", s(list.clone()))
            .expression_attribute_values(":wa", s(whatsapp.clone()))
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query contacts for a broadcast", e))?;
        let listed = |pk: &str, sk: &str| pk == list && sk.starts_with(&whatsapp);
        let contacts = self
            .listed_items(page.items.unwrap_or_default(), listed, "BatchGetItem audience contacts")
            .await?
            .into_iter()
            .map(|item| serde_dynamo::from_item(item).map_err(|e| corrupt("contact", e)))
            .collect::<Result<Vec<ContactRecord>, _>>()?;
        let next = page.last_evaluated_key.map(|key| {
            let plain: HashMap<&str, &str> =
                key.iter().filter_map(|(k, v)| v.as_s().ok().map(|v| (k.as_str(), v.as_str()))).collect();
            serde_json::to_string(&plain).expect("strings serialize")
        });
        Ok((contacts, next))
    }

    /// The WhatsApp contacts of these ids that exist.
    pub async fn whatsapp_contacts(
        &self,
        workspace: &WorkspaceId,
        contacts: &[String],
    ) -> Result<Vec<ContactRecord>, StoreError> {
        let keys: Vec<Item> =
            contacts.iter().map(|c| key_item(keys::contact(workspace, Channel::WhatsApp, c))).collect();
        self.batch_get(keys, "BatchGetItem contacts")
            .await?
            .into_iter()
            .map(|item| serde_dynamo::from_item(item).map_err(|e| corrupt("contact", e)))
            .collect()
    }

    /// Every recipient's job of a broadcast, from its index shards.
    pub async fn broadcast_jobs(&self, workspace: &WorkspaceId, broadcast: &str) -> Result<Vec<JobLine>, StoreError> {
        let shards = (0..BROADCAST_SHARDS).map(|shard| async move {
            let gsi2pk = format!("WS#{workspace}#BCAST#{broadcast}#{shard:02}");
            let mut lines = Vec::new();
            let mut start = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name("gsi2")
                    .key_condition_expression("gsi2pk = :pk")
                    .expression_attribute_values(":pk", s(&gsi2pk))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| StoreError::aws("Query broadcast jobs", e))?;
                for item in page.items.unwrap_or_default() {
                    lines.push(serde_dynamo::from_item::<_, JobLine>(item).map_err(|e| corrupt("broadcast job", e))?);
                }
                start = page.last_evaluated_key;
                if start.is_none() {
                    return Ok::<_, StoreError>(lines);
                }
            }
        });
        let mut all = Vec::new();
        for lines in futures_util::future::join_all(shards).await {
            all.extend(lines?);
        }
        Ok(all)
    }

    /// Which of `contacts` the portfolio reached in the messaging-limit window.
    pub async fn reached_recently(
        &self,
        workspace: &WorkspaceId,
        business: &str,
        contacts: &[String],
        now: DateTime<Utc>,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let cutoff = (now - rolling_window()).timestamp_millis();
        let keys: Vec<Item> = contacts.iter().map(|c| key_item(keys::reached(workspace, business, c))).collect();
        let mut recent = std::collections::HashSet::new();
        for item in self.batch_get(keys, "BatchGetItem reached customers").await? {
            let at = item.get("reached_at").and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok());
            let contact = item.get("contact").and_then(|v| v.as_s().ok());
            if let (Some(at), Some(contact)) = (at, contact)
                && at >= cutoff
            {
                recent.insert(contact.clone());
            }
        }
        Ok(recent)
    }

    /// How many unique customers the portfolio reached in the window (hour buckets, see
    /// [`window_hours`]).
    pub async fn reached_in_window(
        &self,
        workspace: &WorkspaceId,
        business: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let keys: Vec<Item> = window_hours(now)
            .iter()
            .flat_map(|hour| (0..REACH_SHARDS).map(move |shard| keys::reach_count(workspace, business, hour, shard)))
            .map(key_item)
            .collect();
        let items = self.batch_get(keys, "BatchGetItem reach counts").await?;
        Ok(items
            .iter()
            .filter_map(|item| item.get("count").and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<u64>().ok()))
            .sum())
    }

    /// Counts `contact` as reached now, once per window: the marker and the hour's counter
    /// move together (one transaction), so a retry never counts a customer twice. `false` when
    /// the customer was already reached in the window.
    pub async fn mark_reached(
        &self,
        workspace: &WorkspaceId,
        business: &str,
        contact: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (pk, sk) = keys::reached(workspace, business, contact);
        let existing: Option<Item> = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(keys::PK, s(&pk))
            .key(keys::SK, s(&sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem reached", e))?
            .item;
        let previous = existing.as_ref().and_then(|i| i.get("reached_at")).and_then(|v| v.as_n().ok()).cloned();
        if let Some(at) = previous.as_ref().and_then(|v| v.parse::<i64>().ok())
            && at >= (now - rolling_window()).timestamp_millis()
        {
            return Ok(false);
        }
        let marker: Item = [
            (keys::PK.to_owned(), s(&pk)),
            (keys::SK.to_owned(), s(&sk)),
            ("contact".to_owned(), s(contact)),
            ("reached_at".to_owned(), n(now.timestamp_millis())),
            // Kept a little past the window, then DynamoDB's TTL removes it.
            ("expires_at".to_owned(), n((now + rolling_window() + Duration::hours(2)).timestamp())),
        ]
        .into_iter()
        .collect();
        let mut put = Put::builder().table_name(&self.table).set_item(Some(marker));
        put = match previous {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(at) => put
                .condition_expression("reached_at = :previous")
                .expression_attribute_values(":previous", AttributeValue::N(at)),
        };
        let hash = Sha256::digest(contact.as_bytes());
        let (count_pk, count_sk) =
            keys::reach_count(workspace, business, &hour_bucket(now), u32::from(hash[0]) % REACH_SHARDS);
        let count = TxUpdate::builder()
            .table_name(&self.table)
            .key(keys::PK, s(count_pk))
            .key(keys::SK, s(count_sk))
            .update_expression("ADD #count :one SET expires_at = :expires")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":expires", n((now + rolling_window() + Duration::hours(3)).timestamp()))
            .build()
            .expect("complete update");
        let items = vec![
            TransactWriteItem::builder().put(put.build().expect("complete put")).build(),
            TransactWriteItem::builder().update(count).build(),
        ];
        // The hourly count is shared by every broadcast of the portfolio: two reaching two
        // customers at once can meet on it, and DynamoDB then cancels one, having written
        // neither item. That customer is not counted yet: write it again.
        let mut conflicts = 0;
        loop {
            match self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await {
                Ok(_) => return Ok(true),
                // Counted by a concurrent or earlier attempt.
                Err(e) if super::transaction_refused(&e) => return Ok(false),
                Err(e) if super::transaction_conflicted(&e) && conflicts + 1 < super::ASKS_BEFORE_GIVING_UP => {
                    super::pause_before_asking_again(conflicts).await;
                    conflicts += 1;
                }
                Err(e) => return Err(StoreError::aws("TransactWriteItems reached", e)),
            }
        }
    }
}
