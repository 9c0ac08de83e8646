//! Where a conversation happens: WhatsApp (the Cloud API) or Instagram DMs. The rules differ
//! (no templates, interactive messages or WhatsApp Flows on Instagram), so the channel travels
//! with every id that needs it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    #[serde(rename = "wa")]
    WhatsApp,
    #[serde(rename = "ig")]
    Instagram,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WhatsApp => "wa",
            Self::Instagram => "ig",
        }
    }
}
