//! A correlation id follows one piece of work through the functions: a customer's message from
//! the webhook, through the flow tick it starts, the sends the flow makes and their Smart
//! Retries; an agent's reply from the API to the sender; a broadcast's sends.
//!
//! It travels in every queue message body (`"correlation_id"` beside the message's own
//! fields, so a schedule's body carries it too) and on the stored send job. Each function
//! handles a message inside [`scope`]: every log line it writes has the id (a span field), and
//! every message it queues carries it on. Work that starts a chain takes a fresh id, or, for an
//! inbound message, one derived from the message id, so Meta's redeliveries share it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{BroadcastId, CorrelationId, MessageId, WorkspaceId};

tokio::task_local! {
    static CURRENT: CorrelationId;
}

/// The id of the work being done, when inside [`scope`].
pub fn current() -> Option<CorrelationId> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `work` as part of `id`'s chain: its log lines carry the id, its queue messages too.
/// Without an id (a message from before correlation ids existed) it starts a new chain.
pub async fn scope<F: std::future::Future>(id: Option<CorrelationId>, work: F) -> F::Output {
    use tracing::Instrument;
    let id = id.unwrap_or_else(fresh);
    let span = tracing::info_span!("work", correlation_id = %id);
    CURRENT.scope(id, work.instrument(span)).await
}

/// A new chain's id: random, `c-` and 20 hex digits.
pub fn fresh() -> CorrelationId {
    let bytes: [u8; 10] = rand::random();
    CorrelationId::parse(format!("c-{}", hex::encode(bytes))).expect("a fixed shape")
}

/// The id of the chain an inbound message starts: the same for every redelivery of it.
pub fn for_inbound(workspace: &WorkspaceId, message: &MessageId) -> CorrelationId {
    derived(&format!("{workspace}#{message}"))
}

/// The id of a broadcast's chain: every run of its fan-out and every send it queues.
pub fn for_broadcast(workspace: &WorkspaceId, broadcast: &BroadcastId) -> CorrelationId {
    derived(&format!("{workspace}#broadcast#{broadcast}"))
}

fn derived(natural: &str) -> CorrelationId {
    let digest = Sha256::digest(natural);
    CorrelationId::parse(format!("c-{}", hex::encode(&digest[..10]))).expect("a fixed shape")
}

/// A queue message with the correlation id beside its own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Traced<T> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<CorrelationId>,
    #[serde(flatten)]
    pub message: T,
}

/// The body of a queue message (or a schedule's target input) carrying the current id.
pub fn body<T: Serialize>(message: &T) -> String {
    body_in(current(), message)
}

/// The body of a queue message carrying `id`.
pub fn body_in<T: Serialize>(id: Option<CorrelationId>, message: &T) -> String {
    serde_json::to_string(&Traced { correlation_id: id, message }).expect("queue messages serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{SendJobId, SendRequest};

    fn attempt() -> SendRequest {
        SendRequest::Attempt {
            workspace_id: WorkspaceId::parse("acme").unwrap(),
            job_id: SendJobId::parse("job-1").unwrap(),
            attempt: 2,
        }
    }

    #[tokio::test]
    async fn a_message_queued_inside_a_scope_carries_its_id_and_reads_back_whole() {
        let id = CorrelationId::parse("c-0123456789abcdef0123").unwrap();
        let body = scope(Some(id.clone()), async { body(&attempt()) }).await;
        let read: Traced<SendRequest> = serde_json::from_str(&body).unwrap();
        assert_eq!(read.correlation_id, Some(id));
        assert_eq!(read.message, attempt());
    }

    #[test]
    fn a_message_from_before_correlation_ids_still_reads() {
        let old = serde_json::to_string(&attempt()).unwrap();
        let read: Traced<SendRequest> = serde_json::from_str(&old).unwrap();
        assert_eq!((read.correlation_id, read.message), (None, attempt()));
        assert_eq!(body_in(None, &attempt()), old, "outside a scope the body is unchanged");
    }

    #[tokio::test]
    async fn work_without_an_id_starts_a_new_chain() {
        let inside = scope(None, async { current() }).await.unwrap();
        assert!(inside.starts_with("c-") && inside.len() == 22, "{inside}");
        assert_eq!(current(), None, "outside every scope");
    }

    #[test]
    fn every_redelivery_of_an_inbound_message_shares_its_chain() {
        let ws = WorkspaceId::parse("acme").unwrap();
        let message = MessageId::parse("wamid.HBgL").unwrap();
        assert_eq!(for_inbound(&ws, &message), for_inbound(&ws, &message));
        assert_ne!(for_inbound(&ws, &message), for_inbound(&ws, &MessageId::parse("wamid.other").unwrap()));
    }
}
