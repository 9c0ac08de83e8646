//! Who may use the workspace API: workspaces and their API keys.
//!
//! A key is shown once, when it is issued, and stored only as a hash (see [`key_format`]).
//! A request presents its key; [`Store::authenticate`] answers which workspace it speaks for,
//! reading the key's item consistently on every call and caching nothing, so a revoked key
//! stops working at once. Operators create workspaces and keys with `wapisnap-admin`; the
//! local stack (`make dev`, `make demo`) goes through the same [`open_workspace`].
//!
//! Items (see the access-pattern table in [`crate::store`]): the workspace at
//! `WS#{ws}#WORKSPACE` / `WORKSPACE`; each key at `APIKEY#{prefix}` / `APIKEY` — not under its
//! workspace, since a presented key names only its prefix — indexed on gsi1 under
//! `WS#{ws}#APIKEYS` so a workspace's keys can be listed.

mod api_keys;
pub mod key_format;
mod workspaces;

use chrono::{DateTime, Utc};

pub use api_keys::{ApiKeyInfo, IssueKeyError, IssuedKey};
pub use workspaces::{Workspace, WorkspaceCreation};

use crate::domain::WorkspaceId;
use crate::store::{Store, StoreError};

/// A new workspace with its first API key (shown once).
#[derive(Debug)]
pub struct OpenedWorkspace {
    pub workspace: Workspace,
    pub key: IssuedKey,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenWorkspaceError {
    #[error("workspace {0} already exists")]
    AlreadyExists(WorkspaceId),
    #[error(transparent)]
    IssueKey(#[from] IssueKeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a workspace and issues its first API key: what onboarding a business starts with.
pub async fn open_workspace(
    store: &Store,
    id: &WorkspaceId,
    name: &str,
    now: DateTime<Utc>,
) -> Result<OpenedWorkspace, OpenWorkspaceError> {
    let workspace = match store.create_workspace(id, name, now).await? {
        WorkspaceCreation::Created(workspace) => workspace,
        WorkspaceCreation::AlreadyExists => return Err(OpenWorkspaceError::AlreadyExists(id.clone())),
    };
    let key = store.issue_api_key(id, "first key", now).await?;
    Ok(OpenedWorkspace { workspace, key })
}
