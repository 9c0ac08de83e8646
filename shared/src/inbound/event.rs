//! A webhook body, parsed into the events we act on. Parsing is pure and allocation-light,
//! so it can be benchmarked on its own (signature + parse + routing is the hot path).
//!
//! The hot path reads the body once down to its elements (entries, changes, messages,
//! statuses) as slices of the body (`&RawValue`, `Cow<str>`: nothing is copied), then each
//! element once into its event. Whatever that fast path does not handle — a shape it does not
//! expect, an id that is not valid, keys we do not read, an element that does not parse — is
//! handed to the general path ([`meta::webhook`](crate::meta::webhook)'s owned types), which
//! decides what happens to it: so the events (and the reasons of the ones kept as unknown) are
//! the same either way, only faster when Meta's payload is what it documents.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;

use crate::domain::{
    AccountEvent, AccountId, AccountUpdate, Channel, ContactId, DeliveryState, InboundMessage, MessageContent,
    MessageId, SendJobId, StatusEvent, TemplateStatus, UnknownEvent, WebhookEvent,
};
use crate::meta::webhook::{Envelope, MetaTimestamp, TimeUnit, instagram, resolve_time, whatsapp};

mod one_pass;

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

/// [`parse_delivery_at`] now, by the system clock.
pub fn parse_delivery(body: &[u8]) -> Delivery {
    parse_delivery_at(body, Utc::now())
}

/// Parses a body received at `received_at`, the time Meta's timestamps are checked against.
/// Every element of the body becomes an event: what cannot be read or acted on is an
/// [`UnknownEvent`] with its reason and raw JSON, on its own, and never costs the elements
/// around it.
pub fn parse_delivery_at(body: &[u8], received_at: DateTime<Utc>) -> Delivery {
    parse_delivery_with(body, received_at, Path::Fast)
}

/// Whether the fast path may be tried; the general path alone is what it must agree with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Fast,
    #[cfg_attr(not(test), allow(dead_code))]
    General,
}

fn parse_delivery_with(body: &[u8], received_at: DateTime<Utc>, path: Path) -> Delivery {
    if path == Path::Fast
        && let Some(events) = whatsapp_delivery_fast(body, received_at)
    {
        return Delivery::Events(events);
    }
    // The envelope borrowed from the body; the owned one decides (and words the error) when
    // the borrowed one cannot be read.
    let owned: Envelope;
    let (object, entries): (Cow<str>, Vec<&RawValue>) = match serde_json::from_slice::<EnvelopeRef>(body) {
        Ok(envelope) => (envelope.object, envelope.entry),
        Err(_) => match serde_json::from_slice::<Envelope>(body) {
            Ok(envelope) => {
                owned = envelope;
                (Cow::Borrowed(owned.object.as_str()), owned.entry.iter().map(|e| &**e).collect())
            }
            Err(e) => return Delivery::Malformed { error: e.to_string() },
        },
    };
    let mut events = Vec::new();
    match &*object {
        "whatsapp_business_account" => {
            entries.iter().for_each(|e| whatsapp_entry(e, received_at, path, &mut events));
        }
        "instagram" => entries.iter().for_each(|e| instagram_entry(e, received_at, &mut events)),
        other => {
            let raw = Value::Array(entries.iter().map(|e| to_value(e)).collect());
            events.push(unknown(format!("unknown object {other:?}"), None, raw));
        }
    }
    Delivery::Events(events)
}

/// A WhatsApp delivery whose changes are all `messages` changes as Meta documents them, read
/// in one pass down to its elements ([`one_pass`]); `None` for anything else, which is read
/// level by level.
fn whatsapp_delivery_fast(body: &[u8], received_at: DateTime<Utc>) -> Option<Vec<WebhookEvent>> {
    // Checked as UTF-8 once, in one pass, rather than string by string as `from_slice` does.
    one_pass::whatsapp_delivery(std::str::from_utf8(body).ok()?, received_at)
}

// The fast path's views of Meta's payload, borrowed from the body. Each accepts exactly what
// the owned type it stands for accepts (same fields, same defaults, unknown keys ignored,
// a repeated field refused); where it cannot tell, it refuses and the owned type decides.

#[derive(Deserialize)]
struct EnvelopeRef<'a> {
    #[serde(borrow)]
    object: Cow<'a, str>,
    #[serde(default, borrow)]
    entry: Vec<&'a RawValue>,
}

/// [`whatsapp::Entry`], borrowed.
#[derive(Deserialize)]
struct EntryRef<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(default, borrow)]
    changes: Vec<ChangeRef<'a>>,
}

/// [`whatsapp::Change`], borrowed.
#[derive(Deserialize)]
struct ChangeRef<'a> {
    #[serde(borrow)]
    field: Cow<'a, str>,
    #[serde(borrow)]
    value: &'a RawValue,
}

/// A key of a JSON object, borrowed unless it has escapes.
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

/// [`whatsapp::Metadata`], borrowed.
#[derive(Deserialize)]
struct MetadataRef<'a> {
    #[serde(borrow, rename = "display_phone_number")]
    _display_phone_number: Cow<'a, str>,
    #[serde(borrow)]
    phone_number_id: Cow<'a, str>,
}

/// [`whatsapp::MessagesValue`], borrowed; `unhandled` only says whether there were other keys
/// (the general path keeps them). The statuses raw (`&RawValue`), or read in the same pass
/// ([`StatusRef`]) when the whole delivery is.
struct MessagesValueRef<'a, S> {
    metadata: MetadataRef<'a>,
    contacts: Vec<&'a RawValue>,
    messages: Vec<&'a RawValue>,
    statuses: Vec<S>,
    unhandled: bool,
}

impl<'de: 'a, 'a, S: Deserialize<'de>> Deserialize<'de> for MessagesValueRef<'a, S> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<'a, S>(std::marker::PhantomData<(&'a (), S)>);
        impl<'de: 'a, 'a, S: Deserialize<'de>> Visitor<'de> for Fields<'a, S> {
            type Value = MessagesValueRef<'a, S>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a messages change value")
            }

            // The keys `whatsapp::MessagesValue` reads; any other key, or one of these
            // repeated, is left to it.
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut metadata = None;
                let (mut contacts, mut messages, mut statuses, mut unhandled) = (None, None, None, false);
                fn once<T>(slot: &mut Option<T>, value: T, unhandled: &mut bool) {
                    *unhandled |= slot.replace(value).is_some();
                }
                while let Some(Key(key)) = map.next_key::<Key>()? {
                    match &*key {
                        "metadata" => once(&mut metadata, map.next_value()?, &mut unhandled),
                        "contacts" => once(&mut contacts, map.next_value()?, &mut unhandled),
                        "messages" => once(&mut messages, map.next_value()?, &mut unhandled),
                        "statuses" => once(&mut statuses, map.next_value()?, &mut unhandled),
                        "messaging_product" => {
                            map.next_value::<IgnoredAny>()?;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            unhandled = true;
                        }
                    }
                }
                let (contacts, messages, statuses) =
                    (contacts.unwrap_or_default(), messages.unwrap_or_default(), statuses.unwrap_or_default());
                let metadata = metadata.ok_or_else(|| de::Error::missing_field("metadata"))?;
                Ok(MessagesValueRef { metadata, contacts, messages, statuses, unhandled })
            }
        }
        deserializer.deserialize_map(Fields(std::marker::PhantomData))
    }
}

/// [`MetaTimestamp`] read in place: an integer, or a string (parsed as `MetaTimestamp` parses
/// it). Anything else (a fraction, a huge number, an object) is refused, for the general path.
struct TimestampRef(MetaTimestamp);

