//! The broadcast function, fired by EventBridge Scheduler at a broadcast's time: resolves the
//! audience, excludes `dnd` and `do-not-send`, respects the messaging tier, fans out send jobs.

use serde::{Deserialize, Serialize};

/// The schedule's input: which broadcast to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BroadcastFired {
    pub workspace_id: String,
    pub broadcast_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BroadcastError {
    #[error("broadcasts are not built yet; broadcast {0} was not sent")]
    NotBuilt(String),
}

pub struct Broadcast;

impl Broadcast {
    /// Failing (rather than returning success) makes Scheduler's retry policy and DLQ keep
    /// the firing, so nothing is silently skipped.
    pub async fn handle(&self, fired: BroadcastFired) -> Result<(), BroadcastError> {
        Err(BroadcastError::NotBuilt(fired.broadcast_id))
    }
}
