//! The workspace item: a tenant exists once it has one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::WorkspaceId;
use crate::store::{Store, StoreError, item_at};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// The outcome of creating a workspace: an existing one is never overwritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceCreation {
    Created(Workspace),
    AlreadyExists,
}

pub(super) fn key(ws: &WorkspaceId) -> (String, String) {
    (format!("WS#{ws}#WORKSPACE"), "WORKSPACE".into())
}

impl Store {
    pub async fn create_workspace(
        &self,
        id: &WorkspaceId,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<WorkspaceCreation, StoreError> {
        let workspace = Workspace { id: id.clone(), name: name.to_owned(), created_at: now };
        let item = item_at(key(id), &workspace, "workspace")?;
        // A refusal may come from this write's own first try (made by DynamoDB, its answer
        // lost, so the SDK sent it again): the workspace there is then this one, to the
        // nanosecond of its creation.
        Ok(match self.put_new_or_existing::<Workspace>(item, "PutItem workspace", "workspace").await? {
            Some(existing) if existing != workspace => WorkspaceCreation::AlreadyExists,
            _ => WorkspaceCreation::Created(workspace),
        })
    }

    pub async fn workspace(&self, id: &WorkspaceId) -> Result<Option<Workspace>, StoreError> {
        let (pk, sk) = key(id);
        self.get(pk, sk, "workspace").await
    }
}