impl<'de> Deserialize<'de> for TimestampRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Time;
        impl<'de> Visitor<'de> for Time {
            type Value = TimestampRef;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer timestamp, or one in a string")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TimestampRef, E> {
                Ok(TimestampRef(MetaTimestamp::Integer(v)))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TimestampRef, E> {
                i64::try_from(v).map(|v| TimestampRef(MetaTimestamp::Integer(v))).map_err(E::custom)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<TimestampRef, E> {
                Ok(TimestampRef(
                    text.trim()
                        .parse()
                        .map_or_else(|_| MetaTimestamp::Unreadable(text.to_owned()), MetaTimestamp::Integer),
                ))
            }
        }
        deserializer.deserialize_any(Time)
    }
}

/// [`whatsapp::Status`], borrowed.
#[derive(Deserialize)]
struct StatusRef<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(default)]
    timestamp: Option<TimestampRef>,
    #[serde(borrow)]
    recipient_id: Cow<'a, str>,
    #[serde(default, borrow)]
    recipient_user_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    biz_opaque_callback_data: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    conversation: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pricing: Option<&'a RawValue>,
    #[serde(default)]
    errors: Vec<whatsapp::ErrorDetail>,
}

/// [`whatsapp::Contact`], borrowed.
#[derive(Deserialize)]
struct ContactRef<'a> {
    #[serde(default, borrow)]
    profile: Option<ProfileRef<'a>>,
    #[serde(borrow)]
    wa_id: Cow<'a, str>,
    #[serde(default, borrow)]
    user_id: Option<Cow<'a, str>>,
}

/// [`whatsapp::Profile`], borrowed.
#[derive(Deserialize)]
struct ProfileRef<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "username")]
    _username: Option<Cow<'a, str>>,
}

/// [`whatsapp::Message`], its ids and type borrowed; the blocks are the owned types, which
/// the event keeps, the large ones boxed so that the view stays small (it is moved once per
/// message). The blocks the general path reads leniently (`meta::webhook::lenient`: a block
/// not shaped as documented is dropped, the message kept) are read here typed, in place: a
/// block that reads so reads the same through the general path's `Value`, at the same nesting
/// depth; one that does not fails the view, and the general path decides.
#[derive(Deserialize)]
struct MessageRef<'a> {
    #[serde(borrow)]
    from: Cow<'a, str>,
    #[serde(default, borrow)]
    from_user_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(default)]
    timestamp: Option<TimestampRef>,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    context: Option<whatsapp::Context>,
    #[serde(default)]
    text: Option<whatsapp::Text>,
    #[serde(default)]
    image: Option<Box<whatsapp::Media>>,
    #[serde(default)]
    audio: Option<Box<whatsapp::Media>>,
    #[serde(default)]
    video: Option<Box<whatsapp::Media>>,
    #[serde(default)]
    document: Option<Box<whatsapp::Media>>,
    #[serde(default)]
    sticker: Option<Box<whatsapp::Media>>,
    #[serde(default)]
    location: Option<Box<whatsapp::Location>>,
    #[serde(default)]
    contacts: Option<Vec<Value>>,
    #[serde(default)]
    interactive: Option<Box<whatsapp::Interactive>>,
    #[serde(default)]
    button: Option<whatsapp::Button>,
    #[serde(default)]
    reaction: Option<whatsapp::Reaction>,
    #[serde(default)]
    order: Option<Box<whatsapp::Order>>,
    #[serde(default)]
    system: Option<Box<whatsapp::System>>,
    #[serde(default)]
    unsupported: Option<whatsapp::Unsupported>,
    #[serde(default)]
    referral: Option<Box<whatsapp::Referral>>,
    #[serde(default)]
    identity: Option<Box<whatsapp::Identity>>,
    /// `null` reads as none, as the general path's lenient read makes it.
    #[serde(default)]
    errors: Option<Vec<whatsapp::ErrorDetail>>,
}

fn unknown(reason: String, account_id: Option<String>, raw: Value) -> WebhookEvent {
    WebhookEvent::Unknown(UnknownEvent { reason, account_id, raw })
}

fn typed<T: DeserializeOwned>(raw: &RawValue) -> Result<T, String> {
    serde_json::from_str(raw.get()).map_err(|e| e.to_string())
}

/// Raw JSON as a value, for the (rare) events kept whole. It parsed once already, so it parses
/// (but for nesting beyond serde_json's limit: then `null`).
fn to_value(raw: &RawValue) -> Value {
    text_value(raw.get())
}

/// [`to_value`] of JSON text.
fn text_value(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or(Value::Null)
}

/// A change about the WABA itself (a template's review, a number's quality); anything else is
/// kept whole with its field name.
fn account_event(waba_id: &str, field: &str, raw: &RawValue) -> WebhookEvent {
    let value = to_value(raw);
    let text = |key: &str| value[key].as_str().filter(|v| !v.is_empty()).map(str::to_owned);
    let update = match field {
        "message_template_status_update" => match (text("message_template_name"), text("message_template_language")) {
            (Some(name), Some(language)) => Some(AccountUpdate::TemplateStatus {
                name,
                language,
                status: serde_json::from_value(value["event"].clone()).unwrap_or(TemplateStatus::Other),
                reason: text("reason").filter(|r| r != "NONE"),
            }),
            _ => None,
        },
        "account_update" => text("event").map(|event| AccountUpdate::AccountStatus {
            phone_number: text("phone_number"),
            event,
            detail: ["ban_info", "violation_info", "restriction_info"]
                .iter()
                .find_map(|key| value.get(*key).filter(|v| !v.is_null()).map(ToString::to_string)),
        }),
        "phone_number_quality_update" => {
            text("display_phone_number").map(|display_phone_number| AccountUpdate::NumberQuality {
                display_phone_number,
                event: text("event").unwrap_or_default(),
                messaging_limit: text("current_limit").or_else(|| text("messaging_limit_tier")),
            })
        }
        _ => None,
    };
    match update {
        Some(update) => WebhookEvent::Account(AccountEvent { waba_id: waba_id.to_owned(), update }),
        None => unknown(format!("unhandled WhatsApp field {field:?}"), Some(waba_id.to_owned()), value),
    }
}

fn whatsapp_entry(raw: &RawValue, received_at: DateTime<Utc>, path: Path, events: &mut Vec<WebhookEvent>) {
    let owned: whatsapp::Entry;
    let (id, changes): (Cow<str>, Vec<(Cow<str>, &RawValue)>) = match serde_json::from_str::<EntryRef>(raw.get()) {
        Ok(entry) => (entry.id, entry.changes.into_iter().map(|c| (c.field, c.value)).collect()),
        Err(_) => match typed::<whatsapp::Entry>(raw) {
            Ok(entry) => {
                owned = entry;
                let changes = owned.changes.iter().map(|c| (Cow::Borrowed(c.field.as_str()), &*c.value)).collect();
                (Cow::Borrowed(owned.id.as_str()), changes)
            }
            Err(e) => return events.push(unknown(format!("unreadable WhatsApp entry: {e}"), None, to_value(raw))),
        },
    };
    for (field, value) in changes {
        if field != "messages" {
            events.push(account_event(&id, &field, value));
        } else if path == Path::General || !messages_change_fast(value, received_at, events) {
            messages_change(&id, value, received_at, path, events);
        }
    }
}

