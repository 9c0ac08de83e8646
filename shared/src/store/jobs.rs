//! Send jobs, claimed and settled with conditional writes so that each is sent to Meta at most
//! once per attempt, however often SQS or Scheduler deliver it.
//!
//! A job is durable from the moment it is accepted: it is written QUEUED (with a hash of the
//! request, so a reused job id with new content is a conflict, not a silent drop) before its
//! message goes on the send queue. Meta's `/messages` has no idempotency key, so the guard is
//! ours: a sender claims a waiting job (→ SENDING, with a lease and a claim token) only when
//! nothing but the Graph call is left to do, and only the holder of the claim may record the
//! outcome. A job whose lease ran out while SENDING may or may not have reached Meta (the
//! sender died), so it becomes UNCERTAIN — never sent again blindly. A status webhook that
//! names the job (`biz_opaque_callback_data`) reconciles it.
//!
//! The sweeper's index (`gsi1`) holds only jobs in a state it revisits, under
//! `SWEEP#{state}#{shard}` with the time the sweeper should look at them as sort key. The
//! shard is a hash of the job, so no index key takes a write per message of the system: see
//! the write-rate note in [`super`].

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::update::{Update, n, s};
use super::{Conditional, Store, StoreError, keys};
use crate::domain::{CorrelationId, DeliveryState, JobState, MessageId, Origin, SendJob, SendJobId, WorkspaceId};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub job: SendJob,
    pub state: JobState,
    /// Which send attempt the job is on (0: the first).
    pub attempt: u32,
    /// Steps used of the current Smart Retry ladder (`ladder`).
    #[serde(default)]
    pub retries: u32,
    #[serde(default)]
    pub ladder: Option<String>,
    /// Rate-limit backoffs used (they do not count as attempts).
    #[serde(default)]
    pub throttled: u32,
    #[serde(default)]
    pub claim: Option<String>,
    #[serde(default, with = "chrono::serde::ts_milliseconds_option")]
    pub lease_until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub wamid: Option<MessageId>,
    /// wamids Meta reported as failed: a late `sent` for one of them reconciles nothing.
    #[serde(default)]
    pub failed_wamids: Vec<MessageId>,
    #[serde(default)]
    pub error_code: Option<i64>,
    #[serde(default)]
    pub http_status: Option<u16>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default, with = "chrono::serde::ts_milliseconds_option")]
    pub retry_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub uncertain_resent: bool,
    /// Retries made across every ladder (throttles excluded), against the attempt budget.
    #[serde(default)]
    pub retries_total: u32,
    /// [`SendJob::request_hash`] of the request that created the job.
    #[serde(default)]
    pub request_hash: Option<String>,
    /// Requests that reused this job id with other content (refused, see [`Accepted::Conflict`]).
    #[serde(default)]
    pub conflicts: u32,
    /// The WhatsApp id Meta answered the send with (`contacts[0].wa_id`).
    #[serde(default)]
    pub wa_id: Option<String>,
    /// Times the sweeper put this job back on the queue because its message was lost.
    #[serde(default)]
    pub rescued: u32,
    /// The wamid Meta reported `failed` by status webhook, while the job is FAILED_ATTEMPT
    /// for it (absent when the refusal came in Meta's answer to the send).
    #[serde(default)]
    pub failure_wamid: Option<MessageId>,
    /// The chain of work the job is part of ([`crate::correlation`]).
    #[serde(default)]
    pub correlation_id: Option<CorrelationId>,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub updated_at: DateTime<Utc>,
}

/// What accepting a send request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Stored QUEUED now.
    New,
    /// The same request was accepted before; the job is where it is.
    Again(JobState),
    /// The job id is taken by a request with other content: nothing of the new one is sent,
    /// and the conflict is counted on the job (the API answers 409).
    Conflict,
}

/// What claiming a job found.
#[derive(Debug, Clone)]
pub enum Claim {
    /// Ours to send; the token proves it when recording the outcome.
    Claimed { token: String },
    /// The job moved on since it was read (another sender, a reconciliation): its state now,
    /// `None` if it is gone.
    Moved { now: Option<JobState> },
}

