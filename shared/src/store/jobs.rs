//! Send jobs, claimed and settled with conditional writes so that each is sent to Meta at most
//! once per attempt, however often SQS or Scheduler deliver it.
//!
//! Meta's `/messages` has no idempotency key, so the guard is ours: a sender claims a job
//! (→ SENDING, with a lease and a claim token) before calling Meta, and only the holder of the
//! claim may record the outcome. A job whose lease ran out while SENDING may or may not have
//! reached Meta (the sender died), so it becomes UNCERTAIN — never sent again blindly. A status
//! webhook that names the job (`biz_opaque_callback_data`) reconciles it.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::update::{Update, n, s};
use super::{Store, StoreError, keys, refused_by_condition};
use crate::ids::{SendJobId, WorkspaceId};
use crate::inbound::status::DeliveryState;
use crate::outbound::job::{JobState, SendJob, SendRequest};

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
    pub wamid: Option<String>,
    /// wamids Meta reported as failed: a late `sent` for one of them reconciles nothing.
    #[serde(default)]
    pub failed_wamids: Vec<String>,
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
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub updated_at: DateTime<Utc>,
}

/// What claiming a job found.
#[derive(Debug, Clone)]
pub enum Claim {
    /// Ours to send; the token proves it when recording the outcome.
    Claimed { token: String, record: Box<JobRecord> },
    /// Another sender holds a live lease: try again later.
    LeaseHeld { until: DateTime<Utc> },
    /// A sender died mid-send; the job is now UNCERTAIN and must not be sent blindly.
    BecameUncertain,
    /// Nothing to do (already accepted, failed, refused, or waiting for another attempt).
    Settled(JobState),
    /// No such job.
    Missing,
}

/// How an attempt ended, recorded by the claim holder.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    Accepted {
        wamid: String,
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
fn waiting_for_attempt(update: Update, due: DateTime<Utc>) -> Update {
    update
        .set("state", state(JobState::RetryScheduled))
        .set("retry_at", millis(due))
        .set("gsi1pk", s(sweep_key(JobState::RetryScheduled)))
        .set("gsi1sk", s(keys::sortable_millis(due.timestamp_millis())))
}

