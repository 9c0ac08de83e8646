//! A send job: one message to one recipient, with a deterministic id (broadcast + contact,
//! flow run + step, API request key) so that redelivered work maps to one send.

use serde::{Deserialize, Serialize};

use sha2::{Digest, Sha256};

use super::Channel;
use super::{AccountId, ContactId, InvalidId, SendJobId, WorkspaceId};
use crate::outbound::content::OutboundContent;
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
#[serde(try_from = "SendJobFields")]
pub struct SendJob {
    pub job_id: SendJobId,
    pub workspace_id: WorkspaceId,
    pub channel: Channel,
    /// The business side: phone number id or Instagram account id.
    pub account_id: AccountId,
    /// The customer, normalised for the channel (see [`ContactId::for_channel`]).
    pub to: ContactId,
    pub origin: Origin,
    pub content: OutboundContent,
}

/// A send job as a caller writes it: `to` may be any way of writing the customer's number.
#[derive(Deserialize)]
struct SendJobFields {
    job_id: SendJobId,
    workspace_id: WorkspaceId,
    channel: Channel,
    account_id: AccountId,
    to: String,
    origin: Origin,
    content: OutboundContent,
}

impl TryFrom<SendJobFields> for SendJob {
    type Error = InvalidId;

    fn try_from(fields: SendJobFields) -> Result<Self, InvalidId> {
        Ok(Self {
            to: ContactId::for_channel(fields.channel, &fields.to)?,
            job_id: fields.job_id,
            workspace_id: fields.workspace_id,
            channel: fields.channel,
            account_id: fields.account_id,
            origin: fields.origin,
            content: fields.content,
        })
    }
}

impl SendJob {
    /// Who sends this job's message, once Smart Retry has resent it `smart_retries` times. A
    /// Smart Retry resend is automated, whoever wrote the original (FAQ: `dnd` blocks "Smart
    /// Retry resends"); an agent's reply sent again only because its first answer never came,
    /// or because Meta asked us to slow down, is still the agent's reply (FAQ: `dnd` "does NOT
    /// block direct human replies").
    pub fn sent_by(&self, smart_retries: u32) -> SentBy {
        match (&self.origin, smart_retries) {
            (Origin::Broadcast { .. }, _) => SentBy::Broadcast,
            (Origin::Flow { .. }, _) => SentBy::Flow,
            (Origin::Human { .. }, 0) => SentBy::Human,
            (Origin::Human { .. }, _) => SentBy::SmartRetry,
        }
    }

    pub fn conversation_id(&self) -> String {
        crate::domain::conversation_id(self.channel, &self.account_id, self.to.as_str())
    }

    /// A fingerprint of what was asked: the same job id with other content is a reused
    /// idempotency key, a conflict to surface rather than a duplicate to drop.
    pub fn request_hash(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("send jobs serialize");
        hex::encode(&Sha256::digest(canonical)[..16])
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
    /// Accepted from the API, a flow or a broadcast; its first attempt is on the send queue.
    Queued,
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

    /// Waiting for an attempt: the states a sender may claim from.
    pub fn is_waiting(self) -> bool {
        matches!(self, Self::Queued | Self::RetryScheduled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_json(to: &str, body: &str) -> String {
        format!(
            r#"{{"job_id":"j1","workspace_id":"acme","channel":"wa","account_id":"1065","to":"{to}",
                "origin":{{"type":"human","agent_id":"a"}},"content":{{"type":"text","body":"{body}"}}}}"#
        )
    }

    #[test]
    fn a_job_reaches_the_customer_however_their_number_was_written() {
        let job: SendJob = serde_json::from_str(&job_json("+1 650-555-1234", "hi")).unwrap();
        assert_eq!(job.to.as_str(), "16505551234");
        assert_eq!(job.conversation_id(), "wa:1065:16505551234");
        assert!(serde_json::from_str::<SendJob>(&job_json("not a number", "hi")).is_err());
    }

    #[test]
    fn the_request_hash_tells_a_redelivery_from_a_reused_job_id() {
        let first: SendJob = serde_json::from_str(&job_json("16505551234", "hi")).unwrap();
        let again: SendJob = serde_json::from_str(&job_json("+16505551234", "hi")).unwrap();
        let other: SendJob = serde_json::from_str(&job_json("16505551234", "bye")).unwrap();
        assert_eq!(first.request_hash(), again.request_hash());
        assert_ne!(first.request_hash(), other.request_hash());
    }

    #[test]
    fn an_agents_reply_stays_the_agents_until_smart_retry_resends_it() {
        let mut job: SendJob = serde_json::from_str(&job_json("16505551234", "hi")).unwrap();
        assert_eq!(job.sent_by(0), SentBy::Human, "however many tries reaching Meta took");
        assert_eq!(job.sent_by(1), SentBy::SmartRetry);
        job.origin = Origin::Flow { run_id: "r".into(), step: "greet".into() };
        assert_eq!((job.sent_by(0), job.sent_by(2)), (SentBy::Flow, SentBy::Flow));
        job.origin = Origin::Broadcast { broadcast_id: "spring".into() };
        assert_eq!(job.sent_by(1), SentBy::Broadcast);
    }
}
