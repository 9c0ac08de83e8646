//! Which workspace a WhatsApp number or Instagram account belongs to. One number belongs to
//! one workspace at a time (FAQ: "Can I have the same number in two WapiSnap workspaces?"):
//! the claim is a conditional write, so two workspaces can never both hold it. To move a
//! number, its workspace deregisters it and the other one onboards it: a deregistered
//! number's claim is marked free ([`Store::free_route`]) and keeps routing the number's late
//! statuses to its workspace until another workspace claims it.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::numbers::{NumberRecord, number_listed};
use super::update::Update;
use super::{Store, StoreError, keys, listed_item_at, refused_by_condition};
use crate::domain::Channel;
use crate::domain::WorkspaceId;

/// A claim another workspace may take: the number was deregistered at Meta.
const CLAIMABLE: &str = "attribute_not_exists(pk) OR workspace_id = :ws OR attribute_exists(freed_at)";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RouteItem {
    pk: String,
    sk: String,
    workspace_id: WorkspaceId,
    channel: Channel,
    account_id: String,
    claimed_at: chrono::DateTime<chrono::Utc>,
    /// Set by [`Store::free_route`]; never written as NULL (`attribute_exists` would see it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    freed_at: Option<String>,
}

/// Who holds a number's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub workspace: WorkspaceId,
    /// Deregistered there: another workspace may take it.
    pub freed: bool,
}

