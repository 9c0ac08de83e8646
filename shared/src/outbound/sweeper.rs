//! The sweeper settles what no event will settle by itself. Each pass reads the sweeper's
//! index (sharded, see `store::jobs`); each job is handled on its own, so one unreadable item
//! or one failed write is logged, counted and skipped, and the rest is swept.
//!
//! - SENDING jobs whose lease ran out: the sender stopped after the claim, so Meta may have the
//!   message: UNCERTAIN.
//! - UNCERTAIN jobs (no answer from Meta, or a sender that died mid-send) whose status never
//!   arrived within `uncertain_after`. Documented policy: a free-form reply (a human's or a
//!   flow's) is resent once — a customer waiting for an answer is worse off without it — while
//!   a template is marked FAILED as "not resent", because a duplicate marketing message costs
//!   the business money and quality rating. Either is decided only once the webhook has
//!   received statuses for the number after the job became UNCERTAIN (proof that statuses are
//!   flowing, so the missing one is really missing); until then the job waits, at most
//!   `silent_after`, after which it is FAILED without a resend.
//! - ACCEPTED jobs with no delivered/read status within `silent_after` become FAILED with no
//!   error message (FAQ: "Why do some of my messages show status FAILED with no error
//!   message?"); a broadcast whose silent failures pass 5% is flagged in its report. Instagram
//!   sends are not judged this way: Instagram reports no delivery, only reads.
//! - FAILED_ATTEMPT jobs that Smart Retry never picked up (the hand-over was lost, whether the
//!   failure came in Meta's answer or in a status webhook) are handed over again; Smart
//!   Retry's conditional writes make a second hand-over harmless.
//! - QUEUED and RETRY_SCHEDULED jobs long overdue lost their queue message or schedule: queued
//!   again, at most [`MAX_RESCUES`] times.

use chrono::Duration;

use futures_util::future::BoxFuture;

use crate::clock::SharedClock;
use crate::config::{ConfigError, Env};
use crate::domain::Channel;
use crate::domain::DeliveryState;
use crate::domain::{JobState, Origin, SendRequest, WorkspaceId};
use crate::policy::send::ContentKind;
use crate::queues::{QueueError, Queues, SendFailure};
use crate::store::jobs::{AttemptRef, JobRecord};
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

/// How often the sweeper puts one job back on the queue before leaving it to an operator.
pub const MAX_RESCUES: u32 = 3;

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
    pub leases_expired: u32,
    pub uncertain_reconciled: u32,
    pub uncertain_resent: u32,
    pub uncertain_failed: u32,
    /// UNCERTAIN jobs left waiting for proof that the number's statuses are flowing.
    pub uncertain_waiting: u32,
    pub silent_failures: u32,
    pub handed_to_retry_again: u32,
    pub overdue_requeued: u32,
    /// Jobs the sweeper stopped putting back on the queue ([`MAX_RESCUES`]).
    pub left_for_operator: u32,
    /// Items that could not be read or handled; logged and skipped.
    pub errors: u32,
    pub flagged_broadcasts: Vec<String>,
    /// Broadcasts whose fan-out had stalled, fired again.
    pub restarted_broadcasts: Vec<String>,
    /// Broadcasts this sweep found silent failures in, to be judged once at the end.
    #[serde(skip)]
    silent_in: Vec<(WorkspaceId, String)>,
}

pub struct Sweeper {
    store: Store,
    queues: Queues,
    clock: SharedClock,
    policy: SweepPolicy,
}

/// One pass: the state it reads, how long a job must have been filed there, what it does.
type Pass = for<'a> fn(&'a Sweeper, &'a JobRecord, &'a mut SweepReport) -> BoxFuture<'a, Result<(), SweepError>>;

impl Sweeper {
    pub fn new(store: Store, queues: Queues, clock: SharedClock, policy: SweepPolicy) -> Self {
        Self { store, queues, clock, policy }
    }

    pub async fn sweep(&self) -> Result<SweepReport, SweepError> {
        let mut report = SweepReport::default();
        let passes: [(JobState, Duration, Pass); 6] = [
            (JobState::Sending, Duration::zero(), |s, r, rep| Box::pin(s.expire_lease(r, rep))),
            (JobState::Uncertain, self.policy.uncertain_after, |s, r, rep| Box::pin(s.settle_uncertain(r, rep))),
            (JobState::Accepted, self.policy.silent_after, |s, r, rep| Box::pin(s.fail_silent(r, rep))),
            (JobState::FailedAttempt, self.policy.failed_attempt_after, |s, r, rep| Box::pin(s.rehand(r, rep))),
            (JobState::Queued, self.policy.overdue_after, |s, r, rep| Box::pin(s.requeue_overdue(r, rep))),
            (JobState::RetryScheduled, self.policy.overdue_after, |s, r, rep| Box::pin(s.requeue_overdue(r, rep))),
        ];
        for (state, after, pass) in passes {
            let due = self.store.jobs_waiting_since(state, self.clock.now() - after).await?;
            for item in due {
                let handled = match item {
                    Ok(record) => pass(self, &record, &mut report).await,
                    Err(error) => Err(error.into()),
                };
                if let Err(error) = handled {
                    tracing::warn!(?state, %error, "sweeper skipped a job it could not handle");
                    report.errors += 1;
                }
            }
        }
        // A broadcast's silent-failure rate is read from its jobs (its report is tallied
        // from them too), once per sweep for each broadcast that had one.
        for (ws, broadcast) in std::mem::take(&mut report.silent_in) {
            let lines = self.store.broadcast_jobs(&ws, &broadcast).await?;
            let rate = crate::broadcasts::report::silent_failure_rate(&lines);
            if rate > crate::broadcasts::report::SILENT_FAILURE_FLAG_RATIO {
                tracing::warn!(workspace = %ws, broadcast, rate, "broadcast flagged: silent failures above 5%");
                crate::metrics::broadcast_flagged();
                report.flagged_broadcasts.push(broadcast);
            }
        }
        tracing::info!(?report, "sweep done");
        Ok(report)
    }