/// How an attempt ended, recorded by the claim holder.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    Accepted {
        wamid: MessageId,
        /// The customer's WhatsApp id as Meta answered it.
        wa_id: Option<String>,
    },
    Uncertain {
        reason: String,
    },
    FailedAttempt {
        code: Option<i64>,
        http_status: Option<u16>,
        reason: String,
    },
    Refused {
        reason: String,
    },
    Failed {
        code: Option<i64>,
        reason: String,
    },
    /// Back on the queue for the same attempt at `until` (rate limit, or the request never left).
    Requeued {
        throttled: bool,
        until: DateTime<Utc>,
    },
}

/// A job as it was when a decision about it was taken: writes based on that decision apply
/// only if the job is still there (same state, same attempt).
#[derive(Debug, Clone, Copy)]
pub struct AttemptRef<'a> {
    pub workspace: &'a WorkspaceId,
    pub job_id: &'a SendJobId,
    pub state: JobState,
    pub attempt: u32,
}

impl AttemptRef<'_> {
    pub fn of(record: &JobRecord) -> AttemptRef<'_> {
        AttemptRef {
            workspace: &record.job.workspace_id,
            job_id: &record.job.job_id,
            state: record.state,
            attempt: record.attempt,
        }
    }

    fn guard(&self, update: Update) -> Update {
        update.condition(
            "{state} = {0} AND {attempt} = {1}",
            &["state", "attempt"],
            vec![state(self.state), n(self.attempt)],
        )
    }
}

/// How a scheduled attempt counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Step `retries` of Smart Retry's `ladder`.
    Retry { ladder: &'static str, retries: u32 },
    /// A rate-limit backoff: never counted as a retry.
    Throttle,
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPlan<'a> {
    pub at: DateTime<Utc>,
    /// The wamid Meta reported failed: a late `sent` for it must not settle the job.
    pub failed_wamid: Option<&'a str>,
    pub counted: Counted,
}

/// RETRY_SCHEDULED, indexed by when the attempt is due: if its queue message or schedule is
/// ever lost, the sweeper finds the job overdue and puts it back on the queue.
fn waiting_for_attempt(update: Update, job: &SendJobId, workspace: &WorkspaceId, due: DateTime<Utc>) -> Update {
    indexed(update.set("retry_at", millis(due)), JobState::RetryScheduled, workspace, job, due)
}

/// Sets the state and files the job in the sweeper's index under it, to be looked at `at`.
fn indexed(update: Update, to: JobState, workspace: &WorkspaceId, job: &SendJobId, at: DateTime<Utc>) -> Update {
    update
        .set("state", state(to))
        .set("gsi1pk", s(sweep_key(to, sweep_shard(workspace, job))))
        .set("gsi1sk", s(keys::sortable_millis(at.timestamp_millis())))
}

/// Sets a state the sweeper never revisits, and takes the job out of its index.
fn unindexed(update: Update, to: JobState) -> Update {
    update.set("state", state(to)).remove("gsi1pk").remove("gsi1sk")
}

/// How many keys each sweep state is spread over. See the write-rate note in [`super`].
pub const SWEEP_SHARDS: u8 = 16;

/// The sweeper's index key for jobs in `state`, one of [`SWEEP_SHARDS`].
pub fn sweep_key(state: JobState, shard: u8) -> String {
    format!("SWEEP#{state:?}#{shard:02}")
}

/// A job's shard: stable for the job, spread evenly over jobs.
pub fn sweep_shard(workspace: &WorkspaceId, job: &SendJobId) -> u8 {
    Sha256::digest(format!("{workspace}/{job}"))[0] % SWEEP_SHARDS
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { entity: "job", reason: e.to_string() }
}

fn state(value: JobState) -> AttributeValue {
    s(serde_json::to_value(value).expect("states serialize").as_str().unwrap_or_default())
}

fn millis(at: DateTime<Utc>) -> AttributeValue {
    n(at.timestamp_millis())
}

