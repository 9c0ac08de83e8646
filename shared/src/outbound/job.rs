//! A send job: one message to one recipient, with a deterministic id (broadcast + contact,
//! flow run + step, API request key) so that redelivered work maps to one send.

use serde::{Deserialize, Serialize};

use super::content::OutboundContent;
use crate::ids::{SendJobId, WorkspaceId};
use crate::inbound::event::Channel;
use crate::policy::send::SentBy;

/// On whose behalf a message goes out; the send policy treats them differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Origin {
    /// An agent in the inbox composer.
    Human {
        agent_id: String,
    },
    Flow {
        run_id: String,
        step: String,
    },
    Broadcast {
        broadcast_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendJob {
    pub job_id: SendJobId,
    pub workspace_id: WorkspaceId,
    pub channel: Channel,
    /// The business side: phone number id or Instagram account id.
    pub account_id: String,
    /// The customer: WhatsApp id or Instagram-scoped id.
    pub to: String,
    pub origin: Origin,
    pub content: OutboundContent,
}

impl SendJob {
    /// A Smart Retry resend is automated, whoever wrote the original (FAQ: `dnd` blocks
    /// "Smart Retry resends").
    pub fn sent_by(&self, attempt: u32) -> SentBy {
        match (&self.origin, attempt) {
            (Origin::Broadcast { .. }, _) => SentBy::Broadcast,
            (Origin::Human { .. }, 0) => SentBy::Human,
            _ => SentBy::Automation,
        }
    }

    pub fn conversation_id(&self) -> String {
        format!("{}:{}:{}", self.channel.as_str(), self.account_id, self.to)
    }
}

/// A message on the send queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SendRequest {
    /// A new job, whole.
    New { job: Box<SendJob> },
    /// Send attempt `attempt` of a stored job (a Smart Retry firing, a backoff, a release).
    Attempt { workspace_id: WorkspaceId, job_id: SendJobId, attempt: u32 },
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Claimed by a sender, whose lease runs until `lease_until`.
    Sending,
    /// Meta accepted it and gave a wamid.
    Accepted,
    /// Meta reported it delivered or read.
    Delivered,
    /// We do not know whether Meta accepted it (no answer, a crash): never resent blindly.
    Uncertain,
    /// Meta refused an attempt; Smart Retry decides what follows.
    FailedAttempt,
    /// Waiting for attempt `attempt` (a schedule or a delayed queue message).
    RetryScheduled,
    Failed,
    /// The send policy said no; recorded with its reason, never retried.
    Refused,
}

impl JobState {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::Failed | Self::Refused)
    }
}
