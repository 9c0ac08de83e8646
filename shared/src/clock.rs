//! Time is injected, never read from the system directly by domain code: tests and the local
//! stack need to play Meta's 24-hour window and Smart Retry's 7-day backoff in seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// A clock shared by every component of one process.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock. This is the only clock used in Lambda.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Wall-clock time plus an offset that can only grow: time keeps flowing (timeouts and
/// leases still expire), and advancing it jumps the whole local stack into the future.
#[derive(Debug, Default)]
pub struct ControlledClock {
    offset_ms: AtomicI64,
}

impl ControlledClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward. A negative duration is ignored: time never runs backwards,
    /// because leases, windows and schedules all assume it does not.
    pub fn advance(&self, by: Duration) {
        let ms = by.num_milliseconds().max(0);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn offset(&self) -> Duration {
        Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}

impl Clock for ControlledClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward_by_at_least_that_much() {
        let clock = ControlledClock::new();
        let before = clock.now();
        clock.advance(Duration::days(7));
        assert!(clock.now() - before >= Duration::days(7));
    }

    #[test]
    fn time_never_runs_backwards() {
        let clock = ControlledClock::new();
        clock.advance(Duration::hours(2));
        clock.advance(Duration::hours(-5));
        assert_eq!(clock.offset(), Duration::hours(2));
    }
}