/// A `messages` change as Meta documents it (metadata with a valid number id, messages or
/// statuses, no other keys), read in place; `false`, with nothing done, for anything else.
fn messages_change_fast(raw: &RawValue, received_at: DateTime<Utc>, events: &mut Vec<WebhookEvent>) -> bool {
    let Ok(value) = serde_json::from_str::<MessagesValueRef<&RawValue>>(raw.get()) else { return false };
    if value.unhandled || (value.messages.is_empty() && value.statuses.is_empty()) {
        return false;
    }
    let Ok(account_id) = AccountId::parse(value.metadata.phone_number_id.into_owned()) else { return false };
    let (contacts, messages, statuses) = (value.contacts, value.messages, value.statuses);
    messages_change_elements(&account_id, &contacts, messages, statuses, received_at, Path::Fast, events);
    true
}

/// The elements of a `messages` change, each on its own: contacts, then messages, then statuses.
fn messages_change_elements(
    account_id: &AccountId,
    contacts: &[&RawValue],
    messages: Vec<&RawValue>,
    statuses: Vec<&RawValue>,
    received_at: DateTime<Utc>,
    path: Path,
    events: &mut Vec<WebhookEvent>,
) {
    events.reserve(messages.len() + statuses.len());
    let contacts = whatsapp_contacts(account_id, contacts, path, events);
    for raw_message in messages {
        events.push(whatsapp_message_event(account_id, raw_message, &contacts, received_at, path));
    }
    for raw_status in statuses {
        events.push(whatsapp_status(account_id, raw_status, received_at, path));
    }
}

/// The general path of a `messages` change: whatever its shape, every element is kept.
fn messages_change(
    entry_id: &str,
    raw: &RawValue,
    received_at: DateTime<Utc>,
    path: Path,
    events: &mut Vec<WebhookEvent>,
) {
    let value: whatsapp::MessagesValue = match typed(raw) {
        Ok(v) => v,
        Err(e) => {
            let reason = format!("unreadable messages value: {e}");
            return events.push(unknown(reason, Some(entry_id.to_string()), to_value(raw)));
        }
    };
    let account_id = value.metadata.phone_number_id.clone();
    if value.messages.is_empty() && value.statuses.is_empty() {
        // Only `errors` (Meta reporting a problem with the number), only contacts, or a
        // shape Meta has not documented yet: nothing to act on, and nothing to drop.
        let keys: Vec<&str> = value.unhandled.iter().map(|(key, _)| key.as_str()).collect();
        let reason = format!("messages change without messages or statuses (other keys: {keys:?})");
        return events.push(unknown(reason, Some(account_id.to_string()), to_value(raw)));
    }
    if !value.unhandled.is_empty() {
        // E.g. `errors` next to the messages: kept on their own, the messages are read below.
        let kept: serde_json::Map<String, Value> =
            value.unhandled.iter().map(|(key, raw)| (key.clone(), to_value(raw))).collect();
        let reason = format!("messages change with keys we do not handle: {:?}", kept.keys().collect::<Vec<_>>());
        events.push(unknown(reason, Some(account_id.to_string()), Value::Object(kept)));
    }
    let contacts: Vec<&RawValue> = value.contacts.iter().map(|c| &**c).collect();
    let messages = value.messages.iter().map(|m| &**m).collect();
    let statuses = value.statuses.iter().map(|s| &**s).collect();
    messages_change_elements(&account_id, &contacts, messages, statuses, received_at, path, events);
}

/// What a message takes from its sender's entry in `contacts`.
struct ContactInfo<'a> {
    name: Option<Cow<'a, str>>,
    user_id: Option<Cow<'a, str>>,
}

/// The senders of a change, by WhatsApp id.
type Contacts<'a> = HashMap<Cow<'a, str>, ContactInfo<'a>>;

/// Meta lists each sender once in `contacts`; a batch can hold hundreds of senders. A contact
/// that cannot be read is kept on its own.
fn whatsapp_contacts<'a>(
    account_id: &AccountId,
    raw_contacts: &[&'a RawValue],
    path: Path,
    events: &mut Vec<WebhookEvent>,
) -> Contacts<'a> {
    let mut contacts: Contacts<'a> = HashMap::with_capacity(raw_contacts.len());
    for raw_contact in raw_contacts {
        if path == Path::Fast
            && let Ok(contact) = serde_json::from_str::<ContactRef>(raw_contact.get())
            && ContactId::parse(&*contact.wa_id).is_ok()
        {
            let name = contact.profile.and_then(|p| p.name);
            contacts.insert(contact.wa_id, ContactInfo { name, user_id: contact.user_id });
            continue;
        }
        match typed::<whatsapp::Contact>(raw_contact) {
            Ok(contact) => {
                let name = contact.profile.and_then(|p| p.name).map(Cow::Owned);
                let info = ContactInfo { name, user_id: contact.user_id.map(Cow::Owned) };
                contacts.insert(Cow::Owned(contact.wa_id.into()), info);
            }
            Err(e) => {
                let reason = format!("unreadable WhatsApp contact: {e}");
                events.push(unknown(reason, Some(account_id.to_string()), to_value(raw_contact)));
            }
        }
    }
    contacts
}

fn whatsapp_message_event(
    account_id: &AccountId,
    raw: &RawValue,
    contacts: &Contacts,
    received_at: DateTime<Utc>,
    path: Path,
) -> WebhookEvent {
    if path == Path::Fast
        && let Some(message) = whatsapp_message_fast(account_id, raw, contacts, received_at)
    {
        return WebhookEvent::Message(Box::new(message));
    }
    match typed::<whatsapp::Message>(raw) {
        Ok(message) => {
            WebhookEvent::Message(Box::new(whatsapp_message(account_id, message, contacts, raw, received_at)))
        }
        Err(e) => {
            let reason = format!("unreadable WhatsApp message: {e}");
            unknown(reason, Some(account_id.to_string()), to_value(raw))
        }
    }
}

/// The message [`whatsapp_message`] makes of the general path's [`whatsapp::Message`], read
/// from a borrowed view; `None`, for the general path to decide, when the view does not read
/// or an id is not valid.
fn whatsapp_message_fast(
    account_id: &AccountId,
    raw: &RawValue,
    contacts: &Contacts,
    received_at: DateTime<Utc>,
) -> Option<InboundMessage> {
    message_from_view(account_id, serde_json::from_str(raw.get()).ok()?, raw.get(), contacts, received_at)
}

/// The message of a view read from `raw` (the message's text); `None` as for
/// [`whatsapp_message_fast`].
fn message_from_view(
    account_id: &AccountId,
    m: MessageRef,
    raw: &str,
    contacts: &Contacts,
    received_at: DateTime<Utc>,
) -> Option<InboundMessage> {
    let has_lenient_block = m.context.is_some()
        || m.referral.is_some()
        || m.identity.is_some()
        || m.errors.is_some()
        || m.unsupported.is_some();
    if general_path_reads_otherwise(raw, has_lenient_block) {
        return None;
    }
    let errors = m.errors.unwrap_or_default();
    let kind = m.kind;
    let media = match &*kind {
        "image" => m.image,
        "audio" => m.audio,
        "video" => m.video,
        "document" => m.document,
        "sticker" => m.sticker,
        _ => None,
    };
    let content = match &*kind {
        "text" => m.text.map(|t| MessageContent::Text { body: t.body }),
        "image" | "audio" | "video" | "document" | "sticker" => {
            media.map(|m| MessageContent::Media { kind: kind.clone().into_owned(), media: *m })
        }
        "location" => m.location.map(|l| MessageContent::Location { location: *l }),
        "contacts" => m.contacts.map(|c| MessageContent::Contacts { contacts: c }),
        "interactive" => m.interactive.map(|i| interactive(*i, raw)),
        "button" => m.button.map(|b| MessageContent::TemplateButton { payload: b.payload, text: b.text }),
        "reaction" => m.reaction.map(|r| MessageContent::Reaction { message_id: r.message_id, emoji: r.emoji }),
        "order" => m.order.map(|o| MessageContent::Order { order: *o }),
        "system" => m.system.map(|s| MessageContent::System { system: *s }),
        "unsupported" => {
            Some(MessageContent::Unsupported { kind: m.unsupported.and_then(|u| u.kind), errors: errors.clone() })
        }
        _ => None,
    };
    let parts = MessageParts {
        from: ContactId::parse(m.from.into_owned()).ok()?,
        from_user_id: m.from_user_id.map(Cow::into_owned),
        id: MessageId::parse(m.id.into_owned()).ok()?,
        timestamp: m.timestamp.map(|t| t.0),
        context: m.context,
        referral: m.referral,
        identity: m.identity,
        errors,
    };
    let content = content.unwrap_or_else(|| MessageContent::Unknown { kind: kind.into_owned(), raw: text_value(raw) });
    Some(inbound_message(account_id, parts, content, contacts, raw, received_at))
}

