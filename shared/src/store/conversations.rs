//! Conversations (one per business account and customer) and contacts.
//!
//! A conversation remembers the newest inbound message by Meta's timestamp, which is what the
//! 24-hour customer service window is measured from: the update is conditional on the stored
//! time being older, so a late or redelivered old message never moves the window back open.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, keys, refused_by_condition};
use crate::domain::WorkspaceId;
use crate::domain::{Channel, InboundMessage};
use crate::policy::window::window_closes_at;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conversation {
    pub conversation_id: String,
    pub workspace_id: WorkspaceId,
    pub channel: Channel,
    pub account_id: String,
    pub contact_id: String,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub last_inbound_at: DateTime<Utc>,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub window_closes_at: DateTime<Utc>,
    pub last_message_id: String,
    /// The newest customer message in one line (its text, or what kind it was).
    #[serde(default)]
    pub last_message_preview: Option<String>,
    /// A human took the conversation over (FAQ: "An agent replied and the bot went silent"):
    /// flows stop until it is turned off.
    #[serde(default)]
    pub human_handoff: bool,
    /// The handoff came from the flow's own `handoff` node, not from a human: the messages the
    /// flow sent before it still go out.
    #[serde(default)]
    pub handoff_by_flow: bool,
}

impl Conversation {
    /// A human has taken the conversation over: a flow's messages must not talk over them.
    pub fn taken_over_by_a_human(&self) -> bool {
        self.human_handoff && !self.handoff_by_flow
    }
}

