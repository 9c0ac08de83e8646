//! The messages the functions pass each other over SQS, and the client that sends them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::QueueConfig;
use crate::domain::{AccountId, Channel, ContactId, InboundMessage, MessageId, SendJobId, SendRequest, WorkspaceId};

/// A new inbound message for the flow engine (FIFO: one message group per conversation, so a
/// conversation's messages are handled in order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowEvent {
    pub workspace_id: WorkspaceId,
    pub conversation_id: String,
    pub channel: Channel,
    pub account_id: AccountId,
    pub contact_id: ContactId,
    pub message_id: MessageId,
    pub sent_at: DateTime<Utc>,
}

impl FlowEvent {
    pub fn for_message(workspace: &WorkspaceId, message: &InboundMessage) -> Self {
        Self {
            workspace_id: workspace.clone(),
            conversation_id: message.conversation_id(),
            channel: message.channel,
            account_id: message.account_id.clone(),
            contact_id: message.contact_id.clone(),
            message_id: message.message_id.clone(),
            sent_at: message.sent_at,
        }
    }

    /// SQS FIFO drops a second event with the same id within 5 minutes, which covers
    /// concurrent redeliveries of one message; the flow engine's own step guard covers the rest.
    pub fn deduplication_id(&self) -> String {
        hex::encode(Sha256::digest(format!("{}#{}", self.workspace_id, self.message_id)))
    }
}

/// A send that failed, handed to Smart Retry: refused in Meta's answer (by the sender), or
/// accepted and then reported `failed` (by the webhook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendFailure {
    pub workspace_id: WorkspaceId,
    /// Our send job, when known (Meta echoes it in `biz_opaque_callback_data`).
    pub job_id: Option<SendJobId>,
    /// The wamid of the failed message, when Meta had accepted it.
    #[serde(default)]
    pub message_id: Option<MessageId>,
    /// The attempt that failed, when the sender reports it.
    #[serde(default)]
    pub attempt: Option<u32>,
    pub recipient_id: String,
    pub error_code: Option<i64>,
    #[serde(default)]
    pub http_status: Option<u16>,
    pub error_title: Option<String>,
    pub failed_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
#[error("SQS {operation} to {queue} failed: {reason}")]
pub struct QueueError {
    pub operation: &'static str,
    pub queue: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Queues {
    sqs: aws_sdk_sqs::Client,
    config: QueueConfig,
}

impl Queues {
    pub fn new(sqs: aws_sdk_sqs::Client, config: QueueConfig) -> Self {
        Self { sqs, config }
    }

    pub async fn emit_flow_event(&self, event: &FlowEvent) -> Result<(), QueueError> {
        let body = serde_json::to_string(event).expect("flow events serialize");
        self.sqs
            .send_message()
            .queue_url(&self.config.flow_queue_url)
            .message_body(body)
            .message_group_id(&event.conversation_id)
            .message_deduplication_id(event.deduplication_id())
            .send()
            .await
            .map_err(|e| QueueError {
                operation: "SendMessage",
                queue: self.config.flow_queue_url.clone(),
                reason: format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)),
            })?;
        Ok(())
    }

    /// Puts a send request on the send queue, optionally delayed (SQS allows up to 15 minutes).
    pub async fn enqueue_send(&self, request: &SendRequest, delay: chrono::Duration) -> Result<(), QueueError> {
        let body = serde_json::to_string(request).expect("send requests serialize");
        self.sqs
            .send_message()
            .queue_url(&self.config.send_queue_url)
            .message_body(body)
            .delay_seconds(delay.num_seconds().clamp(0, 900) as i32)
            .send()
            .await
            .map_err(|e| QueueError {
                operation: "SendMessage",
                queue: self.config.send_queue_url.clone(),
                reason: format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)),
            })?;
        Ok(())
    }

    /// Puts a send queue message's body back as a new message (a request not started in time).
    pub async fn requeue_send_body(&self, body: &str) -> Result<(), QueueError> {
        self.sqs.send_message().queue_url(&self.config.send_queue_url).message_body(body).send().await.map_err(
            |e| QueueError {
                operation: "SendMessage",
                queue: self.config.send_queue_url.clone(),
                reason: format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)),
            },
        )?;
        Ok(())
    }

    pub async fn hand_to_retry(&self, failure: &SendFailure) -> Result<(), QueueError> {
        let body = serde_json::to_string(failure).expect("failures serialize");
        self.sqs.send_message().queue_url(&self.config.retry_queue_url).message_body(body).send().await.map_err(
            |e| QueueError {
                operation: "SendMessage",
                queue: self.config.retry_queue_url.clone(),
                reason: format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)),
            },
        )?;
        Ok(())
    }
}
