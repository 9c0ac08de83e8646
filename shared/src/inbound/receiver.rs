//! Storing what Meta delivers, exactly once, and answering only when it is durable.
//!
//! Meta delivers at least once, in batches of up to 1,000 updates, out of order, and retries a
//! failed delivery for 7 days; it has no way to fetch a missed event later. So: every event of
//! a body is stored (or recognised as a duplicate) before the caller may answer 200; any failed
//! write fails the whole receipt (the webhook answers 5xx, Meta redelivers) and the redelivery
//! completes what was missing without repeating what was done. Events of different
//! conversations are stored concurrently; events of one conversation in Meta's time order.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tracing::Instrument;

use super::event::{Delivery, parse_delivery_at};
use crate::clock::SharedClock;
use crate::domain::{Channel, InboundMessage, MessageContent, StatusEvent, UnknownEvent, WebhookEvent};
use crate::domain::{SendJobId, WorkspaceId};
use crate::queues::{FlowTick, QueueError, Queues, SendFailure};
use crate::store::messages::Insert;
use crate::store::{Store, StoreError};

/// How many conversations of one body are stored at once.
const CONCURRENT_CONVERSATIONS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What one delivery did; logged, and handy in tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub messages_stored: usize,
    pub duplicates: usize,
    pub statuses_applied: usize,
    pub failures_handed_to_retry: usize,
    pub unrouted: usize,
}

impl Receipt {
    fn add(mut self, other: Receipt) -> Receipt {
        self.messages_stored += other.messages_stored;
        self.duplicates += other.duplicates;
        self.statuses_applied += other.statuses_applied;
        self.failures_handed_to_retry += other.failures_handed_to_retry;
        self.unrouted += other.unrouted;
        self
    }
}

/// Account → workspace lookups, cached per warm container. Unknown accounts are cached
/// briefly so a number onboarded a moment ago starts receiving almost at once.
type RouteKey = (Channel, String);

#[derive(Default)]
struct RouteCache {
    /// The owner (or its absence) and when it was looked up.
    entries: Mutex<HashMap<RouteKey, (Option<WorkspaceId>, Instant)>>,
}

// Short: a released number must stop routing here within seconds.
const KNOWN_ROUTE_TTL: Duration = Duration::from_secs(5);
const UNKNOWN_ROUTE_TTL: Duration = Duration::from_secs(5);

impl RouteCache {
    fn get(&self, key: &RouteKey) -> Option<Option<WorkspaceId>> {
        let entries = self.entries.lock().expect("route cache");
        let (workspace, at) = entries.get(key)?;
        let ttl = if workspace.is_some() { KNOWN_ROUTE_TTL } else { UNKNOWN_ROUTE_TTL };
        (at.elapsed() < ttl).then(|| workspace.clone())
    }

    fn put(&self, key: RouteKey, workspace: Option<WorkspaceId>) {
        self.entries.lock().expect("route cache").insert(key, (workspace, Instant::now()));
    }
}

/// Routes a body's events into groups that may be stored concurrently: one per conversation
/// (and per sent message for statuses), each in Meta's time order, so a conversation's flow
/// events and window updates happen in the order the customer wrote.
pub fn in_storage_order(events: Vec<WebhookEvent>) -> Vec<Vec<WebhookEvent>> {
    // Each event's group, numbered in the order groups first appear; the keys borrow from the
    // events, so nothing is formatted or copied to group them.
    let mut group_of = Vec::with_capacity(events.len());
    let mut sizes: Vec<usize> = Vec::new();
    {
        let mut numbers: HashMap<GroupKey<'_>, usize, BuildHasherDefault<KeyHasher>> =
            HashMap::with_capacity_and_hasher(events.len(), Default::default());
        for event in &events {
            let new_group = sizes.len();
            let group = match GroupKey::of(event) {
                Some(key) => *numbers.entry(key).or_insert(new_group),
                None => new_group,
            };
            if group == new_group {
                sizes.push(0);
            }
            sizes[group] += 1;
            group_of.push(group);
        }
    }
    let mut groups: Vec<Vec<WebhookEvent>> = sizes.into_iter().map(Vec::with_capacity).collect();
    for (event, group) in events.into_iter().zip(group_of) {
        groups[group].push(event);
    }
    for group in groups.iter_mut().filter(|group| group.len() > 1) {
        group.sort_by_key(|event| match event {
            WebhookEvent::Message(m) => (m.sent_at, 0),
            WebhookEvent::Status(s) => (s.at, s.state.rank()),
            WebhookEvent::Account(_) | WebhookEvent::Unknown(_) => (chrono::DateTime::<chrono::Utc>::MIN_UTC, 0),
        });
    }
    groups
}

