//! Automations: a head item per automation (name, enabled, priority, current version and its
//! definition), listed under `WS#{ws}#AUTOMATIONS`, and one immutable item per saved version,
//! so a run keeps following the graph it started on while its author edits the automation.
//! Definitions are stored as JSON text: they are validated documents, read whole.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::pages::{BadCursor, Order, Page};
use super::update::{Update, n, s};
use super::{Item, Store, StoreError, item_at, keys};
use crate::domain::{AutomationId, WorkspaceId};
use crate::flows::definition::Definition;

/// An automation as stored and listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Automation {
    pub automation_id: AutomationId,
    pub workspace_id: WorkspaceId,
    pub enabled: bool,
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(with = "as_json")]
    pub definition: Definition,
}

impl Automation {
    /// A new automation: its first version, saved `now`.
    pub fn first_version(
        automation_id: AutomationId,
        workspace_id: WorkspaceId,
        definition: Definition,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Self {
        Self { automation_id, workspace_id, enabled, version: 1, created_at: now, updated_at: now, definition }
    }
}

/// One saved version of a definition.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct VersionItem {
    version: u32,
    #[serde(with = "as_json")]
    definition: Definition,
}

mod as_json {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::flows::definition::Definition;

    pub fn serialize<S: Serializer>(definition: &Definition, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&serde_json::to_string(definition).map_err(serde::ser::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Definition, D::Error> {
        serde_json::from_str(&String::deserialize(deserializer)?).map_err(D::Error::custom)
    }
}

/// How saving over an automation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Saved {
    Saved(Automation),
    NotFound,
}

impl Store {
    fn transact_puts(&self, items: Vec<(Item, &'static str)>) -> Vec<TransactWriteItem> {
        items
            .into_iter()
            .map(|(item, condition)| {
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression(condition)
                    .build()
                    .expect("table, item and condition are set");
                TransactWriteItem::builder().put(put).build()
            })
            .collect()
    }

    /// Head and version item for `automation`, written together.
    fn automation_items(&self, automation: &Automation) -> Result<(Item, Item), StoreError> {
        let ws = &automation.workspace_id;
        let mut head = item_at(keys::automation(ws, &automation.automation_id), automation, "automation")?;
        head.insert("gsi1pk".into(), s(keys::workspace_automations(ws)));
        head.insert(
            "gsi1sk".into(),
            s(format!("{:013}#{}", automation.created_at.timestamp_millis(), automation.automation_id)),
        );
        let version = VersionItem { version: automation.version, definition: automation.definition.clone() };
        let version = item_at(
            keys::automation_version(ws, &automation.automation_id, automation.version),
            &version,
            "automation",
        )?;
        Ok((head, version))
    }

    pub async fn create_automation(&self, automation: &Automation) -> Result<(), StoreError> {
        let (head, version) = self.automation_items(automation)?;
        let items = self.transact_puts(vec![(head, "attribute_not_exists(pk)"), (version, "attribute_not_exists(pk)")]);
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|e| StoreError::aws("TransactWriteItems create automation", e))?;
        Ok(())
    }

    /// Saves a new version of the definition (and the enabled flag); the head moves only if
    /// it is still at the version read, so two concurrent edits cannot lose one silently.
    pub async fn save_automation(
        &self,
        workspace: &WorkspaceId,
        id: &AutomationId,
        definition: Definition,
        enabled: Option<bool>,
        now: DateTime<Utc>,
    ) -> Result<Saved, StoreError> {
        for _ in 0..3 {
            let Some(current) = self.automation(workspace, id).await? else { return Ok(Saved::NotFound) };
            let next = Automation {
                version: current.version + 1,
                updated_at: now,
                enabled: enabled.unwrap_or(current.enabled),
                definition: definition.clone(),
                ..current.clone()
            };
            let (head, version) = self.automation_items(&next)?;
            let head_put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(head))
                // An enable or disable between our read and this write is not undone.
                .condition_expression("version = :expected AND enabled = :enabled")
                .expression_attribute_values(":expected", n(current.version))
                .expression_attribute_values(":enabled", AttributeValue::Bool(current.enabled))
                .build()
                .expect("table, item and condition are set");
            let items = vec![
                TransactWriteItem::builder().put(head_put).build(),
                self.transact_puts(vec![(version, "attribute_not_exists(pk)")]).remove(0),
            ];
            match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
                Ok(_) => return Ok(Saved::Saved(next)),
                // Another edit moved the head, or was writing it at that moment: read again.
                Err(e) if super::transaction_refused(&e) || super::transaction_conflicted(&e) => continue,
                Err(e) => return Err(StoreError::aws("TransactWriteItems save automation", e)),
            }
        }
        Err(StoreError::Aws {
            operation: "TransactWriteItems save automation",
            reason: "the automation kept changing under three attempts to save it".into(),
        })
    }

    /// Turns an automation on or off; `false` when there is no such automation.
    pub async fn set_automation_enabled(
        &self,
        workspace: &WorkspaceId,
        id: &AutomationId,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let update = Update::new()
            .set("enabled", AttributeValue::Bool(enabled))
            .set("updated_at", s(now.to_rfc3339()))
            .condition("attribute_exists({pk})", &["pk"], vec![]);
        self.update_if(keys::automation(workspace, id), update, "UpdateItem automation enabled").await
    }

    pub async fn automation(
        &self,
        workspace: &WorkspaceId,
        id: &AutomationId,
    ) -> Result<Option<Automation>, StoreError> {
        let (pk, sk) = keys::automation(workspace, id);
        self.get(pk, sk, "automation").await
    }

    /// The definition a run follows: the head's when it is still that version.
    pub async fn automation_version(
        &self,
        workspace: &WorkspaceId,
        id: &AutomationId,
        version: u32,
    ) -> Result<Option<Definition>, StoreError> {
        let (pk, sk) = keys::automation_version(workspace, id, version);
        let item: Option<VersionItem> = self.get(pk, sk, "automation version").await?;
        Ok(item.map(|v| v.definition))
    }

    /// Every automation of the workspace, oldest first (the flow engine picks among them).
    pub async fn automations(&self, workspace: &WorkspaceId) -> Result<Vec<Automation>, StoreError> {
        self.query_index(keys::workspace_automations(workspace), "Query automations")
            .await?
            .into_iter()
            .map(|item| {
                serde_dynamo::from_item(item)
                    .map_err(|e| StoreError::Corrupt { entity: "automation", reason: e.to_string() })
            })
            .collect()
    }

    pub async fn automations_page(
        &self,
        workspace: &WorkspaceId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Result<Page<Automation>, BadCursor>, StoreError> {
        let list = keys::workspace_automations(workspace);
        self.listed_page(workspace, list, Order::OldestFirst, limit, cursor, "automation").await
    }

    /// Deletes the automation and its versions; runs still on it stop at their next tick.
    /// `false` when there was no such automation.
    pub async fn delete_automation(&self, workspace: &WorkspaceId, id: &AutomationId) -> Result<bool, StoreError> {
        let (pk, _) = keys::automation(workspace, id);
        let mut start = None;
        let mut found = false;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(&pk))
                .projection_expression("pk, sk")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::aws("Query automation items", e))?;
            for key in page.items.unwrap_or_default() {
                found = true;
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key))
                    .send()
                    .await
                    .map_err(|e| StoreError::aws("DeleteItem automation", e))?;
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(found);
            }
        }
    }
}
