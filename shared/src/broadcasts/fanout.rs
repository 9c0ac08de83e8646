//! The fan-out: a broadcast's audience, page by page, written as one send job per recipient
//! (`{broadcast}-{contact}`), or as a skipped recipient with the reason. The broadcast item
//! keeps where the fan-out is (the audience query's cursor), so a fan-out that dies, or stops
//! before the Lambda's 15 minutes run out, is started again and resumes there: a page done
//! twice finds its jobs already written, so every recipient has exactly one job.
//!
//! Before the first send: the template must be APPROVED (else the broadcast FAILS with that
//! reason and nothing is sent). Per recipient: `dnd` and `do-not-send` are skipped with the
//! reason; Meta's messaging limit (unique customers in a rolling 24 h, per portfolio) is
//! counted once per customer and, when reached, the broadcast pauses until the window has room
//! (`defer`) or reports the rest as not sent (`skip`). A cancelled broadcast writes the rest of
//! its audience as skipped ("cancelled"), so its report still adds up.

use std::time::Instant;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::spec::{Audience, BroadcastRecord, BroadcastState, OverLimit, recipient_job_id};
use crate::clock::SharedClock;
use crate::domain::{BroadcastId, Channel, ContactId, Origin, SendJob, SendRequest, TemplateStatus, WorkspaceId};
use crate::outbound::content::OutboundContent;
use crate::policy::messaging_limit::{customers_per_window, room_left};
use crate::policy::send::{DND_TAG, DO_NOT_SEND_TAG, Refusal};
use crate::queues::{QueueError, Queues};
use crate::schedules::{OneTime, create_once};
use crate::store::broadcasts::active_shard_key;
use crate::store::contacts::ContactRecord;
use crate::store::jobs::Accepted;
use crate::store::keys::sortable_millis;
use crate::store::update::{Update, n, s};
use crate::store::{Store, StoreError};

/// Recipients per page: one audience query, one batch of reads, ten SQS batches.
pub const PAGE: i32 = 100;
/// Time kept back from the Lambda's deadline to store the cursor and schedule the rest.
const STOP_BEFORE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// What a broadcast schedule fires with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fired {
    pub workspace_id: WorkspaceId,
    pub broadcast_id: BroadcastId,
}

