//! Connected numbers (and Instagram accounts) with their sealed tokens, and the message
//! templates of their WhatsApp Business Accounts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::pages::{BadCursor, Order, Page};
use super::update::{Update, n, s};
use super::{Store, StoreError, keys};
use crate::domain::Channel;
use crate::domain::WorkspaceId;
use crate::domain::{NumberState, TemplateStatus};
use crate::vault::SealedToken;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NumberRecord {
    pub workspace_id: WorkspaceId,
    pub channel: Channel,
    /// Phone number id (WhatsApp) or account id (Instagram).
    pub account_id: String,
    #[serde(default)]
    pub waba_id: Option<String>,
    #[serde(default)]
    pub display_phone_number: Option<String>,
    pub state: NumberState,
    #[serde(default)]
    pub state_reason: Option<String>,
    pub token: SealedToken,
    pub updated_at: DateTime<Utc>,
    /// When the webhook last received a status for this number (kept to the minute): proof
    /// that Meta's statuses are flowing, which an UNCERTAIN send needs before it is settled
    /// as "never reached Meta".
    #[serde(default, with = "chrono::serde::ts_milliseconds_option")]
    pub statuses_seen_at: Option<DateTime<Utc>>,
    /// Wrong PINs Meta answered since the last successful register or verified code.
    #[serde(default)]
    pub failed_pin_attempts: u32,
    /// Meta locked registration (133006, or as many wrong PINs as Meta allows): register is
    /// refused here until a code is requested and verified, so nobody extends the lockout.
    #[serde(default)]
    pub needs_reverification: bool,
    /// Meta's view at the last look: `CONNECTED`, `DISCONNECTED`, ...
    #[serde(default)]
    pub meta_status: Option<String>,
    #[serde(default)]
    pub quality_rating: Option<String>,
    #[serde(default)]
    pub verified_name: Option<String>,
    /// Meta's last quality event for the number (`FLAGGED`, `UNFLAGGED`, `UPGRADE`, ...).
    #[serde(default)]
    pub quality_event: Option<String>,
    /// The messaging limit Meta last reported (`TIER_250` … `TIER_UNLIMITED`). Meta sets it per
    /// business portfolio, so every number of the portfolio reports the same one.
    #[serde(default)]
    pub messaging_limit: Option<String>,
    /// The business portfolio that owns the number's WABA: messaging limits are set per
    /// portfolio and shared by all its numbers.
    #[serde(default)]
    pub business_id: Option<String>,
    /// Messages a second Meta lets this number send (80 unless Meta raised it, up to 1,000);
    /// every send is paced at it (`outbound::pacing`).
    #[serde(default)]
    pub throughput_mps: Option<u32>,
}

impl NumberRecord {
    /// Where Meta's messaging limit is counted: the business portfolio, or without one known
    /// the WABA (then the limit is shared by the WABA's numbers only), or the number itself.
    pub fn portfolio(&self) -> &str {
        self.business_id.as_deref().or(self.waba_id.as_deref()).unwrap_or(&self.account_id)
    }
}

/// The number showing `display_phone_number` (digits compared), if the workspace has it.
fn showing<'a>(numbers: &'a [NumberRecord], display_phone_number: &str) -> Option<&'a NumberRecord> {
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let wanted = digits(display_phone_number);
    numbers.iter().find(|n| n.display_phone_number.as_deref().map(digits).as_deref() == Some(wanted.as_str()))
}

/// What releasing a number did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    Released,
    NotFound,
    /// Meta's PIN lock is mirrored on the number: verify a code first.
    Locked,
}

/// What registration learned about a number.
#[derive(Debug, Clone, Copy)]
pub enum RegistrationRecord<'a> {
    Registered,
    /// The reserved attempt was not a wrong PIN (Meta refused for another reason).
    AttemptNotCounted,
    /// Meta's PIN lock: register is refused here until a code is verified.
    Locked,
    Verified,
    Deregistered {
        reason: &'a str,
    },
}

