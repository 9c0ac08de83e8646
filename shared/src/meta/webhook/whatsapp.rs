//! `object: whatsapp_business_account` deliveries: `entry[].changes[]` with `field: messages`
//! carry inbound `messages` (with the sender's `contacts` profile) and `statuses` of what we sent.
//! <https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components>

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

#[derive(Debug, Deserialize)]
pub struct Entry {
    /// The WhatsApp Business Account id.
    pub id: String,
    #[serde(default)]
    pub changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
pub struct Change {
    pub field: String,
    /// Parsed by `field`: [`MessagesValue`] for `messages`; kept raw for anything else.
    pub value: Box<RawValue>,
}

#[derive(Debug, Deserialize)]
pub struct MessagesValue {
    pub metadata: Metadata,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    /// Each read as a [`Message`]; raw so an unknown type can be kept whole.
    #[serde(default)]
    pub messages: Vec<Box<RawValue>>,
    #[serde(default)]
    pub statuses: Vec<Status>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub display_phone_number: String,
    pub phone_number_id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Contact {
    #[serde(default)]
    pub profile: Option<Profile>,
    pub wa_id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub from: String,
    pub id: String,
    #[serde(deserialize_with = "super::seconds_from_string")]
    pub timestamp: i64,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub context: Option<Context>,
    #[serde(default)]
    pub text: Option<Text>,
    #[serde(default)]
    pub image: Option<Media>,
    #[serde(default)]
    pub audio: Option<Media>,
    #[serde(default)]
    pub video: Option<Media>,
    #[serde(default)]
    pub document: Option<Media>,
    #[serde(default)]
    pub sticker: Option<Media>,
    #[serde(default)]
    pub location: Option<Location>,
    #[serde(default)]
    pub contacts: Option<Vec<Value>>,
    #[serde(default)]
    pub interactive: Option<Interactive>,
    #[serde(default)]
    pub button: Option<Button>,
    #[serde(default)]
    pub reaction: Option<Reaction>,
    #[serde(default)]
    pub order: Option<Order>,
    #[serde(default)]
    pub system: Option<System>,
    #[serde(default)]
    pub referral: Option<Value>,
    #[serde(default)]
    pub errors: Vec<ErrorDetail>,
}

/// Set when the customer replied to (or forwarded) a message.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Context {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub forwarded: bool,
    #[serde(default)]
    pub frequently_forwarded: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Text {
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Media {
    pub id: String,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub caption: Option<String>,
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub voice: Option<bool>,
    #[serde(default)]
    pub animated: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Interactive {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub button_reply: Option<ReplyOption>,
    #[serde(default)]
    pub list_reply: Option<ReplyOption>,
    /// A completed WhatsApp Flow.
    #[serde(default)]
    pub nfm_reply: Option<FlowReply>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ReplyOption {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct FlowReply {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    /// The Flow's answers, as a JSON document inside a string.
    pub response_json: String,
}

/// A tap on a template's quick-reply button.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Button {
    #[serde(default)]
    pub payload: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Reaction {
    pub message_id: String,
    /// Absent when the customer removed their reaction.
    #[serde(default)]
    pub emoji: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Order {
    pub catalog_id: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub product_items: Vec<Value>,
}

/// E.g. the customer changed their number (`user_changed_number`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct System {
    #[serde(default)]
    pub body: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub wa_id: Option<String>,
    #[serde(default)]
    pub new_wa_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ErrorDetail {
    pub code: i64,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub error_data: Option<ErrorData>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ErrorData {
    #[serde(default)]
    pub details: Option<String>,
}

/// A status of a message we sent.
#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    /// The wamid Meta gave the message when it accepted it.
    pub id: String,
    pub status: String,
    #[serde(deserialize_with = "super::seconds_from_string")]
    pub timestamp: i64,
    pub recipient_id: String,
    /// Echo of what we put in the send: our send job id.
    #[serde(default)]
    pub biz_opaque_callback_data: Option<String>,
    #[serde(default)]
    pub conversation: Option<Value>,
    #[serde(default)]
    pub pricing: Option<Value>,
    #[serde(default)]
    pub errors: Vec<ErrorDetail>,
}
