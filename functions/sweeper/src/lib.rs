//! The sweeper function, on a rate schedule: sends Meta accepted but never reported on become
//! FAILED with no error message; broadcasts with a high silent-failure rate are flagged.

use serde::Serialize;

/// What one sweep did, returned to the invoker and logged.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SweepReport {
    pub implemented: bool,
    pub sends_marked_failed: u64,
}

pub struct Sweeper;

impl Sweeper {
    pub async fn handle(&self) -> SweepReport {
        tracing::warn!("the sweeper is not built yet: no sends were examined");
        SweepReport { implemented: false, sends_marked_failed: 0 }
    }
}
