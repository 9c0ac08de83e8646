//! Sending one job: claim it, apply the send policy with fresh facts, open the token, call the
//! Graph API, record what happened. Failures Meta answered with go to Smart Retry; an answer
//! that never came leaves the job UNCERTAIN for its status webhook (or the sweeper) to settle.

use std::sync::Arc;

use chrono::Duration;

use super::job::{JobState, SendRequest};
use crate::clock::SharedClock;
use crate::meta::graph::{GraphClient, GraphError};
use crate::outbound::content::OutboundContent;
use crate::outbound::job::Origin;
use crate::policy::send::{SendFacts, may_send};
use crate::queues::{QueueError, Queues, SendFailure};
use crate::retry::{FailureClass, classify, throttle_backoff};
use crate::store::jobs::{AttemptOutcome, Claim, JobRecord};
use crate::store::{Store, StoreError};
use crate::vault::{Vault, VaultError};

/// How long a claim protects a job from a second sender: longer than a Graph call with its
/// timeout plus the write that records it.
pub fn send_lease() -> Duration {
    Duration::seconds(60)
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("another sender holds this job until {0}; try again later")]
    Busy(chrono::DateTime<chrono::Utc>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Vault(VaultError),
}

/// What became of one send request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Accepted {
        wamid: String,
    },
    /// Meta had it already (its status arrived while the answer was lost).
    Reconciled {
        wamid: String,
    },
    Refused {
        reason: String,
    },
    Failed {
        reason: String,
    },
    HandedToRetry {
        code: Option<i64>,
    },
    Requeued,
    Uncertain,
    AlreadySettled(JobState),
    Missing,
    /// The claim was taken from us (a status webhook settled the job first).
    LostClaim,
}

pub struct Sender {
    store: Store,
    vault: Arc<Vault>,
    graph: GraphClient,
    queues: Queues,
    clock: SharedClock,
}

impl Sender {
    pub fn new(store: Store, vault: Arc<Vault>, graph: GraphClient, queues: Queues, clock: SharedClock) -> Self {
        Self { store, vault, graph, queues, clock }
    }

    pub async fn send(&self, request: SendRequest) -> Result<SendOutcome, SendError> {
        let now = self.clock.now();
        let (claim, record) = match self.store.claim_job(&request, now, send_lease()).await? {
            Claim::Claimed { token, record } => (token, *record),
            Claim::LeaseHeld { until } => return Err(SendError::Busy(until)),
            Claim::BecameUncertain => return Ok(SendOutcome::Uncertain),
            Claim::Settled(state) => return Ok(SendOutcome::AlreadySettled(state)),
            Claim::Missing => {
                tracing::warn!(?request, "send request for a job that does not exist");
                return Ok(SendOutcome::Missing);
            }
        };
        let span = tracing::info_span!("send", workspace = %record.job.workspace_id, job = %record.job.job_id, attempt = record.attempt);
        let _entered = span.enter();
        let outcome = self.attempt(&claim, &record).await;
        if let Err(error) = &outcome {
            tracing::warn!(%error, "send attempt did not finish");
        }
        outcome
    }

    async fn finish(&self, claim: &str, record: &JobRecord, outcome: AttemptOutcome) -> Result<bool, StoreError> {
        let job = &record.job;
        self.store.finish_attempt(&job.workspace_id, &job.job_id, claim, outcome, self.clock.now()).await
    }