/// A message template of one of the workspace's WABAs, as Meta last described it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemplateRecord {
    pub workspace_id: WorkspaceId,
    pub waba_id: String,
    pub name: String,
    pub language: String,
    pub status: TemplateStatus,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub quality_score: Option<String>,
    #[serde(default)]
    pub components: Option<serde_json::Value>,
    #[serde(default)]
    pub meta_id: Option<String>,
    /// Why Meta rejected, paused or disabled it, when it said.
    #[serde(default)]
    pub status_reason: Option<String>,
}

impl Store {
    pub async fn put_number(&self, number: &NumberRecord) -> Result<(), StoreError> {
        let ws = &number.workspace_id;
        self.put_listed(keys::number(ws, number.channel, &number.account_id), number, "number", number_listed(number))
            .await
    }

    pub async fn number(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        account_id: &str,
    ) -> Result<Option<NumberRecord>, StoreError> {
        let (pk, sk) = keys::number(workspace, channel, account_id);
        self.get(pk, sk, "number").await
    }

    /// Reserves one register attempt before Meta is called, atomically: refused (`None`) when
    /// Meta's lock is mirrored here or `max` attempts are used — however many registers run at
    /// once, no more than `max` reach Meta. `Some(attempts used, this one included)`.
    pub async fn reserve_pin_attempt(
        &self,
        workspace: &WorkspaceId,
        account_id: &str,
        max: u32,
    ) -> Result<Option<u32>, StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
        let (pk, sk) = keys::number(workspace, Channel::WhatsApp, account_id);
        let request = self.client.update_item().table_name(&self.table).key(keys::PK, s(pk)).key(keys::SK, s(sk));
        let mark = super::write_mark();
        let result = Update::new()
            .add("failed_pin_attempts", n(1))
            .condition(
                "attribute_exists(pk) AND {needs_reverification} = {0} AND {failed_pin_attempts} < {1}",
                &["needs_reverification", "failed_pin_attempts"],
                vec![aws_sdk_dynamodb::types::AttributeValue::Bool(false), n(max)],
            )
            .once(&mark)
            .apply(request)
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let used = |item: Option<&super::Item>| {
            item.and_then(|a| a.get("failed_pin_attempts").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()))
                .unwrap_or(max)
        };
        match result {
            Ok(output) => Ok(Some(used(output.attributes.as_ref()))),
            Err(e) => match e.as_service_error() {
                // Refused by this reservation's own first try (made by DynamoDB, its answer
                // lost, so the SDK sent it again): reserved, and counted once.
                Some(UpdateItemError::ConditionalCheckFailedException(refused))
                    if super::bears_mark(refused.item(), &mark) =>
                {
                    Ok(Some(used(refused.item())))
                }
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(None),
                _ => Err(StoreError::aws("UpdateItem number PIN attempt", e)),
            },
        }
    }

    /// Writes what registration learned, only onto a number that still exists (a release
    /// meanwhile is not undone).
    pub async fn record_registration(
        &self,
        workspace: &WorkspaceId,
        account_id: &str,
        outcome: RegistrationRecord<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let state = |state: NumberState| {
            s(serde_json::to_value(state).expect("states serialize").as_str().unwrap_or_default().to_owned())
        };
        let update = Update::new().set("updated_at", s(now.to_rfc3339()));
        let update = match outcome {
            RegistrationRecord::Registered => {
                update.set("state", state(NumberState::Active)).set("failed_pin_attempts", n(0)).remove("state_reason")
            }
            RegistrationRecord::AttemptNotCounted => update.add("failed_pin_attempts", n(-1)),
            RegistrationRecord::Locked => update.set("needs_reverification", AttributeValue::Bool(true)),
            RegistrationRecord::Verified => {
                update.set("needs_reverification", AttributeValue::Bool(false)).set("failed_pin_attempts", n(0))
            }
            RegistrationRecord::Deregistered { reason } => {
                update.set("state", state(NumberState::Disconnected)).set("state_reason", s(reason))
            }
        };
        self.update_existing_number(workspace, Channel::WhatsApp, account_id, update, "UpdateItem number registration")
            .await
    }

    /// Records that a status for this number arrived at `at` (the number must exist: a released
    /// number is not recreated by a late status).
    pub async fn note_statuses_seen(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        account_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let update = Update::new().set("statuses_seen_at", n(at.timestamp_millis()));
        self.update_existing_number(workspace, channel, account_id, update, "UpdateItem number statuses seen").await
    }

    /// A workspace's numbers and Instagram accounts (a handful: one index partition).
    pub async fn numbers(&self, workspace: &WorkspaceId) -> Result<Vec<NumberRecord>, StoreError> {
        let items = self.query_index(keys::workspace_numbers(workspace), "Query numbers").await?;
        items
            .into_iter()
            .map(|item| {
                serde_dynamo::from_item(item)
                    .map_err(|e| StoreError::Corrupt { entity: "number", reason: e.to_string() })
            })
            .collect()
    }

    /// A page of the workspace's numbers.
    pub async fn numbers_page(
        &self,
        workspace: &WorkspaceId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Result<Page<NumberRecord>, BadCursor>, StoreError> {
        self.listed_page(workspace, keys::workspace_numbers(workspace), Order::OldestFirst, limit, cursor, "number")
            .await
    }

    /// A page of the workspace's templates, by name.
    pub async fn templates_page(
        &self,
        workspace: &WorkspaceId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Result<Page<TemplateRecord>, BadCursor>, StoreError> {
        self.listed_page(workspace, keys::workspace_templates(workspace), Order::OldestFirst, limit, cursor, "template")
            .await
    }

    /// Forgets a number: its record and its route, so the webhook stops routing it here and
    /// another workspace may claim it; and the WABA's route when it was the workspace's last
    /// number of that WABA. Refused while Meta's PIN lock is mirrored on the number (a release
    /// and re-onboarding must not wipe the lock and let more wrong PINs reach Meta).
    pub async fn release_number(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        account_id: &str,
    ) -> Result<Release, StoreError> {
        let Some(number) = self.number(workspace, channel, account_id).await? else { return Ok(Release::NotFound) };
        if number.needs_reverification {
            return Ok(Release::Locked);
        }
        // A number deregistered here and onboarded by another workspace since: only this
        // workspace's record of it goes; the claim is the other workspace's.
        let released = if self.route(channel, account_id).await?.as_ref() == Some(workspace) {
            self.delete_number_and_route(workspace, channel, account_id).await?
        } else {
            self.delete_number_record(workspace, channel, account_id).await?
        };
        if !released {
            return Ok(Release::NotFound);
        }
        if let Some(waba) = &number.waba_id {
            let others = self.numbers(workspace).await?;
            if !others.iter().any(|n| n.waba_id.as_ref() == Some(waba)) {
                self.release_waba(workspace, waba).await?;
            }
        }
        Ok(Release::Released)
    }

    async fn delete_number_and_route(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        account_id: &str,
    ) -> Result<bool, StoreError> {
        use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem};
        let (route_pk, route_sk) = keys::route(channel, account_id);
        let (number_pk, number_sk) = keys::number(workspace, channel, account_id);
        let delete = |pk: String, sk: String, condition: &str| {
            Delete::builder()
                .table_name(&self.table)
                .key(keys::PK, AttributeValue::S(pk))
                .key(keys::SK, AttributeValue::S(sk))
                .condition_expression(condition)
                .set_expression_attribute_values(
                    condition
                        .contains(":ws")
                        .then(|| [(":ws".to_owned(), AttributeValue::S(workspace.to_string()))].into()),
                )
                .build()
                .map(|d| TransactWriteItem::builder().delete(d).build())
        };
        let items =
            [delete(route_pk, route_sk, "workspace_id = :ws"), delete(number_pk, number_sk, "attribute_exists(pk)")]
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Corrupt { entity: "number", reason: e.to_string() })?;
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(true),
            Err(e) if super::transaction_refused(&e) => Ok(false),
            Err(e) => Err(StoreError::aws("TransactWriteItems release number", e)),
        }
    }

    async fn delete_number_record(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        account_id: &str,
    ) -> Result<bool, StoreError> {
        let key = keys::number(workspace, channel, account_id);
        self.delete_if(key, "attribute_exists(pk)", None, "DeleteItem number").await
    }

    /// Moves one number to `state` with a reason; other numbers are untouched.
    pub async fn set_number_state(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        account_id: &str,
        state: NumberState,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (pk, sk) = keys::number(workspace, channel, account_id);
        let state = serde_json::to_value(state).expect("states serialize").as_str().unwrap_or_default().to_owned();
        let request = self.client.update_item().table_name(&self.table).key(keys::PK, s(pk)).key(keys::SK, s(sk));
        Update::new()
            .set("state", s(state))
            .set("state_reason", s(reason))
            .set("updated_at", s(now.to_rfc3339()))
            .condition("attribute_exists(pk)", &[], vec![])
            .apply(request)
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem number state", e))?;
        Ok(())
    }

    pub async fn put_template(
        &self,
        workspace: &WorkspaceId,
        waba_id: &str,
        name: &str,
        language: &str,
        status: TemplateStatus,
    ) -> Result<(), StoreError> {
        let record = TemplateRecord {
            workspace_id: workspace.clone(),
            waba_id: waba_id.into(),
            name: name.into(),
            language: language.into(),
            status,
            category: None,
            quality_score: None,
            components: None,
            meta_id: None,
            status_reason: None,
        };
        self.put_template_record(&record).await
    }

    /// Stores a template, listed under the workspace (`WS#{ws}#TEMPLATES`).
    pub async fn put_template_record(&self, record: &TemplateRecord) -> Result<(), StoreError> {
        let ws = &record.workspace_id;
        let key = keys::template(ws, &record.waba_id, &record.name, &record.language);
        let listed = (keys::workspace_templates(ws), format!("{}#{}#{}", record.name, record.language, record.waba_id));
        self.put_listed(key, record, "template", listed).await
    }

    /// Meta reviewed, paused or disabled a template (`message_template_status_update`); a
    /// template not synced yet is recorded with what the webhook says.
    pub async fn set_template_status(
        &self,
        workspace: &WorkspaceId,
        waba_id: &str,
        name: &str,
        language: &str,
        status: TemplateStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let (pk, sk) = keys::template(workspace, waba_id, name, language);
        let status = serde_json::to_value(status).expect("statuses serialize").as_str().unwrap_or_default().to_owned();
        let request = self.client.update_item().table_name(&self.table).key(keys::PK, s(pk)).key(keys::SK, s(sk));
        let mut update = Update::new()
            .set("status", s(status))
            .set("workspace_id", s(workspace.as_str()))
            .set("waba_id", s(waba_id))
            .set("name", s(name))
            .set("language", s(language))
            .set("gsi1pk", s(keys::workspace_templates(workspace)))
            .set("gsi1sk", s(format!("{name}#{language}#{waba_id}")));
        update = match reason {
            Some(reason) => update.set("status_reason", s(reason)),
            None => update.remove("status_reason"),
        };
        update.apply(request).send().await.map_err(|e| StoreError::aws("UpdateItem template status", e))?;
        Ok(())
    }

    async fn update_number(&self, number: &NumberRecord, update: Update) -> Result<(), StoreError> {
        self.update_existing_number(
            &number.workspace_id,
            number.channel,
            &number.account_id,
            update,
            "UpdateItem number",
        )
        .await
    }

    /// Sets the messages a second the number is paced at; `false` when there is no such number.
    pub async fn set_number_throughput(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        account_id: &str,
        mps: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let update = Update::new().set("throughput_mps", n(mps)).set("updated_at", s(now.to_rfc3339())).condition(
            "attribute_exists(pk)",
            &[],
            vec![],
        );
        self.update_if(keys::number(workspace, channel, account_id), update, "UpdateItem number throughput").await
    }

    /// Sets some of a number's attributes, only if it still exists (a release is not undone, a
    /// late webhook does not recreate it).
    async fn update_existing_number(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        account_id: &str,
        update: Update,
        operation: &'static str,
    ) -> Result<(), StoreError> {
        // Applied once: an attempt given back (ADD -1) is never given back twice on a lost answer.
        let update = update.condition("attribute_exists(pk)", &[], vec![]);
        self.update_once(keys::number(workspace, channel, account_id), update, operation).await?;
        Ok(())
    }

    /// Meta's quality news for a number: its quality event, and the messaging limit, which Meta
    /// sets for the whole business portfolio — so every number of the same portfolio (or, when
    /// the portfolio is not known, of the same WABA) takes it.
    pub async fn record_number_quality(
        &self,
        workspace: &WorkspaceId,
        display_phone_number: &str,
        event: &str,
        messaging_limit: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let numbers = self.numbers(workspace).await?;
        let Some(number) = showing(&numbers, display_phone_number) else { return Ok(false) };
        let stamp = Update::new().set("updated_at", s(now.to_rfc3339()));
        self.update_number(number, stamp.clone().set("quality_event", s(event))).await?;
        if let Some(limit) = messaging_limit {
            for sibling in &numbers {
                let same_portfolio = match (&sibling.business_id, &number.business_id) {
                    (Some(a), Some(b)) => a == b,
                    _ => sibling.waba_id == number.waba_id,
                };
                if same_portfolio {
                    self.update_number(sibling, stamp.clone().set("messaging_limit", s(limit))).await?;
                }
            }
        }
        Ok(true)
    }

    /// Meta's decision about a number (`account_update`): a ban, a deletion or a removal of our
    /// access takes it out of service (ERROR with Meta's event as the reason); anything else
    /// is recorded as the reason and leaves the state as it is.
    pub async fn record_account_decision(
        &self,
        workspace: &WorkspaceId,
        display_phone_number: &str,
        event: &str,
        detail: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let numbers = self.numbers(workspace).await?;
        let Some(number) = showing(&numbers, display_phone_number) else { return Ok(false) };
        let reason = match detail {
            Some(detail) => format!("Meta: {event} {detail}"),
            None => format!("Meta: {event}"),
        };
        let mut update = Update::new().set("updated_at", s(now.to_rfc3339())).set("state_reason", s(reason));
        if matches!(event, "DISABLED_UPDATE" | "ACCOUNT_DELETED" | "PARTNER_REMOVED" | "ACCOUNT_OFFBOARDED") {
            let error = serde_json::to_value(NumberState::Error).expect("states serialize");
            update = update.set("state", s(error.as_str().unwrap_or_default()));
        }
        self.update_number(number, update).await?;
        Ok(true)
    }

    /// The template's status, `None` when it does not exist for that WABA and language.
    pub async fn template_status(
        &self,
        workspace: &WorkspaceId,
        waba_id: &str,
        name: &str,
        language: &str,
    ) -> Result<Option<TemplateStatus>, StoreError> {
        let (pk, sk) = keys::template(workspace, waba_id, name, language);
        let record: Option<TemplateRecord> = self.get(pk, sk, "template").await?;
        Ok(record.map(|r| r.status))
    }
}

/// Where a number stands in its workspace's list of numbers.
pub(crate) fn number_listed(number: &NumberRecord) -> (String, String) {
    (keys::workspace_numbers(&number.workspace_id), format!("{}#{}", number.channel.as_str(), number.account_id))
}
