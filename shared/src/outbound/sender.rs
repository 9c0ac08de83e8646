//! Sending one job: read it, apply the send policy with fresh facts, open the token, claim it,
//! call the Graph API, record what happened. Failures Meta answered with go to Smart Retry; an
//! answer that never came leaves the job UNCERTAIN for its status webhook (or the sweeper) to
//! settle.
//!
//! Everything of ours that can fail (DynamoDB reads, an unreadable item, KMS) happens before
//! the claim: a failure there leaves the job waiting, and the send request comes back from the
//! queue and sends it once. Between the claim and the Graph call there is nothing left to
//! fail, so a job is UNCERTAIN only when Meta may really have it.

use std::sync::Arc;

use chrono::Duration;
use tracing::Instrument;

use crate::clock::SharedClock;
use crate::domain::Origin;
use crate::domain::{JobState, SendRequest};
use crate::domain::{MessageId, SendJobId, WorkspaceId};
use crate::lambda::deadline::done_with_time_left;
use crate::meta::graph::{GraphClient, GraphError, SentMessage};
use crate::outbound::content::OutboundContent;
use crate::outbound::pacing::{DEFAULT_MPS, SLOWDOWN, Slot};
use crate::policy::messaging_limit::{customers_per_window, room_left};
use crate::policy::send::{ContentKind, SendFacts, SentBy, counts_toward_messaging_limit, may_send};
use crate::queues::{QueueError, Queues, SendFailure};
use crate::retry::{FailureClass, classify, throttle_backoff};
use crate::store::jobs::{Accepted, AttemptOutcome, AttemptRef, Claim, JobRecord};
use crate::store::numbers::NumberRecord;
use crate::store::{Store, StoreError};
use crate::vault::{Vault, VaultError};

/// Counts a finished attempt in the `Sends` metric (and Meta's code in `SendFailures`), and
/// says so in the log: the sender's line in the chain of work the send belongs to. Only the
/// outcome's kind and Meta's code: reasons can quote what Meta was sent.
fn count(outcome: &SendOutcome) {
    use crate::metrics::{send, send_failure};
    let (kind, code) = match outcome {
        SendOutcome::Accepted { .. } => ("accepted", None),
        SendOutcome::Reconciled { .. } => ("reconciled", None),
        SendOutcome::Refused { .. } => ("refused", None),
        SendOutcome::Failed { .. } => ("failed", None),
        SendOutcome::Uncertain => ("uncertain", None),
        SendOutcome::HandedToRetry { code } => {
            send_failure(*code);
            ("retrying", *code)
        }
        _ => return,
    };
    send(kind);
    tracing::info!(outcome = kind, code, "send attempt finished");
}

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
    #[error(
        "too little time was left to put the request back on the queue; it comes back after its visibility timeout"
    )]
    OutOfTime,
}

/// Time an attempt needs after the Graph call to record its outcome and hand a failure on.
pub const RECORDING_MARGIN: std::time::Duration = std::time::Duration::from_secs(2);

/// What became of one send request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Accepted {
        wamid: MessageId,
    },
    /// Meta had it already (its status arrived while the answer was lost).
    Reconciled {
        wamid: MessageId,
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
    /// The job id was accepted before with other content: this request is refused.
    Conflict,
    /// Too little time was left to call Meta and record the answer: the job is still waiting
    /// and the request must be put back on the queue.
    NotStarted,
    /// The number's send budget is taken for the next moments: the job is still waiting and
    /// the request must come back after this long.
    Paced {
        retry_after: std::time::Duration,
    },
}

/// A job checked up to its claim: what its send needs, read while there was time.
struct Ready {
    record: JobRecord,
    token: secrecy::SecretString,
    mps: u32,
    slot: chrono::DateTime<chrono::Utc>,
}

enum Prepared {
    /// Nothing to send: the outcome is known before any claim.
    Done(SendOutcome),
    Ready(Box<Ready>),
}