/// What became of connecting a number its workspace had no record of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstConnect {
    Connected,
    /// The workspace's record of the number was written meanwhile, by another connect.
    AlreadyConnected,
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(
        "{channel:?} account {account_id} already belongs to another workspace; to move it here, deregister it there first"
    )]
    OwnedByAnotherWorkspace { channel: Channel, account_id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Claims `account_id` for `workspace`. Claiming it again for the same workspace keeps it as
    /// it is, freed or not (re-adding a deregistered number does not undo the deregistration,
    /// FAQ); a claim another workspace freed is taken over.
    pub async fn claim_route(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        account_id: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ClaimError> {
        let key = keys::route(channel, account_id);
        let ws = AttributeValue::S(workspace.to_string());
        let claim = |update: Update| {
            update
                .set("workspace_id", ws.clone())
                .set("channel", AttributeValue::S(channel.as_str().to_owned()))
                .set("account_id", AttributeValue::S(account_id.to_owned()))
                .set("claimed_at", AttributeValue::S(now.to_rfc3339()))
        };
        let ours = claim(Update::new()).condition(
            "attribute_not_exists(pk) OR {workspace_id} = {0}",
            &["workspace_id"],
            vec![ws.clone()],
        );
        if self.update_if(key.clone(), ours, "UpdateItem route").await? {
            return Ok(());
        }
        let freed =
            claim(Update::new()).remove("freed_at").condition("attribute_exists({freed_at})", &["freed_at"], vec![]);
        if self.update_if(key, freed, "UpdateItem take over freed route").await? {
            return Ok(());
        }
        Err(ClaimError::OwnedByAnotherWorkspace { channel, account_id: account_id.to_owned() })
    }

    /// The claim `workspace` freed by deregistering the number is its own again (registered
    /// again there). `false` when another workspace has taken it meanwhile.
    pub async fn take_back_route(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        account_id: &str,
    ) -> Result<bool, StoreError> {
        let update = Update::new().remove("freed_at").condition(
            "{workspace_id} = {0}",
            &["workspace_id"],
            vec![AttributeValue::S(workspace.to_string())],
        );
        self.update_if(keys::route(channel, account_id), update, "UpdateItem take back route").await
    }

    /// Connects a number its workspace has no record of: the claim on it and its first record
    /// are written in one transaction, so a connect that fails leaves neither (no claim on a
    /// number nobody connected, holding it from the workspace the business connects it to
    /// next). [`FirstConnect::AlreadyConnected`] when the workspace's record appeared
    /// meanwhile (another connect of the same number by it got through first).
    pub async fn connect_first(
        &self,
        number: &NumberRecord,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<FirstConnect, ClaimError> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
        let (ws, channel, account_id) = (&number.workspace_id, number.channel, number.account_id.as_str());
        let route = route_item(ws, channel, account_id, now)?;
        let record = listed_item_at(keys::number(ws, channel, account_id), number, "number", number_listed(number))?;
        let put = |item, condition: &str, ws: Option<&WorkspaceId>| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .set_expression_attribute_values(
                    ws.map(|ws| [(":ws".to_owned(), AttributeValue::S(ws.to_string()))].into()),
                )
                .build()
                .map(|p| TransactWriteItem::builder().put(p).build())
                .map_err(|e| StoreError::Corrupt { entity: "number", reason: e.to_string() })
        };
        let items = vec![put(route, CLAIMABLE, Some(ws))?, put(record, "attribute_not_exists(pk)", None)?];
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(FirstConnect::Connected),
            Err(e) if super::transaction_refused(&e) => match self.route(channel, account_id).await? {
                Some(owner) if &owner != ws => {
                    Err(ClaimError::OwnedByAnotherWorkspace { channel, account_id: account_id.to_owned() })
                }
                _ => Ok(FirstConnect::AlreadyConnected),
            },
            Err(e) => Err(StoreError::aws("TransactWriteItems connect number", e).into()),
        }
    }

    /// The workspace that owns `account_id`, if any.
    pub async fn route(&self, channel: Channel, account_id: &str) -> Result<Option<WorkspaceId>, StoreError> {
        Ok(self.claim(channel, account_id).await?.map(|c| c.workspace))
    }

    /// The claim on `account_id`, if any, and whether its workspace freed it.
    pub async fn claim(&self, channel: Channel, account_id: &str) -> Result<Option<Claim>, StoreError> {
        let (pk, sk) = keys::route(channel, account_id);
        let route: Option<RouteItem> = self.get(pk, sk, "route").await?;
        Ok(route.map(|r| Claim { workspace: r.workspace_id, freed: r.freed_at.is_some() }))
    }

    /// Records that `workspace` onboarded a number of `waba`, so that Meta's news about the
    /// WABA (template reviews, quality) reaches it. The first workspace keeps it: `false` when
    /// another one holds it already.
    pub async fn claim_waba(
        &self,
        workspace: &WorkspaceId,
        waba_id: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        let (pk, sk) = keys::waba_route(waba_id);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(keys::PK, AttributeValue::S(pk))
            .item(keys::SK, AttributeValue::S(sk))
            .item("workspace_id", AttributeValue::S(workspace.to_string()))
            .item("claimed_at", AttributeValue::S(now.to_rfc3339()))
            .condition_expression(CLAIMABLE)
            .expression_attribute_values(":ws", AttributeValue::S(workspace.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if refused_by_condition(&e) => Ok(false),
            Err(e) => Err(StoreError::aws("PutItem WABA route", e)),
        }
    }

    /// The number was deregistered at Meta: another workspace may onboard it now, and until one
    /// does the number's late statuses still reach `workspace`. A claim `workspace` no longer
    /// holds is left alone.
    pub async fn free_route(
        &self,
        workspace: &WorkspaceId,
        channel: Channel,
        account_id: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        self.update_if(keys::route(channel, account_id), freed(workspace, now), "UpdateItem free route").await?;
        Ok(())
    }

    /// [`Store::free_route`] for a WABA's news (template reviews, quality): its workspace has
    /// deregistered every number it had of it.
    pub async fn free_waba(
        &self,
        workspace: &WorkspaceId,
        waba_id: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        self.update_if(keys::waba_route(waba_id), freed(workspace, now), "UpdateItem free WABA route").await?;
        Ok(())
    }

    /// Lets another workspace hear the WABA's news (its last number here was released).
    pub async fn release_waba(&self, workspace: &WorkspaceId, waba_id: &str) -> Result<(), StoreError> {
        let key = keys::waba_route(waba_id);
        self.delete_if(key, "workspace_id = :ws", Some(workspace), "DeleteItem WABA route").await?;
        Ok(())
    }

    /// The workspace that onboarded a number of this WABA, if any.
    pub async fn waba_owner(&self, waba_id: &str) -> Result<Option<WorkspaceId>, StoreError> {
        #[derive(Deserialize)]
        struct Owner {
            workspace_id: WorkspaceId,
        }
        let (pk, sk) = keys::waba_route(waba_id);
        let owner: Option<Owner> = self.get(pk, sk, "WABA route").await?;
        Ok(owner.map(|o| o.workspace_id))
    }
}

/// Marks a claim of `workspace` free for another workspace to take ([`CLAIMABLE`]).
fn freed(workspace: &WorkspaceId, now: chrono::DateTime<chrono::Utc>) -> Update {
    Update::new().set("freed_at", AttributeValue::S(now.to_rfc3339())).condition(
        "{workspace_id} = {0}",
        &["workspace_id"],
        vec![AttributeValue::S(workspace.to_string())],
    )
}

/// The item that says `workspace` owns the number.
fn route_item(
    workspace: &WorkspaceId,
    channel: Channel,
    account_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<super::Item, StoreError> {
    let (pk, sk) = keys::route(channel, account_id);
    let item = RouteItem {
        pk,
        sk,
        workspace_id: workspace.clone(),
        channel,
        account_id: account_id.to_owned(),
        claimed_at: now,
        freed_at: None,
    };
    serde_dynamo::to_item(item).map_err(|e| StoreError::Corrupt { entity: "route", reason: e.to_string() })
}
