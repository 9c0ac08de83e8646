//! `object: whatsapp_business_account` deliveries: `entry[].changes[]` with `field: messages`
//! carry inbound `messages` (with the sender's `contacts` profile) and `statuses` of what we sent.
//! <https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components>

use crate::domain::{AccountId, ContactId, MessageId};
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{MetaTimestamp, lenient};

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

/// A `messages` change. Its elements stay raw and are read one by one ([`Contact`],
/// [`Message`], [`Status`]): one element Meta shapes differently (a status without
/// `recipient_id`, a contact without `wa_id`, as its username rollout makes possible) is kept on
/// its own and never costs the others. Keys we do not read (`errors` when Meta reports a problem
/// with the number, or whatever Meta adds) are collected in `unhandled` to be kept too.
#[derive(Debug)]
pub struct MessagesValue {
    pub metadata: Metadata,
    pub contacts: Vec<Box<RawValue>>,
    /// Raw so an unknown type can be kept whole.
    pub messages: Vec<Box<RawValue>>,
    pub statuses: Vec<Box<RawValue>>,
    pub unhandled: Vec<(String, Box<RawValue>)>,
}

impl<'de> Deserialize<'de> for MessagesValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = MessagesValue;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a messages change value")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MessagesValue, A::Error> {
                let mut metadata = None;
                let (mut contacts, mut messages, mut statuses, mut unhandled) = (vec![], vec![], vec![], vec![]);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "metadata" => metadata = Some(map.next_value()?),
                        "contacts" => contacts = map.next_value()?,
                        "messages" => messages = map.next_value()?,
                        "statuses" => statuses = map.next_value()?,
                        "messaging_product" => {
                            map.next_value::<IgnoredAny>()?;
                        }
                        _ => unhandled.push((key, map.next_value()?)),
                    }
                }
                let metadata = metadata.ok_or_else(|| de::Error::missing_field("metadata"))?;
                Ok(MessagesValue { metadata, contacts, messages, statuses, unhandled })
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub display_phone_number: String,
    pub phone_number_id: AccountId,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Contact {
    #[serde(default)]
    pub profile: Option<Profile>,
    pub wa_id: ContactId,
    /// The business-scoped user id (BSUID) Meta adds for its username rollout: a customer who
    /// hides their number behind a username will be known by it alone.
    #[serde(default)]
    pub user_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub from: ContactId,
    /// The sender's business-scoped user id (username rollout).
    #[serde(default)]
    pub from_user_id: Option<String>,
    pub id: MessageId,
    /// Seconds, as a string.
    #[serde(default)]
    pub timestamp: Option<MetaTimestamp>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "lenient")]
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
    /// What a message of `type: unsupported` was (e.g. `edit`), when Meta says.
    #[serde(default, deserialize_with = "lenient")]
    pub unsupported: Option<Unsupported>,
    /// The ad or post a click-to-WhatsApp customer came from. Meta sends it once, with the
    /// first message after the click, and it cannot be fetched later.
    #[serde(default, deserialize_with = "lenient")]
    pub referral: Option<Referral>,
    /// With a `system` message of type `customer_identity_changed`.
    #[serde(default, deserialize_with = "lenient")]
    pub identity: Option<Identity>,
    /// Why Meta could not give us (all of) the message, on any type.
    #[serde(default, deserialize_with = "lenient")]
    pub errors: Vec<ErrorDetail>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Unsupported {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

/// Click-to-WhatsApp ad attribution, as Meta documents it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Referral {
    #[serde(default)]
    pub source_url: Option<String>,
    #[serde(default)]
    pub source_id: Option<String>,
    /// `ad` or `post`.
    #[serde(default)]
    pub source_type: Option<String>,
    #[serde(default)]
    pub headline: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub video_url: Option<String>,
    #[serde(default)]
    pub thumbnail_url: Option<String>,
    /// The click id, for attributing the conversation back to the ad.
    #[serde(default)]
    pub ctwa_clid: Option<String>,
    #[serde(default)]
    pub welcome_message: Option<WelcomeMessage>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct WelcomeMessage {
    #[serde(default)]
    pub text: Option<String>,
}

/// The customer's security code changed (they reinstalled WhatsApp or changed phones).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Identity {
    #[serde(default)]
    pub acknowledged: Option<bool>,
    #[serde(default)]
    pub created_timestamp: Option<MetaTimestamp>,
    /// Identifies the customer's new identity key.
    #[serde(default)]
    pub hash: Option<String>,
}

/// Set when the customer replied to (or forwarded) a message.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
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

/// E.g. the customer changed their number (`user_changed_number`) or their identity
/// (`customer_identity_changed`).
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
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub identity: Option<String>,
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
    pub id: MessageId,
    pub status: String,
    /// Seconds, as a string.
    #[serde(default)]
    pub timestamp: Option<MetaTimestamp>,
    pub recipient_id: String,
    /// The recipient's business-scoped user id (username rollout).
    #[serde(default)]
    pub recipient_user_id: Option<String>,
    /// Echo of what we put in the send: our send job id.
    #[serde(default)]
    pub biz_opaque_callback_data: Option<String>,
    #[serde(default)]
    pub conversation: Option<Box<RawValue>>,
    #[serde(default)]
    pub pricing: Option<Box<RawValue>>,
    #[serde(default)]
    pub errors: Vec<ErrorDetail>,
}

/// A JSON block we keep but do not read (a status's `pricing` and `conversation`), as Meta
/// wrote it: no tree of small allocations is built for it on the hot path. It is read as a
/// [`Value`] only when it is looked at: it compares, prints and serializes exactly as that
/// `Value` would (keys in `Value`'s order), so what is stored or logged of it is the same.
#[derive(Clone)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// The JSON text, as Meta wrote it.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The JSON as a value.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.0.get()).expect("raw JSON is valid JSON")
    }
}

impl From<Box<RawValue>> for RawJson {
    fn from(raw: Box<RawValue>) -> Self {
        Self(raw)
    }
}

impl From<&RawValue> for RawJson {
    fn from(raw: &RawValue) -> Self {
        Self(raw.to_owned())
    }
}

impl From<&Value> for RawJson {
    fn from(value: &Value) -> Self {
        Self(serde_json::value::to_raw_value(value).expect("a JSON value serializes"))
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get() || self.to_value() == other.to_value()
    }
}

impl std::fmt::Debug for RawJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.to_value(), f)
    }
}

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::from(&Value::deserialize(deserializer)?))
    }
}