/// How long a warm container reuses a number it read (ACTIVE) and a template it read as
/// APPROVED, instead of reading them again for every send of a batch or a broadcast: a change
/// (a number disconnected, its throughput or token changed, a template paused) reaches the
/// sends at most this late. What refuses a send (a number not ACTIVE or missing, a template
/// not approved) is never reused, so a fix is seen by the next send.
pub const READ_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

type NumberKey = (String, crate::domain::Channel, String);
type TemplateKey = (String, String, String, String);

/// The reads a warm container reuses for [`READ_CACHE_TTL`].
#[derive(Default)]
struct ReadCache {
    numbers: std::sync::Mutex<std::collections::HashMap<NumberKey, (NumberRecord, std::time::Instant)>>,
    approved: std::sync::Mutex<std::collections::HashMap<TemplateKey, std::time::Instant>>,
}

/// Where a customer stands with Meta's messaging limit, for one send.
#[derive(Debug, Clone, Copy)]
enum Reach {
    /// Not counted: a template inside the window, a broadcast's, no limit, or reached already.
    NotCounted,
    /// A new customer for the portfolio: `left` more may be reached (`None`: not enforced).
    New { left: Option<u64> },
}

pub struct Sender {
    store: Store,
    vault: Arc<Vault>,
    graph: GraphClient,
    queues: Queues,
    clock: SharedClock,
    reads: ReadCache,
}

impl Sender {
    pub fn new(store: Store, vault: Arc<Vault>, graph: GraphClient, queues: Queues, clock: SharedClock) -> Self {
        Self { store, vault, graph, queues, clock, reads: ReadCache::default() }
    }

    /// The number, from this container's recent read of it when it was ACTIVE.
    async fn number(
        &self,
        ws: &WorkspaceId,
        channel: crate::domain::Channel,
        account: &str,
    ) -> Result<Option<NumberRecord>, StoreError> {
        let key = (ws.to_string(), channel, account.to_owned());
        if let Ok(numbers) = self.reads.numbers.lock()
            && let Some((number, at)) = numbers.get(&key)
            && at.elapsed() < READ_CACHE_TTL
        {
            return Ok(Some(number.clone()));
        }
        let number = self.store.number(ws, channel, account).await?;
        if let Some(active) = number.as_ref().filter(|n| n.state == crate::domain::NumberState::Active)
            && let Ok(mut numbers) = self.reads.numbers.lock()
        {
            numbers.retain(|_, (_, at)| at.elapsed() < READ_CACHE_TTL);
            numbers.insert(key, (active.clone(), std::time::Instant::now()));
        }
        Ok(number)
    }