/// What a group of [`in_storage_order`] is for: a conversation, equal to another when their
/// conversation ids (`channel:account:contact`) are equal, or a sent message (its statuses).
/// Events we only keep have no key: each is a group of its own.
enum GroupKey<'a> {
    Conversation([&'a str; 5]),
    Message(&'a str),
}

impl<'a> GroupKey<'a> {
    fn of(event: &'a WebhookEvent) -> Option<Self> {
        match event {
            // The parts of `InboundMessage::conversation_id`, not joined.
            WebhookEvent::Message(m) => {
                Some(Self::Conversation([m.channel.as_str(), ":", m.account_id.as_str(), ":", m.contact_id.as_str()]))
            }
            WebhookEvent::Status(s) => Some(Self::Message(s.message_id.as_str())),
            WebhookEvent::Account(_) | WebhookEvent::Unknown(_) => None,
        }
    }
}

impl PartialEq for GroupKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            // Equal parts make equal joined keys (the common case: one conversation's events);
            // parts split differently can still join alike, which only the bytes can tell.
            (Self::Conversation(a), Self::Conversation(b)) => {
                a == b || {
                    let joined_len = |parts: &[&str; 5]| parts.iter().map(|part| part.len()).sum::<usize>();
                    joined_len(a) == joined_len(b)
                        && a.iter().flat_map(|part| part.bytes()).eq(b.iter().flat_map(|part| part.bytes()))
                }
            }
            (Self::Message(a), Self::Message(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for GroupKey<'_> {}

impl Hash for GroupKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            // The joined bytes, so that keys equal as joined strings hash alike however their
            // parts are split: copied into one buffer (ids are short), byte by byte beyond it.
            Self::Conversation(parts) => {
                state.write_u8(0);
                let mut joined = [0u8; 128];
                let len = parts.iter().map(|part| part.len()).sum::<usize>();
                if len <= joined.len() {
                    let mut at = 0;
                    for part in parts {
                        joined[at..at + part.len()].copy_from_slice(part.as_bytes());
                        at += part.len();
                    }
                    state.write(&joined[..len]);
                } else {
                    parts.iter().flat_map(|part| part.bytes()).for_each(|byte| state.write_u8(byte));
                }
            }
            Self::Message(id) => {
                state.write_u8(1);
                state.write(id.as_bytes());
            }
        }
    }
}

/// A fast hasher for the group keys of one delivery (8 bytes per step, as FxHash does). Not
/// resistant to chosen collisions, which only a body signed with the app secret could carry,
/// and a delivery holds at most a few thousand keys.
#[derive(Default)]
struct KeyHasher(u64);

impl KeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn write_u64(&mut self, word: u64) {
        self.add(word);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub struct Receiver {
    store: Store,
    queues: Queues,
    clock: SharedClock,
    routes: RouteCache,
    heartbeat: super::heartbeat::StatusHeartbeat,
}

impl Receiver {
    pub fn new(store: Store, queues: Queues, clock: SharedClock) -> Self {
        Self { store, queues, clock, routes: RouteCache::default(), heartbeat: Default::default() }
    }

    /// Stores everything in a (signature-checked) webhook body.
    pub async fn receive(&self, body: &[u8]) -> Result<Receipt, ReceiveError> {
        match parse_delivery_at(body, self.clock.now()) {
            Delivery::Malformed { error } => {
                tracing::warn!(%error, bytes = body.len(), "signed webhook body is not readable JSON; kept raw");
                let reason = format!("malformed JSON: {error}");
                crate::metrics::unrouted_event();
                self.store.keep_unrouted(&reason, None, body, self.clock.now()).await?;
                Ok(Receipt { unrouted: 1, ..Receipt::default() })
            }
            Delivery::Events(events) => self.receive_events(events, body).await,
        }
    }

    /// `body` is the delivery the events came from, kept for an element that cannot be stored.
    async fn receive_events(&self, events: Vec<WebhookEvent>, body: &[u8]) -> Result<Receipt, ReceiveError> {
        let groups = in_storage_order(events);
        let results: Vec<Result<Receipt, ReceiveError>> = futures_util::stream::iter(groups)
            .map(|group| self.receive_in_order(group, body))
            .buffer_unordered(CONCURRENT_CONVERSATIONS)
            .collect()
            .await;
        let mut receipt = Receipt::default();
        for result in results {
            receipt = receipt.add(result?);
        }
        Ok(receipt)
    }

    async fn receive_in_order(&self, group: Vec<WebhookEvent>, body: &[u8]) -> Result<Receipt, ReceiveError> {
        let mut receipt = Receipt::default();
        for event in group {
            let handled = match event {
                WebhookEvent::Message(message) => self.receive_message(*message).await,
                WebhookEvent::Status(status) => self.receive_status(*status).await,
                WebhookEvent::Account(update) => self.receive_account_update(update).await,
                WebhookEvent::Unknown(unknown) => self.keep_unknown(unknown).await,
            };
            receipt = receipt.add(match handled {
                // DynamoDB refuses this element for good (an item over 400 KB, a number out of
                // its range): answering 500 would only make Meta redeliver it for 7 days. It is
                // kept for operators, and the rest of the delivery is stored.
                Err(ReceiveError::Store(error)) if error.is_refused_for_good() => {
                    tracing::warn!(%error, "an element DynamoDB cannot store was kept as unrouted");
                    crate::metrics::unrouted_event();
                    let reason = format!("an element of this delivery could not be stored: {error}");
                    self.store.keep_unrouted(&reason, None, body, self.clock.now()).await?;
                    Receipt { unrouted: 1, ..Receipt::default() }
                }
                other => other?,
            });
        }
        Ok(receipt)
    }

    async fn workspace_for(&self, channel: Channel, account_id: &str) -> Result<Option<WorkspaceId>, StoreError> {
        let key = (channel, account_id.to_owned());
        if let Some(cached) = self.routes.get(&key) {
            return Ok(cached);
        }
        let workspace = self.store.route(channel, account_id).await?;
        self.routes.put(key, workspace.clone());
        Ok(workspace)
    }

    /// A template's review or a number's quality, for the workspace that onboarded the WABA.
    async fn receive_account_update(&self, event: crate::domain::AccountEvent) -> Result<Receipt, ReceiveError> {
        let Some(workspace) = self.store.waba_owner(&event.waba_id).await? else {
            let raw = serde_json::to_vec(&event).expect("events serialize");
            let reason = format!("no workspace onboarded WhatsApp Business Account {}", event.waba_id);
            crate::metrics::unrouted_event();
            self.store.keep_unrouted(&reason, Some(&event.waba_id), &raw, self.clock.now()).await?;
            return Ok(Receipt { unrouted: 1, ..Receipt::default() });
        };
        let now = self.clock.now();
        match event.update {
            crate::domain::AccountUpdate::TemplateStatus { name, language, status, reason } => {
                tracing::info!(workspace = %workspace, template = %name, ?status, "template status from Meta");
                self.store
                    .set_template_status(&workspace, &event.waba_id, &name, &language, status, reason.as_deref())
                    .await?;
            }
            crate::domain::AccountUpdate::AccountStatus { phone_number, event: decision, detail } => {
                tracing::warn!(workspace = %workspace, %decision, "account decision from Meta");
                if let Some(number) = phone_number {
                    self.store.record_account_decision(&workspace, &number, &decision, detail.as_deref(), now).await?;
                }
            }
            crate::domain::AccountUpdate::NumberQuality { display_phone_number, event: quality, messaging_limit } => {
                tracing::info!(workspace = %workspace, %quality, ?messaging_limit, "number quality from Meta");
                self.store
                    .record_number_quality(&workspace, &display_phone_number, &quality, messaging_limit.as_deref(), now)
                    .await?;
            }
        }
        Ok(Receipt::default())
    }

    async fn keep_orphan(
        &self,
        channel: Channel,
        account_id: &str,
        event: &impl serde::Serialize,
    ) -> Result<Receipt, ReceiveError> {
        tracing::warn!(
            channel = channel.as_str(),
            account_id,
            "delivery for an account no workspace owns; kept as orphan"
        );
        let raw = serde_json::to_vec(event).expect("events serialize");
        let reason = format!("no workspace owns {} account {account_id}", channel.as_str());
        crate::metrics::unrouted_event();
        self.store.keep_unrouted(&reason, Some(account_id), &raw, self.clock.now()).await?;
        Ok(Receipt { unrouted: 1, ..Receipt::default() })
    }

    async fn receive_message(&self, message: InboundMessage) -> Result<Receipt, ReceiveError> {
        let Some(workspace) = self.workspace_for(message.channel, &message.account_id).await? else {
            return self.keep_orphan(message.channel, &message.account_id, &message).await;
        };
        let span = tracing::info_span!("inbound", workspace = %workspace, message_id = %message.message_id);
        self.store_message(workspace, message).instrument(span).await
    }

    /// A message of `workspace`'s, stored once with every effect it has.
    async fn store_message(&self, workspace: WorkspaceId, message: InboundMessage) -> Result<Receipt, ReceiveError> {
        if let MessageContent::Unknown { kind, .. } = &message.content {
            tracing::warn!(kind, "message of a type we do not know yet; stored whole");
        }
        if let Some(note) = &message.timestamp_note {
            tracing::warn!(note, "Meta's timestamp not used as sent");
        }
        let now = self.clock.now();
        let inserted = self.store.insert_inbound(&workspace, &message, now).await?;
        crate::metrics::inbound_message(if inserted == Insert::New { "new" } else { "duplicate" });
        if inserted == (Insert::Duplicate { processed: true }) {
            tracing::debug!("duplicate delivery of a stored message");
            return Ok(Receipt { duplicates: 1, ..Receipt::default() });
        }
        // New, or stored by an earlier attempt that did not finish: (re)do every effect; each
        // one is idempotent.
        self.store.upsert_contact(&workspace, &message, now).await?;
        let newest = self.store.record_inbound(&workspace, &message).await?;
        self.queues.emit_flow_tick(&FlowTick::for_message(&workspace, &message)).await?;
        self.store.mark_processed(&workspace, &message.message_id).await?;
        tracing::info!(newest, completed_earlier_attempt = inserted != Insert::New, "inbound message stored");
        Ok(match inserted {
            Insert::New => Receipt { messages_stored: 1, ..Receipt::default() },
            Insert::Duplicate { .. } => Receipt { duplicates: 1, ..Receipt::default() },
        })
    }

    async fn receive_status(&self, status: StatusEvent) -> Result<Receipt, ReceiveError> {
        let Some(workspace) = self.workspace_for(status.channel, &status.account_id).await? else {
            return self.keep_orphan(status.channel, &status.account_id, &status).await;
        };
        if let Some(note) = &status.timestamp_note {
            tracing::warn!(workspace = %workspace, message_id = %status.message_id, note, "Meta's timestamp not used as sent");
        }
        crate::metrics::status(&format!("{:?}", status.state).to_lowercase());
        let outcome = self.store.apply_status(&workspace, &status).await?;
        self.heartbeat.beat(&self.store, &workspace, status.channel, &status.account_id, self.clock.now()).await?;
        // A status naming our send job settles it: an answer lost on the way back (a timeout,
        // a 500 after Meta accepted) is reconciled here instead of the message being resent.
        // Only the message's current status says something: a late `sent` for a message Meta
        // already reported failed must not settle a job that is waiting for its retry. The
        // current status is settled again when it comes again (each job write is conditional),
        // as its first delivery may have stored it and not reached the job.
        let job = status.job_id.as_deref().or(outcome.job_id.as_deref()).and_then(|j| SendJobId::parse(j).ok());
        if outcome.is_current
            && let Some(job_id) = &job
        {
            self.store.reconcile_job(&workspace, job_id, &status.message_id, status.state, self.clock.now()).await?;
        }
        if status.state.reached_customer() {
            crate::outbound::undeliverable::reached(&self.store, &workspace, status.channel, &status.recipient_id)
                .await?;
        }
        let mut receipt = Receipt { statuses_applied: usize::from(outcome.advanced), ..Receipt::default() };
        if outcome.hand_to_retry {
            // The job records the failure first, so that a hand-over lost below is found by
            // the sweeper and handed over again.
            if let Some(job_id) = status.job_id.as_deref().and_then(|j| SendJobId::parse(j).ok()) {
                let code = status.error.as_ref().map(|e| e.code);
                let reason = status.error.as_ref().and_then(|e| e.title.clone()).unwrap_or_default();
                let now = self.clock.now();
                self.store.failure_reported(&workspace, &job_id, &status.message_id, code, &reason, now).await?;
            }
            let failure = SendFailure {
                workspace_id: workspace.clone(),
                job_id: status.job_id.clone(),
                message_id: Some(status.message_id.clone()),
                attempt: None,
                recipient_id: status.recipient_id.clone(),
                error_code: status.error.as_ref().map(|e| e.code),
                http_status: None,
                error_title: status.error.as_ref().and_then(|e| e.title.clone()),
                failed_at: status.at,
            };
            self.queues.hand_to_retry(&failure).await?;
            self.store.mark_retry_handed(&workspace, &status.message_id).await?;
            receipt.failures_handed_to_retry = 1;
            crate::metrics::send_failure(failure.error_code);
            tracing::info!(workspace = %workspace, message_id = %status.message_id, code = ?failure.error_code, "failed send handed to Smart Retry");
        }
        Ok(receipt)
    }

    async fn keep_unknown(&self, unknown: UnknownEvent) -> Result<Receipt, ReceiveError> {
        tracing::warn!(reason = %unknown.reason, account_id = ?unknown.account_id, "unknown webhook event kept");
        let raw = serde_json::to_vec(&unknown.raw).expect("JSON values serialize");
        crate::metrics::unrouted_event();
        self.store.keep_unrouted(&unknown.reason, unknown.account_id.as_deref(), &raw, self.clock.now()).await?;
        Ok(Receipt { unrouted: 1, ..Receipt::default() })
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    fn hash(key: &GroupKey) -> u64 {
        BuildHasherDefault::<KeyHasher>::default().hash_one(key)
    }

    #[test]
    fn conversation_keys_are_one_key_however_their_parts_are_split() {
        let whole = GroupKey::Conversation(["wa", ":", "1065:40", ":", "16505551234"]);
        let split_elsewhere = GroupKey::Conversation(["wa", ":", "1065", ":40:", "16505551234"]);
        let other = GroupKey::Conversation(["wa", ":", "1065:40", ":", "16505551235"]);
        assert!(whole == split_elsewhere && hash(&whole) == hash(&split_elsewhere));
        assert!(whole != other);
        let long = "9".repeat(200);
        let (a, b) = (
            GroupKey::Conversation(["wa", ":", &long, ":", "1"]),
            GroupKey::Conversation(["wa:", "", &long, ":1", ""]),
        );
        assert!(a == b && hash(&a) == hash(&b));
    }
}