#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("scheduling the broadcast's next run failed: {0}")]
    Schedule(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FanoutOutcome {
    /// Every recipient has a job or was skipped.
    Sent {
        total: u64,
    },
    Failed {
        reason: String,
    },
    /// Paused at the messaging limit until then.
    Deferred {
        until: DateTime<Utc>,
    },
    /// Stopped before the deadline; a schedule starts it again where it stopped.
    Continued {
        enumerated: u64,
    },
    Cancelled {
        total: u64,
    },
    Nothing(&'static str),
}

/// Where the broadcast function's one-time schedules go.
#[derive(Debug, Clone)]
pub struct FanoutSchedules {
    pub group_name: String,
    pub role_arn: String,
    pub dead_letter_arn: Option<String>,
}

pub struct Fanout {
    store: Store,
    queues: Queues,
    scheduler: aws_sdk_scheduler::Client,
    schedules: FanoutSchedules,
    clock: SharedClock,
}

/// The schedule that fires a broadcast (again): named after the broadcast and the point it
/// resumes from, so asking twice finds the first.
pub fn schedule_name(workspace: &WorkspaceId, broadcast: &BroadcastId, purpose: &str) -> String {
    let hash = hex::encode(Sha256::digest(format!("{workspace}/{broadcast}/{purpose}")));
    format!("bcast-{}", &hash[..40])
}

/// The template's body parameters for one contact.
fn components(record: &BroadcastRecord, contact: &ContactRecord) -> Vec<serde_json::Value> {
    let parameters = &record.spec.body_parameters;
    if parameters.is_empty() {
        return Vec::new();
    }
    let field = |name: &str| match name {
        "name" => contact.profile_name.clone(),
        "phone" => Some(contact.contact_id.clone()),
        other => contact.fields.get(other).cloned(),
    };
    let values: Vec<_> = parameters.iter().map(|p| json!({ "type": "text", "text": p.render(field) })).collect();
    vec![json!({ "type": "body", "parameters": values })]
}

/// Why a recipient gets nothing, before any limit is counted.
fn excluded(contact: &ContactRecord) -> Option<String> {
    if contact.tags.contains(DND_TAG) {
        return Some(Refusal::ContactIsDnd.to_string());
    }
    if contact.tags.contains(DO_NOT_SEND_TAG) {
        return Some(Refusal::ContactIsDoNotSend.to_string());
    }
    None
}

const CANCELLED: &str = "the broadcast was cancelled before this recipient was sent";

impl Fanout {
    pub fn new(
        store: Store,
        queues: Queues,
        scheduler: aws_sdk_scheduler::Client,
        schedules: FanoutSchedules,
        clock: SharedClock,
    ) -> Self {
        Self { store, queues, scheduler, schedules, clock }
    }

    /// Creates the one-time schedule that fires the broadcast function for `fired` at `at`.
    pub async fn fire_at(
        &self,
        fired: &Fired,
        at: DateTime<Utc>,
        purpose: &str,
        function_arn: &str,
    ) -> Result<(), FanoutError> {
        let name = schedule_name(&fired.workspace_id, &fired.broadcast_id, purpose);
        let schedule = OneTime {
            name: &name,
            group: &self.schedules.group_name,
            at,
            target_arn: function_arn,
            role_arn: &self.schedules.role_arn,
            input: serde_json::to_string(fired).expect("serializes"),
            dead_letter_arn: self.schedules.dead_letter_arn.as_deref(),
            spread_minutes: None,
        };
        create_once(&self.scheduler, schedule).await.map_err(FanoutError::Schedule)
    }

    pub async fn run(
        &self,
        fired: &Fired,
        deadline: Option<Instant>,
        function_arn: &str,
    ) -> Result<FanoutOutcome, FanoutError> {
        let (ws, id) = (&fired.workspace_id, &fired.broadcast_id);
        let Some(mut record) = self.store.broadcast(ws, id).await? else {
            return Ok(FanoutOutcome::Nothing("no such broadcast"));
        };
        let now = self.clock.now();
        match record.state {
            BroadcastState::Sent | BroadcastState::Failed => return Ok(FanoutOutcome::Nothing("already done")),
            BroadcastState::Cancelled if record.audience_total.is_some() => {
                return Ok(FanoutOutcome::Nothing("cancelled, and every recipient accounted for"));
            }
            BroadcastState::Deferred if record.resume_at.is_some_and(|at| now < at) => {
                return Ok(FanoutOutcome::Nothing("deferred until later"));
            }
            BroadcastState::Scheduled | BroadcastState::Deferred => {
                if let Some(reason) = self.why_it_cannot_start(&record).await? {
                    let update = Update::new().set("state", s("FAILED")).set("reason", s(&reason));
                    let from = [BroadcastState::Scheduled, BroadcastState::Deferred];
                    self.store.move_broadcast(ws, id, &from, update, now).await?;
                    tracing::warn!(workspace = %ws, broadcast = %id, %reason, "broadcast failed before any send");
                    return Ok(FanoutOutcome::Failed { reason });
                }
                let update = Update::new()
                    .set("state", s("SENDING"))
                    .set_if_absent("started_at", s(now.to_rfc3339()))
                    .remove("resume_at")
                    .remove("reason")
                    .set("gsi2pk", s(active_shard_key(ws, id)))
                    .set("gsi2sk", s(sortable_millis(now.timestamp_millis())));
                let from = [BroadcastState::Scheduled, BroadcastState::Deferred];
                if !self.store.move_broadcast(ws, id, &from, update, now).await? {
                    return Ok(FanoutOutcome::Nothing("another run started it"));
                }
                record.state = BroadcastState::Sending;
            }
            BroadcastState::Sending | BroadcastState::Cancelled => {}
        }
        self.fan_out(record, deadline, function_arn).await
    }

    /// Fires again every broadcast whose fan-out has not moved for `quiet` (a run that died
    /// and was not retried, a lost continuation) or whose resumption is that late. The sweeper
    /// calls it; a run that is merely slow loses nothing, as runs move the cursor only from
    /// the page count they read.
    pub async fn restart_stalled(&self, quiet: Duration, function_arn: &str) -> Result<Vec<BroadcastId>, FanoutError> {
        let now = self.clock.now();
        let mut restarted = Vec::new();
        for (ws, id) in self.store.stalled_broadcasts(now - quiet).await? {
            let Some(record) = self.store.broadcast(&ws, &id).await? else { continue };
            let unfinished = match record.state {
                BroadcastState::Sending | BroadcastState::Deferred => true,
                BroadcastState::Cancelled => record.audience_total.is_none(),
                _ => false,
            };
            if !unfinished {
                continue;
            }
            let fired = Fired { workspace_id: ws.clone(), broadcast_id: id.clone() };
            let purpose = format!("restart-{}-{}", record.pages, now.timestamp() / 60);
            self.fire_at(&fired, now, &purpose, function_arn).await?;
            tracing::warn!(workspace = %ws, broadcast = %id, pages = record.pages, "stalled broadcast fired again");
            restarted.push(id);
        }
        Ok(restarted)
    }

    /// The template must be APPROVED for the number's WhatsApp Business Account when sending
    /// starts, and the number must be ours.
    async fn why_it_cannot_start(&self, record: &BroadcastRecord) -> Result<Option<String>, StoreError> {
        let spec = &record.spec;
        let Some(number) = self.store.number(&record.workspace_id, Channel::WhatsApp, &spec.account_id).await? else {
            return Ok(Some(format!("number {} is not connected to this workspace", spec.account_id)));
        };
        let Some(waba) = &number.waba_id else {
            return Ok(Some(format!("number {} has no WhatsApp Business Account", spec.account_id)));
        };
        Ok(match self.store.template_status(&record.workspace_id, waba, &spec.template, &spec.language).await? {
            Some(TemplateStatus::Approved) => None,
            Some(status) => Some(format!(
                "template {} ({}) is {status:?}, not APPROVED; nothing was sent",
                spec.template, spec.language
            )),
            None => Some(format!(
                "template {} ({}) does not exist for the number's WhatsApp Business Account; nothing was sent",
                spec.template, spec.language
            )),
        })
    }

    async fn fan_out(
        &self,
        mut record: BroadcastRecord,
        deadline: Option<Instant>,
        function_arn: &str,
    ) -> Result<FanoutOutcome, FanoutError> {
        // Every page saved and no cursor left: a run stopped between saving the last page and
        // finishing. Going through the audience again would count it twice.
        if record.pages > 0 && record.cursor.is_none() {
            return self.finish(record).await;
        }
        let ws = record.workspace_id.clone();
        let id = record.broadcast_id.clone();
        let number = self.store.number(&ws, Channel::WhatsApp, &record.spec.account_id).await?;
        let portfolio =
            number.as_ref().map_or_else(|| record.spec.account_id.to_string(), |n| n.portfolio().to_owned());
        let limit = customers_per_window(number.as_ref().and_then(|n| n.messaging_limit.as_deref()));
        loop {
            let (contacts, next) = self.page(&record).await?;
            let now = self.clock.now();
            let cancelled = record.state == BroadcastState::Cancelled;
            let mut room = if cancelled { None } else { self.room(&ws, &portfolio, limit, now).await? };
            let reached = match room {
                Some(_) => {
                    let ids: Vec<String> = contacts.iter().map(|c| c.contact_id.clone()).collect();
                    self.store.reached_recently(&ws, &portfolio, &ids, now).await?
                }
                None => Default::default(),
            };
            let mut to_queue = Vec::new();
            for contact in &contacts {
                let Ok(to) = ContactId::for_channel(Channel::WhatsApp, &contact.contact_id) else { continue };
                let job = SendJob {
                    job_id: recipient_job_id(&id, to.as_str()),
                    workspace_id: ws.clone(),
                    channel: Channel::WhatsApp,
                    account_id: record.spec.account_id.clone(),
                    to: to.clone(),
                    origin: Origin::Broadcast { broadcast_id: id.to_string() },
                    content: OutboundContent::Template {
                        name: record.spec.template.clone(),
                        language: record.spec.language.clone(),
                        components: components(&record, contact),
                    },
                };
                let skip = if cancelled { Some(CANCELLED.to_owned()) } else { excluded(contact) };
                if let Some(reason) = skip {
                    if self.store.skip_recipient(&job, &reason, now).await? {
                        crate::metrics::broadcast_recipient("skipped");
                    }
                    continue;
                }
                if let Some(left) = room.as_mut()
                    && !reached.contains(to.as_str())
                {
                    if *left == 0 {
                        match record.spec.over_limit {
                            OverLimit::Skip => {
                                let reason = "Meta's messaging limit for the business portfolio was reached (unique customers in 24 hours); not sent";
                                self.store.skip_recipient(&job, reason, now).await?;
                                continue;
                            }
                            OverLimit::Defer => {
                                // The page is done again from its start when the window has room:
                                // recipients already written find their jobs.
                                self.queues.enqueue_sends(&to_queue).await?;
                                return self.defer(&record, now, function_arn).await;
                            }
                        }
                    }
                    if self.store.mark_reached(&ws, &portfolio, to.as_str(), now).await? {
                        *left -= 1;
                    }
                }
                match self.store.accept_job(&job, now).await? {
                    Accepted::New | Accepted::Again(crate::domain::JobState::Queued) => {
                        crate::metrics::broadcast_recipient("queued");
                        to_queue.push(SendRequest::Attempt {
                            workspace_id: ws.clone(),
                            job_id: job.job_id.clone(),
                            attempt: 0,
                        });
                    }
                    Accepted::Again(_) | Accepted::Conflict => {}
                }
            }
            self.queues.enqueue_sends(&to_queue).await?;
            let Some(saved) = self.save_progress(record, contacts.len() as u64, next.clone()).await? else {
                return Ok(FanoutOutcome::Nothing("another run of this broadcast moved its cursor first"));
            };
            record = saved;
            if next.is_none() {
                return self.finish(record).await;
            }
            // A page takes about a second: stop well before the Lambda is stopped.
            if deadline.is_some_and(|d| d.saturating_duration_since(Instant::now()) < STOP_BEFORE_DEADLINE) {
                let fired = Fired { workspace_id: ws.clone(), broadcast_id: id.clone() };
                let purpose = format!("continue-{}", record.pages);
                self.fire_at(&fired, self.clock.now(), &purpose, function_arn).await?;
                tracing::info!(broadcast = %id, enumerated = record.enumerated, "fan-out continues in a new run");
                return Ok(FanoutOutcome::Continued { enumerated: record.enumerated });
            }
        }
    }

    /// The next page of the audience, from the stored cursor.
    async fn page(&self, record: &BroadcastRecord) -> Result<(Vec<ContactRecord>, Option<String>), StoreError> {
        let ws = &record.workspace_id;
        match &record.spec.audience {
            Audience::Tags { tags } => {
                let mut cursor = record.cursor.clone();
                // Pages with no tagged contact are read through, so one call gives some work.
                loop {
                    let (contacts, next) = self.store.whatsapp_contacts_page(ws, cursor.as_deref(), PAGE).await?;
                    let tagged: Vec<ContactRecord> =
                        contacts.into_iter().filter(|c| tags.iter().any(|t| c.tags.contains(t))).collect();
                    if !tagged.is_empty() || next.is_none() {
                        return Ok((tagged, next));
                    }
                    cursor = next;
                }
            }
            Audience::Csv { .. } => {
                let ids = self
                    .store
                    .broadcast_audience_page(ws, &record.broadcast_id, record.cursor.as_deref(), PAGE)
                    .await?;
                let next = if ids.len() < PAGE as usize { None } else { ids.last().cloned() };
                let mut contacts = self.store.whatsapp_contacts(ws, &ids).await?;
                // A contact deleted since the import is still a recipient of the CSV.
                for id in &ids {
                    if !contacts.iter().any(|c| &c.contact_id == id) {
                        contacts.push(ContactRecord {
                            channel: Channel::WhatsApp,
                            contact_id: id.clone(),
                            profile_name: None,
                            tags: Default::default(),
                            first_seen_at: None,
                            updated_at: None,
                            fields: Default::default(),
                            last_account_id: None,
                        });
                    }
                }
                contacts.sort_by(|a, b| a.contact_id.cmp(&b.contact_id));
                Ok((contacts, next))
            }
        }
    }

    async fn room(
        &self,
        ws: &WorkspaceId,
        portfolio: &str,
        limit: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        if limit.is_none() {
            return Ok(None);
        }
        Ok(room_left(limit, self.store.reached_in_window(ws, portfolio, now).await?))
    }

    /// Stores the cursor after a page — only over the cursor this run read, so two runs of one
    /// broadcast (a schedule delivered twice) cannot both count a page — and reads back
    /// whether it was cancelled meanwhile (it then goes on as cancelled).
    async fn save_progress(
        &self,
        mut record: BroadcastRecord,
        handled: u64,
        next: Option<String>,
    ) -> Result<Option<BroadcastRecord>, StoreError> {
        let now = self.clock.now();
        let (ws, id) = (record.workspace_id.clone(), record.broadcast_id.clone());
        let mut update = Update::new()
            .add("enumerated", n(handled))
            .add("pages", n(1))
            .set("updated_at", s(now.to_rfc3339()))
            .set("gsi2sk", s(sortable_millis(now.timestamp_millis())));
        update = match &next {
            Some(cursor) => update.set("cursor", s(cursor)),
            None => update.remove("cursor"),
        };
        update = update.condition(
            "{state} IN ({0}, {1}) AND {pages} = {2}",
            &["state", "pages"],
            vec![s("SENDING"), s("CANCELLED"), n(record.pages)],
        );
        // Refused by its condition: another run saved this page first, or this write's own
        // first try did (made by DynamoDB, its answer lost), which counts as saved.
        if !self.store.update_broadcast_once(&ws, &id, update).await? {
            return Ok(None);
        }
        let Some(stored) = self.store.broadcast(&ws, &id).await? else { return Ok(None) };
        record.state = stored.state;
        record.enumerated = stored.enumerated;
        record.pages = stored.pages;
        record.cursor = next;
        Ok(Some(record))
    }

    async fn finish(&self, record: BroadcastRecord) -> Result<FanoutOutcome, FanoutError> {
        let now = self.clock.now();
        let (ws, id) = (&record.workspace_id, &record.broadcast_id);
        let total = record.enumerated;
        let update = Update::new().set("audience_total", n(total)).remove("cursor").remove("gsi2pk").remove("gsi2sk");
        let sent = update.clone().set("state", s("SENT"));
        if self.store.move_broadcast(ws, id, &[BroadcastState::Sending], sent, now).await? {
            tracing::info!(broadcast = %id, total, "every recipient has a job");
            return Ok(FanoutOutcome::Sent { total });
        }
        self.store.move_broadcast(ws, id, &[BroadcastState::Cancelled], update, now).await?;
        Ok(FanoutOutcome::Cancelled { total })
    }

    /// Pauses at the messaging limit; the window has room again when its oldest hour leaves it.
    async fn defer(
        &self,
        record: &BroadcastRecord,
        now: DateTime<Utc>,
        function_arn: &str,
    ) -> Result<FanoutOutcome, FanoutError> {
        let until = now.duration_trunc(Duration::hours(1)).unwrap_or(now) + Duration::hours(1) + Duration::minutes(1);
        let reason = "Meta's messaging limit for the business portfolio was reached; sending resumes when the 24-hour window has room";
        let update = Update::new()
            .set("state", s("DEFERRED"))
            .set("resume_at", s(until.to_rfc3339()))
            .set("reason", s(reason))
            .set("gsi2sk", s(sortable_millis(until.timestamp_millis())));
        let (ws, id) = (&record.workspace_id, &record.broadcast_id);
        if !self.store.move_broadcast(ws, id, &[BroadcastState::Sending], update, now).await? {
            return Ok(FanoutOutcome::Nothing("the broadcast changed meanwhile"));
        }
        let fired = Fired { workspace_id: ws.clone(), broadcast_id: id.clone() };
        self.fire_at(&fired, until, &format!("resume-{}", until.timestamp()), function_arn).await?;
        tracing::info!(broadcast = %id, %until, "broadcast deferred at the messaging limit");
        Ok(FanoutOutcome::Deferred { until })
    }
}
