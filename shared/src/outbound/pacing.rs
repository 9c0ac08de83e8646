//! Pacing: a number's sends, from every sender invocation and every source (broadcasts, flows,
//! the inbox), spaced at its throughput — Meta's default 80 messages a second, up to 1,000 when
//! Meta raised it — so Meta never answers 130429 for our speed, and a campaign still goes as
//! fast as the number may.
//!
//! The budget is shared through DynamoDB as a virtual schedule (GCRA): each pacing item holds
//! the time of its next free slot (`tat`), and a send takes the slot with one atomic `ADD`.
//! One item could take at most ~1,000 writes a second, so a number's budget is split over
//! [`shards`] items of at most 250 sends a second each; a sender takes a slot from one of them
//! at random. Each shard keeps one send of margin a second, so no 1-second window holds more
//! than the number's throughput however the shards' slots interleave. A sender never reserves
//! more than [`MAX_AHEAD`] into the future: a backlog waits on the queue, not in the budget.

use chrono::{DateTime, Duration, Utc};

/// Meta's default throughput for a Cloud API number, and the most it raises it to.
pub const DEFAULT_MPS: u32 = 80;
pub const MAX_MPS: u32 = 1_000;
/// The most one pacing item takes.
const SHARD_MPS: u32 = 250;
/// How far ahead a send may hold a slot (it waits that long before its Graph call).
pub const MAX_AHEAD: Duration = Duration::seconds(2);
/// How long a number goes at half speed after Meta answered 130429.
pub const SLOWDOWN: Duration = Duration::seconds(30);

/// Pacing items of a number at `mps`.
pub fn shards(mps: u32) -> u32 {
    mps.clamp(1, MAX_MPS).div_ceil(SHARD_MPS)
}

/// Microseconds between two slots of one shard: each shard runs at `(mps - 2 × shards) /
/// shards`: one send of margin a second for the shard's extra send at a window's edge, one for a
/// send that leaves a little late (network jitter), so a window still holds at most `mps`.
pub fn shard_interval_micros(mps: u32) -> i64 {
    let mps = mps.clamp(3, MAX_MPS);
    let shards = shards(mps);
    let effective = i64::from(mps - 2 * shards).max(1);
    (1_000_000 * i64::from(shards) + effective - 1) / effective
}

/// The slot a send may go at, or how long to wait before asking again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    At(DateTime<Utc>),
    /// The number's budget is taken further ahead than [`MAX_AHEAD`]: try again then.
    Busy {
        retry_at: DateTime<Utc>,
    },
}

pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(crate) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_at_80_mps_is_one_item_spaced_for_78_a_second() {
        assert_eq!(shards(80), 1);
        assert_eq!(shard_interval_micros(80), 12_821);
        let most_in_a_window = 1_000_000 / shard_interval_micros(80) + 1;
        assert!(most_in_a_window <= 80, "the edge send included: {most_in_a_window}");
    }

    #[test]
    fn at_1000_mps_four_items_share_the_budget_and_no_window_passes_it() {
        assert_eq!(shards(1_000), 4);
        let per_shard = 1_000_000 / shard_interval_micros(1_000) + 1;
        assert!(per_shard * 4 <= 1_000, "{per_shard} a shard");
        assert!(per_shard * 4 >= 980, "and close to it: {per_shard} a shard");
    }

    #[test]
    fn throughput_is_held_between_one_and_meta_s_maximum() {
        assert_eq!(shards(5_000), 4);
        assert_eq!(shards(0), 1);
    }
}
