//! Smart Retry at work: takes a failed send off the retry queue, decides with [`super::decide`],
//! and either schedules the next attempt with a one-time EventBridge Scheduler schedule (the
//! waits are far beyond SQS's 15-minute delay) or settles the job as FAILED.
//!
//! Schedules are named after the job and attempt, so a redelivered hand-over finds its schedule
//! already there instead of creating a second one; they put the job back on the send queue and
//! are deleted after they fire. The 131049 ladder uses a one-hour flexible window so that a
//! broadcast's many day-7 retries do not all fire in the same second.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::{ATTEMPT_BUDGET, FailureClass, RetryDecision, classify, decide};
use crate::clock::SharedClock;
use crate::config::SchedulerConfig;
use crate::domain::DeliveryState;
use crate::domain::NumberState;
use crate::domain::{JobState, SendRequest};
use crate::domain::{SendJobId, WorkspaceId};
use crate::outbound::undeliverable;
use crate::queues::{QueueError, Queues, SendFailure};
use crate::schedules::{OneTime, create_once};
use crate::store::jobs::{AttemptRef, Counted, JobRecord, RetryPlan};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("the job disappeared while its failure was being handled")]
    Vanished,
    #[error("job {0} is still being sent; its failure is handled once the sender has recorded the attempt")]
    StillSending(String),
    #[error("creating the retry schedule {name} failed: {reason}")]
    Schedule { name: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    Scheduled {
        attempt: u32,
        at: DateTime<Utc>,
        schedule: String,
    },
    Backoff {
        attempt: u32,
    },
    GaveUp {
        class: FailureClass,
    },
    TaggedDoNotSend,
    /// Not a job of ours, or a hand-over about an attempt that is no longer current.
    Ignored(&'static str),
}

/// Spread of the 131049 retries (Scheduler picks a moment inside the window).
pub const FREQUENCY_CAP_SPREAD_MINUTES: i32 = 60;

pub struct SmartRetry {
    store: Store,
    scheduler: aws_sdk_scheduler::Client,
    config: SchedulerConfig,
    queues: Queues,
    clock: SharedClock,
}

/// `retry-<hash of workspace and job>-<attempt>`: Scheduler names allow 64 characters.
pub fn schedule_name(workspace: &WorkspaceId, job_id: &SendJobId, attempt: u32) -> String {
    let hash = hex::encode(Sha256::digest(format!("{workspace}/{job_id}")));
    format!("retry-{}-{attempt}", &hash[..40])
}

impl SmartRetry {
    pub fn new(
        store: Store,
        scheduler: aws_sdk_scheduler::Client,
        config: SchedulerConfig,
        queues: Queues,
        clock: SharedClock,
    ) -> Self {
        Self { store, scheduler, config, queues, clock }
    }

    pub async fn handle(&self, failure: SendFailure) -> Result<RetryOutcome, RetryError> {
        let ws = &failure.workspace_id;
        let Some(job_id) = failure.job_id.as_deref().and_then(|j| SendJobId::parse(j).ok()) else {
            return Ok(RetryOutcome::Ignored("the failed message was not sent by a job of ours"));
        };
        let Some(record) = self.store.job(ws, &job_id).await? else {
            return Ok(RetryOutcome::Ignored("no such job"));
        };
        // Meta's `failed` webhook starts no chain of its own: the job's chain goes on.
        match record.correlation_id.clone() {
            Some(chain) if crate::correlation::current().as_ref() != Some(&chain) => {
                crate::correlation::scope(Some(chain), self.judge_in_span(failure, job_id, record)).await
            }
            _ => self.judge_in_span(failure, job_id, record).await,
        }
    }

    /// [`Self::judge`] in its span, made where it runs: inside the job's chain.
    async fn judge_in_span(
        &self,
        failure: SendFailure,
        job_id: SendJobId,
        record: JobRecord,
    ) -> Result<RetryOutcome, RetryError> {
        // The attempt is known once judged (a failure reported by webhook names none).
        let span = tracing::info_span!("smart_retry", workspace = %failure.workspace_id, job = %job_id,
            attempt = tracing::field::Empty, code = ?failure.error_code);
        self.judge(failure, job_id, record).instrument(span).await
    }

    async fn judge(
        &self,
        failure: SendFailure,
        job_id: SendJobId,
        mut record: JobRecord,
    ) -> Result<RetryOutcome, RetryError> {
        let ws = &failure.workspace_id;
        let now = self.clock.now();
        // Meta's `failed` webhook can overtake the sender's own record of the attempt: come back
        // later (SQS redelivers) rather than judge an attempt that is not written down yet.
        if record.state == JobState::Sending {
            return Err(RetryError::StillSending(job_id.to_string()));
        }
        // A send we were unsure about was accepted after all, then refused: take it as accepted.
        if let (JobState::Uncertain, Some(wamid)) = (record.state, failure.message_id.as_deref()) {
            self.store.reconcile_job(ws, &job_id, wamid, DeliveryState::Failed, now).await?;
            record = self.store.job(ws, &job_id).await?.ok_or(RetryError::Vanished)?;
        }
        let failed_attempt = match (failure.attempt, failure.message_id.as_deref()) {
            (Some(attempt), _) => attempt,
            (None, Some(wamid)) if record.wamid.as_deref() == Some(wamid) => record.attempt,
            _ => return Ok(RetryOutcome::Ignored("the failure is about an earlier attempt")),
        };
        if failed_attempt != record.attempt {
            return Ok(RetryOutcome::Ignored("the failure is about an earlier attempt"));
        }
        // A refusal in Meta's answer leaves the job FAILED_ATTEMPT; a failure reported by
        // webhook leaves it FAILED_ATTEMPT for that wamid (or ACCEPTED, if the webhook could
        // not move it). Anything else was settled meanwhile — typically a status webhook proved
        // Meta had the message after all (an answer lost on the way back), and resending would
        // deliver it twice.
        let reported = failure.message_id.as_deref();
        let is_current_failure = match (record.state, reported) {
            (JobState::FailedAttempt, Some(wamid)) => record.failure_wamid.as_deref() == Some(wamid),
            (JobState::FailedAttempt, None) => record.failure_wamid.is_none(),
            (JobState::Accepted, Some(wamid)) => record.wamid.as_deref() == Some(wamid),
            _ => false,
        };
        if !is_current_failure {
            return Ok(RetryOutcome::Ignored("the job was settled meanwhile"));
        }
        let expected = record.state;
        tracing::Span::current().record("attempt", failed_attempt);
        let reason = failure.error_title.clone().unwrap_or_else(|| format!("Meta error {:?}", failure.error_code));
        let class = classify(failure.error_code, failure.http_status);
        let current = AttemptRef { workspace: ws, job_id: &job_id, state: expected, attempt: failed_attempt };
        let give_up = |reason: String| async move {
            let settled = self.store.fail_job(current, failure.error_code, &reason, now).await?;
            tracing::info!(?class, %reason, settled, "send failed for good");
            Ok::<_, RetryError>(RetryOutcome::GaveUp { class })
        };
        let job = &record.job;
        match class {
            // The effects of a failure come before the job is settled and are idempotent per
            // job, so a hand-over that fails half way and is delivered again completes them.
            FailureClass::NotOnWhatsApp => {
                let tagged = undeliverable::not_on_whatsapp(&self.store, ws, job.channel, &job.to, &job_id).await?;
                give_up(reason).await?;
                Ok(if tagged { RetryOutcome::TaggedDoNotSend } else { RetryOutcome::GaveUp { class } })
            }
            FailureClass::TokenInvalid => {
                let why = format!("Meta rejected the access token: {reason}");
                self.store.set_number_state(ws, job.channel, &job.account_id, NumberState::Error, &why, now).await?;
                tracing::warn!("access token invalid: number moved to ERROR");
                give_up(reason).await
            }
            FailureClass::Permanent => give_up(reason).await,
            FailureClass::FrequencyCap | FailureClass::Transient | FailureClass::Throttled => {
                let ladder = class.ladder();
                let climbed = if record.ladder.as_deref() == Some(ladder) { record.retries } else { 0 };
                let failed_wamid = failure.message_id.as_deref();
                match decide(class, climbed, record.throttled) {
                    RetryDecision::GiveUp => give_up(format!("{reason} (retries exhausted)")).await,
                    RetryDecision::RetryAfter { .. } if record.retries_total + 1 >= ATTEMPT_BUDGET => {
                        give_up(format!("{reason} (all {ATTEMPT_BUDGET} attempts used)")).await
                    }
                    RetryDecision::Backoff { delay } => {
                        // A rate limit reported by webhook: try again soon, through SQS.
                        let plan = RetryPlan { at: now + delay, failed_wamid, counted: Counted::Throttle };
                        self.store.schedule_job_retry(current, plan, now).await?;
                        // Queued even if that write was refused: the refusal may come from its
                        // own first try (made by DynamoDB, its answer lost), and a request for a
                        // job that moved on meanwhile finds it settled and does nothing.
                        let next = SendRequest::Attempt {
                            workspace_id: ws.clone(),
                            job_id: job_id.clone(),
                            attempt: failed_attempt + 1,
                        };
                        self.queues.enqueue_send(&next, delay).await?;
                        crate::metrics::retry_scheduled("throttle");
                        Ok(RetryOutcome::Backoff { attempt: failed_attempt + 1 })
                    }
                    RetryDecision::RetryAfter { delay, retry } => {
                        let attempt = failed_attempt + 1;
                        let at = now + delay;
                        let name = self.create_schedule(ws, &job_id, attempt, at, class).await?;
                        let plan = RetryPlan { at, failed_wamid, counted: Counted::Retry { ladder, retries: retry } };
                        if !self.store.schedule_job_retry(current, plan, now).await?
                            && !self.retry_is_scheduled(ws, &job_id, attempt).await?
                        {
                            self.delete_schedule(&name).await;
                            return Ok(RetryOutcome::Ignored("the job was settled meanwhile"));
                        }
                        tracing::info!(%at, schedule = %name, "retry scheduled");
                        crate::metrics::retry_scheduled(if class == FailureClass::FrequencyCap {
                            "frequency_cap"
                        } else {
                            "transient"
                        });
                        Ok(RetryOutcome::Scheduled { attempt, at, schedule: name })
                    }
                }
            }
        }
    }

    /// Whether the job waits for `attempt` from a schedule already: after a refused write, that
    /// is this write's own first try (made by DynamoDB, its answer lost) or a duplicate
    /// hand-over's, and either way the schedule of that name (one per attempt) is the one it
    /// waits for, not to be deleted.
    async fn retry_is_scheduled(&self, ws: &WorkspaceId, job_id: &SendJobId, attempt: u32) -> Result<bool, RetryError> {
        let record = self.store.job(ws, job_id).await?;
        Ok(record.is_some_and(|r| r.state == JobState::RetryScheduled && r.attempt == attempt))
    }

    /// Removes a schedule that will not be needed; a leftover one would fire harmlessly.
    async fn delete_schedule(&self, name: &str) {
        let deleted = self.scheduler.delete_schedule().group_name(&self.config.group_name).name(name).send().await;
        if let Err(error) = deleted {
            tracing::debug!(name, error = %aws_sdk_scheduler::error::DisplayErrorContext(&error), "schedule not deleted");
        }
    }

    async fn create_schedule(
        &self,
        ws: &WorkspaceId,
        job_id: &SendJobId,
        attempt: u32,
        at: DateTime<Utc>,
        class: FailureClass,
    ) -> Result<String, RetryError> {
        let name = schedule_name(ws, job_id, attempt);
        let input = crate::correlation::body(&SendRequest::Attempt {
            workspace_id: ws.clone(),
            job_id: job_id.clone(),
            attempt,
        });
        let schedule = OneTime {
            name: &name,
            group: &self.config.group_name,
            at,
            target_arn: &self.config.send_queue_arn,
            role_arn: &self.config.role_arn,
            input,
            dead_letter_arn: self.config.dead_letter_arn.as_deref(),
            spread_minutes: (class == FailureClass::FrequencyCap).then_some(FREQUENCY_CAP_SPREAD_MINUTES),
        };
        match create_once(&self.scheduler, schedule).await {
            Ok(()) => Ok(name),
            Err(reason) => Err(RetryError::Schedule { name, reason }),
        }
    }
}
