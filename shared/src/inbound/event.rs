//! A webhook body, parsed into the events we act on. Parsing is pure and allocation-light,
//! so it can be benchmarked on its own (signature + parse + routing is the hot path).

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::HashMap;

use super::status::DeliveryState;
use crate::meta::webhook::{Envelope, instagram, whatsapp};

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
    /// A message type Meta cannot show through the API (it says so with an error).
    Unsupported {
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

/// A customer's message to a business account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    pub channel: Channel,
    /// The business side: WhatsApp phone number id, or Instagram account id.
    pub account_id: String,
    /// Meta's id: the wamid, or the Instagram mid.
    pub message_id: String,
    /// The customer: WhatsApp id (phone digits) or Instagram-scoped id.
    pub contact_id: String,
    pub profile_name: Option<String>,
    /// When the customer sent it, by Meta's clock.
    pub sent_at: DateTime<Utc>,
    /// The message this one replies to.
    pub reply_to: Option<String>,
    pub content: MessageContent,
}

impl InboundMessage {
    /// One conversation per business account and customer.
    pub fn conversation_id(&self) -> String {
        format!("{}:{}:{}", self.channel.as_str(), self.account_id, self.contact_id)
    }
}

/// A status Meta reports for a message we sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub account_id: String,
    pub message_id: String,
    pub state: DeliveryState,
    pub at: DateTime<Utc>,
    pub recipient_id: String,
    /// Our send job id, echoed from `biz_opaque_callback_data`.
    pub job_id: Option<String>,
    pub error: Option<whatsapp::ErrorDetail>,
    pub pricing: Option<Value>,
    pub conversation: Option<Value>,
}

/// Something well-signed we cannot act on: kept with its raw JSON for inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnknownEvent {
    pub reason: String,
    pub account_id: Option<String>,
    pub raw: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WebhookEvent {
    Message(InboundMessage),
    Status(StatusEvent),
    Unknown(UnknownEvent),
}

/// A parsed webhook body.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Events(Vec<WebhookEvent>),
    /// Signed by Meta but not JSON we can read: the raw bytes must be kept, and the answer is
    /// still 200 (a 5xx would make Meta retry it for 7 days).
    Malformed {
        error: String,
    },
}

pub fn parse_delivery(body: &[u8]) -> Delivery {
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(e) => e,
        Err(e) => return Delivery::Malformed { error: e.to_string() },
    };
    let mut events = Vec::new();
    match envelope.object.as_str() {
        "whatsapp_business_account" => envelope.entry.iter().for_each(|e| whatsapp_entry(e, &mut events)),
        "instagram" => envelope.entry.iter().for_each(|e| instagram_entry(e, &mut events)),
        other => {
            let raw = Value::Array(envelope.entry.iter().map(|e| to_value(e)).collect());
            events.push(unknown(format!("unknown object {other:?}"), None, raw));
        }
    }
    Delivery::Events(events)
}

fn unknown(reason: String, account_id: Option<String>, raw: Value) -> WebhookEvent {
    WebhookEvent::Unknown(UnknownEvent { reason, account_id, raw })
}

fn typed<T: DeserializeOwned>(raw: &RawValue) -> Result<T, String> {
    serde_json::from_str(raw.get()).map_err(|e| e.to_string())
}

