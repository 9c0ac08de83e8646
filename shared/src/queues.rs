//! The messages the functions pass each other over SQS, and the client that sends them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::QueueConfig;
use crate::domain::{
    AccountId, Channel, ContactId, InboundMessage, MessageId, RunId, SendJobId, SendRequest, WorkspaceId,
    conversation_id,
};

/// The conversation a flow tick is about. Its id is the FIFO message group, so one
/// conversation's ticks run one at a time, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowConversation {
    pub workspace_id: WorkspaceId,
    pub channel: Channel,
    pub account_id: AccountId,
    pub contact_id: ContactId,
}

impl FlowConversation {
    pub fn id(&self) -> String {
        conversation_id(self.channel, &self.account_id, &self.contact_id)
    }
}

/// One message on the flow queue: one tick of a conversation's automation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tick", rename_all = "snake_case")]
pub enum FlowTick {
    /// The customer wrote: start a run, or answer the one waiting for a reply.
    Inbound { conversation: FlowConversation, message_id: MessageId, sent_at: DateTime<Utc> },
    /// Run the node a run is at (the run's `step`-th tick).
    Step { conversation: FlowConversation, run_id: RunId, step: u32 },
    /// A wait's timeout or a delay's end, for the wait the run parked at on its `step`-th tick.
    Wake { conversation: FlowConversation, run_id: RunId, step: u32 },
    /// A tag was added to the contact (`event_id` tells one addition from another).
    TagAdded { conversation: FlowConversation, tag: String, event_id: String },
}

impl FlowTick {
    pub fn for_message(workspace: &WorkspaceId, message: &InboundMessage) -> Self {
        Self::Inbound {
            conversation: FlowConversation {
                workspace_id: workspace.clone(),
                channel: message.channel,
                account_id: message.account_id.clone(),
                contact_id: message.contact_id.clone(),
            },
            message_id: message.message_id.clone(),
            sent_at: message.sent_at,
        }
    }

    pub fn conversation(&self) -> &FlowConversation {
        match self {
            Self::Inbound { conversation, .. }
            | Self::Step { conversation, .. }
            | Self::Wake { conversation, .. }
            | Self::TagAdded { conversation, .. } => conversation,
        }
    }

    /// SQS FIFO drops a second tick with the same id within 5 minutes, which covers
    /// concurrent redeliveries; the flow engine's own step guard covers the rest.
    pub fn deduplication_id(&self) -> String {
        let ws = &self.conversation().workspace_id;
        let conversation = self.conversation().id();
        let natural = match self {
            Self::Inbound { message_id, .. } => format!("{ws}#{message_id}"),
            Self::Step { run_id, step, .. } => format!("{ws}#{conversation}#{run_id}#step#{step}"),
            Self::Wake { run_id, step, .. } => format!("{ws}#{conversation}#{run_id}#wake#{step}"),
            Self::TagAdded { event_id, .. } => format!("{ws}#{conversation}#tag#{event_id}"),
        };
        hex::encode(Sha256::digest(natural))
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

    pub async fn emit_flow_tick(&self, tick: &FlowTick) -> Result<(), QueueError> {
        // A customer's message starts a chain of its own, whoever queues it.
        let correlation = match tick {
            FlowTick::Inbound { conversation, message_id, .. } => crate::correlation::current()
                .or_else(|| Some(crate::correlation::for_inbound(&conversation.workspace_id, message_id))),
            _ => crate::correlation::current(),
        };
        let body = crate::correlation::body_in(correlation, tick);
        self.sqs
            .send_message()
            .queue_url(&self.config.flow_queue_url)
            .message_body(body)
            .message_group_id(tick.conversation().id())
            .message_deduplication_id(tick.deduplication_id())
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
        let body = crate::correlation::body(request);
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

    /// Puts many send requests on the send queue, ten to a call (a broadcast's fan-out).
    pub async fn enqueue_sends(&self, requests: &[SendRequest]) -> Result<(), QueueError> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        let failed = |reason: String| QueueError {
            operation: "SendMessageBatch",
            queue: self.config.send_queue_url.clone(),
            reason,
        };
        for chunk in requests.chunks(10) {
            let mut entries: Vec<SendMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .map(|(i, request)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(crate::correlation::body(request))
                        .build()
                        .expect("id and body are set")
                })
                .collect();
            // A batch can succeed in part: send what failed again, a few times.
            for _ in 0..5 {
                let output = self
                    .sqs
                    .send_message_batch()
                    .queue_url(&self.config.send_queue_url)
                    .set_entries(Some(entries.clone()))
                    .send()
                    .await
                    .map_err(|e| failed(format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e))))?;
                let retry: Vec<&str> = output.failed().iter().map(|f| f.id()).collect();
                entries.retain(|e| retry.contains(&e.id()));
                if entries.is_empty() {
                    break;
                }
            }
            if !entries.is_empty() {
                return Err(failed(format!("{} messages of a batch were refused", entries.len())));
            }
        }
        Ok(())
    }

    /// Puts a send queue message's body back as a new message (a request not started in time).
    pub async fn requeue_send_body(&self, body: &str, delay: std::time::Duration) -> Result<(), QueueError> {
        let delay = i32::try_from(delay.as_secs() + u64::from(delay.subsec_nanos() > 0)).unwrap_or(900).min(900);
        self.sqs
            .send_message()
            .queue_url(&self.config.send_queue_url)
            .message_body(body)
            .delay_seconds(delay)
            .send()
            .await
            .map_err(|e| QueueError {
                operation: "SendMessage",
                queue: self.config.send_queue_url.clone(),
                reason: format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)),
            })?;
        Ok(())
    }

    pub async fn hand_to_retry(&self, failure: &SendFailure) -> Result<(), QueueError> {
        let body = crate::correlation::body(failure);
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
