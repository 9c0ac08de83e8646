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
        Ok(if self.put_new(item, "PutItem workspace").await? {
            WorkspaceCreation::Created(workspace)
        } else {
            WorkspaceCreation::AlreadyExists
        })
    }

    pub async fn workspace(&self, id: &WorkspaceId) -> Result<Option<Workspace>, StoreError> {
        let (pk, sk) = key(id);
        self.get(pk, sk, "workspace").await
    }
}