/// The sweeper's index: jobs in a state it revisits, by when they entered it.
pub fn sweep_key(state: JobState) -> String {
    format!("SWEEP#{state:?}")
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

impl Store {
    fn job_update(
        &self,
        workspace: &WorkspaceId,
        job_id: &SendJobId,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        let (pk, sk) = keys::job(workspace, job_id.as_str());
        self.client.update_item().table_name(&self.table).key(keys::PK, s(pk)).key(keys::SK, s(sk))
    }

    /// Applies a conditional update to a job: `false` when its condition refused it (the job
    /// moved on meanwhile), which is an answer, not an error.
    async fn update_job(
        &self,
        workspace: &WorkspaceId,
        job_id: &SendJobId,
        update: Update,
        operation: &'static str,
    ) -> Result<bool, StoreError> {
        match update.apply(self.job_update(workspace, job_id)).send().await {
            Ok(_) => Ok(true),
            Err(e) if refused_by_condition(&e) => Ok(false),
            Err(e) => Err(StoreError::aws(operation, e)),
        }
    }

    pub async fn job(&self, workspace: &WorkspaceId, job_id: &SendJobId) -> Result<Option<JobRecord>, StoreError> {
        let (pk, sk) = keys::job(workspace, job_id.as_str());
        self.get(pk, sk, "job").await
    }

    /// Claims the job for one send attempt.
    pub async fn claim_job(
        &self,
        request: &SendRequest,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let token = format!("{:016x}", rand::random::<u64>());
        let lease_until = now + lease;
        let (workspace, job_id, attempt) = match request {
            SendRequest::New { job } => {
                let key = keys::job(&job.workspace_id, job.job_id.as_str());
                let record = JobRecord {
                    job: (**job).clone(),
                    state: JobState::Sending,
                    attempt: 0,
                    retries: 0,
                    ladder: None,
                    throttled: 0,
                    claim: Some(token.clone()),
                    lease_until: Some(lease_until),
                    wamid: None,
                    failed_wamids: Vec::new(),
                    error_code: None,
                    http_status: None,
                    reason: None,
                    retry_at: None,
                    uncertain_resent: false,
                    updated_at: now,
                };
                let mut item = super::item_at(key, &record, "job")?;
                item.insert("created_at".into(), millis(now));
                let put = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
                    .await;
                match put {
                    Ok(_) => return Ok(Claim::Claimed { token, record: Box::new(record) }),
                    // Known already: a redelivery, or a job given back before its first send
                    // (waiting for attempt 0), which this delivery may claim.
                    Err(e) if refused_by_condition(&e) => (job.workspace_id.clone(), job.job_id.clone(), 0),
                    Err(e) => return Err(StoreError::aws("PutItem job", e)),
                }
            }
            SendRequest::Attempt { workspace_id, job_id, attempt } => (workspace_id.clone(), job_id.clone(), *attempt),
        };
        let update = Update::new()
            .set("state", state(JobState::Sending))
            .set("claim", s(&token))
            .set("lease_until", millis(lease_until))
            .set("updated_at", millis(now))
            .remove("gsi1pk")
            .remove("gsi1sk")
            .condition(
                "{state} = {0} AND {attempt} = {1}",
                &["state", "attempt"],
                vec![state(JobState::RetryScheduled), n(attempt)],
            );
        let result = update.apply(self.job_update(&workspace, &job_id)).return_values(ReturnValue::AllNew).send().await;
        match result {
            Ok(output) => {
                let record: JobRecord =
                    serde_dynamo::from_item(output.attributes.unwrap_or_default()).map_err(corrupt)?;
                return Ok(Claim::Claimed { token, record: Box::new(record) });
            }
            Err(e) if refused_by_condition(&e) => {}
            Err(e) => return Err(StoreError::aws("UpdateItem job claim", e)),
        }
        let Some(existing) = self.job(&workspace, &job_id).await? else { return Ok(Claim::Missing) };
        match (existing.state, existing.lease_until) {
            (JobState::Sending, Some(until)) if until > now => Ok(Claim::LeaseHeld { until }),
            (JobState::Sending, _) => {
                let reason = "the sender stopped after claiming the job; Meta may or may not have it".to_owned();
                let claim = existing.claim.as_deref().unwrap_or("");
                let outcome = AttemptOutcome::Uncertain { reason };
                let marked = self.finish_attempt(&workspace, &job_id, claim, outcome, now).await?;
                Ok(if marked { Claim::BecameUncertain } else { Claim::Settled(JobState::Uncertain) })
            }
            (other, _) => {
                tracing::debug!(?other, requested_attempt = attempt, current = existing.attempt, "job already settled");
                Ok(Claim::Settled(other))
            }
        }
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
        let mut update = Update::new().set("updated_at", millis(now)).remove("claim").remove("lease_until");
        update = match outcome {
            AttemptOutcome::Accepted { wamid } => update
                .set("state", state(JobState::Accepted))
                .set("wamid", s(wamid))
                .set("gsi1pk", s(sweep_key(JobState::Accepted)))
                .set("gsi1sk", s(keys::sortable_millis(now.timestamp_millis()))),
            AttemptOutcome::Uncertain { reason } => update
                .set("state", state(JobState::Uncertain))
                .set("reason", s(reason))
                .set("gsi1pk", s(sweep_key(JobState::Uncertain)))
                .set("gsi1sk", s(keys::sortable_millis(now.timestamp_millis()))),
            AttemptOutcome::FailedAttempt { code, http_status, reason } => {
                // Indexed so the sweeper can re-hand a failure whose hand-over to Smart Retry was lost.
                let update = update
                    .set("state", state(JobState::FailedAttempt))
                    .set("reason", s(reason))
                    .set("gsi1pk", s(sweep_key(JobState::FailedAttempt)))
                    .set("gsi1sk", s(keys::sortable_millis(now.timestamp_millis())));
                let update = match http_status {
                    Some(status) => update.set("http_status", n(status)),
                    None => update.remove("http_status"),
                };
                match code {
                    Some(code) => update.set("error_code", n(code)),
                    None => update.remove("error_code"),
                }
            }
            AttemptOutcome::Refused { reason } => {
                update.set("state", state(JobState::Refused)).set("reason", s(reason))
            }
            AttemptOutcome::Failed { code, reason } => {
                let update = update.set("state", state(JobState::Failed)).set("reason", s(reason));
                match code {
                    Some(code) => update.set("error_code", n(code)),
                    None => update,
                }
            }
            AttemptOutcome::Requeued { throttled, until } => {
                let update = waiting_for_attempt(update, until);
                if throttled { update.add("throttled", n(1)) } else { update }
            }
        };
        let update = update.condition(
            "{state} = {0} AND {claim} = {1}",
            &["state", "claim"],
            vec![state(JobState::Sending), s(claim)],
        );
        self.update_job(workspace, job_id, update, "UpdateItem job outcome").await
    }

    /// Smart Retry: the failed attempt will be followed by the next one, as `plan` says.
    /// `false` when the job moved on meanwhile (a duplicate hand-over, a reconciliation).
    pub async fn schedule_job_retry(
        &self,
        current: AttemptRef<'_>,
        plan: RetryPlan<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut update = waiting_for_attempt(Update::new(), plan.at)
            .set("attempt", n(current.attempt + 1))
            .set("updated_at", millis(now));
        update = match plan.counted {
            Counted::Retry { ladder, retries } => update.set("ladder", s(ladder)).set("retries", n(retries)),
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
        let mut update = Update::new()
            .set("state", state(JobState::Failed))
            .set("updated_at", millis(now))
            .remove("gsi1pk")
            .remove("gsi1sk");
        // An empty reason is FAILED "with no error message" (the sweeper's silent failures).
        update = if reason.is_empty() { update.remove("reason") } else { update.set("reason", s(reason)) };
        if let Some(code) = code {
            update = update.set("error_code", n(code));
        }
        self.update_job(current.workspace, current.job_id, current.guard(update), "UpdateItem job failed").await
    }

    /// A status webhook named this job: Meta has the message. `sent` makes an unsure job
    /// ACCEPTED; `delivered`/`read` make it DELIVERED. A status for a wamid Meta already
    /// reported failed changes nothing.
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
                &[JobState::Sending, JobState::Uncertain, JobState::FailedAttempt, JobState::RetryScheduled],
            ),
            DeliveryState::Delivered | DeliveryState::Read => (
                JobState::Delivered,
                &[
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
        let mut update = Update::new()
            .set("state", state(target))
            .set("wamid", s(wamid))
            .set("updated_at", millis(now))
            .remove("claim")
            .remove("lease_until");
        update = if target == JobState::Accepted {
            update
                .set("gsi1pk", s(sweep_key(JobState::Accepted)))
                .set("gsi1sk", s(keys::sortable_millis(now.timestamp_millis())))
        } else {
            update.remove("gsi1pk").remove("gsi1sk")
        };
        let placeholders: Vec<String> = (0..from.len()).map(|i| format!("{{{i}}}")).collect();
        let template = format!(
            "attribute_exists(pk) AND {{state}} IN ({}) AND NOT contains({{failed_wamids}}, {{{}}})",
            placeholders.join(", "),
            from.len()
        );
        let mut values: Vec<AttributeValue> = from.iter().map(|st| state(*st)).collect();
        values.push(s(wamid));
        let update = update.condition(&template, &["state", "failed_wamids"], values);
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
        let update = waiting_for_attempt(Update::new(), now)
            .set("attempt", n(attempt + 1))
            .set("uncertain_resent", AttributeValue::Bool(true))
            .set("updated_at", millis(now))
            .condition(
                "{state} = {0} AND {attempt} = {1} AND {uncertain_resent} <> {2}",
                &["state", "attempt", "uncertain_resent"],
                vec![state(JobState::Uncertain), n(attempt), AttributeValue::Bool(true)],
            );
        self.update_job(workspace, job_id, update, "UpdateItem job resend").await
    }

    /// Jobs that entered `state` before `before` (the sweeper's work list).
    pub async fn jobs_waiting_since(
        &self,
        state: JobState,
        before: DateTime<Utc>,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let below = keys::sortable_millis(before.timestamp_millis());
        self.query_index_below(sweep_key(state), Some(below), "Query sweep")
            .await?
            .into_iter()
            .map(|item| serde_dynamo::from_item(item).map_err(corrupt))
            .collect()
    }
}