/// Whether a message's arrays and objects could nest as deep as serde_json's limit (128
/// levels), counted from the brackets it holds (within strings too, so a message this says no
/// to cannot nest that deep). The general path reads the lenient blocks as `Value`s, which
/// serde_json refuses at that depth; read typed, a block's unknown fields are skipped at any
/// depth. Such a message is left to the general path. A SIMD search for brackets per message,
/// where Meta's have a few dozen at most.
fn could_nest_past_serde_json_limit(message: &str) -> bool {
    const SERDE_JSON_NESTING_LIMIT: usize = 128;
    memchr::memchr2_iter(b'{', b'[', message.as_bytes()).nth(SERDE_JSON_NESTING_LIMIT - 2).is_some()
}

/// Whether a message could hold, in a field a typed read skips, what serde_json's `Value`
/// refuses: a UTF-16 surrogate escape without its pair, or a number beyond `f64` (an
/// exponent of three digits or more, or 309 digits). The general path reads the lenient
/// blocks as `Value`s, which then fail the whole message; skipping accepts both. Counted over
/// the whole text (strings too), so a message this says no to holds neither.
/// Whether the general path could read this message otherwise than its typed view did.
fn general_path_reads_otherwise(message: &str, has_lenient_block: bool) -> bool {
    could_nest_past_serde_json_limit(message) || has_lenient_block && could_hold_what_value_refuses(message)
}

fn could_hold_what_value_refuses(message: &str) -> bool {
    let bytes = message.as_bytes();
    let surrogate = |at: usize| -> Option<u16> {
        let hex = bytes.get(at..at + 6).filter(|escape| escape.starts_with(br"\u"))?;
        let unit = u16::from_str_radix(std::str::from_utf8(&hex[2..]).ok()?, 16).ok()?;
        (0xD800..=0xDFFF).contains(&unit).then_some(unit)
    };
    // Every backslash of valid JSON starts an escape inside a string.
    let mut escapes = memchr::memchr_iter(b'\\', bytes);
    while let Some(at) = escapes.next() {
        match surrogate(at) {
            Some(0xD800..=0xDBFF) if surrogate(at + 6).is_some_and(|low| low >= 0xDC00) => {
                escapes.next(); // the low half's
            }
            Some(_) => return true,
            None if bytes.get(at + 1) == Some(&b'\\') => {
                escapes.next(); // an escaped backslash's second byte
            }
            None => {}
        }
    }
    let exponent_digits = |e: usize| {
        let sign = usize::from(matches!(bytes.get(e + 1), Some(b'+' | b'-')));
        bytes.iter().skip(e + 1 + sign).take_while(|b| b.is_ascii_digit()).count()
    };
    let large_exponent = memchr::memchr2_iter(b'e', b'E', bytes)
        .any(|e| e > 0 && bytes[e - 1].is_ascii_digit() && exponent_digits(e) >= 3);
    let many_digits = || {
        // Counted in byte lanes, 255 bytes at a time, so that it vectorises 16 or 32 wide.
        let digits = |chunk: &[u8]| chunk.iter().fold(0u8, |n, b| n + u8::from(b.is_ascii_digit()));
        bytes.chunks(255).map(|chunk| usize::from(digits(chunk))).sum::<usize>() >= 309
            && bytes.split(|b| !b.is_ascii_digit()).any(|run| run.len() >= 309)
    };
    large_exponent || many_digits()
}

/// What an inbound message keeps besides its content, whichever path read it.
struct MessageParts {
    from: ContactId,
    from_user_id: Option<String>,
    id: MessageId,
    timestamp: Option<MetaTimestamp>,
    context: Option<whatsapp::Context>,
    referral: Option<Box<whatsapp::Referral>>,
    identity: Option<Box<whatsapp::Identity>>,
    errors: Vec<whatsapp::ErrorDetail>,
}

fn whatsapp_message(
    account_id: &AccountId,
    message: whatsapp::Message,
    contacts: &Contacts,
    raw: &RawValue,
    received_at: DateTime<Utc>,
) -> InboundMessage {
    let whatsapp::Message {
        from,
        from_user_id,
        id,
        timestamp,
        kind,
        context,
        text,
        image,
        audio,
        video,
        document,
        sticker,
        location,
        contacts: shared_contacts,
        interactive: interactive_reply,
        button,
        reaction,
        order,
        system,
        unsupported,
        referral,
        identity,
        errors,
    } = message;
    let media = match kind.as_str() {
        "image" => image,
        "audio" => audio,
        "video" => video,
        "document" => document,
        "sticker" => sticker,
        _ => None,
    };
    let content = match kind.as_str() {
        "text" => text.map(|t| MessageContent::Text { body: t.body }),
        "image" | "audio" | "video" | "document" | "sticker" => {
            media.map(|m| MessageContent::Media { kind: kind.clone(), media: m })
        }
        "location" => location.map(|l| MessageContent::Location { location: l }),
        "contacts" => shared_contacts.map(|c| MessageContent::Contacts { contacts: c }),
        "interactive" => interactive_reply.map(|i| interactive(i, raw.get())),
        "button" => button.map(|b| MessageContent::TemplateButton { payload: b.payload, text: b.text }),
        "reaction" => reaction.map(|r| MessageContent::Reaction { message_id: r.message_id, emoji: r.emoji }),
        "order" => order.map(|o| MessageContent::Order { order: o }),
        "system" => system.map(|s| MessageContent::System { system: s }),
        "unsupported" => {
            Some(MessageContent::Unsupported { kind: unsupported.and_then(|u| u.kind), errors: errors.clone() })
        }
        _ => None,
    };
    let content = content.unwrap_or_else(|| MessageContent::Unknown { kind, raw: to_value(raw) });
    let (referral, identity) = (referral.map(Box::new), identity.map(Box::new));
    let parts = MessageParts { from, from_user_id, id, timestamp, context, referral, identity, errors };
    inbound_message(account_id, parts, content, contacts, raw.get(), received_at)
}