    /// Where `customer` stands with Meta's messaging limit for the number's portfolio.
    async fn reach(
        &self,
        number: &NumberRecord,
        customer: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Reach, StoreError> {
        let Some(limit) = customers_per_window(number.messaging_limit.as_deref()) else { return Ok(Reach::NotCounted) };
        let (ws, portfolio) = (&number.workspace_id, number.portfolio());
        if self.store.reached_recently(ws, portfolio, &[customer.to_owned()], now).await?.contains(customer) {
            return Ok(Reach::NotCounted);
        }
        // A tier Meta has not reported to us is counted but refuses nothing here: the lowest
        // tier would cap a portfolio that may have a far higher one (Meta refuses what is over).
        if number.messaging_limit.is_none() {
            return Ok(Reach::New { left: None });
        }
        let left = room_left(Some(limit), self.store.reached_in_window(ws, portfolio, now).await?);
        Ok(Reach::New { left })
    }

    /// A template's status, from this container's recent read of it as APPROVED.
    async fn template_status(
        &self,
        ws: &WorkspaceId,
        waba: &str,
        name: &str,
        language: &str,
    ) -> Result<Option<crate::domain::TemplateStatus>, StoreError> {
        use crate::domain::TemplateStatus;
        let key = (ws.to_string(), waba.to_owned(), name.to_owned(), language.to_owned());
        if let Ok(approved) = self.reads.approved.lock()
            && approved.get(&key).is_some_and(|at| at.elapsed() < READ_CACHE_TTL)
        {
            return Ok(Some(TemplateStatus::Approved));
        }
        let status = self.store.template_status(ws, waba, name, language).await?;
        if status == Some(TemplateStatus::Approved)
            && let Ok(mut approved) = self.reads.approved.lock()
        {
            approved.retain(|_, at| at.elapsed() < READ_CACHE_TTL);
            approved.insert(key, std::time::Instant::now());
        }
        Ok(status)
    }

    /// Sends with no deadline of its own (the caller's timeout aside).
    pub async fn send(&self, request: SendRequest) -> Result<SendOutcome, SendError> {
        self.send_before(request, None).await
    }

    /// Sends, unless less than a Graph call and its recording is left before `deadline`: then
    /// nothing is claimed and the answer is [`SendOutcome::NotStarted`].
    ///
    /// Everything before the claim (reads, policy, token, pace) must be done while a Graph call
    /// and its recording still fit: when the store answers slowly, a record whose reads run
    /// into that time is given up where it stands and put back, rather than left to run past
    /// the invocation's end (which would return the whole batch, sends done included, to the
    /// queue). Giving up there is safe: every write before the claim is conditional and the
    /// request, read again, finds the job as that write left it.
    pub async fn send_before(
        &self,
        request: SendRequest,
        deadline: Option<std::time::Instant>,
    ) -> Result<SendOutcome, SendError> {
        // Every line about this send is in its span: the attempt is recorded once the job is read.
        let (workspace, job) = match &request {
            SendRequest::New { job } => (&job.workspace_id, &job.job_id),
            SendRequest::Attempt { workspace_id, job_id, .. } => (workspace_id, job_id),
        };
        let span = tracing::info_span!("send", workspace = %workspace, job = %job, attempt = tracing::field::Empty);
        let outcome = self.send_in_span(request, deadline).instrument(span.clone()).await;
        span.in_scope(|| match &outcome {
            Ok(outcome) => count(outcome),
            Err(SendError::Busy(_)) => {}
            Err(error) => tracing::warn!(%error, "send attempt did not finish; the request comes back from the queue"),
        });
        outcome
    }

    async fn send_in_span(
        &self,
        request: SendRequest,
        deadline: Option<std::time::Instant>,
    ) -> Result<SendOutcome, SendError> {
        // Not started (put back by the caller) when the reads before the claim would run into
        // the time a send needs.
        let prepare = self.prepare(request);
        let Some(prepared) = done_with_time_left(deadline, self.time_needed(), prepare).await else {
            return Ok(SendOutcome::NotStarted);
        };
        let prepared = prepared?;
        match prepared {
            Prepared::Ready(ready) => self.send_ready(*ready, deadline).await,
            Prepared::Done(outcome) => Ok(outcome),
        }
    }

    /// The job read and checked up to its claim.
    async fn prepare(&self, request: SendRequest) -> Result<Prepared, SendError> {
        let now = self.clock.now();
        let (workspace, job_id, requested) = match request {
            SendRequest::New { job } => {
                if self.store.accept_job(&job, now).await? == Accepted::Conflict {
                    return Ok(Prepared::Done(SendOutcome::Conflict));
                }
                (job.workspace_id, job.job_id, 0)
            }
            SendRequest::Attempt { workspace_id, job_id, attempt } => (workspace_id, job_id, attempt),
        };
        let Some(record) = self.store.job(&workspace, &job_id).await? else {
            tracing::warn!("send request for a job that does not exist");
            return Ok(Prepared::Done(SendOutcome::Missing));
        };
        tracing::Span::current().record("attempt", record.attempt);
        if let Some(outcome) = self.not_claimable(&record, requested).await? {
            return outcome.map(Prepared::Done);
        }
        self.check(record).await
    }

    /// Why this request cannot send the job now, if it cannot.
    async fn not_claimable(
        &self,
        record: &JobRecord,
        requested: u32,
    ) -> Result<Option<Result<SendOutcome, SendError>>, SendError> {
        let now = self.clock.now();
        Ok(match (record.state, record.lease_until) {
            (JobState::Sending, Some(until)) if until > now => Some(Err(SendError::Busy(until))),
            (JobState::Sending, _) => {
                let marked = self.store.expire_lease(record, now).await?;
                Some(Ok(if marked { SendOutcome::Uncertain } else { SendOutcome::AlreadySettled(JobState::Uncertain) }))
            }
            (state, _) if state.is_waiting() && record.attempt == requested => None,
            (state, _) => {
                tracing::debug!(?state, requested, current = record.attempt, "job already settled");
                Some(Ok(SendOutcome::AlreadySettled(state)))
            }
        })
    }

    async fn finish(&self, claim: &str, record: &JobRecord, outcome: AttemptOutcome) -> Result<bool, StoreError> {
        let job = &record.job;
        self.store.finish_attempt(&job.workspace_id, &job.job_id, claim, outcome, self.clock.now()).await
    }

    /// The send policy with fresh facts, the token, the number's pace: either the job is
    /// settled here (refused, failed, reconciled) or it is ready to claim.
    async fn check(&self, record: JobRecord) -> Result<Prepared, SendError> {
        let job = &record.job;
        let ws = &job.workspace_id;
        let current = AttemptRef::of(&record);
        let now = self.clock.now();

        // A later attempt of a job Meta may have accepted already: its status says so.
        if (record.attempt > 0 || record.throttled > 0)
            && let Some(status) = self.store.status_for_job(ws, job.job_id.as_str()).await?
            && status.status != crate::domain::DeliveryState::Failed
            && !record.failed_wamids.contains(&status.message_id)
        {
            let wamid = status.message_id;
            self.store.reconcile_job(ws, &job.job_id, &wamid, status.status, now).await?;
            return Ok(Prepared::Done(SendOutcome::Reconciled { wamid }));
        }

        let Some(number) = self.number(ws, job.channel, &job.account_id).await? else {
            let reason =
                format!("{} account {} is not connected to this workspace", job.channel.as_str(), job.account_id);
            self.store.refuse_job(current, &reason, now).await?;
            return Ok(Prepared::Done(SendOutcome::Refused { reason }));
        };
        let template_status = match (&job.content, &number.waba_id) {
            (OutboundContent::Template { name, language, .. }, Some(waba)) => {
                self.template_status(ws, waba, name, language).await?
            }
            _ => None,
        };
        // Only what the policy reads for this send is read: the conversation for the 24-hour
        // window and a flow's handoff (not for a broadcast's template: its window does not
        // apply, and its reach was counted at fan-out), a contact's dnd / do-not-send tags not
        // for an agent's own reply, the portfolio's reach only for a template that counts.
        let (kind, sent_by) = (job.content.kind(), job.sent_by(record.retries_total));
        let conversation = if kind != ContentKind::Template || sent_by != SentBy::Broadcast {
            self.store.conversation(ws, &job.conversation_id()).await?
        } else {
            None
        };
        let last_inbound_at = conversation.as_ref().map(|c| c.last_inbound_at);
        let contact_tags = if sent_by == SentBy::Human {
            Default::default()
        } else {
            self.store.contact_tags(ws, job.channel, job.to.as_str()).await?
        };
        let facts = SendFacts {
            channel: job.channel,
            sent_by,
            kind,
            number_state: number.state,
            contact_tags,
            last_inbound_at,
            human_handoff: conversation.as_ref().is_some_and(|c| c.taken_over_by_a_human()),
            now,
            template_status,
            new_customers_left: None,
        };
        // The messaging limit last, and read only when every other rule lets the send go.
        let mut reach = Reach::NotCounted;
        let mut verdict = may_send(&facts);
        if verdict.is_ok() && counts_toward_messaging_limit(sent_by, kind, last_inbound_at, now) {
            reach = self.reach(&number, job.to.as_str(), now).await?;
            if let Reach::New { left } = reach {
                verdict = may_send(&SendFacts { new_customers_left: left, ..facts });
            }
        }
        if let Err(refusal) = verdict {
            let reason = refusal.to_string();
            tracing::info!(%reason, "send refused by policy");
            self.store.refuse_job(current, &reason, now).await?;
            return Ok(Prepared::Done(SendOutcome::Refused { reason }));
        }

        let token = match self.vault.open(ws.as_str(), &number.account_id, &number.token).await {
            Ok(token) => token,
            Err(error @ VaultError::DoesNotOpen { .. }) => {
                // Sealed for another number or workspace, or altered: it will never open.
                let reason = error.to_string();
                self.store.fail_job(current, None, &reason, now).await?;
                return Ok(Prepared::Done(SendOutcome::Failed { reason }));
            }
            // KMS is unreachable: nothing was claimed, so the request comes back and sends.
            Err(error) => return Err(SendError::Vault(error)),
        };
        if let Origin::Broadcast { broadcast_id } = &job.origin
            && let Some(reason) = self.broadcast_stopped(ws, broadcast_id).await?
        {
            self.store.refuse_job(current, &reason, now).await?;
            return Ok(Prepared::Done(SendOutcome::Refused { reason }));
        }
        // Counted before it goes (as a broadcast's recipients are): a send that fails after
        // this errs towards the limit. Counted once per 24 hours per customer. Senders running
        // at once for the last places may each take one: the limit can be passed by as many
        // sends as run at once, and Meta refuses what is over its own count.
        if let Reach::New { .. } = reach {
            self.store.mark_reached(ws, number.portfolio(), job.to.as_str(), now).await?;
        }
        // The number's pace, shared by every sender and every source.
        let mps = number.throughput_mps.unwrap_or(DEFAULT_MPS);
        let slot = match self.store.take_send_slot(ws, &job.account_id, mps, self.clock.now()).await? {
            Slot::Busy { retry_at } => {
                let retry_after = (retry_at - self.clock.now()).to_std().unwrap_or_default();
                return Ok(Prepared::Done(SendOutcome::Paced { retry_after }));
            }
            Slot::At(at) => at,
        };
        Ok(Prepared::Ready(Box::new(Ready { record, token, mps, slot })))
    }

    /// Claims the job, waits for its slot, calls Meta and records the answer, unless the wait
    /// for the slot leaves too little time before `deadline`.
    async fn send_ready(&self, ready: Ready, deadline: Option<std::time::Instant>) -> Result<SendOutcome, SendError> {
        let Ready { record, token, mps, slot } = ready;
        let (job, current) = (&record.job, AttemptRef::of(&record));
        let ws = &job.workspace_id;
        let wait = (slot - self.clock.now()).to_std().unwrap_or_default();
        if deadline.is_some_and(|d| d.saturating_duration_since(std::time::Instant::now()) < self.time_needed() + wait)
        {
            return Ok(SendOutcome::NotStarted);
        }
        let claim = match self.store.claim_job(current, self.clock.now(), send_lease()).await? {
            Claim::Claimed { token } => token,
            Claim::Moved { now } => return Ok(now.map_or(SendOutcome::Missing, SendOutcome::AlreadySettled)),
        };
        // Waiting for the slot after the claim (a wait cannot fail) and right before the call
        // keeps the claim's own latency out of the spacing Meta sees.
        if let Ok(wait) = (slot - self.clock.now()).to_std() {
            tokio::time::sleep(wait).await;
        }
        let body = job.content.graph_body(job.channel, job.to.as_str(), job.job_id.as_str());
        let answer = self.graph.send_message(&job.account_id, &token, &body).await;
        if let Err(error) = &answer
            && error.code_and_status().0 == Some(crate::meta::errors::THROUGHPUT_REACHED)
        {
            // Meta says the number went too fast: half speed for a while, then back.
            let until = self.clock.now() + SLOWDOWN;
            if let Err(e) = self.store.slow_down(ws, &job.account_id, mps, until).await {
                tracing::warn!(error = %e, "could not slow the number down after 130429");
            }
        }
        self.record_answer(&claim, &record, answer).await
    }

    /// Why a broadcast's send must not start: the broadcast was cancelled (read consistently,
    /// so no send starts after a cancel that was answered).
    async fn broadcast_stopped(&self, ws: &WorkspaceId, broadcast: &str) -> Result<Option<String>, StoreError> {
        let Ok(id) = crate::domain::BroadcastId::parse(broadcast) else { return Ok(None) };
        Ok(self
            .store
            .broadcast(ws, &id)
            .await?
            .filter(|b| b.state == crate::broadcasts::spec::BroadcastState::Cancelled)
            .map(|_| "the broadcast was cancelled before this recipient was sent".to_owned()))
    }

    /// A Graph call and the writes after it.
    fn time_needed(&self) -> std::time::Duration {
        self.graph.timeout() + RECORDING_MARGIN
    }

    async fn record_answer(
        &self,
        claim: &str,
        record: &JobRecord,
        answer: Result<SentMessage, GraphError>,
    ) -> Result<SendOutcome, SendError> {
        let job = &record.job;
        let ws = &job.workspace_id;
        match answer {
            Ok(SentMessage { wamid, wa_id }) => {
                // Recorded by us, or already by its status webhook (a lost claim): Meta has it
                // either way, and only this sender counts it for the broadcast.
                let outcome = AttemptOutcome::Accepted { wamid: wamid.clone(), wa_id };
                let recorded = self.finish(claim, record, outcome).await?;
                if job.channel == crate::domain::Channel::Instagram
                    && let Err(error) = self.store.link_message_to_job(ws, &wamid, job.job_id.as_str()).await
                {
                    // The job is recorded ACCEPTED; only its read receipt will not reach it.
                    tracing::warn!(%error, "Instagram message not linked to its job");
                }
                tracing::info!(%wamid, recorded, "accepted by Meta");
                Ok(if recorded { SendOutcome::Accepted { wamid } } else { SendOutcome::LostClaim })
            }
            Err(GraphError::NotSent(reason)) => {
                tracing::warn!(%reason, "the request never reached Meta; sending again shortly");
                self.requeue(claim, record, false, Duration::seconds(5)).await?;
                Ok(SendOutcome::Requeued)
            }
            Err(error) if error.maybe_processed() => {
                tracing::warn!(%error, "no answer that says whether Meta has it: UNCERTAIN until a status names the job");
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
                    job_id: Some(job.job_id.clone()),
                    message_id: None,
                    attempt: Some(record.attempt),
                    recipient_id: job.to.to_string(),
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
        self.finish(claim, record, AttemptOutcome::Requeued { throttled, until }).await?;
        // Put on the queue even if that write was refused: the refusal may come from its own
        // first try, made by DynamoDB with its answer lost, and then only this message brings
        // the job back before the sweeper would. A request for a job that moved on meanwhile
        // finds it settled and does nothing.
        let job = &record.job;
        let request = attempt_request(&job.workspace_id, &job.job_id, record.attempt);
        self.queues.enqueue_send(&request, delay).await?;
        Ok(())
    }
}

fn attempt_request(workspace: &WorkspaceId, job_id: &SendJobId, attempt: u32) -> SendRequest {
    SendRequest::Attempt { workspace_id: workspace.clone(), job_id: job_id.clone(), attempt }
}
