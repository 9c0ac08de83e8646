//! What Meta tells us, in shapes that no longer depend on the channel's payload format: a
//! customer's message, a status of a message we sent, and what we keep without understanding.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AccountId, Channel, ContactId, DeliveryState, MessageId, SendJobId, TemplateStatus};
use crate::meta::webhook::{instagram, whatsapp};

/// What a customer sent, in a shape that no longer depends on the channel's payload format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MessageContent {
    Text {
        body: String,
    },
    Media {
        kind: String,
        media: whatsapp::Media,
    },
    Location {
        location: whatsapp::Location,
    },
    Contacts {
        contacts: Vec<Value>,
    },
    ButtonReply {
        id: String,
        title: String,
    },
    ListReply {
        id: String,
        title: String,
        description: Option<String>,
    },
    /// A completed WhatsApp Flow (`nfm_reply`) with its answers.
    FlowReply {
        name: Option<String>,
        response: Value,
    },
    /// A tap on a template's quick-reply button.
    TemplateButton {
        payload: Option<String>,
        text: String,
    },
    Reaction {
        message_id: String,
        emoji: Option<String>,
    },
    Order {
        order: whatsapp::Order,
    },
    System {
        system: whatsapp::System,
    },
    /// A message type Meta cannot show through the API (it says so with an error), and what
    /// it was when Meta says (e.g. `edit`).
    Unsupported {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
        errors: Vec<whatsapp::ErrorDetail>,
    },
    /// An Instagram DM: text and/or attachments.
    InstagramMessage {
        text: Option<String>,
        attachments: Vec<instagram::Attachment>,
        quick_reply: Option<String>,
    },
    /// An Instagram button tap.
    Postback {
        title: Option<String>,
        payload: Option<String>,
    },
    /// A type we do not know yet, kept whole.
    Unknown {
        kind: String,
        raw: Value,
    },
}

impl MessageContent {
    /// A short line for the inbox's conversation list: the text (cut at 120 characters) or
    /// what kind of message it was.
    pub fn preview(&self) -> String {
        let text: Option<&str> = match self {
            Self::Text { body } => Some(body),
            Self::ButtonReply { title, .. } | Self::ListReply { title, .. } => Some(title),
            Self::TemplateButton { text, .. } => Some(text),
            Self::InstagramMessage { text: Some(text), .. } => Some(text),
            Self::Postback { title: Some(title), .. } => Some(title),
            _ => None,
        };
        match text {
            Some(text) => text.chars().take(120).collect(),
            None => match self {
                Self::Media { kind, .. } => format!("[{kind}]"),
                Self::Location { .. } => "[location]".into(),
                Self::Contacts { .. } => "[contacts]".into(),
                Self::FlowReply { .. } => "[flow reply]".into(),
                Self::Reaction { emoji, .. } => format!("[reaction {}]", emoji.as_deref().unwrap_or("removed")),
                Self::Order { .. } => "[order]".into(),
                Self::System { .. } => "[system]".into(),
                Self::InstagramMessage { .. } => "[attachment]".into(),
                Self::Unknown { kind, .. } => format!("[{kind}]"),
                _ => "[message]".into(),
            },
        }
    }
}

/// A customer's message to a business account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    pub channel: Channel,
    /// The business side: WhatsApp phone number id, or Instagram account id.
    pub account_id: AccountId,
    /// Meta's id: the wamid, or the Instagram mid.
    pub message_id: MessageId,
    /// The customer: WhatsApp id (phone digits) or Instagram-scoped id.
    pub contact_id: ContactId,
    pub profile_name: Option<String>,
    /// When the customer sent it, by Meta's clock.
    pub sent_at: DateTime<Utc>,
    /// Why `sent_at` is not Meta's timestamp as sent (see [`crate::meta::webhook::resolve_time`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_note: Option<String>,
    /// The message this one replies to.
    pub reply_to: Option<String>,
    pub content: MessageContent,
    /// The customer's business-scoped user id, which Meta adds for its username rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_user_id: Option<String>,
    /// The click-to-WhatsApp ad or post the customer came from: sent once, never again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<Box<whatsapp::Referral>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarded: bool,
    /// Forwarded through a chain of five or more chats.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frequently_forwarded: bool,
    /// What Meta reports it could not give us of this message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<whatsapp::ErrorDetail>,
    /// The customer's new identity, on an identity-change system message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Box<whatsapp::Identity>>,
    /// The message exactly as Meta sent it (JSON): whatever Meta adds that we do not read yet
    /// is kept, because Meta cannot be asked for a message again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_json: Option<String>,
}

impl InboundMessage {
    /// One conversation per business account and customer.
    pub fn conversation_id(&self) -> String {
        super::conversation_id(self.channel, &self.account_id, &self.contact_id)
    }
}

/// A status Meta reports for a message we sent: a WhatsApp status, or what Instagram says
/// instead (the echo of our send, the customer's read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub channel: Channel,
    pub account_id: AccountId,
    /// The wamid, or the Instagram mid: on Instagram the only link back to our send.
    pub message_id: MessageId,
    pub state: DeliveryState,
    pub at: DateTime<Utc>,
    /// Why `at` is not Meta's timestamp as sent (see [`crate::meta::webhook::resolve_time`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_note: Option<String>,
    pub recipient_id: String,
    /// The recipient's business-scoped user id, which Meta adds for its username rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_user_id: Option<String>,
    /// Our send job id, echoed from `biz_opaque_callback_data`; Instagram echoes nothing.
    pub job_id: Option<SendJobId>,
    pub error: Option<whatsapp::ErrorDetail>,
    pub pricing: Option<whatsapp::RawJson>,
    pub conversation: Option<whatsapp::RawJson>,
}

/// Something well-signed we cannot act on: kept with its raw JSON for inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnknownEvent {
    pub reason: String,
    pub account_id: Option<String>,
    pub raw: Value,
}

/// Meta's news about the business side of one WhatsApp Business Account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountEvent {
    pub waba_id: String,
    pub update: AccountUpdate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccountUpdate {
    /// `message_template_status_update`: Meta reviewed, paused or disabled a template.
    TemplateStatus { name: String, language: String, status: TemplateStatus, reason: Option<String> },
    /// `account_update`: Meta's decision about the account or one of its numbers (a ban, a
    /// violation, a restriction, a deletion); `phone_number` names the number when it is one.
    AccountStatus { phone_number: Option<String>, event: String, detail: Option<String> },
    /// `phone_number_quality_update`: a number's quality event and the messaging limit that
    /// follows (250, 2K, 10K, 100K unique customers in 24 h, or unlimited).
    NumberQuality { display_phone_number: String, event: String, messaging_limit: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
/// Boxed, so that a delivery's events (up to a thousand) are moved as pointers while they are
/// read, grouped and sorted.
pub enum WebhookEvent {
    Message(Box<InboundMessage>),
    Status(Box<StatusEvent>),
    Account(AccountEvent),
    Unknown(UnknownEvent),
}
