//! A broadcast as a business asks for it, and where it stands.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{AccountId, BroadcastId, WorkspaceId};
use crate::flows::text::TextTemplate;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BroadcastSpec {
    pub name: String,
    /// The WhatsApp number it goes out from (Meta's phone number id).
    pub account_id: AccountId,
    pub template: String,
    pub language: String,
    /// The template body's `{{1}}`, `{{2}}`…, each text with contact fields and defaults
    /// (`{{name|there}}`).
    #[serde(default)]
    pub body_parameters: Vec<TextTemplate>,
    pub audience: Audience,
    /// When to start; absent: now.
    #[serde(default)]
    pub send_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub over_limit: OverLimit,
}

/// Who receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Audience {
    /// WhatsApp contacts with any of the tags, as they are when sending starts.
    Tags { tags: Vec<String> },
    /// The recipients of a CSV, stored (de-duplicated, normalised) when the broadcast was created.
    Csv { recipients: u64 },
}

/// What happens to recipients beyond the portfolio's messaging limit (Meta's unique customers
/// in a rolling 24 hours).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverLimit {
    /// Sending pauses, and resumes by itself when the window has room again.
    #[default]
    Defer,
    /// They are reported as not sent (skipped, "messaging limit").
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BroadcastState {
    /// Waiting for its time (a one-time schedule will start it).
    Scheduled,
    /// Its audience is being written as send jobs.
    Sending,
    /// Paused at the messaging limit until `resume_at`.
    Deferred,
    /// Every recipient has a job (or was skipped); the jobs are on their way.
    Sent,
    Cancelled,
    /// Never started a send, and why (`reason`): e.g. the template is not APPROVED.
    Failed,
}

/// A broadcast as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BroadcastRecord {
    pub broadcast_id: BroadcastId,
    pub workspace_id: WorkspaceId,
    #[serde(with = "spec_json")]
    pub spec: BroadcastSpec,
    pub state: BroadcastState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Where the fan-out resumes (the audience query's last key), absent at the start.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Recipients the fan-out has handled (a job written, or skipped).
    #[serde(default)]
    pub enumerated: u64,
    /// Audience pages the fan-out has stored; a run moves the cursor only from the page count
    /// it read, so two runs of one broadcast never both count a page.
    #[serde(default)]
    pub pages: u64,
    /// Every recipient, known once the fan-out went through the whole audience.
    #[serde(default)]
    pub audience_total: Option<u64>,
    #[serde(default)]
    pub resume_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub cancelled_at: Option<DateTime<Utc>>,
}

impl BroadcastRecord {
    /// A broadcast as created: scheduled, nothing of its audience handled yet.
    pub fn scheduled(
        broadcast_id: BroadcastId,
        workspace_id: WorkspaceId,
        spec: BroadcastSpec,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            broadcast_id,
            workspace_id,
            spec,
            state: BroadcastState::Scheduled,
            created_at: now,
            updated_at: now,
            reason: None,
            cursor: None,
            enumerated: 0,
            pages: 0,
            audience_total: None,
            resume_at: None,
            started_at: None,
            cancelled_at: None,
        }
    }
}

mod spec_json {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use super::BroadcastSpec;

    pub fn serialize<S: Serializer>(spec: &BroadcastSpec, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&serde_json::to_string(spec).map_err(serde::ser::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BroadcastSpec, D::Error> {
        serde_json::from_str(&String::deserialize(deserializer)?).map_err(D::Error::custom)
    }
}

/// The send job of one recipient: the same however often the fan-out passes them. The
/// contact is hashed into it, so a job id in a log line or a status callback never shows a
/// phone number.
pub fn recipient_job_id(broadcast: &BroadcastId, contact: &str) -> crate::domain::SendJobId {
    use sha2::{Digest, Sha256};
    let hash = hex::encode(Sha256::digest(format!("{broadcast}/{contact}")));
    crate::domain::SendJobId::parse(format!("{broadcast}-{}", &hash[..20])).expect("ids are valid key parts")
}
