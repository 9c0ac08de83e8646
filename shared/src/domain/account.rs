//! The business side: a connected number (or Instagram account) and its message templates, as
//! Meta and onboarding leave them.

use serde::{Deserialize, Serialize};

/// A connected number's state (FAQ: "Inbound messages stopped arriving" — ACTIVE, not DRAFT or
/// ERROR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NumberState {
    Draft,
    Active,
    Error,
    Disconnected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateStatus {
    Approved,
    Pending,
    Rejected,
    Paused,
    Disabled,
}
