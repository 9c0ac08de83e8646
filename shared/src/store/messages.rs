//! A conversation's messages: inbound ones, stored exactly once per workspace by Meta's message
//! id, and an entry for each send job accepted into the conversation (its state lives on the
//! job), so the inbox shows both sides in order.
//!
//! The message item doubles as the ledger of its side effects: it is written first
//! (conditionally), then the contact, conversation and flow event follow, then `processed` is
//! set. A redelivery that finds the item unprocessed — the earlier attempt failed half way —
//! completes the effects (each is idempotent) instead of skipping them. Items have no TTL, so
//! deduplication outlives Meta's 7-day retry horizon.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, keys, refused_by_condition};
use crate::domain::{InboundMessage, Origin, SendJob, SendJobId, WorkspaceId};
use crate::outbound::content::OutboundContent;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredMessage {
    pub pk: String,
    pub sk: String,
    pub gsi1pk: String,
    pub gsi1sk: String,
    pub workspace_id: WorkspaceId,
    pub conversation_id: String,
    #[serde(flatten)]
    pub message: InboundMessage,
    pub stored_at: DateTime<Utc>,
    /// All side effects (contact, conversation, flow event) are done.
    pub processed: bool,
}

/// What the conditional insert found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    New,
    /// Stored before; `processed` says whether its side effects completed.
    Duplicate {
        processed: bool,
    },
}

/// One of our sends, as its conversation lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboundEntry {
    pub workspace_id: WorkspaceId,
    pub conversation_id: String,
    pub job_id: SendJobId,
    pub origin: Origin,
    pub content: OutboundContent,
    pub queued_at: DateTime<Utc>,
}

/// A conversation's message, either way.
#[derive(Debug, Clone)]
pub enum ConversationEntry {
    Inbound(Box<StoredMessage>),
    Outbound(Box<OutboundEntry>),
}

const OUTBOUND_SK: &str = "OUTMSG";

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { entity: "message", reason: e.to_string() }
}

impl Store {
    pub async fn insert_inbound(
        &self,
        workspace: &WorkspaceId,
        message: &InboundMessage,
        now: DateTime<Utc>,
    ) -> Result<Insert, StoreError> {
        let (pk, sk) = keys::message(workspace, &message.message_id);
        let conversation_id = message.conversation_id();
        let item = StoredMessage {
            pk: pk.clone(),
            sk: sk.clone(),
            gsi1pk: keys::conversation_messages(workspace, &conversation_id),
            gsi1sk: format!("{}#{}", keys::sortable_millis(message.sent_at.timestamp_millis()), message.message_id),
            workspace_id: workspace.clone(),
            conversation_id,
            message: message.clone(),
            stored_at: now,
            processed: false,
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(item).map_err(corrupt)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Insert::New),
            Err(e) if refused_by_condition(&e) => {
                let stored = self.message(workspace, &message.message_id).await?;
                Ok(Insert::Duplicate { processed: stored.is_some_and(|m| m.processed) })
            }
            Err(e) => Err(StoreError::aws("PutItem message", e)),
        }
    }

    pub async fn mark_processed(&self, workspace: &WorkspaceId, message_id: &str) -> Result<(), StoreError> {
        let (pk, sk) = keys::message(workspace, message_id);
        self.client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, AttributeValue::S(pk))
            .key(keys::SK, AttributeValue::S(sk))
            .update_expression("SET #processed = :yes")
            .expression_attribute_names("#processed", "processed")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem message", e))?;
        Ok(())
    }

    pub async fn message(
        &self,
        workspace: &WorkspaceId,
        message_id: &str,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let (pk, sk) = keys::message(workspace, message_id);
        self.get(pk, sk, "message").await
    }

    /// Lists an accepted send job in its conversation (once, however often it is accepted).
    pub async fn record_outbound(&self, job: &SendJob, now: DateTime<Utc>) -> Result<(), StoreError> {
        let ws = &job.workspace_id;
        let conversation_id = job.conversation_id();
        let entry = OutboundEntry {
            workspace_id: ws.clone(),
            conversation_id: conversation_id.clone(),
            job_id: job.job_id.clone(),
            origin: job.origin.clone(),
            content: job.content.clone(),
            queued_at: now,
        };
        let key = (format!("WS#{ws}#OUTMSG#{}", job.job_id), OUTBOUND_SK.to_owned());
        let mut item = super::item_at(key, &entry, "outbound message")?;
        item.insert("gsi1pk".into(), AttributeValue::S(keys::conversation_messages(ws, &conversation_id)));
        item.insert(
            "gsi1sk".into(),
            AttributeValue::S(format!("{}#{}", keys::sortable_millis(now.timestamp_millis()), job.job_id)),
        );
        // Already listed by an earlier acceptance of the same job: nothing to do.
        self.put_new(item, "PutItem outbound message").await?;
        Ok(())
    }

    /// A page of a conversation's messages, both ways, oldest first.
    pub async fn conversation_messages_page(
        &self,
        workspace: &WorkspaceId,
        conversation_id: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Result<super::pages::Page<ConversationEntry>, super::pages::BadCursor>, StoreError> {
        let key = keys::conversation_messages(workspace, conversation_id);
        let page = self.index_page(workspace, key, super::pages::Order::OldestFirst, limit, cursor).await?;
        let entry = |item: super::Item| -> Result<ConversationEntry, StoreError> {
            let outbound = item.get("sk").and_then(|v| v.as_s().ok()).is_some_and(|sk| sk == OUTBOUND_SK);
            Ok(if outbound {
                ConversationEntry::Outbound(Box::new(serde_dynamo::from_item(item).map_err(corrupt)?))
            } else {
                ConversationEntry::Inbound(Box::new(serde_dynamo::from_item(item).map_err(corrupt)?))
            })
        };
        Ok(match page {
            Ok(page) => Ok(super::pages::Page {
                items: page.items.into_iter().map(entry).collect::<Result<_, _>>()?,
                next: page.next,
            }),
            Err(bad) => Err(bad),
        })
    }

    /// A conversation's inbound messages, oldest first (by Meta's timestamp).
    pub async fn conversation_messages(
        &self,
        workspace: &WorkspaceId,
        conversation_id: &str,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.query_index(keys::conversation_messages(workspace, conversation_id), "Query conversation messages")
            .await?
            .into_iter()
            .filter(|item| item.get("sk").and_then(|v| v.as_s().ok()).is_none_or(|sk| sk != OUTBOUND_SK))
            .map(|item| serde_dynamo::from_item(item).map_err(corrupt))
            .collect()
    }
}
