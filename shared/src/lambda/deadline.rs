//! An invocation's deadline: work that must be done while some time is still kept back (for
//! what has to follow it before the invocation answers).

use std::future::Future;
use std::time::{Duration, Instant};

/// `work`'s output, if it is done while `kept` is still left before `deadline` (always, without
/// a deadline); `None` when that moment came first, or had come already: then `work` is never
/// started (a future does nothing until polled).
pub async fn done_with_time_left<F: Future>(deadline: Option<Instant>, kept: Duration, work: F) -> Option<F::Output> {
    let Some(deadline) = deadline else { return Some(work.await) };
    let by = deadline.checked_sub(kept).unwrap_or(deadline);
    if by <= Instant::now() {
        return None;
    }
    tokio::time::timeout_at(by.into(), work).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_a_deadline_work_is_always_done() {
        assert_eq!(done_with_time_left(None, Duration::from_secs(9), async { 7 }).await, Some(7));
    }

    #[tokio::test]
    async fn work_is_not_started_when_the_time_kept_back_has_come() {
        let started = std::cell::Cell::new(false);
        let deadline = Some(Instant::now() + Duration::from_millis(100));
        let done = done_with_time_left(deadline, Duration::from_secs(1), async { started.set(true) }).await;
        assert_eq!(done, None);
        assert!(!started.get(), "never polled");
    }

    #[tokio::test]
    async fn work_still_running_when_the_time_kept_back_comes_is_given_up() {
        let deadline = Some(Instant::now() + Duration::from_millis(60));
        let slow = tokio::time::sleep(Duration::from_secs(5));
        assert_eq!(done_with_time_left(deadline, Duration::from_millis(30), slow).await, None);
    }

    #[tokio::test]
    async fn work_done_before_the_time_kept_back_comes_gives_its_output() {
        let deadline = Some(Instant::now() + Duration::from_secs(10));
        assert_eq!(done_with_time_left(deadline, Duration::from_secs(1), async { "done" }).await, Some("done"));
    }
}
