//! Inbound messages, stored exactly once per workspace by Meta's message id.
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
use crate::domain::InboundMessage;
use crate::domain::WorkspaceId;

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

    /// A page of a conversation's messages, oldest first (by Meta's timestamp).
    pub async fn conversation_messages_page(
        &self,
        workspace: &WorkspaceId,
        conversation_id: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Result<super::pages::Page<StoredMessage>, super::pages::BadCursor>, StoreError> {
        let key = keys::conversation_messages(workspace, conversation_id);
        let page = self.index_page(workspace, key, super::pages::Order::OldestFirst, limit, cursor).await?;
        Ok(match page {
            Ok(page) => Ok(super::pages::Page {
                items: page
                    .items
                    .into_iter()
                    .map(|item| serde_dynamo::from_item(item).map_err(corrupt))
                    .collect::<Result<_, _>>()?,
                next: page.next,
            }),
            Err(bad) => Err(bad),
        })
    }

    /// A conversation's messages, oldest first (by Meta's timestamp).
    pub async fn conversation_messages(
        &self,
        workspace: &WorkspaceId,
        conversation_id: &str,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.query_index(keys::conversation_messages(workspace, conversation_id), "Query conversation messages")
            .await?
            .into_iter()
            .map(|item| serde_dynamo::from_item(item).map_err(corrupt))
            .collect()
    }
}