fn inbound_message(
    account_id: &AccountId,
    parts: MessageParts,
    content: MessageContent,
    contacts: &Contacts,
    raw: &str,
    received_at: DateTime<Utc>,
) -> InboundMessage {
    let MessageParts { from, from_user_id, id, timestamp, context, referral, identity, errors } = parts;
    let contact = contacts.get(from.as_str());
    let profile_name = contact.and_then(|c| c.name.as_deref()).map(str::to_owned);
    let contact_user_id = from_user_id.or_else(|| contact.and_then(|c| c.user_id.as_deref()).map(str::to_owned));
    let sent = resolve_time(timestamp.as_ref(), TimeUnit::Seconds, received_at);
    let context = context.unwrap_or_default();
    InboundMessage {
        channel: Channel::WhatsApp,
        account_id: account_id.clone(),
        message_id: id,
        contact_id: from,
        profile_name,
        sent_at: sent.at,
        timestamp_note: sent.note,
        reply_to: context.id,
        content,
        contact_user_id,
        referral,
        forwarded: context.forwarded,
        frequently_forwarded: context.frequently_forwarded,
        errors,
        identity,
        raw_json: Some(raw.to_owned()),
    }
}

fn interactive(reply: whatsapp::Interactive, raw: &str) -> MessageContent {
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
        (kind, _) => MessageContent::Unknown { kind: format!("interactive/{kind}"), raw: text_value(raw) },
    }
}

fn whatsapp_status(account_id: &AccountId, raw: &RawValue, received_at: DateTime<Utc>, path: Path) -> WebhookEvent {
    let fast = if path == Path::Fast { whatsapp_status_fast(account_id, raw, received_at) } else { None };
    fast.unwrap_or_else(|| whatsapp_status_general(account_id, raw, received_at))
}

/// A status as Meta documents it (valid id, known state), read in place; `None` for anything
/// else, which the general path decides.
fn whatsapp_status_fast(account_id: &AccountId, raw: &RawValue, received_at: DateTime<Utc>) -> Option<WebhookEvent> {
    status_event_fast(account_id, serde_json::from_str(raw.get()).ok()?, received_at)
}

fn status_event_fast(account_id: &AccountId, status: StatusRef, received_at: DateTime<Utc>) -> Option<WebhookEvent> {
    let state = DeliveryState::parse(&status.status)?;
    let message_id = MessageId::parse(status.id.into_owned()).ok()?;
    let at = resolve_time(status.timestamp.as_ref().map(|t| &t.0), TimeUnit::Seconds, received_at);
    Some(WebhookEvent::Status(Box::new(StatusEvent {
        channel: Channel::WhatsApp,
        account_id: account_id.clone(),
        message_id,
        state,
        at: at.at,
        timestamp_note: at.note,
        recipient_id: status.recipient_id.into_owned(),
        recipient_user_id: status.recipient_user_id.map(Cow::into_owned),
        job_id: status.biz_opaque_callback_data.and_then(|d| SendJobId::parse(d.into_owned()).ok()),
        error: status.errors.into_iter().next(),
        pricing: status.pricing.map(whatsapp::RawJson::from),
        conversation: status.conversation.map(whatsapp::RawJson::from),
    })))
}

fn whatsapp_status_general(account_id: &AccountId, raw: &RawValue, received_at: DateTime<Utc>) -> WebhookEvent {
    let status: whatsapp::Status = match typed(raw) {
        Ok(s) => s,
        Err(e) => {
            return unknown(format!("unreadable WhatsApp status: {e}"), Some(account_id.to_string()), to_value(raw));
        }
    };
    let Some(state) = DeliveryState::parse(&status.status) else {
        // A state Meta added after this code: kept whole, with its time, until it has a rank.
        let reason = format!("unknown status {:?}", status.status);
        return unknown(reason, Some(account_id.to_string()), to_value(raw));
    };
    let at = resolve_time(status.timestamp.as_ref(), TimeUnit::Seconds, received_at);
    WebhookEvent::Status(Box::new(StatusEvent {
        channel: Channel::WhatsApp,
        account_id: account_id.clone(),
        message_id: status.id,
        state,
        at: at.at,
        timestamp_note: at.note,
        recipient_id: status.recipient_id,
        recipient_user_id: status.recipient_user_id,
        job_id: status.biz_opaque_callback_data.and_then(|d| SendJobId::parse(d).ok()),
        error: status.errors.into_iter().next(),
        pricing: status.pricing.map(whatsapp::RawJson::from),
        conversation: status.conversation.map(whatsapp::RawJson::from),
    }))
}

fn instagram_entry(raw: &RawValue, received_at: DateTime<Utc>, events: &mut Vec<WebhookEvent>) {
    let entry: instagram::Entry = match typed(raw) {
        Ok(e) => e,
        Err(e) => return events.push(unknown(format!("unreadable Instagram entry: {e}"), None, to_value(raw))),
    };
    if entry.messaging.is_empty() {
        events.push(unknown(
            "Instagram entry without messaging events".into(),
            Some(entry.id.to_string()),
            to_value(raw),
        ));
        return;
    }
    for item in &entry.messaging {
        let keep = |reason: String| unknown(reason, Some(entry.id.to_string()), to_value(item));
        let event: instagram::Messaging = match typed(item) {
            Ok(e) => e,
            Err(e) => {
                events.push(keep(format!("unreadable Instagram event: {e}")));
                continue;
            }
        };
        let sent = resolve_time(event.timestamp.as_ref(), TimeUnit::Milliseconds, received_at);
        let status = |message_id: MessageId, state: DeliveryState, recipient: ContactId| {
            WebhookEvent::Status(Box::new(StatusEvent {
                channel: Channel::Instagram,
                account_id: entry.id.clone(),
                message_id,
                state,
                at: sent.at,
                timestamp_note: sent.note.clone(),
                recipient_id: recipient.to_string(),
                recipient_user_id: None,
                job_id: None,
                error: None,
                pricing: None,
                conversation: None,
            }))
        };
        let (message_id, content, reply_to) = match (event.message, event.postback, event.read) {
            // Our own send, echoed with the mid it was given: Instagram's "sent" (the echo of a
            // reply typed in the Instagram app is recorded the same way; no job names its mid).
            (Some(message), _, _) if message.is_echo => {
                events.push(status(message.mid, DeliveryState::Sent, event.recipient.id));
                continue;
            }
            (Some(message), _, _) => {
                let reply_to = message.reply_to.as_ref().and_then(|r| r["mid"].as_str()).map(str::to_owned);
                let content = MessageContent::InstagramMessage {
                    text: message.text,
                    attachments: message.attachments,
                    quick_reply: message.quick_reply.map(|q| q.payload),
                };
                (message.mid, content, reply_to)
            }
            (None, Some(postback), _) => {
                let Some(mid) = postback.mid.and_then(|mid| MessageId::parse(mid).ok()) else {
                    events.push(keep("Instagram postback without mid".into()));
                    continue;
                };
                (mid, MessageContent::Postback { title: postback.title, payload: postback.payload }, None)
            }
            // The customer read the conversation up to one of our messages: Instagram's "read".
            (None, None, Some(read)) => {
                match read.mid {
                    Some(mid) => events.push(status(mid, DeliveryState::Read, event.sender.id)),
                    None => events.push(keep("Instagram read without mid".into())),
                }
                continue;
            }
            (None, None, None) => {
                events.push(keep("unhandled Instagram messaging event".into()));
                continue;
            }
        };
        events.push(WebhookEvent::Message(Box::new(InboundMessage {
            channel: Channel::Instagram,
            account_id: entry.id.clone(),
            message_id,
            contact_id: event.sender.id,
            profile_name: None,
            sent_at: sent.at,
            timestamp_note: sent.note,
            reply_to,
            content,
            contact_user_id: None,
            referral: None,
            forwarded: false,
            frequently_forwarded: false,
            errors: Vec::new(),
            identity: None,
            raw_json: Some(item.get().to_owned()),
        })));
    }
}

