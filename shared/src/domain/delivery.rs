//! The states Meta reports for a message we sent, and the order they may be applied in.
//!
//! Statuses arrive out of order and more than once. A status is applied only when it ranks
//! above the stored one: `sent` < `failed` < `delivered` < `read` < `played`. So a late `sent` or
//! `delivered` never downgrades a `read`; `read` without `delivered` is fine; `failed` replaces
//! `sent` (the usual path: accepted, then refused, as with 131049 and 131026); and a `failed`
//! after `delivered`/`read` does not override them — the customer has the message, so the
//! failure is recorded but not retried. `played` is what Meta reports for a voice message once
//! the customer listens to it, after its `read`; it says everything `read` says. Every state's
//! own timestamp is kept either way.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Sent,
    Failed,
    Delivered,
    Read,
    Played,
}

impl DeliveryState {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "sent" => Some(Self::Sent),
            "delivered" => Some(Self::Delivered),
            "read" => Some(Self::Read),
            "failed" => Some(Self::Failed),
            "played" => Some(Self::Played),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Played => "played",
        }
    }

    /// Position in the order statuses may advance in; stored so DynamoDB can compare.
    pub fn rank(self) -> u8 {
        match self {
            Self::Sent => 10,
            Self::Failed => 15,
            Self::Delivered => 20,
            Self::Read => 30,
            Self::Played => 40,
        }
    }

    /// The message is on the customer's phone: what resets the 131026 streak and settles a job.
    pub fn reached_customer(self) -> bool {
        matches!(self, Self::Delivered | Self::Read | Self::Played)
    }

    /// Whether `incoming` replaces the stored state.
    pub fn advances(stored: Option<Self>, incoming: Self) -> bool {
        stored.is_none_or(|s| incoming.rank() > s.rank())
    }
}

#[cfg(test)]
mod tests {
    use super::DeliveryState::{self, *};

    fn apply(sequence: &[DeliveryState]) -> Option<DeliveryState> {
        sequence.iter().fold(
            None,
            |stored, &incoming| {
                if DeliveryState::advances(stored, incoming) { Some(incoming) } else { stored }
            },
        )
    }

    #[test]
    fn statuses_advance_sent_delivered_read() {
        assert_eq!(apply(&[Sent, Delivered, Read]), Some(Read));
    }

    #[test]
    fn a_late_sent_or_delivered_never_downgrades_read() {
        assert_eq!(apply(&[Read, Delivered, Sent]), Some(Read));
    }

    #[test]
    fn read_without_delivered_is_fine() {
        assert_eq!(apply(&[Sent, Read]), Some(Read));
    }

    #[test]
    fn failed_replaces_sent() {
        assert_eq!(apply(&[Sent, Failed]), Some(Failed));
        assert_eq!(apply(&[Failed, Sent]), Some(Failed));
    }

    #[test]
    fn failed_after_delivered_or_read_keeps_the_better_state() {
        assert_eq!(apply(&[Delivered, Failed]), Some(Delivered));
        assert_eq!(apply(&[Read, Failed]), Some(Read));
    }

    #[test]
    fn played_comes_after_read_and_nothing_earlier_downgrades_it() {
        assert_eq!(apply(&[Sent, Delivered, Read, Played]), Some(Played));
        assert_eq!(apply(&[Played, Read, Delivered, Failed, Sent]), Some(Played));
        assert_eq!(DeliveryState::parse("played"), Some(Played));
        assert!(Played.reached_customer());
    }

    #[test]
    fn a_delivery_reported_after_a_failure_wins() {
        assert_eq!(apply(&[Failed, Delivered]), Some(Delivered));
    }
}
