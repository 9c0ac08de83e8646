//! DynamoDB: one table, every item keyed by workspace first, so no query can cross workspaces.
//! The domain never sees `AttributeValue`; this module maps items with `serde_dynamo`.
//!
//! Access patterns (key formats live in [`keys`]):
//!
//! | entity | pk | sk | gsi1pk / gsi1sk | written by | read by |
//! |---|---|---|---|---|---|
//! | number/account route | `ROUTE#{wa\|ig}#{account}` | `ROUTE` | – | api (onboarding, conditional: one workspace per number) | webhook (which workspace a delivery is for) |
//! | inbound message | `WS#{ws}#MSG#{message id}` | `MSG` | `WS#{ws}#CONV#{conversation}` / `{sent_at ms}#{message id}` | webhook (conditional put: exactly once) | inbox (conversation history) |
//! | contact | `WS#{ws}#CONTACT#{wa\|ig}#{contact}` | `CONTACT` | `WS#{ws}#CONTACTS` / `{wa\|ig}#{contact}` | webhook, api (create/merge, tags, CSV import), Smart Retry (`do-not-send`) | api (list, show), policies (tags) |
//! | conversation | `WS#{ws}#CONV#{conversation}` | `CONV` | `WS#{ws}#CONVS` / `{last_inbound_at ms}` | webhook (monotonic last inbound), api (`human_handoff`) | inbox list (newest first), send policy (24-hour window) |
//! | outbound message status | `WS#{ws}#OUT#{wamid}` | `STATUS` | `WS#{ws}#JOB#{job id}` / `STATUS` | webhook (monotonic status) | sender (reconcile by job id), sweeper, inbox |
//! | send job | `WS#{ws}#JOB#{job id}` | `JOB` | `SWEEP#{state}#{shard 00..15}` / `{when to look ms}` (sparse: only QUEUED, SENDING, ACCEPTED, UNCERTAIN, FAILED_ATTEMPT, RETRY_SCHEDULED) | producers (`outbound::accept`: QUEUED, with the request hash), sender (conditional claim and outcome), retry, webhook (reconcile, reported failure), sweeper | sender, retry, sweeper |
//! | number | `WS#{ws}#NUMBER#{wa\|ig}#{account}` | `NUMBER` | `WS#{ws}#NUMBERS` / `{wa\|ig}#{account}` | onboarding (`numbers::connect`, `numbers::onboarding`), registration (PIN attempts, re-verification), retry (ERROR on 190), webhook (`statuses_seen_at`, at most once a minute per container) | sender (state, sealed token, WABA) |
//! | template | `WS#{ws}#TEMPLATE#{waba}#{name}#{language}` | `TEMPLATE` | `WS#{ws}#TEMPLATES` / `{name}#{language}#{waba}` | template sync (`templates::sync`) | sender (APPROVED?), api (list) |
//! | automation | `WS#{ws}#AUTOMATION#{id}` | `AUTOMATION` | `WS#{ws}#AUTOMATIONS` / `{created ms}#{id}` | api (create; save: conditional on the version read, in one transaction with the version item; enable/disable; delete) | api (list, show), flows (every enabled automation, to match a trigger) |
//! | automation version | `WS#{ws}#AUTOMATION#{id}` | `V#{version}` | – | api (with each save; never changed) | flows (a run follows the version it started on) |
//! | conversation flow state | `WS#{ws}#CONV#{conversation}` | `FLOW` | – | flows (every tick: conditional on the version read, in one transaction with the history line) | flows |
//! | run history | `WS#{ws}#RUNLOG#{conversation}` | `{run start ms}#{run}#{step}` | – | flows (one line per tick, conditional put) | api (a conversation's runs, oldest first) |
//! | broadcast | `WS#{ws}#BROADCAST#{id}` | `BROADCAST` | `WS#{ws}#BROADCASTS` / `{created ms}#{id}` | api (create, cancel: conditional on state), broadcast fan-out (state moves; the cursor, only over the page count it read) | api, fan-out, sender (cancelled?) |
//! | broadcast audience (CSV) | `WS#{ws}#BROADCAST#{id}#AUDIENCE` | `{contact}` | – | api (at creation, batched) | fan-out (pages in order) |
//! | broadcast's jobs | (the job items) | | `gsi2`: `WS#{ws}#BCAST#{id}#{00..31}` / `{contact}` (INCLUDE state, error code, reason, wamid, read) | every job write | report (all 32 shards) |
//! | reached customer | `WS#{ws}#REACHED#{portfolio}#{contact}` | `REACHED` | – | fan-out (with the hour's counter, one transaction; TTL) | fan-out (batched: reached in the window?) |
//! | reach counter | `WS#{ws}#REACHCOUNT#{portfolio}#{hour}#{00..07}` | `COUNT` | – | fan-out (ADD 1 per new customer; TTL) | fan-out (25 hours × 8 shards, batched) |
//! | pacing | `WS#{ws}#PACE#{account}#{shard 0..3}` | `PACE` | – | sender (ADD one slot per send), sender after 130429 (`slow_until`) | sender |
//! | unrouted event | `UNROUTED#{sha256 of raw}` | `EVENT` | `UNROUTED#{yyyy-mm-dd}` / `{received ms}` | webhook (orphans, unknown and malformed deliveries; 30-day TTL) | operators |
//! | workspace | `WS#{ws}#WORKSPACE` | `WORKSPACE` | – | `wapisnap-admin`, local stack (conditional put: never overwritten) | key issuing (exists?) |
//! | API key | `APIKEY#{prefix}` | `APIKEY` | `WS#{ws}#APIKEYS` / `{created ms}#{prefix}` | `wapisnap-admin`, local stack (conditional put per prefix; revoke only under its own workspace's condition) | api (every request: consistent GetItem by prefix, SHA-256 compared in constant time), key listing |
//!
//! `gsi1` (the lists and the sweeper's index) projects only keys: a write that does not move
//! an item in its list writes nothing to the index, and a list is read as the index's keys,
//! then the items by key (`store/listed.rs`).
//!
//! Not yet sharded, and hot for one very busy workspace (a write per inbound message on one
//! index key): the conversations list (`WS#{ws}#CONVS`, moved by every newer inbound message).
//! The contacts list is written only when a contact is new (refreshing one does not touch the
//! keys-only index). The list is per workspace, not per system; sharding it (and reading the
//! shards merged) is future work recorded in the stop note. The flow engine writes per conversation (its state item and
//! history partition), so a busy workspace's bot traffic spreads over its conversations.
//!
//! **Write rates at 1,000 messages per second** (one broadcast on one number, the design
//! target). Per message the job item takes ~5 writes over its life (QUEUED, SENDING, ACCEPTED,
//! DELIVERED, READ is a status item), each on its own partition key, so no table key is hot.
//! The sweeper's index is the only key shared by many jobs: each job's index entry moves
//! QUEUED → SENDING → ACCEPTED and is removed on delivery, and every key it enters or leaves
//! is one of [`jobs::SWEEP_SHARDS`] (16) per state, chosen by a hash of the job: the busiest key (`SWEEP#Accepted#nn`: entered on accept, left on
//! delivery) takes 1,000 × 2 / 16 ≈ 125 writes/s, an eighth of DynamoDB's 1,000 WCU/s per
//! partition. Statuses are one item per wamid; `statuses_seen_at` on the number item is
//! written at most once a minute per webhook container. A broadcast at 1,000 recipients a second:
//! its report is tallied from its jobs through `gsi2`, whose 32 partitions per broadcast take
//! ≈5 job writes per recipient (QUEUED, SENDING, ACCEPTED, DELIVERED, read) → ≈156 writes/s
//! each; a number's pacing takes one `ADD` per send on one of its 4 items → ≈250/s each (the
//! hottest key of the design, a quarter of a partition's 1,000 WCU/s); newly reached
//! customers go to 8 counter items per portfolio and hour → ≈125/s each; the broadcast item
//! takes one write per page of 100 recipients. AWS requests per recipient, by design: the
//! fan-out ≈2.1 writes (the job, its conversation entry, 0.1 SQS batch) plus 2 for a customer
//! newly counted against the messaging limit (a read and a two-item transaction) and ≈0.05
//! reads (pages and batched lookups); the sender ≈6 reads (job, number, template,
//! conversation, contact, broadcast), 3 writes (pace, claim, outcome) and 1 Graph call;
//! statuses ≈2 writes each. `make bench-broadcast` measures them.
//!
//! The route, API key and unrouted items are the only ones not under a workspace: Meta names
//! only the number, a presented key names only its prefix, and an orphan has no workspace by
//! definition. None holds workspace data (a key item holds only its owner's id and a hash). The
//! sweeper's index is the one cross-workspace query; it is the sweeper's by design and returns
//! jobs whose own keys are workspace-first.

