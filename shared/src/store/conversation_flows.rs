//! A conversation's flow state — its one active run and the events already handled — in one
//! item beside the conversation (`WS#{ws}#CONV#{conv}` / `FLOW`), and the run history, one item
//! per tick under `WS#{ws}#RUNLOG#{conv}`.
//!
//! Every tick writes the state and its history line in one transaction, conditional on the
//! state's version: a tick delivered twice, or two ticks racing, cannot both move the run.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::update::n;
use super::{Store, StoreError, item_at, keys};
use crate::domain::{AutomationId, RunId, WorkspaceId};
use crate::flows::engine::{Run, StepRecord};

/// How many handled event ids a conversation remembers (redeliveries come close together).
const HANDLED_KEPT: usize = 32;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationFlow {
    /// 0: never stored.
    pub version: u64,
    pub run: Option<Run>,
    /// Inbound message ids and tag events already handled, newest last.
    pub handled: Vec<String>,
}

impl ConversationFlow {
    pub fn has_handled(&self, event: &str) -> bool {
        self.handled.iter().any(|h| h == event)
    }

    pub fn mark_handled(&mut self, event: &str) {
        self.handled.push(event.to_owned());
        let excess = self.handled.len().saturating_sub(HANDLED_KEPT);
        self.handled.drain(..excess);
    }
}

#[derive(Serialize, Deserialize)]
struct FlowItem {
    version: u64,
    /// JSON text of the run: a document read and written whole.
    #[serde(default)]
    run: Option<String>,
    #[serde(default)]
    handled: Vec<String>,
}

/// One line of a conversation's run history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub run_id: RunId,
    pub automation_id: AutomationId,
    pub automation_name: String,
    pub run_started_at: DateTime<Utc>,
    /// When the tick ran.
    pub at: DateTime<Utc>,
    /// For a run's first line: what started it.
    #[serde(default)]
    pub started_by: Option<String>,
    #[serde(with = "record_json")]
    pub record: StepRecord,
}

mod record_json {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::flows::engine::StepRecord;

    pub fn serialize<S: Serializer>(record: &StepRecord, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&serde_json::to_string(record).map_err(serde::ser::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<StepRecord, D::Error> {
        serde_json::from_str(&String::deserialize(deserializer)?).map_err(D::Error::custom)
    }
}

fn corrupt(reason: impl ToString) -> StoreError {
    StoreError::Corrupt { entity: "conversation flow", reason: reason.to_string() }
}

impl Store {
    pub async fn conversation_flow(
        &self,
        workspace: &WorkspaceId,
        conversation_id: &str,
    ) -> Result<ConversationFlow, StoreError> {
        let (pk, sk) = keys::conversation_flow(workspace, conversation_id);
        let Some(item): Option<FlowItem> = self.get(pk, sk, "conversation flow").await? else {
            return Ok(ConversationFlow::default());
        };
        let run = item.run.map(|json| serde_json::from_str(&json)).transpose().map_err(corrupt)?;
        Ok(ConversationFlow { version: item.version, run, handled: item.handled })
    }

    /// Stores `flow` over the state read at `flow.version`, with its history lines; `false`
    /// when the state moved meanwhile (nothing written).
    pub async fn save_conversation_flow(
        &self,
        workspace: &WorkspaceId,
        conversation_id: &str,
        flow: &ConversationFlow,
        history: &[HistoryEntry],
    ) -> Result<bool, StoreError> {
        let run = flow.run.as_ref().map(serde_json::to_string).transpose().map_err(corrupt)?;
        let item = FlowItem { version: flow.version + 1, run, handled: flow.handled.clone() };
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item_at(
            keys::conversation_flow(workspace, conversation_id),
            &item,
            "conversation flow",
        )?));
        put = if flow.version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :read").expression_attribute_values(":read", n(flow.version))
        };
        let mut items = vec![TransactWriteItem::builder().put(put.build().expect("complete put")).build()];
        let pk = keys::run_history(workspace, conversation_id);
        for entry in history {
            let sk =
                format!("{:013}#{}#{:06}", entry.run_started_at.timestamp_millis(), entry.run_id, entry.record.step);
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item_at((pk.clone(), sk), entry, "run history")?))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .expect("complete put");
            items.push(TransactWriteItem::builder().put(put).build());
        }
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(true),
            Err(e) if super::transaction_refused(&e) => Ok(false),
            Err(e) => Err(StoreError::aws("TransactWriteItems conversation flow", e)),
        }
    }

    /// A conversation's run history, oldest first; `after` is the cursor of the previous page.
    pub async fn run_history(
        &self,
        workspace: &WorkspaceId,
        conversation_id: &str,
        limit: i32,
        after: Option<&str>,
    ) -> Result<Result<(Vec<HistoryEntry>, Option<String>), super::pages::BadCursor>, StoreError> {
        let pk = keys::run_history(workspace, conversation_id);
        // The cursor is the last sort key read; the partition always comes from the caller.
        let start = match after.map(|c| hex::decode(c).ok().and_then(|b| String::from_utf8(b).ok())) {
            None => None,
            Some(Some(sk)) => Some(super::key_item((pk.clone(), sk))),
            Some(None) => return Ok(Err(super::pages::BadCursor)),
        };
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .limit(limit.clamp(1, 200))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query run history", e))?;
        let entries = page
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| serde_dynamo::from_item(item).map_err(corrupt))
            .collect::<Result<Vec<HistoryEntry>, _>>()?;
        let next = page
            .last_evaluated_key
            .and_then(|key| key.get(keys::SK).and_then(|v| v.as_s().ok()).map(|sk| hex::encode(sk.as_bytes())));
        Ok(Ok((entries, next)))
    }
}
