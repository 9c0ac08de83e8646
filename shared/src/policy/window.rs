//! The 24-hour customer service window (FAQ: "What is the 24-hour customer service window?"):
//! free-form messages may be sent only within 24 hours of the customer's last inbound message;
//! outside it, only approved templates. The window is measured from Meta's timestamp of the
//! newest inbound message, not from when its webhook reached us, so a late or redelivered old
//! message never reopens a closed window.

use chrono::{DateTime, Duration, Utc};

pub fn customer_service_window() -> Duration {
    Duration::hours(24)
}

/// When the window opened by an inbound message sent at `last_inbound_at` closes.
pub fn window_closes_at(last_inbound_at: DateTime<Utc>) -> DateTime<Utc> {
    last_inbound_at + customer_service_window()
}

/// Whether free-form messages may be sent now.
pub fn is_window_open(last_inbound_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    last_inbound_at.is_some_and(|at| now < window_closes_at(at))
}

/// The newest of the stored and the incoming inbound time: only a newer message moves the window.
pub fn newest_inbound(stored: Option<DateTime<Utc>>, incoming: DateTime<Utc>) -> DateTime<Utc> {
    stored.map_or(incoming, |s| s.max(incoming))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_680_000 + h * 3600, 0).unwrap()
    }

    #[test]
    fn free_form_is_allowed_within_24_hours_of_the_last_inbound_message() {
        assert!(is_window_open(Some(at(0)), at(23)));
    }

    #[test]
    fn the_window_is_closed_24_hours_after_the_last_inbound_message() {
        assert!(!is_window_open(Some(at(0)), at(24)));
    }

    #[test]
    fn a_customer_who_never_wrote_has_no_window() {
        assert!(!is_window_open(None, at(0)));
    }

    #[test]
    fn an_old_message_delivered_late_does_not_reopen_the_window() {
        let newest = newest_inbound(Some(at(10)), at(2));
        assert_eq!(newest, at(10));
        assert!(!is_window_open(Some(newest), at(40)));
    }
}