pub mod automations;
pub mod broadcasts;
pub mod contacts;
pub mod conversation_flows;
pub mod conversations;
pub mod jobs;
pub mod keys;
mod listed;
pub mod messages;
pub mod numbers;
pub mod pacing;
pub mod pages;
pub mod routes;
pub mod statuses;
pub mod unrouted;
pub mod update;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB {operation} failed: {reason}")]
    Aws { operation: &'static str, reason: String },
    #[error("a stored {entity} item is unreadable: {reason}")]
    Corrupt { entity: &'static str, reason: String },
}

impl StoreError {
    /// DynamoDB refused the request for what it holds (too large an item, a number out of its
    /// range): sending it again cannot succeed.
    pub fn is_refused_for_good(&self) -> bool {
        matches!(self, Self::Aws { reason, .. } if reason.starts_with("ValidationException"))
    }

    pub(crate) fn aws<E, R>(operation: &'static str, err: SdkError<E, R>) -> Self
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
        R: std::fmt::Debug + 'static,
    {
        Self::Aws { operation, reason: crate::aws::describe_sdk_error(&err) }
    }
}

/// Whether a write was refused by its condition (the expected outcome of a duplicate).
pub(crate) fn refused_by_condition<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

type TransactError<R> = SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>;

/// Whether a transaction was refused because one of its conditions did not hold: the expected
/// outcome of a race the transaction settles, not an error. DynamoDB cancels a transaction
/// for other reasons too (another transaction on one of its items, throttling); those wrote
/// nothing and decided nothing, so they are errors to try again, never a refusal.
pub(crate) fn transaction_refused<R>(err: &TransactError<R>) -> bool {
    cancellation_reasons(err).any(|code| code == "ConditionalCheckFailed")
}

/// Whether a transaction was cancelled only because another one was writing one of its items
/// at the same moment (`TransactionConflict`): trying again shortly is expected to succeed.
pub(crate) fn transaction_conflicted<R>(err: &TransactError<R>) -> bool {
    let codes: Vec<&str> = cancellation_reasons(err).collect();
    codes.contains(&"TransactionConflict") && codes.iter().all(|code| matches!(*code, "None" | "TransactionConflict"))
}

/// The cancellation reason of each item of a cancelled transaction (`None` for an item that
/// was not the cause).
fn cancellation_reasons<R>(err: &TransactError<R>) -> impl Iterator<Item = &str> {
    err.as_service_error()
        .and_then(|e| {
            match e {
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
                cancelled,
            ) => Some(cancelled.cancellation_reasons()),
            _ => None,
        }
        })
        .unwrap_or_default()
        .iter()
        .map(|reason| reason.code().unwrap_or("None"))
}

/// The DynamoDB table, reached through one client built per cold start.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
    /// The next free slot (`tat`, microseconds) this container last saw on each pacing item:
    /// whether a send should first try the one write that takes an idle item's slot, or the
    /// one that takes a busy item's (see `pacing.rs`). A hint only: either write is checked
    /// by its condition.
    pub(crate) pace_seen: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, i64>>>,
}