    async fn expire_lease(&self, record: &JobRecord, report: &mut SweepReport) -> Result<(), SweepError> {
        if self.store.expire_lease(record, self.clock.now()).await? {
            report.leases_expired += 1;
        }
        Ok(())
    }

    async fn settle_uncertain(&self, record: &JobRecord, report: &mut SweepReport) -> Result<(), SweepError> {
        let now = self.clock.now();
        let job = &record.job;
        let ws = &job.workspace_id;
        if let Some(status) = self.store.status_for_job(ws, job.job_id.as_str()).await?
            && status.status != DeliveryState::Failed
        {
            if self.store.reconcile_job(ws, &job.job_id, &status.message_id, status.status, now).await? {
                report.uncertain_reconciled += 1;
            }
            return Ok(());
        }
        let statuses_seen = self.store.number(ws, job.channel, &job.account_id).await?.and_then(|n| n.statuses_seen_at);
        let proof = statuses_seen.is_some_and(|seen| seen > record.updated_at);
        let waited_too_long = now - record.updated_at >= self.policy.silent_after;
        if !proof && !waited_too_long {
            report.uncertain_waiting += 1;
            return Ok(());
        }
        if proof && job.content.kind() != ContentKind::Template && !record.uncertain_resent {
            if self.store.resend_uncertain(ws, &job.job_id, record.attempt, now).await? {
                let request = SendRequest::Attempt {
                    workspace_id: ws.clone(),
                    job_id: job.job_id.clone(),
                    attempt: record.attempt + 1,
                };
                let resend = self.queues.enqueue_send(&request, Duration::zero());
                crate::correlation::scope(record.correlation_id.clone(), resend).await?;
                report.uncertain_resent += 1;
            }
            return Ok(());
        }
        let reason = if proof {
            "no answer from Meta and no status webhook; not resent, to avoid sending it twice"
        } else {
            "no answer from Meta, and no statuses from Meta for this number since; not resent"
        };
        if self.store.fail_job(AttemptRef::of(record), None, reason, now).await? {
            report.uncertain_failed += 1;
        }
        Ok(())
    }

    async fn fail_silent(&self, record: &JobRecord, report: &mut SweepReport) -> Result<(), SweepError> {
        let now = self.clock.now();
        let job = &record.job;
        let ws = &job.workspace_id;
        let status = self.store.status_for_job(ws, job.job_id.as_str()).await?;
        if let Some(s) = status.filter(|s| matches!(s.status, DeliveryState::Delivered | DeliveryState::Read)) {
            self.store.reconcile_job(ws, &job.job_id, &s.message_id, s.status, now).await?;
            return Ok(());
        }
        if job.channel == Channel::Instagram {
            // Instagram reports reads, never deliveries: silence is not a failure there.
            self.store.stop_sweeping(AttemptRef::of(record), now).await?;
            return Ok(());
        }
        if !self.store.fail_job(AttemptRef::of(record), None, "", now).await? {
            return Ok(());
        }
        report.silent_failures += 1;
        if let Origin::Broadcast { broadcast_id } = &job.origin {
            let key = (ws.clone(), broadcast_id.clone());
            if !report.silent_in.contains(&key) {
                report.silent_in.push(key);
            }
        }
        Ok(())
    }

    async fn rehand(&self, record: &JobRecord, report: &mut SweepReport) -> Result<(), SweepError> {
        let job = &record.job;
        let failure = SendFailure {
            workspace_id: job.workspace_id.clone(),
            job_id: Some(job.job_id.clone()),
            message_id: record.failure_wamid.clone(),
            attempt: Some(record.attempt),
            recipient_id: job.to.to_string(),
            error_code: record.error_code,
            http_status: record.http_status,
            error_title: record.reason.clone(),
            failed_at: record.updated_at,
        };
        self.queues.hand_to_retry(&failure).await?;
        report.handed_to_retry_again += 1;
        Ok(())
    }

    /// A waiting job whose attempt is long overdue lost its queue message or schedule (a failed
    /// enqueue after the state was written): queue it again. A duplicate message is harmless,
    /// since only one delivery can claim the attempt.
    async fn requeue_overdue(&self, record: &JobRecord, report: &mut SweepReport) -> Result<(), SweepError> {
        let job = &record.job;
        if record.rescued >= MAX_RESCUES {
            tracing::warn!(workspace = %job.workspace_id, job = %job.job_id, state = ?record.state,
                "job put back on the queue {MAX_RESCUES} times and still not sent: left for an operator");
            report.left_for_operator += 1;
            return Ok(());
        }
        if self.store.rescue_job(AttemptRef::of(record), record.rescued, self.clock.now()).await? {
            let request = SendRequest::Attempt {
                workspace_id: job.workspace_id.clone(),
                job_id: job.job_id.clone(),
                attempt: record.attempt,
            };
            let requeue = self.queues.enqueue_send(&request, Duration::zero());
            crate::correlation::scope(record.correlation_id.clone(), requeue).await?;
            report.overdue_requeued += 1;
        }
        Ok(())
    }
}
