//! The sweeper settles what no event will settle by itself:
//!
//! - UNCERTAIN jobs (no answer from Meta, or a sender that died mid-send) whose status never
//!   arrived within `uncertain_after`. Documented policy: a free-form reply (a human's or a
//!   flow's) is resent once — a customer waiting for an answer is worse off without it — while
//!   a template is marked FAILED, because a duplicate marketing message costs the business
//!   money and quality rating.
//! - ACCEPTED jobs with no delivered/read status within `silent_after` become FAILED with no
//!   error message (FAQ: "Why do some of my messages show status FAILED with no error
//!   message?"); a broadcast whose silent failures pass 5% is flagged in its report.
//! - FAILED_ATTEMPT jobs that Smart Retry never picked up (the hand-over was lost) are handed
//!   over again; Smart Retry's conditional writes make a second hand-over harmless.

use chrono::Duration;

use crate::clock::SharedClock;
use crate::config::{ConfigError, Env};
use crate::inbound::status::DeliveryState;
use crate::outbound::job::{JobState, Origin, SendRequest};
use crate::policy::send::ContentKind;
use crate::queues::{QueueError, Queues, SendFailure};
use crate::store::jobs::AttemptRef;
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Copy)]
pub struct SweepPolicy {
    pub uncertain_after: Duration,
    pub silent_after: Duration,
    pub failed_attempt_after: Duration,
    /// How late a waiting attempt may be (beyond a retry's flexible window) before it is
    /// assumed lost and queued again.
    pub overdue_after: Duration,
}

impl SweepPolicy {
    /// `SWEEP_UNCERTAIN_AFTER_MINUTES` (15), `SWEEP_SILENT_AFTER_HOURS` (72).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            uncertain_after: Duration::minutes(env.parsed_or("SWEEP_UNCERTAIN_AFTER_MINUTES", 15)?),
            silent_after: Duration::hours(env.parsed_or("SWEEP_SILENT_AFTER_HOURS", 72)?),
            failed_attempt_after: Duration::minutes(10),
            overdue_after: Duration::hours(2),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    pub uncertain_reconciled: u32,
    pub uncertain_resent: u32,
    pub uncertain_failed: u32,
    pub silent_failures: u32,
    pub handed_to_retry_again: u32,
    pub overdue_requeued: u32,
    pub flagged_broadcasts: Vec<String>,
}

pub struct Sweeper {
    store: Store,
    queues: Queues,
    clock: SharedClock,
    policy: SweepPolicy,
}

impl Sweeper {
    pub fn new(store: Store, queues: Queues, clock: SharedClock, policy: SweepPolicy) -> Self {
        Self { store, queues, clock, policy }
    }

    pub async fn sweep(&self) -> Result<SweepReport, SweepError> {
        let mut report = SweepReport::default();
        self.settle_uncertain(&mut report).await?;
        self.fail_silent(&mut report).await?;
        self.rehand_failed_attempts(&mut report).await?;
        self.requeue_overdue(&mut report).await?;
        tracing::info!(?report, "sweep done");
        Ok(report)
    }

    async fn settle_uncertain(&self, report: &mut SweepReport) -> Result<(), SweepError> {
        let now = self.clock.now();
        for record in self.store.jobs_waiting_since(JobState::Uncertain, now - self.policy.uncertain_after).await? {
            let job = &record.job;
            let ws = &job.workspace_id;
            if let Some(status) = self.store.status_for_job(ws, job.job_id.as_str()).await?
                && status.status != DeliveryState::Failed
            {
                if self.store.reconcile_job(ws, &job.job_id, &status.message_id, status.status, now).await? {
                    report.uncertain_reconciled += 1;
                }
            } else if job.content.kind() != ContentKind::Template && !record.uncertain_resent {
                if self.store.resend_uncertain(ws, &job.job_id, record.attempt, now).await? {
                    let request = SendRequest::Attempt {
                        workspace_id: ws.clone(),
                        job_id: job.job_id.clone(),
                        attempt: record.attempt + 1,
                    };
                    self.queues.enqueue_send(&request, Duration::zero()).await?;
                    report.uncertain_resent += 1;
                }
            } else {
                let reason = "no answer from Meta and no status webhook; not resent, to avoid sending it twice";
                if self.store.fail_job(AttemptRef::of(&record), None, reason, now).await? {
                    report.uncertain_failed += 1;
                }
            }
        }
        Ok(())
    }

    async fn fail_silent(&self, report: &mut SweepReport) -> Result<(), SweepError> {
        let now = self.clock.now();
        for record in self.store.jobs_waiting_since(JobState::Accepted, now - self.policy.silent_after).await? {
            let job = &record.job;
            let ws = &job.workspace_id;
            let status = self.store.status_for_job(ws, job.job_id.as_str()).await?;
            if let Some(s) = status.filter(|s| matches!(s.status, DeliveryState::Delivered | DeliveryState::Read)) {
                self.store.reconcile_job(ws, &job.job_id, &s.message_id, s.status, now).await?;
                continue;
            }
            if !self.store.fail_job(AttemptRef::of(&record), None, "", now).await? {
                continue;
            }
            report.silent_failures += 1;
            if let Origin::Broadcast { broadcast_id } = &job.origin {
                let broadcast = self.store.count_broadcast_silent_failure(ws, broadcast_id).await?;
                if broadcast.flagged && !report.flagged_broadcasts.contains(broadcast_id) {
                    report.flagged_broadcasts.push(broadcast_id.clone());
                }
            }
        }
        Ok(())
    }

    async fn rehand_failed_attempts(&self, report: &mut SweepReport) -> Result<(), SweepError> {
        let now = self.clock.now();
        for record in
            self.store.jobs_waiting_since(JobState::FailedAttempt, now - self.policy.failed_attempt_after).await?
        {
            let job = &record.job;
            let failure = SendFailure {
                workspace_id: job.workspace_id.clone(),
                job_id: Some(job.job_id.to_string()),
                message_id: None,
                attempt: Some(record.attempt),
                recipient_id: job.to.clone(),
                error_code: record.error_code,
                http_status: record.http_status,
                error_title: record.reason.clone(),
                failed_at: record.updated_at,
            };
            self.queues.hand_to_retry(&failure).await?;
            report.handed_to_retry_again += 1;
        }
        Ok(())
    }

    /// A RETRY_SCHEDULED job whose attempt is long overdue lost its queue message or schedule
    /// (a failed enqueue after the state was written): queue it again. A duplicate message is
    /// harmless, since only one delivery can claim the attempt.
    async fn requeue_overdue(&self, report: &mut SweepReport) -> Result<(), SweepError> {
        let now = self.clock.now();
        for record in self.store.jobs_waiting_since(JobState::RetryScheduled, now - self.policy.overdue_after).await? {
            let job = &record.job;
            let request = SendRequest::Attempt {
                workspace_id: job.workspace_id.clone(),
                job_id: job.job_id.clone(),
                attempt: record.attempt,
            };
            self.queues.enqueue_send(&request, Duration::zero()).await?;
            report.overdue_requeued += 1;
        }
        Ok(())
    }
}