impl JobRecord {
    /// A job as accepted: QUEUED, first attempt, nothing tried yet.
    pub fn new(job: &SendJob, now: DateTime<Utc>) -> Self {
        Self {
            correlation_id: crate::correlation::current(),
            job: job.clone(),
            state: JobState::Queued,
            attempt: 0,
            retries: 0,
            ladder: None,
            throttled: 0,
            claim: None,
            lease_until: None,
            wamid: None,
            failed_wamids: Vec::new(),
            error_code: None,
            http_status: None,
            reason: None,
            retry_at: None,
            uncertain_resent: false,
            retries_total: 0,
            request_hash: Some(job.request_hash()),
            conflicts: 0,
            wa_id: None,
            rescued: 0,
            failure_wamid: None,
            updated_at: now,
        }
    }
}

/// A broadcast's job is listed in its broadcast's sharded index (`gsi2`), for the report.
fn index_in_broadcast(item: &mut super::Item, job: &SendJob) {
    if let Origin::Broadcast { broadcast_id } = &job.origin {
        let shard = super::broadcasts::broadcast_shard_key(&job.workspace_id, broadcast_id, job.to.as_str());
        item.insert("gsi2pk".into(), s(shard));
        item.insert("gsi2sk".into(), s(job.to.as_str()));
    }
}

impl Store {
    /// Applies a conditional update to a job: `false` when its condition refused it (the job
    /// moved on meanwhile), which is an answer, not an error.
    async fn update_job(
        &self,
        workspace: &WorkspaceId,
        job_id: &SendJobId,
        update: Update,
        operation: &'static str,
    ) -> Result<bool, StoreError> {
        self.update_if(keys::job(workspace, job_id.as_str()), update, operation).await
    }

    /// [`Self::update_job`] applied at most once, recognising its own first try
    /// ([`Store::update_once`]).
    async fn update_job_once(
        &self,
        workspace: &WorkspaceId,
        job_id: &SendJobId,
        update: Update,
        operation: &'static str,
    ) -> Result<bool, StoreError> {
        self.update_once(keys::job(workspace, job_id.as_str()), update, operation).await
    }

    pub async fn job(&self, workspace: &WorkspaceId, job_id: &SendJobId) -> Result<Option<JobRecord>, StoreError> {
        let (pk, sk) = keys::job(workspace, job_id.as_str());
        self.get(pk, sk, "job").await
    }

    /// Several jobs of one workspace in one read (up to 100, a page of a list); missing ones
    /// are absent from the answer.
    pub async fn jobs(
        &self,
        workspace: &WorkspaceId,
        ids: &[SendJobId],
    ) -> Result<std::collections::HashMap<SendJobId, JobRecord>, StoreError> {
        let keys: Vec<super::Item> = ids.iter().map(|id| super::key_item(keys::job(workspace, id.as_str()))).collect();
        let mut found = std::collections::HashMap::new();
        for item in self.batch_get_consistent(keys, "BatchGetItem jobs").await? {
            let record: JobRecord = serde_dynamo::from_item(item).map_err(corrupt)?;
            found.insert(record.job.job_id.clone(), record);
        }
        Ok(found)
    }

    /// Makes a send request durable: the job is stored QUEUED (indexed so the sweeper finds
    /// it if its queue message is lost) before anything is put on the send queue.
    pub async fn accept_job(&self, job: &SendJob, now: DateTime<Utc>) -> Result<Accepted, StoreError> {
        let hash = job.request_hash();
        let record = JobRecord::new(job, now);
        let mut item = super::item_at(keys::job(&job.workspace_id, job.job_id.as_str()), &record, "job")?;
        item.insert("created_at".into(), millis(now));
        let shard = sweep_shard(&job.workspace_id, &job.job_id);
        item.insert("gsi1pk".into(), s(sweep_key(JobState::Queued, shard)));
        item.insert("gsi1sk".into(), s(keys::sortable_millis(now.timestamp_millis())));
        index_in_broadcast(&mut item, job);
        if self.put_new(item, "PutItem job").await? {
            self.record_outbound(job, now).await?;
            return Ok(Accepted::New);
        }
        let Some(existing) = self.job(&job.workspace_id, &job.job_id).await? else {
            return Err(StoreError::Corrupt { entity: "job", reason: "refused as existing, then not found".into() });
        };
        // Jobs stored before hashes existed have none: same id, so the same request.
        if existing.request_hash.as_deref().is_none_or(|stored| stored == hash) {
            // A repeat of an acceptance that may have stopped before listing the job.
            self.record_outbound(job, now).await?;
            return Ok(Accepted::Again(existing.state));
        }
        let update = Update::new()
            .add("conflicts", n(1))
            .set("last_conflict_hash", s(hash))
            .set("last_conflict_at", millis(now))
            .condition("attribute_exists({pk})", &["pk"], vec![]);
        self.update_job_once(&job.workspace_id, &job.job_id, update, "UpdateItem job conflict").await?;
        tracing::warn!(workspace = %job.workspace_id, job = %job.job_id, "job id reused with other content: refused");
        Ok(Accepted::Conflict)
    }