pub(crate) type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// A conditional write's answer: written, or refused by its condition with the item as it
/// stood then (`None`: there was none). A refusal is either another writer's doing or the
/// write's own first try, made by DynamoDB with its answer lost, so that the SDK sent it again:
/// only the item can tell.
pub(crate) enum Conditional {
    Written,
    Refused(Option<Item>),
}

impl Conditional {
    /// The refusing item read as `T`; `None` when written or when there was no item.
    pub(crate) fn refused_by<T: serde::de::DeserializeOwned>(
        self,
        entity: &'static str,
    ) -> Result<Option<T>, StoreError> {
        match self {
            Self::Written | Self::Refused(None) => Ok(None),
            Self::Refused(Some(item)) => serde_dynamo::from_item(item)
                .map(Some)
                .map_err(|e| StoreError::Corrupt { entity, reason: e.to_string() }),
        }
    }
}

/// A fresh token a write leaves on its item (`last_write`), so that the write, refused on the
/// SDK's second try by its own first one, can recognise itself in the refusing item.
pub(crate) fn write_mark() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Whether `item` carries `mark` as its `last_write`.
pub(crate) fn bears_mark(item: Option<&Item>, mark: &str) -> bool {
    matches!(item.and_then(|item| item.get("last_write")), Some(aws_sdk_dynamodb::types::AttributeValue::S(found)) if found == mark)
}

