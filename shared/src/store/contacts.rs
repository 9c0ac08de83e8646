//! Contacts as the API manages them (the webhook's own upsert is in `conversations`): created
//! or merged, renamed, deleted, tagged, listed. Listed through `gsi1` under
//! `WS#{ws}#CONTACTS` / `{channel}#{contact}`.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::pages::{BadCursor, Order, Page};
use super::update::{Update, s};
use super::{Store, StoreError, keys};
use crate::contacts::Tag;
use crate::domain::{Channel, ContactId, WorkspaceId};

/// A contact with its tags, as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContactRecord {
    pub channel: Channel,
    pub contact_id: String,
    #[serde(default)]
    pub profile_name: Option<String>,
    #[serde(default)]
    pub tags: BTreeSet<String>,
    #[serde(default)]
    pub first_seen_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// Fields set by automations (`setField`), read by `{{field}}` and conditions.
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, String>,
    /// The business account the customer last wrote to: where a tag-added trigger runs.
    #[serde(default)]
    pub last_account_id: Option<String>,
}

impl Store {
    /// Creates the contact or merges into it: a name replaces the old one, tags are only added.
    /// `true` when it did not exist before.
    pub async fn save_contact(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        contact: &ContactId,
        name: Option<&str>,
        tags: &BTreeSet<Tag>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (pk, sk) = keys::contact(workspace, channel, contact);
        let request = self.client.update_item().table_name(&self.table).key(keys::PK, s(pk)).key(keys::SK, s(sk));
        let mut update = Update::new()
            .set("workspace_id", s(workspace.as_str()))
            .set("channel", s(channel.as_str()))
            .set("contact_id", s(contact.as_str()))
            .set("updated_at", s(now.to_rfc3339()))
            .set_if_absent("first_seen_at", s(now.to_rfc3339()))
            .set("gsi1pk", s(keys::workspace_contacts(workspace)))
            .set("gsi1sk", s(format!("{}#{contact}", channel.as_str())));
        if let Some(name) = name {
            update = update.set("profile_name", s(name));
        }
        if !tags.is_empty() {
            update = update.add("tags", AttributeValue::Ss(tags.iter().map(|t| t.as_str().to_owned()).collect()));
        }
        let output = update
            .apply(request)
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem contact", e))?;
        Ok(output.attributes.is_none_or(|old| !old.contains_key("contact_id")))
    }

    pub async fn contact_record(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        contact: &str,
    ) -> Result<Option<ContactRecord>, StoreError> {
        let (pk, sk) = keys::contact(workspace, channel, contact);
        self.get(pk, sk, "contact").await
    }

    /// `false` when there was no such contact.
    pub async fn delete_contact(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        contact: &str,
    ) -> Result<bool, StoreError> {
        let key = keys::contact(workspace, channel, contact);
        self.delete_if(key, "attribute_exists(pk)", None, "DeleteItem contact").await
    }

    /// `false` when there is no such contact.
    pub async fn remove_contact_tag(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        contact: &str,
        tag: &Tag,
    ) -> Result<bool, StoreError> {
        let update = Update::new().delete("tags", AttributeValue::Ss(vec![tag.as_str().to_owned()])).condition(
            "attribute_exists({pk})",
            &["pk"],
            vec![],
        );
        self.update_if(keys::contact(workspace, channel, contact), update, "UpdateItem contact untag").await
    }

    /// Sets one contact field; `false` when there is no such contact.
    pub async fn set_contact_field(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        contact: &str,
        name: &str,
        value: &str,
    ) -> Result<bool, StoreError> {
        let key = || keys::contact(workspace, channel, contact);
        // DynamoDB cannot set a key inside a map that does not exist yet, nor create the map
        // and set the key in one expression: set it inside the map, or create the map with it.
        for _ in 0..3 {
            let mut inside = Update::new().condition("attribute_exists({fields})", &["fields"], vec![]);
            let (fields, field, v) = (inside.name("fields"), inside.name(name), inside.value(s(value)));
            inside = inside.raw_set(format!("{fields}.{field} = {v}"));
            if self.update_if(key(), inside, "UpdateItem contact field").await? {
                return Ok(true);
            }
            let map = AttributeValue::M([(name.to_owned(), s(value))].into_iter().collect());
            let create = Update::new().set("fields", map).condition(
                "attribute_exists({pk}) AND attribute_not_exists({fields})",
                &["pk", "fields"],
                vec![],
            );
            if self.update_if(key(), create, "UpdateItem contact fields").await? {
                return Ok(true);
            }
            if self.contact_record(workspace, channel, contact).await?.is_none() {
                return Ok(false);
            }
        }
        Err(StoreError::Aws { operation: "UpdateItem contact field", reason: "the contact kept changing".into() })
    }

    pub async fn contacts_page(
        &self,
        workspace: &WorkspaceId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Result<Page<ContactRecord>, BadCursor>, StoreError> {
        self.listed_page(workspace, keys::workspace_contacts(workspace), Order::OldestFirst, limit, cursor, "contact")
            .await
    }
}