    /// Records a broadcast recipient who gets no send (`dnd`, `do-not-send`, the messaging
    /// limit, a cancellation): a REFUSED job with the reason, so the report counts them and the
    /// recipient keeps exactly one job. `false` when the recipient's job existed already.
    pub async fn skip_recipient(&self, job: &SendJob, reason: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let record =
            JobRecord { state: JobState::Refused, reason: Some(reason.to_owned()), ..JobRecord::new(job, now) };
        let mut item = super::item_at(keys::job(&job.workspace_id, job.job_id.as_str()), &record, "job")?;
        item.insert("created_at".into(), millis(now));
        index_in_broadcast(&mut item, job);
        self.put_new(item, "PutItem skipped job").await
    }

    /// Claims a waiting job for its current attempt, as read in `current`. Call it only when
    /// nothing but the Graph call is left to do: from here on, a sender that stops leaves the
    /// job SENDING, and once its lease runs out it is UNCERTAIN.
    pub async fn claim_job(
        &self,
        current: AttemptRef<'_>,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let token = format!("{:016x}", rand::random::<u64>());
        let lease_until = now + lease;
        // Filed under SENDING by the end of its lease: the sweeper settles a sender that died.
        let update = indexed(Update::new(), JobState::Sending, current.workspace, current.job_id, lease_until)
            .set("claim", s(&token))
            .set("lease_until", millis(lease_until))
            .set("updated_at", millis(now));
        let key = keys::job(current.workspace, current.job_id.as_str());
        let answer = self.update_or_current(key, current.guard(update), "UpdateItem job claim").await?;
        if let Conditional::Written = answer {
            return Ok(Claim::Claimed { token });
        }
        // Refused by its condition: by another claim or a reconciliation, or by this claim's
        // own first try, made by DynamoDB but its answer lost (so the SDK sent it again). Only
        // the job can tell: it holds this token if the claim is ours.
        Ok(match answer.refused_by::<JobRecord>("job")? {
            Some(record) if record.state == JobState::Sending && record.claim.as_deref() == Some(token.as_str()) => {
                Claim::Claimed { token }
            }
            record => Claim::Moved { now: record.map(|r| r.state) },
        })
    }

    /// A SENDING job whose lease ran out: its sender stopped somewhere between the claim and
    /// recording Meta's answer, so Meta may or may not have the message. `false`: the job moved
    /// on meanwhile.
    pub async fn expire_lease(&self, record: &JobRecord, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let reason = "the sender stopped after claiming the job; Meta may or may not have it".to_owned();
        let claim = record.claim.as_deref().unwrap_or("");
        let job = &record.job;
        self.finish_attempt(&job.workspace_id, &job.job_id, claim, AttemptOutcome::Uncertain { reason }, now).await
    }