/// How many times, in all, a request is made when DynamoDB answers it with work left undone
/// (keys or items a batch left unprocessed, a transaction cancelled by another's conflict).
pub(crate) const ASKS_BEFORE_GIVING_UP: u32 = 8;

/// The pause before asking again for what DynamoDB left undone: exponential and jittered, as
/// AWS advises, 25–50 ms after the first answer and at most 0.8 s, so that a throttled table or
/// a contended item is not asked again at once by every caller. None after the last ask.
pub(crate) async fn pause_before_asking_again(answers: u32) {
    if answers + 1 >= ASKS_BEFORE_GIVING_UP {
        return;
    }
    let ceiling = 50u64 << answers.min(4);
    tokio::time::sleep(std::time::Duration::from_millis(rand::random_range(ceiling / 2..=ceiling))).await;
}

/// A table key, `(pk, sk)`, as the item DynamoDB takes for a key.
pub(crate) fn key_item((pk, sk): (String, String)) -> Item {
    use aws_sdk_dynamodb::types::AttributeValue;
    [(keys::PK.to_owned(), AttributeValue::S(pk)), (keys::SK.to_owned(), AttributeValue::S(sk))].into()
}

/// An entity as an item under its key.
pub(crate) fn item_at<T: serde::Serialize>(
    (pk, sk): (String, String),
    entity: &T,
    name: &'static str,
) -> Result<Item, StoreError> {
    let mut item: Item =
        serde_dynamo::to_item(entity).map_err(|e| StoreError::Corrupt { entity: name, reason: e.to_string() })?;
    item.insert(keys::PK.into(), aws_sdk_dynamodb::types::AttributeValue::S(pk));
    item.insert(keys::SK.into(), aws_sdk_dynamodb::types::AttributeValue::S(sk));
    Ok(item)
}

/// [`item_at`], listed in the lists' index (`gsi1`) at `(gsi1pk, gsi1sk)`.
pub(crate) fn listed_item_at<T: serde::Serialize>(
    key: (String, String),
    entity: &T,
    name: &'static str,
    (gsi1pk, gsi1sk): (String, String),
) -> Result<Item, StoreError> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut item = item_at(key, entity, name)?;
    item.insert("gsi1pk".into(), AttributeValue::S(gsi1pk));
    item.insert("gsi1sk".into(), AttributeValue::S(gsi1sk));
    Ok(item)
}