    async fn attempt(&self, claim: &str, record: &JobRecord) -> Result<SendOutcome, SendError> {
        let job = &record.job;
        let ws = &job.workspace_id;

        // A later attempt of a job Meta may have accepted already: its status says so.
        if (record.attempt > 0 || record.throttled > 0)
            && let Some(status) = self.store.status_for_job(ws, job.job_id.as_str()).await?
            && status.status != crate::inbound::status::DeliveryState::Failed
            && !record.failed_wamids.contains(&status.message_id)
        {
            let wamid = status.message_id;
            self.finish(claim, record, AttemptOutcome::Accepted { wamid: wamid.clone() }).await?;
            return Ok(SendOutcome::Reconciled { wamid });
        }

        let Some(number) = self.store.number(ws, job.channel, &job.account_id).await? else {
            let reason =
                format!("{} account {} is not connected to this workspace", job.channel.as_str(), job.account_id);
            self.finish(claim, record, AttemptOutcome::Refused { reason: reason.clone() }).await?;
            return Ok(SendOutcome::Refused { reason });
        };
        let template_status = match (&job.content, &number.waba_id) {
            (OutboundContent::Template { name, language, .. }, Some(waba)) => {
                self.store.template_status(ws, waba, name, language).await?
            }
            _ => None,
        };
        let conversation = self.store.conversation(ws, &job.conversation_id()).await?;
        let facts = SendFacts {
            channel: job.channel,
            sent_by: job.sent_by(record.attempt),
            kind: job.content.kind(),
            number_state: number.state,
            contact_tags: self.store.contact_tags(ws, job.channel, &job.to).await?,
            last_inbound_at: conversation.map(|c| c.last_inbound_at),
            now: self.clock.now(),
            template_status,
        };
        if let Err(refusal) = may_send(&facts) {
            let reason = refusal.to_string();
            tracing::info!(%reason, "send refused by policy");
            self.finish(claim, record, AttemptOutcome::Refused { reason: reason.clone() }).await?;
            return Ok(SendOutcome::Refused { reason });
        }

        let token = match self.vault.open(ws.as_str(), &number.account_id, &number.token).await {
            Ok(token) => token,
            Err(error @ VaultError::DoesNotOpen { .. }) => {
                let reason = error.to_string();
                self.finish(claim, record, AttemptOutcome::Failed { code: None, reason: reason.clone() }).await?;
                return Ok(SendOutcome::Failed { reason });
            }
            Err(error) => {
                // KMS is unreachable: nothing was sent, so the same attempt runs again shortly.
                tracing::warn!(%error, "token vault unavailable; sending again shortly");
                self.requeue(claim, record, false, Duration::seconds(30)).await?;
                return Ok(SendOutcome::Requeued);
            }
        };
        let body = job.content.graph_body(job.channel, &job.to, job.job_id.as_str());
        match self.graph.send_message(&job.account_id, &token, &body).await {
            Ok(wamid) => {
                // Recorded by us, or already by its status webhook (a lost claim): Meta has it
                // either way, and only this sender counts it for the broadcast.
                let recorded = self.finish(claim, record, AttemptOutcome::Accepted { wamid: wamid.clone() }).await?;
                if let Origin::Broadcast { broadcast_id } = &job.origin {
                    self.store.count_broadcast_accepted(ws, broadcast_id).await?;
                }
                tracing::info!(%wamid, recorded, "accepted by Meta");
                Ok(if recorded { SendOutcome::Accepted { wamid } } else { SendOutcome::LostClaim })
            }
            Err(GraphError::NotSent(reason)) => {
                tracing::warn!(%reason, "the request never reached Meta; sending again shortly");
                self.requeue(claim, record, false, Duration::seconds(5)).await?;
                Ok(SendOutcome::Requeued)
            }
            Err(error @ (GraphError::NoAnswer(_) | GraphError::UnreadableAnswer { .. })) => {
                tracing::warn!(%error, "no usable answer from Meta: UNCERTAIN until a status names the job");
                self.finish(claim, record, AttemptOutcome::Uncertain { reason: error.to_string() }).await?;
                Ok(SendOutcome::Uncertain)
            }
            Err(error) => {
                let (code, http_status) = error.code_and_status();
                if classify(code, http_status) == FailureClass::Throttled {
                    let delay = throttle_backoff(record.throttled);
                    tracing::info!(?code, delay_s = delay.num_seconds(), "rate limited; backing off");
                    self.requeue(claim, record, true, delay).await?;
                    return Ok(SendOutcome::Requeued);
                }
                let reason = error.to_string();
                if !self
                    .finish(claim, record, AttemptOutcome::FailedAttempt { code, http_status, reason: reason.clone() })
                    .await?
                {
                    return Ok(SendOutcome::LostClaim);
                }
                let failure = SendFailure {
                    workspace_id: ws.clone(),
                    job_id: Some(job.job_id.to_string()),
                    message_id: None,
                    attempt: Some(record.attempt),
                    recipient_id: job.to.clone(),
                    error_code: code,
                    http_status,
                    error_title: Some(reason),
                    failed_at: self.clock.now(),
                };
                self.queues.hand_to_retry(&failure).await?;
                Ok(SendOutcome::HandedToRetry { code })
            }
        }
    }

    /// Gives the attempt back (nothing reached Meta, or Meta asked us to slow down) and puts
    /// it on the send queue again after `delay`.
    async fn requeue(
        &self,
        claim: &str,
        record: &JobRecord,
        throttled: bool,
        delay: Duration,
    ) -> Result<(), SendError> {
        let until = self.clock.now() + delay;
        if self.finish(claim, record, AttemptOutcome::Requeued { throttled, until }).await? {
            let job = &record.job;
            let request = SendRequest::Attempt {
                workspace_id: job.workspace_id.clone(),
                job_id: job.job_id.clone(),
                attempt: record.attempt,
            };
            self.queues.enqueue_send(&request, delay).await?;
        }
        Ok(())
    }
}
