//! Per-broadcast delivery report: how many sends Meta accepted, and how many of those never
//! got a delivery status (FAQ: "Why do some of my messages show status FAILED with no error
//! message?" — more than 5% of a broadcast is worth a support ticket).

use serde::{Deserialize, Serialize};

use super::update::{Update, n, s};
use super::{Store, StoreError, keys};
use crate::domain::WorkspaceId;

/// Above this share of silent failures a broadcast is flagged.
pub const SILENT_FAILURE_FLAG_RATIO: f64 = 0.05;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BroadcastReport {
    #[serde(default)]
    pub accepted: u64,
    #[serde(default)]
    pub silent_failures: u64,
    #[serde(default)]
    pub flagged: bool,
}

impl BroadcastReport {
    pub fn silent_failure_rate(&self) -> f64 {
        if self.accepted == 0 { 0.0 } else { self.silent_failures as f64 / self.accepted as f64 }
    }
}

impl Store {
    async fn add_to_report(
        &self,
        workspace: &WorkspaceId,
        broadcast_id: &str,
        counter: &str,
    ) -> Result<BroadcastReport, StoreError> {
        let (pk, sk) = keys::broadcast_report(workspace, broadcast_id);
        let request = self.client.update_item().table_name(&self.table).key(keys::PK, s(pk)).key(keys::SK, s(sk));
        let output = Update::new()
            .add(counter, n(1))
            .set_if_absent("workspace_id", s(workspace.as_str()))
            .set_if_absent("broadcast_id", s(broadcast_id))
            .apply(request)
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem broadcast report", e))?;
        serde_dynamo::from_item(output.attributes.unwrap_or_default())
            .map_err(|e| StoreError::Corrupt { entity: "broadcast report", reason: e.to_string() })
    }

    pub async fn count_broadcast_accepted(
        &self,
        workspace: &WorkspaceId,
        broadcast_id: &str,
    ) -> Result<(), StoreError> {
        self.add_to_report(workspace, broadcast_id, "accepted").await.map(|_| ())
    }

    /// Counts a silent failure and flags the broadcast once the rate passes 5%.
    pub async fn count_broadcast_silent_failure(
        &self,
        workspace: &WorkspaceId,
        broadcast_id: &str,
    ) -> Result<BroadcastReport, StoreError> {
        let mut report = self.add_to_report(workspace, broadcast_id, "silent_failures").await?;
        if !report.flagged && report.silent_failure_rate() > SILENT_FAILURE_FLAG_RATIO {
            let (pk, sk) = keys::broadcast_report(workspace, broadcast_id);
            let request = self.client.update_item().table_name(&self.table).key(keys::PK, s(pk)).key(keys::SK, s(sk));
            Update::new()
                .set("flagged", aws_sdk_dynamodb::types::AttributeValue::Bool(true))
                .apply(request)
                .send()
                .await
                .map_err(|e| StoreError::aws("UpdateItem broadcast report", e))?;
            report.flagged = true;
            tracing::warn!(workspace = %workspace, broadcast_id, rate = report.silent_failure_rate(), "broadcast flagged: silent failures above 5%");
        }
        Ok(report)
    }

    pub async fn broadcast_report(
        &self,
        workspace: &WorkspaceId,
        broadcast_id: &str,
    ) -> Result<Option<BroadcastReport>, StoreError> {
        let (pk, sk) = keys::broadcast_report(workspace, broadcast_id);
        self.get(pk, sk, "broadcast report").await
    }
}
