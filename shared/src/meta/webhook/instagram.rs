//! `object: instagram` deliveries (Instagram Messaging): `entry[].messaging[]` events, each a
//! message, a postback, a read, or something we only keep (reactions). Instagram has no
//! delivery statuses: our own sends come back as echoes (`message.is_echo`, with the mid our
//! send was given), and the customer's `read` names the newest mid they have seen.
//! <https://developers.facebook.com/docs/messenger-platform/instagram/features/webhook>

use crate::domain::{AccountId, ContactId, MessageId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::MetaTimestamp;

#[derive(Debug, Deserialize)]
pub struct Entry {
    /// The Instagram professional account id.
    pub id: AccountId,
    #[serde(default)]
    pub messaging: Vec<Box<serde_json::value::RawValue>>,
}

#[derive(Debug, Deserialize)]
pub struct Messaging {
    pub sender: Party,
    pub recipient: Party,
    /// Milliseconds since the epoch, as a number.
    #[serde(default)]
    pub timestamp: Option<MetaTimestamp>,
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub postback: Option<Postback>,
    #[serde(default)]
    pub read: Option<Read>,
}

/// The customer saw the conversation up to this message (one of ours).
#[derive(Debug, Deserialize)]
pub struct Read {
    #[serde(default)]
    pub mid: Option<MessageId>,
}

#[derive(Debug, Deserialize)]
pub struct Party {
    pub id: ContactId,
}

#[derive(Debug, Deserialize)]
pub struct Message {
    pub mid: MessageId,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    #[serde(default)]
    pub is_echo: bool,
    #[serde(default)]
    pub reply_to: Option<Value>,
    #[serde(default)]
    pub quick_reply: Option<QuickReply>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Attachment {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub payload: Option<AttachmentPayload>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct AttachmentPayload {
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct QuickReply {
    pub payload: String,
}

#[derive(Debug, Deserialize)]
pub struct Postback {
    #[serde(default)]
    pub mid: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub payload: Option<String>,
}
