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

/// A message template's status at Meta. Only APPROVED templates can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateStatus {
    Approved,
    Pending,
    Rejected,
    Paused,
    Disabled,
    /// A status Meta added that we do not know (IN_APPEAL, PENDING_DELETION, ...): not sendable.
    #[serde(other)]
    Other,
}

impl TemplateStatus {
    /// Why a template in this status cannot be sent, in the words a user needs (FAQ: "Why does
    /// a flow's sendTemplate work but the inbox template picker doesn't?").
    pub fn why_not_sendable(self) -> Option<&'static str> {
        match self {
            Self::Approved => None,
            Self::Pending => Some("Meta has not approved it yet (PENDING): it can be sent once APPROVED"),
            Self::Rejected => Some("Meta rejected it: edit it and submit it again"),
            Self::Paused => {
                Some("Meta paused it for low quality (sends fail with 132015); it resumes or is disabled by Meta")
            }
            Self::Disabled => Some("Meta disabled it for low quality (132016): create a new template"),
            Self::Other => Some("its status at Meta is not APPROVED"),
        }
    }
}