/// Who turned human handoff on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffBy {
    /// An agent's reply from the inbox, or the conversation header's switch.
    Human,
    /// A flow's `handoff` node, asking for a human.
    Flow,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contact {
    pub workspace_id: WorkspaceId,
    pub channel: Channel,
    pub contact_id: String,
    #[serde(default)]
    pub profile_name: Option<String>,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

impl Store {
    /// Records an inbound message on its conversation; returns whether it was the newest.
    pub async fn record_inbound(&self, workspace: &WorkspaceId, message: &InboundMessage) -> Result<bool, StoreError> {
        let conversation_id = message.conversation_id();
        let (pk, sk) = keys::conversation(workspace, &conversation_id);
        let at = message.sent_at.timestamp_millis();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression(
                "SET conversation_id = :conv, workspace_id = :ws, #channel = :ch, account_id = :acc, \
                 contact_id = :contact, last_inbound_at = :at, window_closes_at = :closes, \
                 last_message_id = :mid, last_message_preview = :preview, gsi1pk = :list, gsi1sk = :sort",
            )
            .condition_expression("attribute_not_exists(last_inbound_at) OR last_inbound_at < :at")
            .expression_attribute_names("#channel", "channel")
            .expression_attribute_values(":conv", s(&conversation_id))
            .expression_attribute_values(":ws", s(workspace.as_str()))
            .expression_attribute_values(":ch", s(message.channel.as_str()))
            .expression_attribute_values(":acc", s(&message.account_id))
            .expression_attribute_values(":contact", s(&message.contact_id))
            .expression_attribute_values(":at", n(at))
            .expression_attribute_values(":closes", n(window_closes_at(message.sent_at).timestamp_millis()))
            .expression_attribute_values(":mid", s(&message.message_id))
            .expression_attribute_values(":preview", s(message.content.preview()))
            .expression_attribute_values(":list", s(keys::workspace_conversations(workspace)))
            .expression_attribute_values(":sort", s(keys::sortable_millis(at)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if refused_by_condition(&e) => Ok(false),
            Err(e) => Err(StoreError::aws("UpdateItem conversation", e)),
        }
    }

    /// A page of the workspace's conversations, most recent customer message first.
    pub async fn conversations_page(
        &self,
        workspace: &WorkspaceId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Result<super::pages::Page<Conversation>, super::pages::BadCursor>, StoreError> {
        let list = keys::workspace_conversations(workspace);
        self.listed_page(workspace, list, super::pages::Order::NewestFirst, limit, cursor, "conversation").await
    }

    /// Turns the human takeover of a conversation on or off; `false` when there is no such
    /// conversation in the workspace.
    pub async fn set_handoff(
        &self,
        workspace: &WorkspaceId,
        conversation_id: &str,
        on: bool,
        by: HandoffBy,
    ) -> Result<bool, StoreError> {
        let (pk, sk) = keys::conversation(workspace, conversation_id);
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .expression_attribute_values(":on", AttributeValue::Bool(on));
        let request = match by {
            HandoffBy::Human => request
                .update_expression("SET human_handoff = :on REMOVE handoff_by_flow")
                .condition_expression("attribute_exists(pk)"),
            // Never relabels a human's takeover as the flow's.
            HandoffBy::Flow => {
                request.update_expression("SET human_handoff = :on, handoff_by_flow = :on").condition_expression(
                    "attribute_exists(pk) AND (attribute_not_exists(human_handoff) OR human_handoff <> :on)",
                )
            }
        };
        let result = request.send().await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if refused_by_condition(&e) => Ok(false),
            Err(e) => Err(StoreError::aws("UpdateItem conversation handoff", e)),
        }
    }

    pub async fn conversation(
        &self,
        workspace: &WorkspaceId,
        conversation_id: &str,
    ) -> Result<Option<Conversation>, StoreError> {
        let (pk, sk) = keys::conversation(workspace, conversation_id);
        self.get(pk, sk, "conversation").await
    }

    /// Creates or refreshes the customer's contact; the first-seen time is kept. Its place in
    /// the contact list never changes, so its index keys are set only when absent (which also
    /// tells `make bench-cost`, reading the request, that the update does not move the item).
    pub async fn upsert_contact(
        &self,
        workspace: &WorkspaceId,
        message: &InboundMessage,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (pk, sk) = keys::contact(workspace, message.channel, &message.contact_id);
        let now = now.to_rfc3339();
        let mut expression = "SET workspace_id = :ws, #channel = :ch, contact_id = :c, updated_at = :now, \
                              first_seen_at = if_not_exists(first_seen_at, :now), \
                              gsi1pk = if_not_exists(gsi1pk, :list), gsi1sk = if_not_exists(gsi1sk, :sort), \
                              last_account_id = :account"
            .to_owned();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .expression_attribute_names("#channel", "channel")
            .expression_attribute_values(":ws", s(workspace.as_str()))
            .expression_attribute_values(":ch", s(message.channel.as_str()))
            .expression_attribute_values(":c", s(&message.contact_id))
            .expression_attribute_values(":account", s(message.account_id.as_str()))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":list", s(keys::workspace_contacts(workspace)))
            .expression_attribute_values(":sort", s(format!("{}#{}", message.channel.as_str(), message.contact_id)));
        if let Some(name) = &message.profile_name {
            expression.push_str(", profile_name = :name");
            update = update.expression_attribute_values(":name", s(name));
        }
        update.update_expression(expression).send().await.map_err(|e| StoreError::aws("UpdateItem contact", e))?;
        Ok(())
    }

    pub async fn contact(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        contact_id: &str,
    ) -> Result<Option<Contact>, StoreError> {
        let (pk, sk) = keys::contact(workspace, channel, contact_id);
        self.get(pk, sk, "contact").await
    }

    pub(crate) async fn get<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
        sk: String,
        entity: &'static str,
    ) -> Result<Option<T>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Aws { operation: "GetItem", reason: crate::aws::describe_sdk_error(&e) })?;
        output
            .item
            .map(|item| {
                serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt { entity, reason: e.to_string() })
            })
            .transpose()
    }
}

/// Tags and the undeliverable streak live on the contact item.
#[derive(Debug, Default, Clone, Deserialize)]
struct ContactFlags {
    #[serde(default)]
    tags: std::collections::BTreeSet<String>,
    #[serde(default)]
    undeliverable_streak: u32,
}