impl Store {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), pace_seen: Default::default() }
    }

    /// Writes (or overwrites) an entity under its key, listed in `gsi1` under `(gsi1pk, gsi1sk)`.
    pub(crate) async fn put_listed<T: serde::Serialize>(
        &self,
        key: (String, String),
        entity: &T,
        name: &'static str,
        (gsi1pk, gsi1sk): (String, String),
    ) -> Result<(), StoreError> {
        let item = listed_item_at(key, entity, name, (gsi1pk, gsi1sk))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutItem", e))?;
        Ok(())
    }

    /// Writes an item that must not exist yet: `false` (nothing written) when it does — the
    /// expected answer to a duplicate, not an error.
    pub(crate) async fn put_new(&self, item: Item, operation: &'static str) -> Result<bool, StoreError> {
        Ok(matches!(self.put_new_or_current(item, operation).await?, Conditional::Written))
    }

    /// [`Self::update_if`] for a write whose refusal must not be mistaken for another writer's
    /// move, and which must apply at most once ([`update::Update::once`] with a fresh mark): a
    /// refusal by an item bearing this write's mark was its own first try (made by DynamoDB, its
    /// answer lost, so the SDK sent it again), hence `true`. Every write's mark is its own, so two
    /// writers racing (two sweeps expiring one lease) are never taken for each other.
    pub(crate) async fn update_once(
        &self,
        key: (String, String),
        update: update::Update,
        operation: &'static str,
    ) -> Result<bool, StoreError> {
        let mark = write_mark();
        Ok(match self.update_or_current(key, update.once(&mark), operation).await? {
            Conditional::Written => true,
            Conditional::Refused(item) => bears_mark(item.as_ref(), &mark),
        })
    }

    /// Deletes the item at `key` if `condition` holds (`:ws` in it is `workspace`, when given):
    /// `false` when the condition refused it, which is an answer, not an error.
    pub(crate) async fn delete_if(
        &self,
        (pk, sk): (String, String),
        condition: &str,
        workspace: Option<&crate::domain::WorkspaceId>,
        operation: &'static str,
    ) -> Result<bool, StoreError> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(keys::PK, AttributeValue::S(pk))
            .key(keys::SK, AttributeValue::S(sk))
            .condition_expression(condition)
            .set_expression_attribute_values(
                workspace.map(|ws| [(":ws".to_owned(), AttributeValue::S(ws.to_string()))].into()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if refused_by_condition(&e) => Ok(false),
            Err(e) => Err(StoreError::aws(operation, e)),
        }
    }

    /// Applies a conditional update to the item at `key`: `false` when its condition refused
    /// it (the item moved on, or is not there), which is an answer, not an error.
    pub(crate) async fn update_if(
        &self,
        key: (String, String),
        update: update::Update,
        operation: &'static str,
    ) -> Result<bool, StoreError> {
        Ok(matches!(self.update_or_current(key, update, operation).await?, Conditional::Written))
    }

    /// Like [`Self::update_if`], and a refusal carries the item as it stood when refused
    /// (DynamoDB's `ReturnValuesOnConditionCheckFailure`), so that the caller can tell its own
    /// first try from another writer's move without reading the item again.
    pub(crate) async fn update_or_current(
        &self,
        (pk, sk): (String, String),
        update: update::Update,
        operation: &'static str,
    ) -> Result<Conditional, StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, AttributeValue::S(pk))
            .key(keys::SK, AttributeValue::S(sk))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match update.apply(request).send().await {
            Ok(_) => Ok(Conditional::Written),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                    Ok(Conditional::Refused(refused.item().cloned()))
                }
                _ => Err(StoreError::aws(operation, e)),
            },
        }
    }

    /// Like [`Self::put_new`], and a refusal carries the item already there.
    pub(crate) async fn put_new_or_current(
        &self,
        item: Item,
        operation: &'static str,
    ) -> Result<Conditional, StoreError> {
        use aws_sdk_dynamodb::operation::put_item::PutItemError;
        use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => Ok(Conditional::Written),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refused)) => {
                    Ok(Conditional::Refused(refused.item().cloned()))
                }
                _ => Err(StoreError::aws(operation, e)),
            },
        }
    }

    /// Writes an item that must not exist yet: `None` when written, or the item already
    /// there, read as `T` (which may be this write's own first try: see [`Conditional`]).
    pub(crate) async fn put_new_or_existing<T: serde::de::DeserializeOwned>(
        &self,
        item: Item,
        operation: &'static str,
        entity: &'static str,
    ) -> Result<Option<T>, StoreError> {
        match self.put_new_or_current(item, operation).await? {
            Conditional::Written => Ok(None),
            refused @ Conditional::Refused(Some(_)) => refused.refused_by(entity),
            Conditional::Refused(None) => {
                Err(StoreError::Corrupt { entity, reason: "refused as already there, yet absent".into() })
            }
        }
    }

    /// Every item under one `gsi1pk`, in `gsi1sk` order, across result pages.
    pub(crate) async fn query_index(&self, gsi1pk: String, operation: &'static str) -> Result<Vec<Item>, StoreError> {
        self.query_index_below(gsi1pk, None, operation).await
    }

    /// Like [`Self::query_index`], only items whose `gsi1sk` sorts below `below`.
    pub(crate) async fn query_index_below(
        &self,
        gsi1pk: String,
        below: Option<String>,
        operation: &'static str,
    ) -> Result<Vec<Item>, StoreError> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let mut items = Vec::new();
        let mut start = None;
        let condition = if below.is_some() { "gsi1pk = :pk AND gsi1sk < :below" } else { "gsi1pk = :pk" };
        let mut values = std::collections::HashMap::from([(":pk".to_owned(), AttributeValue::S(gsi1pk.clone()))]);
        if let Some(below) = &below {
            values.insert(":below".to_owned(), AttributeValue::S(below.clone()));
        }
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .key_condition_expression(condition)
                .set_expression_attribute_values(Some(values.clone()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::aws(operation, e))?;
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                let listed = |pk: &str, sk: &str| pk == gsi1pk && below.as_deref().is_none_or(|below| sk < below);
                return self.listed_items(items, listed, operation).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::client::result::SdkError;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn cancelled(codes: &[&str]) -> TransactError<HttpResponse> {
        let reasons = codes.iter().map(|code| CancellationReason::builder().code(*code).build()).collect();
        let cancelled = TransactionCanceledException::builder().set_cancellation_reasons(Some(reasons)).build();
        let answer = HttpResponse::new(400u16.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(TransactWriteItemsError::TransactionCanceledException(cancelled), answer)
    }

    #[test]
    fn only_a_condition_that_did_not_hold_refuses_a_transaction() {
        assert!(transaction_refused(&cancelled(&["ConditionalCheckFailed", "None"])));
        assert!(transaction_refused(&cancelled(&["None", "ConditionalCheckFailed"])));
        // Cancelled for what is not a decision: nothing was written, and trying again may succeed.
        for codes in [&["None", "TransactionConflict"][..], &["ThrottlingError"], &["None", "ValidationError"], &[]] {
            assert!(!transaction_refused(&cancelled(codes)), "{codes:?}");
        }
    }

    #[test]
    fn a_transaction_another_one_was_writing_over_is_a_conflict_to_try_again() {
        assert!(transaction_conflicted(&cancelled(&["None", "TransactionConflict"])));
        assert!(transaction_conflicted(&cancelled(&["TransactionConflict", "TransactionConflict"])));
        for codes in
            [&["ConditionalCheckFailed", "TransactionConflict"][..], &["None", "ThrottlingError"], &["None"], &[]]
        {
            assert!(!transaction_conflicted(&cancelled(codes)), "{codes:?}");
        }
    }
}
