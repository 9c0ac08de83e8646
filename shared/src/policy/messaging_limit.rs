//! Meta's messaging limit (FAQ: "Why does a flow's sendTemplate work but the inbox template
//! picker doesn't?"; DESIGN: messaging limits): business-initiated messages may reach at most
//! 250 → 2K → 10K → 100K → unlimited *unique* customers in a rolling 24 hours, set per business
//! portfolio and shared by all its numbers. A customer already reached in the window does not
//! count again.

use chrono::{DateTime, Duration, Utc};

/// The window Meta counts unique customers in.
pub fn rolling_window() -> Duration {
    Duration::hours(24)
}

/// How many unique customers the tier allows in the window; `None` is unlimited. A tier we do
/// not know (or none reported yet) is read as the lowest one: a new portfolio starts there.
pub fn customers_per_window(tier: Option<&str>) -> Option<u64> {
    match tier.map(|t| t.trim().to_ascii_uppercase()) {
        Some(t) if t == "TIER_UNLIMITED" || t == "UNLIMITED" => None,
        Some(t) => Some(match t.trim_start_matches("TIER_") {
            "250" => 250,
            "1K" => 1_000,
            "2K" => 2_000,
            "10K" => 10_000,
            "100K" => 100_000,
            _ => 250,
        }),
        None => Some(250),
    }
}

/// How many more new customers may be reached now.
pub fn room_left(limit: Option<u64>, reached_in_window: u64) -> Option<u64> {
    limit.map(|l| l.saturating_sub(reached_in_window))
}

/// The hour buckets that make up the window ending at `now` (the current hour and the 24
/// before it: counting at hour granularity errs towards counting a customer too long, never
/// too short, so the limit is never passed).
pub fn window_hours(now: DateTime<Utc>) -> Vec<String> {
    (0..=24).map(|h| hour_bucket(now - Duration::hours(h))).collect()
}

pub fn hour_bucket(at: DateTime<Utc>) -> String {
    at.format("%Y%m%d%H").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tier_allows_its_number_of_unique_customers() {
        assert_eq!(customers_per_window(Some("TIER_250")), Some(250));
        assert_eq!(customers_per_window(Some("TIER_2K")), Some(2_000));
        assert_eq!(customers_per_window(Some("TIER_10K")), Some(10_000));
        assert_eq!(customers_per_window(Some("TIER_100K")), Some(100_000));
        assert_eq!(customers_per_window(Some("TIER_UNLIMITED")), None);
    }

    #[test]
    fn an_unknown_or_missing_tier_is_the_lowest() {
        assert_eq!(customers_per_window(None), Some(250));
        assert_eq!(customers_per_window(Some("TIER_WHATEVER")), Some(250));
    }

    #[test]
    fn the_window_is_counted_in_whole_hours_and_never_shorter_than_24() {
        let now = DateTime::parse_from_rfc3339("2026-11-28T10:30:00Z").unwrap().with_timezone(&Utc);
        let hours = window_hours(now);
        assert_eq!(hours.len(), 25);
        assert_eq!(hours[0], "2026112810");
        assert_eq!(hours[24], "2026112710", "the hour 24 hours ago is still counted");
        assert_eq!(room_left(Some(250), 240), Some(10));
        assert_eq!(room_left(Some(250), 300), Some(0));
        assert_eq!(room_left(None, 1_000_000), None);
    }
}
