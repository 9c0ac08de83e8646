//! API key items: issued, listed, revoked, and checked on every request.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::key_format::{KeyHash, NewKey, PresentedKey, is_prefix};
use crate::domain::WorkspaceId;
use crate::store::keys::sortable_millis;
use crate::store::update::{Update, s};
use crate::store::{Store, StoreError};

/// A key just issued: the only time its plaintext exists outside the caller's hands.
#[derive(Debug)]
pub struct IssuedKey {
    pub key: SecretString,
    pub prefix: String,
}

/// What may be shown about a key: never the key, never its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    pub prefix: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum IssueKeyError {
    #[error("workspace {0} does not exist")]
    NoSuchWorkspace(WorkspaceId),
    #[error("no unused key prefix found in {0} tries")]
    PrefixesExhausted(u32),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Serialize, Deserialize)]
struct ApiKeyItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    workspace_id: WorkspaceId,
    prefix: String,
    key_sha256: String,
    label: String,
    created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<DateTime<Utc>>,
}

/// What authentication reads of a key item.
#[derive(Debug, Deserialize)]
struct StoredKey {
    workspace_id: WorkspaceId,
    key_sha256: String,
    #[serde(default)]
    revoked_at: Option<DateTime<Utc>>,
}

fn key(prefix: &str) -> (String, String) {
    (format!("APIKEY#{prefix}"), "APIKEY".into())
}

fn workspace_keys(ws: &WorkspaceId) -> String {
    format!("WS#{ws}#APIKEYS")
}

/// 36^8 prefixes make a collision rare; retrying covers the rare case.
const PREFIX_TRIES: u32 = 5;

impl Store {
    /// Issues a key for an existing workspace. The caller shows `key` once; only its hash is kept.
    pub async fn issue_api_key(
        &self,
        workspace: &WorkspaceId,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<IssuedKey, IssueKeyError> {
        // Workspaces are never deleted, so a check before the write cannot be outrun.
        if self.workspace(workspace).await?.is_none() {
            return Err(IssueKeyError::NoSuchWorkspace(workspace.clone()));
        }
        for _ in 0..PREFIX_TRIES {
            let new = NewKey::generate();
            let (pk, sk) = key(&new.prefix);
            let item = ApiKeyItem {
                pk,
                sk,
                gsi1pk: workspace_keys(workspace),
                gsi1sk: format!("{}#{}", sortable_millis(now.timestamp_millis()), new.prefix),
                workspace_id: workspace.clone(),
                prefix: new.prefix.clone(),
                key_sha256: new.hash.0.clone(),
                label: label.to_owned(),
                created_at: now,
                revoked_at: None,
            };
            let item = serde_dynamo::to_item(item)
                .map_err(|e| StoreError::Corrupt { entity: "api key", reason: e.to_string() })?;
            // Never overwrite: a colliding prefix would otherwise hand another key's lookup to
            // this one. A refusal may also come from this write's own first try (made by
            // DynamoDB, its answer lost): then the item holds this key's hash, and it is issued.
            let existing = self.put_new_or_existing::<StoredKey>(item, "PutItem api key", "api key").await?;
            if existing.is_none_or(|stored| stored.key_sha256 == new.hash.0) {
                return Ok(IssuedKey { key: new.key, prefix: new.prefix });
            }
        }
        Err(IssueKeyError::PrefixesExhausted(PREFIX_TRIES))
    }

    /// The workspace's keys, oldest first, revoked ones included.
    pub async fn api_keys(&self, workspace: &WorkspaceId) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let items = self.query_index(workspace_keys(workspace), "Query api keys").await?;
        items
            .into_iter()
            .map(|item| {
                serde_dynamo::from_item(item)
                    .map_err(|e| StoreError::Corrupt { entity: "api key", reason: e.to_string() })
            })
            .collect()
    }

    /// Revokes one of the workspace's own keys; `false` when it has no key with that prefix
    /// (another workspace's key included). Revoking twice keeps the first time.
    pub async fn revoke_api_key(
        &self,
        workspace: &WorkspaceId,
        prefix: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if !is_prefix(prefix) {
            return Ok(false);
        }
        let update = Update::new().set_if_absent("revoked_at", s(now.to_rfc3339())).condition(
            "{workspace_id} = {0}",
            &["workspace_id"],
            vec![AttributeValue::S(workspace.to_string())],
        );
        self.update_if(key(prefix), update, "UpdateItem api key revoke").await
    }

    /// The workspace a presented key speaks for; `None` when it is malformed, unknown, wrong or
    /// revoked (the caller answers all of them alike). Reads consistently on every call, so a
    /// revocation takes effect for the very next request.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<WorkspaceId>, StoreError> {
        let Some(presented) = PresentedKey::parse(presented) else {
            return Ok(None);
        };
        let (pk, sk) = key(presented.prefix);
        let Some(stored) = self.get::<StoredKey>(pk, sk, "api key").await? else {
            return Ok(None);
        };
        let genuine = presented.matches(&KeyHash(stored.key_sha256));
        Ok((genuine && stored.revoked_at.is_none()).then_some(stored.workspace_id))
    }
}