    /// Records how the claimed attempt ended. `false`: the claim was no longer ours (e.g. a
    /// status webhook already reconciled the job), and nothing was written.
    pub async fn finish_attempt(
        &self,
        workspace: &WorkspaceId,
        job_id: &SendJobId,
        claim: &str,
        outcome: AttemptOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let update = Update::new().set("updated_at", millis(now)).remove("claim").remove("lease_until");
        let update = match outcome {
            AttemptOutcome::Accepted { wamid, wa_id } => {
                let update = indexed(update, JobState::Accepted, workspace, job_id, now).set("wamid", s(wamid));
                match wa_id {
                    Some(wa_id) => update.set("wa_id", s(wa_id)),
                    None => update,
                }
            }
            AttemptOutcome::Uncertain { reason } => {
                indexed(update, JobState::Uncertain, workspace, job_id, now).set("reason", s(reason))
            }
            AttemptOutcome::FailedAttempt { code, http_status, reason } => {
                // Indexed so the sweeper can re-hand a failure whose hand-over to Smart Retry was lost.
                let update = indexed(update, JobState::FailedAttempt, workspace, job_id, now)
                    .set("reason", s(reason))
                    .remove("failure_wamid");
                let update = match http_status {
                    Some(status) => update.set("http_status", n(status)),
                    None => update.remove("http_status"),
                };
                match code {
                    Some(code) => update.set("error_code", n(code)),
                    None => update.remove("error_code"),
                }
            }
            AttemptOutcome::Refused { reason } => unindexed(update, JobState::Refused).set("reason", s(reason)),
            AttemptOutcome::Failed { code, reason } => {
                let update = unindexed(update, JobState::Failed).set("reason", s(reason));
                match code {
                    Some(code) => update.set("error_code", n(code)),
                    None => update,
                }
            }
            AttemptOutcome::Requeued { throttled, until } => {
                let update = waiting_for_attempt(update, job_id, workspace, until);
                if throttled { update.add("throttled", n(1)) } else { update }
            }
        };
        let update = update.condition(
            "{state} = {0} AND {claim} = {1}",
            &["state", "claim"],
            vec![state(JobState::Sending), s(claim)],
        );
        self.update_job_once(workspace, job_id, update, "UpdateItem job outcome").await
    }

    /// Smart Retry: the failed attempt will be followed by the next one, as `plan` says.
    /// `false` when the job moved on meanwhile (a duplicate hand-over, a reconciliation).
    pub async fn schedule_job_retry(
        &self,
        current: AttemptRef<'_>,
        plan: RetryPlan<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut update = waiting_for_attempt(Update::new(), current.job_id, current.workspace, plan.at)
            .set("attempt", n(current.attempt + 1))
            .set("updated_at", millis(now));
        update = match plan.counted {
            Counted::Retry { ladder, retries } => {
                update.set("ladder", s(ladder)).set("retries", n(retries)).add("retries_total", n(1))
            }
            Counted::Throttle => update.add("throttled", n(1)),
        };
        if let Some(wamid) = plan.failed_wamid {
            update = update.append("failed_wamids", vec![s(wamid)]);
        }
        self.update_job(current.workspace, current.job_id, current.guard(update), "UpdateItem job retry").await
    }

    /// Gives up on attempt `attempt` of a job in state `from`: FAILED with Meta's reason.
    pub async fn fail_job(
        &self,
        current: AttemptRef<'_>,
        code: Option<i64>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut update = unindexed(Update::new(), JobState::Failed).set("updated_at", millis(now));
        // An empty reason is FAILED "with no error message" (the sweeper's silent failures).
        update = if reason.is_empty() { update.remove("reason") } else { update.set("reason", s(reason)) };
        // Without Meta's code, none: a code an earlier attempt left would read as Meta's
        // refusal of this one (and keep a late status from correcting a silent failure).
        update = match code {
            Some(code) => update.set("error_code", n(code)),
            None => update.remove("error_code"),
        };
        self.update_job_once(current.workspace, current.job_id, current.guard(update), "UpdateItem job failed").await
    }