/// Meta-shaped bodies for the fast path's agreement with the general path (the fuzz
/// strategies, included by path as `tests/integration/webhook_fuzz.rs` does).
#[cfg(test)]
#[path = "../fuzz/payloads.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod test_payloads;

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_payloads as payloads;
    use proptest::prelude::*;

    /// The fast path agrees with the general path, event for event (reasons included).
    fn same_on_both_paths(body: &[u8]) -> Result<(), TestCaseError> {
        let fast = parse_delivery_with(body, received_at(), Path::Fast);
        let general = parse_delivery_with(body, received_at(), Path::General);
        prop_assert_eq!(fast, general, "body: {}", String::from_utf8_lossy(body));
        Ok(())
    }

    #[test]
    fn a_block_nested_to_serde_jsons_limit_is_read_alike_on_both_paths() {
        for depth in 118..=132 {
            let nested = format!("{}{{\"details\":\"d\"}}{}", "{\"a\":[".repeat(depth / 2), "]}".repeat(depth / 2));
            let message = format!(
                r#"{{"errors":[{{"code":131000,"error_data":{nested}}}],"from":"16505551234","id":"wamid.DEEP","type":"image"}}"#
            );
            let body = format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"1","phone_number_id":"106540352242922"}},"messages":[{message}]}}}}]}}]}}"#
            );
            same_on_both_paths(body.as_bytes()).unwrap();
        }
        assert!(!could_nest_past_serde_json_limit(&"{\"a\":[".repeat(63)));
    }

    #[test]
    fn what_skipping_accepts_and_a_value_refuses_is_read_alike_on_both_paths() {
        // Unknown fields of the lenient blocks: the general path's `Value` refuses a lone
        // surrogate and a number beyond f64 (and with them the message); a typed read skips them.
        for block in [
            r#""context":{"id":"wamid.Y","x":"\ud800"}"#,
            r#""context":{"id":"wamid.Y","x":"\udc00\ud83d"}"#,
            r#""referral":{"source_type":"ad","x":1e400}"#,
            r#""errors":[{"code":131051,"x":-2.5E+309}]"#,
            r#""identity":{"hash":"h","x":[1,{"y":"\uDBFF"}]}"#,
            r#""unsupported":{"type":"edit","x":"\\ud800"}"#,
        ] {
            let message = format!(
                r#"{{{block},"from":"16505551234","id":"wamid.ODD","text":{{"body":"hi \ud83d\ude4f"}},"type":"text"}}"#
            );
            let body = format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"1","phone_number_id":"106540352242922"}},"messages":[{message}]}}}}]}}]}}"#
            );
            same_on_both_paths(body.as_bytes()).unwrap_or_else(|e| panic!("{block}: {e}"));
        }
        for (message, could) in [
            (r#"{"body":"hi \ud83d\ude4f","n":1.5e30}"#, false),
            (r#"{"x":"\\ud800"}"#, false),
            (r#"{"x":"\ud800"}"#, true),
            (r#"{"x":"\ude4f\ud83d"}"#, true),
            (r#"{"x":1e308}"#, true),
            (r#"{"x":"base64 9e2b"}"#, false),
        ] {
            assert_eq!(could_hold_what_value_refuses(message), could, "{message}");
        }
        assert!(could_nest_past_serde_json_limit(&"{\"a\":[".repeat(64)));
    }

    #[test]
    fn the_fast_path_reads_every_sample_as_the_general_path_does() {
        for (name, body) in payloads::SAMPLES {
            same_on_both_paths(body).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn a_change_in_any_key_order_is_read_alike_on_both_paths() {
        // The one-pass walk makes each element's event as it reads it when the number and its
        // senders came first (as Meta writes them); an element before them waits for them.
        let metadata = r#""metadata":{"display_phone_number":"15550001111","phone_number_id":"106540352242922"}"#;
        let contacts = r#""contacts":[{"profile":{"name":"Kerry"},"wa_id":"16505551234"}]"#;
        let messages = r#""messages":[{"from":"16505551234","id":"wamid.ORDER","timestamp":"1700000000","type":"text","text":{"body":"hi"}}]"#;
        let statuses =
            r#""statuses":[{"id":"wamid.SENT","status":"sent","timestamp":"1700000000","recipient_id":"16505551234"}]"#;
        let body = |parts: &[&str]| {
            format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp",{}}}}}]}}]}}"#,
                parts.join(",")
            )
        };
        for order in [
            [metadata, contacts, messages, statuses],
            [messages, metadata, contacts, statuses],
            [metadata, messages, contacts, statuses],
            [contacts, messages, statuses, metadata],
            [metadata, contacts, statuses, messages],
            [statuses, metadata, contacts, messages],
        ] {
            let body = body(&order);
            let statuses_first = order.iter().position(|p| *p == statuses) < order.iter().position(|p| *p == messages);
            assert_eq!(whatsapp_delivery_fast(body.as_bytes(), received_at()).is_some(), !statuses_first, "{body}");
            same_on_both_paths(body.as_bytes()).unwrap();
            let Delivery::Events(events) = parse_delivery_at(body.as_bytes(), received_at()) else {
                panic!("unread: {body}");
            };
            let read: Vec<_> = events
                .iter()
                .map(|e| match e {
                    WebhookEvent::Message(m) => format!("{} from {:?}", m.message_id, m.profile_name),
                    WebhookEvent::Status(s) => format!("{} {:?}", s.message_id, s.state),
                    other => format!("{other:?}"),
                })
                .collect();
            assert_eq!(read, [r#"wamid.ORDER from Some("Kerry")"#, "wamid.SENT Sent"], "{body}");
        }
    }

    #[test]
    fn documented_statuses_and_messages_take_the_fast_path() {
        for name in ["whatsapp-statuses-sent-delivered.json", "whatsapp-text.json", "whatsapp-batch-two-numbers.json"] {
            let (_, body) = payloads::SAMPLES.iter().find(|(n, _)| *n == name).expect("sample");
            assert!(whatsapp_delivery_fast(body, received_at()).is_some(), "{name}");
        }
        let body: Value = payloads::sample_value(
            payloads::SAMPLES.iter().position(|(n, _)| *n == "whatsapp-statuses-sent-delivered.json").expect("sample"),
        );
        let status = serde_json::to_string(&body["entry"][0]["changes"][0]["value"]["statuses"][0]).unwrap();
        let raw = RawValue::from_string(status).unwrap();
        let account = AccountId::parse("106540352242922").unwrap();
        assert!(whatsapp_status_fast(&account, &raw, received_at()).is_some());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn the_fast_path_reads_any_body_as_the_general_path_does(body in payloads::webhook_body(payloads::Limits::PARSER)) {
            same_on_both_paths(&body)?;
        }

        #[test]
        fn the_fast_path_reads_odd_lenient_blocks_as_the_general_path_does(
            body in payloads::odd_lenient_blocks(payloads::Limits::PARSER)
        ) {
            same_on_both_paths(&body)?;
        }

        #[test]
        fn the_fast_path_reads_structured_deliveries_as_the_general_path_does(
            body in payloads::structured_body(payloads::Limits::PARSER)
        ) {
            same_on_both_paths(&serde_json::to_vec(&body).expect("serializes"))?;
        }
    }

    macro_rules! sample {
        ($name:literal) => {
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/meta/", $name))
        };
    }

    /// Two days after the samples' messages were sent.
    fn received_at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_852_800, 0).unwrap()
    }

    fn events(body: &[u8]) -> Vec<WebhookEvent> {
        match parse_delivery_at(body, received_at()) {
            Delivery::Events(events) => events,
            Delivery::Malformed { error } => panic!("unexpectedly malformed: {error}"),
        }
    }

    fn only_message(body: &[u8]) -> InboundMessage {
        match events(body).as_slice() {
            [WebhookEvent::Message(m)] => (**m).clone(),
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
            .filter_map(|e| match e {
                WebhookEvent::Message(m) => {
                    Some((m.channel, serde_json::to_value(&m.content).unwrap()["type"].clone()))
                }
                WebhookEvent::Status(_) => None,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(ids.len(), 3, "text, attachment and postback; the echo is a status, not a message");
        assert!(ids.iter().all(|(c, _)| *c == Channel::Instagram));
        assert_eq!(ids[2].1, "postback");
    }

    #[test]
    fn an_unhandled_field_is_kept_as_an_unknown_event() {
        let all = events(sample!("whatsapp-unknown-field.json"));
        let [WebhookEvent::Unknown(u)] = all.as_slice() else { panic!("{all:?}") };
        assert!(u.reason.contains("account_review_update"));
        assert_eq!(u.raw["decision"], "APPROVED");
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
                WebhookEvent::Account(_) | WebhookEvent::Unknown(_) => panic!("not a message or status"),
            })
            .collect();
        assert_eq!(accounts, ["106540352242922", "106540352242923", "106540352242923"]);
    }

    #[test]
    fn metas_template_reviews_and_quality_news_are_account_updates() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[
            {"field":"message_template_status_update","value":{"event":"PAUSED","message_template_id":1,
              "message_template_name":"spring_sale","message_template_language":"en_US","reason":"NONE"}},
            {"field":"phone_number_quality_update","value":{"display_phone_number":"15550002922","event":"DOWNGRADE","current_limit":"TIER_1K"}},
            {"field":"account_review_update","value":{"decision":"APPROVED"}}]}]}"#;
        let all = events(body);
        assert!(matches!(
            &all[0],
            WebhookEvent::Account(AccountEvent {
                update: AccountUpdate::TemplateStatus { status: TemplateStatus::Paused, reason: None, .. },
                ..
            })
        ));
        assert!(
            matches!(&all[1], WebhookEvent::Account(AccountEvent { update: AccountUpdate::NumberQuality { messaging_limit: Some(l), .. }, .. }) if l == "TIER_1K")
        );
        assert!(
            matches!(&all[2], WebhookEvent::Unknown(u) if u.reason.contains("account_review_update")),
            "anything else is kept whole"
        );
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

    fn with_value(sample: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut body: Value = serde_json::from_slice(sample).unwrap();
        edit(&mut body["entry"][0]["changes"][0]["value"]);
        serde_json::to_vec(&body).unwrap()
    }

    fn unknown_reasons(all: &[WebhookEvent]) -> Vec<&str> {
        all.iter()
            .filter_map(|e| match e {
                WebhookEvent::Unknown(u) => Some(u.reason.as_str()),
                _ => None,
            })
            .collect()
    }

    // Receipt: element by element.

    #[test]
    fn a_status_without_recipient_id_is_kept_on_its_own_and_the_other_statuses_apply() {
        let all = events(sample!("whatsapp-status-missing-recipient.json"));
        let [WebhookEvent::Unknown(kept), WebhookEvent::Status(applied)] = all.as_slice() else { panic!("{all:?}") };
        assert!(kept.reason.contains("recipient_id"), "{}", kept.reason);
        assert_eq!(kept.account_id.as_deref(), Some("106540352242922"));
        assert_eq!(kept.raw["id"], "wamid.USERNAMEONLY1", "the element itself, whole");
        assert_eq!(kept.raw["recipient_user_id"], "US.13491208655302741918");
        assert_eq!((applied.state, applied.job_id.as_deref()), (DeliveryState::Delivered, Some("job-42")));
    }

    #[test]
    fn a_contact_without_wa_id_is_kept_on_its_own_and_the_other_messages_are_read() {
        let all = events(sample!("whatsapp-contact-missing-wa-id.json"));
        let reasons = unknown_reasons(&all);
        assert_eq!(reasons.len(), 2, "the contact, and the message that has no `from`: {reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("contact") && r.contains("wa_id")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("message") && r.contains("from")), "{reasons:?}");
        let messages: Vec<_> = all
            .iter()
            .filter_map(|e| match e {
                WebhookEvent::Message(m) => Some((m.message_id.as_str(), m.profile_name.as_deref())),
                _ => None,
            })
            .collect();
        assert_eq!(messages, [("wamid.BESIDEUSERNAME1", Some("Kerry Fisher"))]);
    }

    #[test]
    fn a_message_with_a_wrongly_typed_field_costs_only_itself() {
        let body = with_value(sample!("whatsapp-text.json"), |value| {
            let good = value["messages"][0].clone();
            let mut bad = good.clone();
            bad["id"] = serde_json::json!("wamid.BAD");
            bad["text"] = serde_json::json!({ "body": 42 });
            let mut other = good.clone();
            other["id"] = serde_json::json!("wamid.OTHER");
            value["messages"] = serde_json::json!([good, bad, other]);
        });
        let all = events(&body);
        assert_eq!(unknown_reasons(&all).len(), 1, "{all:?}");
        let stored = all.iter().filter(|e| matches!(e, WebhookEvent::Message(_))).count();
        assert_eq!(stored, 2);
    }

    // Receipt: a change we cannot act on is kept.

    #[test]
    fn a_change_carrying_only_errors_is_kept_not_dropped() {
        let all = events(sample!("whatsapp-errors-only.json"));
        let [WebhookEvent::Unknown(kept)] = all.as_slice() else { panic!("{all:?}") };
        assert!(kept.reason.contains("without messages or statuses") && kept.reason.contains("errors"));
        assert_eq!(kept.account_id.as_deref(), Some("106540352242922"));
        assert_eq!(kept.raw["errors"][0]["code"], 131051);
    }

    #[test]
    fn a_change_with_contacts_only_is_kept_not_dropped() {
        let body = with_value(sample!("whatsapp-text.json"), |value| {
            value.as_object_mut().unwrap().remove("messages");
        });
        let all = events(&body);
        let [WebhookEvent::Unknown(kept)] = all.as_slice() else { panic!("{all:?}") };
        assert_eq!(kept.raw["contacts"][0]["wa_id"], "16505551234");
    }

    #[test]
    fn errors_or_new_keys_beside_messages_are_kept_and_the_messages_read() {
        let body = with_value(sample!("whatsapp-text.json"), |value| {
            value["errors"] = serde_json::json!([{ "code": 131000, "title": "Something went wrong" }]);
            value["brand_new_list"] = serde_json::json!([1, 2]);
        });
        let all = events(&body);
        let [WebhookEvent::Unknown(kept), WebhookEvent::Message(_)] = all.as_slice() else { panic!("{all:?}") };
        assert!(kept.reason.contains("errors") && kept.reason.contains("brand_new_list"), "{}", kept.reason);
        assert_eq!(kept.raw["errors"][0]["code"], 131000);
    }

    // Receipt: timestamps.

    #[test]
    fn absurd_message_and_status_timestamps_are_clamped_with_a_note_never_panicked_on() {
        let chrono_limit = (DateTime::<Utc>::MAX_UTC.timestamp() - 60).to_string();
        let absurd =
            ["-1", "0", "99999999999999999999", "8210266876799000", chrono_limit.as_str(), "1895680000", "soon"];
        for timestamp in absurd {
            let body = with_value(sample!("whatsapp-text.json"), |value| {
                value["messages"][0]["timestamp"] = serde_json::json!(timestamp);
            });
            let m = only_message(&body);
            assert_eq!(m.sent_at, received_at(), "{timestamp}");
            assert!(m.timestamp_note.as_deref().is_some_and(|n| n.contains("receipt time")), "{timestamp}");

            let body = with_value(sample!("whatsapp-status-read.json"), |value| {
                value["statuses"][0]["timestamp"] = serde_json::json!(timestamp);
            });
            let all = events(&body);
            let [WebhookEvent::Status(status)] = all.as_slice() else { panic!("{timestamp}: {all:?}") };
            assert_eq!((status.at, status.timestamp_note.is_some()), (received_at(), true), "{timestamp}");
        }
        let mut body: Value = serde_json::from_slice(sample!("instagram-dm.json")).unwrap();
        body["entry"][0]["messaging"][0]["timestamp"] = serde_json::json!(i64::MAX);
        let all = events(&serde_json::to_vec(&body).unwrap());
        let WebhookEvent::Message(first) = &all[0] else { panic!("{all:?}") };
        assert_eq!(first.sent_at, received_at());
        assert!(first.timestamp_note.is_some());
    }

    #[test]
    fn a_timestamp_in_milliseconds_is_read_as_milliseconds_with_a_note() {
        let body = with_value(sample!("whatsapp-text.json"), |value| {
            value["messages"][0]["timestamp"] = serde_json::json!("1795680000123");
        });
        let m = only_message(&body);
        assert_eq!(m.sent_at.timestamp_millis(), 1_795_680_000_123);
        assert!(m.timestamp_note.unwrap().contains("milliseconds"));
    }

    // Receipt: everything Meta sends with a message is kept.

    #[test]
    fn an_ad_click_keeps_its_referral_and_the_username_rollout_ids() {
        let m = only_message(sample!("whatsapp-referral.json"));
        let referral = m.referral.expect("referral kept");
        assert_eq!(referral.source_type.as_deref(), Some("ad"));
        assert_eq!(referral.source_id.as_deref(), Some("120211234567890123"));
        assert!(referral.ctwa_clid.is_some_and(|c| c.starts_with("ARAkLkA8")));
        assert_eq!(
            referral.welcome_message.and_then(|w| w.text).as_deref(),
            Some("Hi there! Let us know how we can help.")
        );
        assert_eq!(m.contact_user_id.as_deref(), Some("US.13491208655302741918"));
        let raw: Value = serde_json::from_str(m.raw_json.as_deref().unwrap()).unwrap();
        assert_eq!(raw["referral"]["headline"], "Spring sale: 30% off");
    }

    #[test]
    fn forwarded_flags_are_kept() {
        let m = only_message(sample!("whatsapp-forwarded.json"));
        assert!(m.forwarded && m.frequently_forwarded);
        assert_eq!(m.reply_to, None, "forwarded is not a reply");
        assert!(!only_message(sample!("whatsapp-text.json")).forwarded);
    }

    #[test]
    fn an_identity_change_keeps_its_identity_block() {
        let m = only_message(sample!("whatsapp-identity.json"));
        let identity = m.identity.expect("identity kept");
        assert_eq!((identity.hash.as_deref(), identity.acknowledged), (Some("a1b2c3d4e5f6"), Some(true)));
        let MessageContent::System { system } = m.content else { panic!("not a system message") };
        assert_eq!(system.kind.as_deref(), Some("customer_identity_changed"));
        assert_eq!(system.customer.as_deref(), Some("16505551234"));
    }

    #[test]
    fn an_unsupported_message_keeps_what_it_was_and_its_errors() {
        let m = only_message(sample!("whatsapp-unsupported.json"));
        let MessageContent::Unsupported { kind, errors } = &m.content else { panic!("{:?}", m.content) };
        assert_eq!(kind.as_deref(), Some("edit"));
        assert_eq!(errors[0].code, 131051);
        assert_eq!(m.errors.len(), 1, "the message-level errors, whatever the type");
    }

    #[test]
    fn every_message_keeps_metas_json_with_what_we_do_not_read_yet() {
        let body = with_value(sample!("whatsapp-text.json"), |value| {
            value["messages"][0]["brand_new_field"] = serde_json::json!({ "x": 1 });
            value["messages"][0]["referral"] = serde_json::json!({ "source_url": 42 });
        });
        let m = only_message(&body);
        assert_eq!(m.referral, None, "a referral shaped unlike Meta's documentation is not typed…");
        let raw: Value = serde_json::from_str(m.raw_json.as_deref().unwrap()).unwrap();
        assert_eq!(raw["brand_new_field"]["x"], 1);
        assert_eq!(raw["referral"]["source_url"], 42, "…and still kept");
        let ig = &events(sample!("instagram-dm.json"))[0];
        assert!(matches!(ig, WebhookEvent::Message(m) if m.raw_json.as_deref().is_some_and(|j| j.contains("Lisbon"))));
    }

    // Receipt: statuses Meta adds later.

    #[test]
    fn a_played_status_is_applied_like_any_status() {
        let all = events(sample!("whatsapp-status-played.json"));
        let [WebhookEvent::Status(played)] = all.as_slice() else { panic!("{all:?}") };
        assert_eq!((played.state, played.at.timestamp()), (DeliveryState::Played, 1_795_680_004));
        assert_eq!(played.job_id.as_deref(), Some("job-44"));
    }

    #[test]
    fn a_status_meta_adds_later_is_kept_whole_with_its_time() {
        let body = with_value(sample!("whatsapp-status-read.json"), |value| {
            value["statuses"][0]["status"] = serde_json::json!("rewound");
        });
        let all = events(&body);
        let [WebhookEvent::Unknown(kept)] = all.as_slice() else { panic!("{all:?}") };
        assert!(kept.reason.contains("rewound"));
        assert_eq!(kept.raw["timestamp"], "1795680003");
        assert_eq!(kept.raw["biz_opaque_callback_data"], "job-42");
    }

    // Receipt: Instagram's own signals for our sends.

    #[test]
    fn an_instagram_echo_is_the_sent_status_of_our_message() {
        let all = events(sample!("instagram-echo.json"));
        let [WebhookEvent::Status(sent)] = all.as_slice() else { panic!("{all:?}") };
        assert_eq!((sent.channel, sent.state), (Channel::Instagram, DeliveryState::Sent));
        assert_eq!(sent.message_id, "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1MzA5MjExODUw");
        assert_eq!((sent.account_id.as_str(), sent.recipient_id.as_str()), ("17841405309211844", "6180712345678901"));
        assert_eq!(sent.at.timestamp_millis(), 1_795_680_002_000);
        assert_eq!(sent.job_id, None, "the mid is the link to our send");
    }

    #[test]
    fn an_instagram_read_is_the_read_status_of_our_message() {
        let all = events(sample!("instagram-read.json"));
        let [WebhookEvent::Status(read)] = all.as_slice() else { panic!("{all:?}") };
        assert_eq!((read.channel, read.state), (Channel::Instagram, DeliveryState::Read));
        assert_eq!(read.message_id, "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1MzA5MjExODUw");
        assert_eq!(read.recipient_id, "6180712345678901", "the customer who read it");

        let mut body: Value = serde_json::from_slice(sample!("instagram-read.json")).unwrap();
        body["entry"][0]["messaging"][0]["read"] = serde_json::json!({ "watermark": 1795680009000_i64 });
        let all = events(&serde_json::to_vec(&body).unwrap());
        assert!(matches!(all.as_slice(), [WebhookEvent::Unknown(u)] if u.reason.contains("read without mid")));
    }
}
