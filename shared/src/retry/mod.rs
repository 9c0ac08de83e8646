//! Smart Retry: which of Meta's failures are retried, and when. The ladders are data; the
//! decision is a function of the error and the attempts already made.
//!
//! - 131049, the marketing frequency cap (FAQ: "Broadcast returns error 131049"): Meta caps how
//!   much marketing one person gets across all senders in about 7 days, so we wait 7, then 8,
//!   then 9 days — never the hours ladder, which would only burn attempts inside the cooldown.
//! - Transient errors (Meta's 5xx with its error body, 131000, 131016, 131057, 133004): 1 h,
//!   4 h, 12 h.
//! - Throughput and pair rate limits (130429, 131056, 80007): a short SQS delay that does not
//!   count as an attempt.
//! - Whatever the ladders, a job makes at most [`ATTEMPT_BUDGET`] attempts.
//! - 131026, not on WhatsApp (FAQ: "I keep hitting 131026"): never retried; the second one in a
//!   row tags the contact `do-not-send` (`crate::outbound::undeliverable`).
//! - 190, the token is invalid: never retried; the number goes to ERROR.
//! - The codes and their classes: [`crate::meta::errors`].
//! - Everything else Meta refuses (template paused or disabled, 131047 outside the window,
//!   132xxx parameter errors, 133010 not registered, ...) is permanent.

pub mod smart;

use chrono::Duration;

pub use crate::meta::errors::{FailureClass, classify};

impl FailureClass {
    /// The ladder a retry of this class climbs; each ladder counts its own steps.
    pub fn ladder(self) -> &'static str {
        match self {
            Self::FrequencyCap => "frequency_cap",
            Self::Transient => "transient",
            Self::Throttled => "throttle",
            Self::NotOnWhatsApp | Self::TokenInvalid | Self::Permanent => "none",
        }
    }
}

/// Every attempt a job may make, across all ladders: alternating error classes (131049, then
/// 131000, then 131049 ...) each climb their own ladder, and without a total budget they could
/// keep one message retrying for months.
pub const ATTEMPT_BUDGET: u32 = 6;

/// 131049: wait out Meta's roughly 7-day marketing cooldown.
pub fn frequency_cap_ladder() -> [Duration; 3] {
    [Duration::days(7), Duration::days(8), Duration::days(9)]
}

pub fn transient_ladder() -> [Duration; 3] {
    [Duration::hours(1), Duration::hours(4), Duration::hours(12)]
}

/// What to do with a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Resend after this long, as retry number `retry` (1-based).
    RetryAfter {
        delay: Duration,
        retry: u32,
    },
    /// Put back on the send queue after this long without counting an attempt.
    Backoff {
        delay: Duration,
    },
    GiveUp,
}

/// `retries_so_far`: how many retries of this ladder already happened.
pub fn decide(class: FailureClass, retries_so_far: u32, throttled_so_far: u32) -> RetryDecision {
    let ladder = match class {
        FailureClass::FrequencyCap => frequency_cap_ladder(),
        FailureClass::Transient => transient_ladder(),
        FailureClass::Throttled => return RetryDecision::Backoff { delay: throttle_backoff(throttled_so_far) },
        FailureClass::NotOnWhatsApp | FailureClass::TokenInvalid | FailureClass::Permanent => {
            return RetryDecision::GiveUp;
        }
    };
    match ladder.get(retries_so_far as usize) {
        Some(delay) => RetryDecision::RetryAfter { delay: *delay, retry: retries_so_far + 1 },
        None => RetryDecision::GiveUp,
    }
}

/// 30 s, 60 s, 120 s, ... capped at SQS's 15-minute maximum delay.
pub fn throttle_backoff(throttled_so_far: u32) -> Duration {
    Duration::seconds((30_i64 << throttled_so_far.min(5)).min(900))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequency_cap_waits_seven_then_eight_then_nine_days_then_gives_up() {
        let c = classify(Some(131049), Some(400));
        assert_eq!(decide(c, 0, 0), RetryDecision::RetryAfter { delay: Duration::days(7), retry: 1 });
        assert_eq!(decide(c, 1, 0), RetryDecision::RetryAfter { delay: Duration::days(8), retry: 2 });
        assert_eq!(decide(c, 2, 0), RetryDecision::RetryAfter { delay: Duration::days(9), retry: 3 });
        assert_eq!(decide(c, 3, 0), RetryDecision::GiveUp);
    }

    #[test]
    fn frequency_cap_never_uses_the_hours_ladder() {
        for retries in 0..3 {
            if let RetryDecision::RetryAfter { delay, .. } = decide(FailureClass::FrequencyCap, retries, 0) {
                assert!(delay >= Duration::days(7));
            }
        }
    }

    #[test]
    fn transient_errors_use_the_hours_ladder() {
        for code in [131000, 131016, 133004] {
            assert_eq!(classify(Some(code), Some(500)), FailureClass::Transient, "{code}");
        }
        assert_eq!(classify(None, Some(503)), FailureClass::Transient);
        assert_eq!(classify(None, Some(429)), FailureClass::Throttled, "a bare 429 is a rate limit");
        assert_eq!(
            decide(FailureClass::Transient, 0, 0),
            RetryDecision::RetryAfter { delay: Duration::hours(1), retry: 1 }
        );
        assert_eq!(decide(FailureClass::Transient, 3, 0), RetryDecision::GiveUp);
    }

    #[test]
    fn rate_limits_back_off_briefly_without_counting_an_attempt() {
        for code in [130429, 131056, 80007] {
            assert_eq!(classify(Some(code), Some(400)), FailureClass::Throttled, "{code}");
        }
        assert_eq!(decide(FailureClass::Throttled, 2, 0), RetryDecision::Backoff { delay: Duration::seconds(30) });
        assert_eq!(throttle_backoff(10), Duration::seconds(900), "never beyond SQS's 15-minute delay");
    }

    #[test]
    fn not_on_whatsapp_is_never_retried() {
        assert_eq!(decide(classify(Some(131026), Some(400)), 0, 0), RetryDecision::GiveUp);
    }

    #[test]
    fn an_invalid_token_and_other_refusals_are_permanent() {
        assert_eq!(classify(Some(190), Some(401)), FailureClass::TokenInvalid);
        for code in [132015, 132016, 131047, 132000, 133010] {
            assert_eq!(decide(classify(Some(code), Some(400)), 0, 0), RetryDecision::GiveUp, "{code}");
        }
    }
}