impl Store {
    /// The contact's tags (workspace-scoped: the same person elsewhere has their own).
    pub async fn contact_tags(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        contact_id: &str,
    ) -> Result<std::collections::BTreeSet<String>, StoreError> {
        let (pk, sk) = keys::contact(workspace, channel, contact_id);
        let flags: Option<ContactFlags> = self.get(pk, sk, "contact").await?;
        Ok(flags.unwrap_or_default().tags)
    }

    /// Adds a tag once; `true` when this call added it.
    pub async fn add_contact_tag(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        contact_id: &str,
        tag: &str,
    ) -> Result<bool, StoreError> {
        let (pk, sk) = keys::contact(workspace, channel, contact_id);
        let request = self.client.update_item().table_name(&self.table).key(keys::PK, s(pk)).key(keys::SK, s(sk));
        let result = super::update::Update::new()
            .add("tags", AttributeValue::Ss(vec![tag.to_owned()]))
            .set_if_absent("workspace_id", s(workspace.as_str()))
            .set_if_absent("channel", s(channel.as_str()))
            .set_if_absent("contact_id", s(contact_id))
            .condition("NOT contains({tags}, {0})", &["tags"], vec![s(tag)])
            .apply(request)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if refused_by_condition(&e) => Ok(false),
            Err(e) => Err(StoreError::aws("UpdateItem contact tag", e)),
        }
    }

    /// Counts one more 131026 in a row, once per job (a redelivered hand-over does not count
    /// twice); returns the streak.
    pub async fn record_undeliverable(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        contact_id: &str,
        job_id: &str,
    ) -> Result<u32, StoreError> {
        let (pk, sk) = keys::contact(workspace, channel, contact_id);
        let request = self.client.update_item().table_name(&self.table).key(keys::PK, s(&pk)).key(keys::SK, s(&sk));
        let result = super::update::Update::new()
            .add("undeliverable_streak", n(1))
            .set("last_undeliverable_job", s(job_id))
            .set_if_absent("workspace_id", s(workspace.as_str()))
            .set_if_absent("channel", s(channel.as_str()))
            .set_if_absent("contact_id", s(contact_id))
            .condition(
                "attribute_not_exists({last_undeliverable_job}) OR {last_undeliverable_job} <> {0}",
                &["last_undeliverable_job"],
                vec![s(job_id)],
            )
            .apply(request)
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        let attributes = match result {
            Ok(output) => output.attributes.unwrap_or_default(),
            Err(e) if refused_by_condition(&e) => {
                let flags: Option<ContactFlags> = self.get(pk, sk, "contact").await?;
                return Ok(flags.map_or(0, |f| f.undeliverable_streak));
            }
            Err(e) => return Err(StoreError::aws("UpdateItem contact streak", e)),
        };
        let streak = attributes
            .get("undeliverable_streak")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        Ok(streak)
    }

    /// A delivery proves the number is on WhatsApp: the 131026 streak starts over.
    pub async fn reset_undeliverable(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        contact_id: &str,
    ) -> Result<(), StoreError> {
        let (pk, sk) = keys::contact(workspace, channel, contact_id);
        // Nearly every delivery finds no streak: a consistent read of it (1 read unit) costs a
        // fifth of the conditional write (1 write unit, charged even when its condition refuses
        // it), which is then made only when there is a streak to reset.
        let streak = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(keys::PK, s(&pk))
            .key(keys::SK, s(&sk))
            .projection_expression("undeliverable_streak")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem contact streak", e))?
            .item
            .and_then(|item| item.get("undeliverable_streak").and_then(|v| v.as_n().ok()).cloned())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        if streak == 0 {
            return Ok(());
        }
        let request = self.client.update_item().table_name(&self.table).key(keys::PK, s(pk)).key(keys::SK, s(sk));
        let result = super::update::Update::new()
            .set("undeliverable_streak", n(0))
            .condition("attribute_exists(pk) AND {undeliverable_streak} > {0}", &["undeliverable_streak"], vec![n(0)])
            .apply(request)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if refused_by_condition(&e) => Ok(()),
            Err(e) => Err(StoreError::aws("UpdateItem contact streak", e)),
        }
    }
}