/// Raw JSON as a value, for the (rare) events kept whole. It parsed once already, so it parses.
fn to_value(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

fn from_seconds(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

fn whatsapp_entry(raw: &RawValue, events: &mut Vec<WebhookEvent>) {
    let entry: whatsapp::Entry = match typed(raw) {
        Ok(e) => e,
        Err(e) => return events.push(unknown(format!("unreadable WhatsApp entry: {e}"), None, to_value(raw))),
    };
    for change in entry.changes {
        if change.field != "messages" {
            let reason = format!("unhandled WhatsApp field {:?}", change.field);
            events.push(unknown(reason, Some(entry.id.clone()), to_value(&change.value)));
            continue;
        }
        let value: whatsapp::MessagesValue = match typed(&change.value) {
            Ok(v) => v,
            Err(e) => {
                let reason = format!("unreadable messages value: {e}");
                events.push(unknown(reason, Some(entry.id.clone()), to_value(&change.value)));
                continue;
            }
        };
        let account_id = value.metadata.phone_number_id;
        // Meta lists each sender once in `contacts`; a batch can hold hundreds of senders.
        let names: HashMap<&str, &str> = value
            .contacts
            .iter()
            .filter_map(|c| Some((c.wa_id.as_str(), c.profile.as_ref()?.name.as_deref()?)))
            .collect();
        for raw_message in &value.messages {
            let message: whatsapp::Message = match typed(raw_message) {
                Ok(m) => m,
                Err(e) => {
                    let reason = format!("unreadable WhatsApp message: {e}");
                    events.push(unknown(reason, Some(account_id.clone()), to_value(raw_message)));
                    continue;
                }
            };
            let profile_name = names.get(message.from.as_str()).map(|n| (*n).to_owned());
            events.push(WebhookEvent::Message(whatsapp_message(&account_id, message, profile_name, raw_message)));
        }
        for status in value.statuses {
            events.push(whatsapp_status(&account_id, status));
        }
    }
}

fn whatsapp_message(
    account_id: &str,
    message: whatsapp::Message,
    profile_name: Option<String>,
    raw: &RawValue,
) -> InboundMessage {
    let message_id = message.id.clone();
    let contact_id = message.from.clone();
    let sent_at = from_seconds(message.timestamp);
    let reply_to = message.context.as_ref().and_then(|c| c.id.clone());
    let kind = message.kind.clone();
    let content = match (kind.as_str(), message) {
        ("text", whatsapp::Message { text: Some(t), .. }) => MessageContent::Text { body: t.body },
        ("image", whatsapp::Message { image: Some(m), .. })
        | ("audio", whatsapp::Message { audio: Some(m), .. })
        | ("video", whatsapp::Message { video: Some(m), .. })
        | ("document", whatsapp::Message { document: Some(m), .. })
        | ("sticker", whatsapp::Message { sticker: Some(m), .. }) => {
            MessageContent::Media { kind: kind.clone(), media: m }
        }
        ("location", whatsapp::Message { location: Some(l), .. }) => MessageContent::Location { location: l },
        ("contacts", whatsapp::Message { contacts: Some(c), .. }) => MessageContent::Contacts { contacts: c },
        ("interactive", whatsapp::Message { interactive: Some(i), .. }) => interactive(i, to_value(raw)),
        ("button", whatsapp::Message { button: Some(b), .. }) => {
            MessageContent::TemplateButton { payload: b.payload, text: b.text }
        }
        ("reaction", whatsapp::Message { reaction: Some(r), .. }) => {
            MessageContent::Reaction { message_id: r.message_id, emoji: r.emoji }
        }
        ("order", whatsapp::Message { order: Some(o), .. }) => MessageContent::Order { order: o },
        ("system", whatsapp::Message { system: Some(s), .. }) => MessageContent::System { system: s },
        ("unsupported", m) => MessageContent::Unsupported { errors: m.errors },
        _ => MessageContent::Unknown { kind, raw: to_value(raw) },
    };
    InboundMessage {
        channel: Channel::WhatsApp,
        account_id: account_id.to_owned(),
        message_id,
        contact_id,
        profile_name,
        sent_at,
        reply_to,
        content,
    }
}

fn interactive(reply: whatsapp::Interactive, raw: Value) -> MessageContent {
    let kind = reply.kind.clone();
    match (kind.as_str(), reply) {
        ("button_reply", whatsapp::Interactive { button_reply: Some(b), .. }) => {
            MessageContent::ButtonReply { id: b.id, title: b.title }
        }
        ("list_reply", whatsapp::Interactive { list_reply: Some(l), .. }) => {
            MessageContent::ListReply { id: l.id, title: l.title, description: l.description }
        }
        ("nfm_reply", whatsapp::Interactive { nfm_reply: Some(f), .. }) => {
            // The answers arrive as JSON inside a string; an unreadable one is kept as text.
            let response = serde_json::from_str(&f.response_json).unwrap_or(Value::String(f.response_json));
            MessageContent::FlowReply { name: f.name, response }
        }
        (kind, _) => MessageContent::Unknown { kind: format!("interactive/{kind}"), raw },
    }
}

fn whatsapp_status(account_id: &str, status: whatsapp::Status) -> WebhookEvent {
    let Some(state) = DeliveryState::parse(&status.status) else {
        let reason = format!("unknown status {:?}", status.status);
        let raw = serde_json::json!({ "id": status.id, "status": status.status, "recipient_id": status.recipient_id });
        return unknown(reason, Some(account_id.to_owned()), raw);
    };
    WebhookEvent::Status(StatusEvent {
        account_id: account_id.to_owned(),
        message_id: status.id,
        state,
        at: from_seconds(status.timestamp),
        recipient_id: status.recipient_id,
        job_id: status.biz_opaque_callback_data.filter(|d| !d.is_empty()),
        error: status.errors.into_iter().next(),
        pricing: status.pricing,
        conversation: status.conversation,
    })
}

fn instagram_entry(raw: &RawValue, events: &mut Vec<WebhookEvent>) {
    let entry: instagram::Entry = match typed(raw) {
        Ok(e) => e,
        Err(e) => return events.push(unknown(format!("unreadable Instagram entry: {e}"), None, to_value(raw))),
    };
    if entry.messaging.is_empty() {
        events.push(unknown("Instagram entry without messaging events".into(), Some(entry.id.clone()), to_value(raw)));
        return;
    }
    for item in &entry.messaging {
        let event: instagram::Messaging = match typed(item) {
            Ok(e) => e,
            Err(e) => {
                events.push(unknown(
                    format!("unreadable Instagram event: {e}"),
                    Some(entry.id.clone()),
                    to_value(item),
                ));
                continue;
            }
        };
        let sent_at = DateTime::from_timestamp_millis(event.timestamp).unwrap_or_default();
        let (message_id, content, reply_to) = match (event.message, event.postback) {
            // Our own sends come back as echoes: they are not the customer's messages.
            (Some(message), _) if message.is_echo => continue,
            (Some(message), _) => {
                let reply_to = message.reply_to.as_ref().and_then(|r| r["mid"].as_str()).map(str::to_owned);
                let content = MessageContent::InstagramMessage {
                    text: message.text,
                    attachments: message.attachments,
                    quick_reply: message.quick_reply.map(|q| q.payload),
                };
                (message.mid, content, reply_to)
            }
            (None, Some(postback)) => {
                let Some(mid) = postback.mid else {
                    events.push(unknown(
                        "Instagram postback without mid".into(),
                        Some(entry.id.clone()),
                        to_value(item),
                    ));
                    continue;
                };
                (mid, MessageContent::Postback { title: postback.title, payload: postback.payload }, None)
            }
            (None, None) => {
                events.push(unknown(
                    "unhandled Instagram messaging event".into(),
                    Some(entry.id.clone()),
                    to_value(item),
                ));
                continue;
            }
        };
        events.push(WebhookEvent::Message(InboundMessage {
            channel: Channel::Instagram,
            account_id: entry.id.clone(),
            message_id,
            contact_id: event.sender.id,
            profile_name: None,
            sent_at,
            reply_to,
            content,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! sample {
        ($name:literal) => {
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/meta/", $name))
        };
    }

    fn events(body: &[u8]) -> Vec<WebhookEvent> {
        match parse_delivery(body) {
            Delivery::Events(events) => events,
            Delivery::Malformed { error } => panic!("unexpectedly malformed: {error}"),
        }
    }

    fn only_message(body: &[u8]) -> InboundMessage {
        match events(body).as_slice() {
            [WebhookEvent::Message(m)] => m.clone(),
            other => panic!("expected one message, got {other:?}"),
        }
    }

    #[test]
    fn a_text_message_carries_sender_profile_and_metas_timestamp() {
        let m = only_message(sample!("whatsapp-text.json"));
        assert_eq!(m.channel, Channel::WhatsApp);
        assert_eq!(m.account_id, "106540352242922");
        assert_eq!(m.contact_id, "16505551234");
        assert_eq!(m.profile_name.as_deref(), Some("Kerry Fisher"));
        assert_eq!(m.sent_at.timestamp(), 1_795_680_000);
        assert_eq!(m.content, MessageContent::Text { body: "Hi! Is my order on its way?".into() });
        assert_eq!(m.conversation_id(), "wa:106540352242922:16505551234");
    }

    #[test]
    fn a_reply_keeps_the_message_it_replies_to() {
        let m = only_message(sample!("whatsapp-text-reply.json"));
        assert_eq!(m.reply_to.as_deref(), Some("wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"));
    }

    #[test]
    fn every_documented_message_type_has_its_own_content() {
        let cases: [(&[u8], &str); 16] = [
            (sample!("whatsapp-image.json"), "media"),
            (sample!("whatsapp-audio.json"), "media"),
            (sample!("whatsapp-video.json"), "media"),
            (sample!("whatsapp-document.json"), "media"),
            (sample!("whatsapp-sticker.json"), "media"),
            (sample!("whatsapp-location.json"), "location"),
            (sample!("whatsapp-contacts.json"), "contacts"),
            (sample!("whatsapp-interactive-button-reply.json"), "button_reply"),
            (sample!("whatsapp-interactive-list-reply.json"), "list_reply"),
            (sample!("whatsapp-interactive-nfm-reply.json"), "flow_reply"),
            (sample!("whatsapp-button.json"), "template_button"),
            (sample!("whatsapp-reaction.json"), "reaction"),
            (sample!("whatsapp-order.json"), "order"),
            (sample!("whatsapp-system.json"), "system"),
            (sample!("whatsapp-unsupported.json"), "unsupported"),
            (sample!("whatsapp-unknown-type.json"), "unknown"),
        ];
        for (body, expected) in cases {
            let content = serde_json::to_value(only_message(body).content).unwrap();
            assert_eq!(content["type"], expected, "{content}");
        }
    }

    #[test]
    fn a_flow_reply_carries_its_answers_as_json() {
        let m = only_message(sample!("whatsapp-interactive-nfm-reply.json"));
        let MessageContent::FlowReply { response, .. } = m.content else { panic!("not a flow reply") };
        assert_eq!(response["appointment_day"], "2026-12-01");
    }

    #[test]
    fn an_unknown_message_type_is_kept_whole() {
        let m = only_message(sample!("whatsapp-unknown-type.json"));
        let MessageContent::Unknown { kind, raw } = m.content else { panic!("not unknown") };
        assert_eq!(kind, "hologram");
        assert_eq!(raw["hologram"]["depth"], 3);
    }

    #[test]
    fn statuses_carry_our_job_id_and_metas_error() {
        let all = events(sample!("whatsapp-statuses-sent-delivered.json"));
        let [WebhookEvent::Status(sent), WebhookEvent::Status(delivered)] = all.as_slice() else { panic!("{all:?}") };
        assert_eq!((sent.state, delivered.state), (DeliveryState::Sent, DeliveryState::Delivered));
        assert_eq!(sent.job_id.as_deref(), Some("job-42"));
        assert!(sent.pricing.is_some() && sent.conversation.is_some());

        let failed = events(sample!("whatsapp-status-failed-131049.json"));
        let [WebhookEvent::Status(failed)] = failed.as_slice() else { panic!("{failed:?}") };
        assert_eq!(failed.state, DeliveryState::Failed);
        assert_eq!(failed.error.as_ref().map(|e| e.code), Some(131049));
    }

    #[test]
    fn instagram_echoes_are_not_inbound_messages() {
        let all = events(sample!("instagram-dm.json"));
        let ids: Vec<_> = all
            .iter()
            .map(|e| match e {
                WebhookEvent::Message(m) => (m.channel, serde_json::to_value(&m.content).unwrap()["type"].clone()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(ids.len(), 3, "text, attachment and postback; the echo is dropped");
        assert!(ids.iter().all(|(c, _)| *c == Channel::Instagram));
        assert_eq!(ids[2].1, "postback");
    }

    #[test]
    fn an_unhandled_field_is_kept_as_an_unknown_event() {
        let all = events(sample!("whatsapp-unknown-field.json"));
        let [WebhookEvent::Unknown(u)] = all.as_slice() else { panic!("{all:?}") };
        assert!(u.reason.contains("message_template_status_update"));
        assert_eq!(u.raw["message_template_name"], "order_update");
    }

    #[test]
    fn an_unknown_object_is_kept_as_an_unknown_event() {
        let all = events(br#"{"object":"page","entry":[{"id":"1"}]}"#);
        assert!(matches!(all.as_slice(), [WebhookEvent::Unknown(u)] if u.reason.contains("page")));
    }

    #[test]
    fn a_batch_across_two_numbers_yields_each_numbers_events() {
        let accounts: Vec<_> = events(sample!("whatsapp-batch-two-numbers.json"))
            .iter()
            .map(|e| match e {
                WebhookEvent::Message(m) => m.account_id.clone(),
                WebhookEvent::Status(s) => s.account_id.clone(),
                WebhookEvent::Unknown(_) => panic!("unknown"),
            })
            .collect();
        assert_eq!(accounts, ["106540352242922", "106540352242923", "106540352242923"]);
    }

    #[test]
    fn malformed_json_is_reported_not_panicked_on() {
        assert!(matches!(parse_delivery(sample!("malformed.txt")), Delivery::Malformed { .. }));
    }

    #[test]
    fn fields_meta_adds_later_are_ignored() {
        let mut body: Value = serde_json::from_slice(sample!("whatsapp-text.json")).unwrap();
        body["entry"][0]["changes"][0]["value"]["messages"][0]["brand_new_field"] = serde_json::json!({"x": 1});
        body["entry"][0]["brand_new_entry_field"] = serde_json::json!(true);
        let m = only_message(&serde_json::to_vec(&body).unwrap());
        assert!(matches!(m.content, MessageContent::Text { .. }));
    }
}