    /// Meta reported the job's message `failed` by status webhook: FAILED_ATTEMPT, indexed, so
    /// that if the hand-over to Smart Retry is lost the sweeper hands it over again. Only an
    /// ACCEPTED job (or an UNCERTAIN one, which Meta had after all) moves; a job still SENDING
    /// is left to its sender, and Smart Retry waits for it.
    pub async fn failure_reported(
        &self,
        workspace: &WorkspaceId,
        job_id: &SendJobId,
        wamid: &str,
        code: Option<i64>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let update = indexed(Update::new(), JobState::FailedAttempt, workspace, job_id, now)
            .set("wamid", s(wamid))
            .set("failure_wamid", s(wamid))
            .set("reason", s(reason))
            .set("updated_at", millis(now))
            .remove("http_status");
        let update = match code {
            Some(code) => update.set("error_code", n(code)),
            None => update.remove("error_code"),
        };
        let update = update.condition(
            "{state} IN ({0}, {1}) AND NOT contains({failed_wamids}, {2})",
            &["state", "failed_wamids"],
            vec![state(JobState::Accepted), state(JobState::Uncertain), s(wamid)],
        );
        self.update_job(workspace, job_id, update, "UpdateItem job failure reported").await
    }

    /// The send policy said no to attempt `current` before anything was claimed or sent.
    pub async fn refuse_job(
        &self,
        current: AttemptRef<'_>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let update =
            unindexed(Update::new(), JobState::Refused).set("reason", s(reason)).set("updated_at", millis(now));
        self.update_job(current.workspace, current.job_id, current.guard(update), "UpdateItem job refused").await
    }

    /// Leaves the job as it is, out of the sweeper's index (an Instagram send: Instagram reports
    /// reads, never deliveries, so an unread message is not a failure).
    pub async fn stop_sweeping(&self, current: AttemptRef<'_>, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let update = Update::new().remove("gsi1pk").remove("gsi1sk").set("updated_at", millis(now));
        self.update_job(current.workspace, current.job_id, current.guard(update), "UpdateItem job unindex").await
    }

    /// A status webhook named this job: Meta has the message. `sent` makes an unsure job
    /// ACCEPTED; `delivered`/`read` make it DELIVERED, even one FAILED because no status came
    /// in time (Meta's webhook retries last days: a late status is not a missing one). A
    /// status for a wamid Meta already reported failed changes nothing.
    pub async fn reconcile_job(
        &self,
        workspace: &WorkspaceId,
        job_id: &SendJobId,
        wamid: &str,
        reported: DeliveryState,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (target, from): (JobState, &[JobState]) = match reported {
            DeliveryState::Sent => (
                JobState::Accepted,
                &[
                    JobState::Queued,
                    JobState::Sending,
                    JobState::Uncertain,
                    JobState::FailedAttempt,
                    JobState::RetryScheduled,
                ],
            ),
            DeliveryState::Delivered | DeliveryState::Read | DeliveryState::Played => (
                JobState::Delivered,
                &[
                    JobState::Queued,
                    JobState::Sending,
                    JobState::Uncertain,
                    JobState::FailedAttempt,
                    JobState::RetryScheduled,
                    JobState::Accepted,
                ],
            ),
            // Meta had an UNCERTAIN send after all, and refused it: the job becomes ACCEPTED with
            // that wamid, so Smart Retry treats the failure like any reported one.
            DeliveryState::Failed => (JobState::Accepted, &[JobState::Uncertain]),
        };
        let update =
            Update::new().set("wamid", s(wamid)).set("updated_at", millis(now)).remove("claim").remove("lease_until");
        let update = if target == JobState::Accepted {
            indexed(update, JobState::Accepted, workspace, job_id, now)
        } else {
            unindexed(update, target)
        };
        let placeholders: Vec<String> = (0..from.len()).map(|i| format!("{{{i}}}")).collect();
        // A FAILED job that Meta never refused (no error code: the sweeper's silent failure, an
        // uncertain send never resent) was judged for want of a status; a status proves it. An
        // absent code is stored as NULL or not at all; a refusal's is a number.
        let judged_silent = if target == JobState::Delivered {
            let (failed, number_type) = (from.len() + 1, from.len() + 2);
            format!(" OR ({{state}} = {{{failed}}} AND NOT attribute_type({{error_code}}, {{{number_type}}}))")
        } else {
            String::new()
        };
        let template = format!(
            "attribute_exists(pk) AND ({{state}} IN ({}){judged_silent}) AND NOT contains({{failed_wamids}}, {{{}}})",
            placeholders.join(", "),
            from.len()
        );
        let mut values: Vec<AttributeValue> = from.iter().map(|st| state(*st)).collect();
        values.push(s(wamid));
        let mut names = vec!["state", "failed_wamids"];
        if !judged_silent.is_empty() {
            values.extend([state(JobState::Failed), s("N")]);
            names.push("error_code");
        }
        let read = matches!(reported, DeliveryState::Read | DeliveryState::Played);
        if read {
            // Usually already DELIVERED (Meta reports delivered, then read): the read is still
            // worth knowing (the broadcast report counts it), and marking it is the one write
            // needed. Tried first, because a write refused by its condition is billed too.
            let update = Update::new().set("read", AttributeValue::Bool(true)).condition(
                "{state} = {0} AND {wamid} = {1}",
                &["state", "wamid"],
                vec![state(JobState::Delivered), s(wamid)],
            );
            if self.update_job(workspace, job_id, update, "UpdateItem job read").await? {
                return Ok(false);
            }
        }
        let update = if read { update.set("read", AttributeValue::Bool(true)) } else { update };
        let update = update.condition(&template, &names, values);
        self.update_job(workspace, job_id, update, "UpdateItem job reconcile").await
    }

