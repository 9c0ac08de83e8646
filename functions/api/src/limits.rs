//! A per-workspace request budget, so one workspace's burst cannot take the API's capacity
//! from the others: a fixed one-second window per workspace, counted in this container
//! (API Gateway's stage throttling bounds the whole API across containers). Over budget: 429
//! with `Retry-After`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wapisnap::domain::WorkspaceId;

pub struct WorkspaceLimiter {
    per_second: u32,
    windows: Mutex<HashMap<WorkspaceId, (Instant, u32)>>,
}

impl WorkspaceLimiter {
    pub fn new(per_second: u32) -> Self {
        Self { per_second: per_second.max(1), windows: Mutex::new(HashMap::new()) }
    }

    /// `Ok` when the request fits the workspace's budget; else how long until it would.
    pub fn admit(&self, workspace: &WorkspaceId, now: Instant) -> Result<(), Duration> {
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (start, count) = windows.entry(workspace.clone()).or_insert((now, 0));
        if now.duration_since(*start) >= Duration::from_secs(1) {
            *start = now;
            *count = 0;
        }
        if *count >= self.per_second {
            return Err(Duration::from_secs(1).saturating_sub(now.duration_since(*start)));
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_over_its_budget_waits_and_others_are_unaffected() {
        let limiter = WorkspaceLimiter::new(2);
        let (acme, globex) = (WorkspaceId::parse("acme").unwrap(), WorkspaceId::parse("globex").unwrap());
        let t = Instant::now();
        assert!(limiter.admit(&acme, t).is_ok());
        assert!(limiter.admit(&acme, t).is_ok());
        assert!(limiter.admit(&acme, t + Duration::from_millis(100)).is_err());
        assert!(limiter.admit(&globex, t).is_ok(), "another workspace has its own budget");
        assert!(limiter.admit(&acme, t + Duration::from_secs(1)).is_ok(), "the next second starts afresh");
    }
}
