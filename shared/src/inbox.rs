//! The shared inbox's composer: a human's reply, queued like every send (the job is stored
//! before it is queued), with a job id derived from the caller's `Idempotency-Key` so that a
//! retried POST sends once and the same key with another body is a conflict. The composer
//! refuses up front what Meta would refuse (free-form outside the 24-hour window, templates on
//! Instagram) with a message that says what to do instead. `dnd` never blocks a human reply.

use chrono::{DateTime, Utc};

use crate::domain::{AccountId, ContactId, JobState, Origin, SendJob, SendJobId, WorkspaceId};
use crate::outbound::accept::{AcceptError, accept_send};
use crate::outbound::content::OutboundContent;
use crate::policy::handoff::human_send_takes_over;
use crate::policy::send::{Refusal, human_may_compose};
use crate::queues::Queues;
use crate::store::conversations::HandoffBy;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("no conversation {0} in this workspace")]
    NoConversation(String),
    #[error("{0}")]
    Refused(Refusal),
    #[error("the Idempotency-Key header {0}")]
    BadIdempotencyKey(&'static str),
    #[error("the stored conversation is unreadable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Accept(#[from] AcceptError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A human's message from the inbox.
#[derive(Debug, Clone)]
pub struct Reply {
    pub agent_id: String,
    pub content: OutboundContent,
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub job_id: SendJobId,
    pub state: JobState,
    /// Whether this reply handed the conversation to the human (flows stop).
    pub handoff: bool,
}

/// The send job id for an idempotency key: the same key always names the same job.
pub fn job_id_for(idempotency_key: &str) -> Result<SendJobId, ComposeError> {
    let key = idempotency_key.trim();
    if key.is_empty() || key.len() > 128 {
        return Err(ComposeError::BadIdempotencyKey("must be 1 to 128 characters"));
    }
    SendJobId::parse(format!("inbox-{key}"))
        .map_err(|_| ComposeError::BadIdempotencyKey("must not contain '#' or control characters"))
}

pub async fn reply(
    store: &Store,
    queues: &Queues,
    workspace: &WorkspaceId,
    conversation_id: &str,
    reply: Reply,
    now: DateTime<Utc>,
) -> Result<Queued, ComposeError> {
    let job_id = job_id_for(&reply.idempotency_key)?;
    let Some(conversation) = store.conversation(workspace, conversation_id).await? else {
        return Err(ComposeError::NoConversation(conversation_id.to_owned()));
    };
    let kind = reply.content.kind();
    let corrupt = |e: crate::domain::InvalidId| ComposeError::Corrupt(e.to_string());
    let job = SendJob {
        job_id: job_id.clone(),
        workspace_id: workspace.clone(),
        channel: conversation.channel,
        account_id: AccountId::parse(conversation.account_id.as_str()).map_err(corrupt)?,
        to: ContactId::for_channel(conversation.channel, &conversation.contact_id).map_err(corrupt)?,
        origin: Origin::Human { agent_id: reply.agent_id },
        content: reply.content,
    };
    let handoff = human_send_takes_over(kind);
    // A retried POST answers what the first one did: no rule is judged again (the window may
    // have closed since), and handoff is not set again (an agent may have turned it off).
    if let Some(existing) = store.job(workspace, &job_id).await? {
        if existing.request_hash.as_deref() == Some(job.request_hash().as_str()) {
            return Ok(Queued { job_id, state: existing.state, handoff });
        }
        // Another body under the same key: accepting it records and answers the conflict.
        let state = accept_send(store, queues, &job, now).await?;
        return Ok(Queued { job_id, state, handoff });
    }
    human_may_compose(conversation.channel, kind, Some(conversation.last_inbound_at), now)
        .map_err(ComposeError::Refused)?;
    // Handoff first: if the send were queued and the flag then failed, a bot could answer
    // over the human.
    if handoff {
        store.set_handoff(workspace, conversation_id, true, HandoffBy::Human).await?;
    }
    let state = accept_send(store, queues, &job, now).await?;
    Ok(Queued { job_id, state, handoff })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_idempotency_key_always_names_the_same_job() {
        assert_eq!(job_id_for("reply-42").unwrap(), job_id_for(" reply-42 ").unwrap());
        assert_ne!(job_id_for("reply-42").unwrap(), job_id_for("reply-43").unwrap());
    }

    #[test]
    fn an_unusable_idempotency_key_says_why() {
        assert!(matches!(job_id_for(""), Err(ComposeError::BadIdempotencyKey(_))));
        assert!(matches!(job_id_for("a#b"), Err(ComposeError::BadIdempotencyKey(_))));
        assert!(matches!(job_id_for(&"k".repeat(129)), Err(ComposeError::BadIdempotencyKey(_))));
    }
}