    /// The sweeper's resend of an UNCERTAIN free-form job, at most once.
    pub async fn resend_uncertain(
        &self,
        workspace: &WorkspaceId,
        job_id: &SendJobId,
        attempt: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let update = waiting_for_attempt(Update::new(), job_id, workspace, now)
            .set("attempt", n(attempt + 1))
            .set("uncertain_resent", AttributeValue::Bool(true))
            .set("updated_at", millis(now))
            .condition(
                "{state} = {0} AND {attempt} = {1} AND {uncertain_resent} <> {2}",
                &["state", "attempt", "uncertain_resent"],
                vec![state(JobState::Uncertain), n(attempt), AttributeValue::Bool(true)],
            );
        self.update_job_once(workspace, job_id, update, "UpdateItem job resend").await
    }

    /// The sweeper's work list: jobs in `state` filed under a time before `before`, from every
    /// shard. An item that does not read as a job is returned as its error, so that one
    /// unreadable item never stops a sweep.
    pub async fn jobs_waiting_since(
        &self,
        state: JobState,
        before: DateTime<Utc>,
    ) -> Result<Vec<Result<JobRecord, StoreError>>, StoreError> {
        let below = keys::sortable_millis(before.timestamp_millis());
        let pages: Vec<Vec<super::Item>> = futures_util::stream::iter(0..SWEEP_SHARDS)
            .map(|shard| self.query_index_below(sweep_key(state, shard), Some(below.clone()), "Query sweep"))
            .buffer_unordered(4)
            .try_collect()
            .await?;
        Ok(pages.into_iter().flatten().map(|item| serde_dynamo::from_item(item).map_err(corrupt)).collect())
    }

    /// A waiting job whose queue message was lost goes back on the queue; counted, so that a
    /// job that can never be processed stops coming back (it stays visible, QUEUED or
    /// RETRY_SCHEDULED, for an operator). Refiled a little later so the next sweep does not
    /// pick it up again before the message had a chance.
    /// `rescued`: the count as the sweep read it, so that two sweeps at once count one rescue.
    pub async fn rescue_job(
        &self,
        current: AttemptRef<'_>,
        rescued: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let counted =
            if rescued == 0 { "attribute_not_exists({rescued}) OR {rescued} = {2}" } else { "{rescued} = {2}" };
        let update = indexed(Update::new(), current.state, current.workspace, current.job_id, now)
            .add("rescued", n(1))
            .set("updated_at", millis(now))
            .condition(
                &format!("{{state}} = {{0}} AND {{attempt}} = {{1}} AND ({counted})"),
                &["state", "attempt", "rescued"],
                vec![state(current.state), n(current.attempt), n(rescued)],
            );
        self.update_job_once(current.workspace, current.job_id, update, "UpdateItem job rescue").await
    }
}
