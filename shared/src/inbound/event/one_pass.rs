//! A WhatsApp delivery of `messages` changes read in one pass: the envelope is walked here,
//! and each message is read by serde_json where it stands, its exact text (which is kept)
//! known from where the read ended — so a message is read once, not skipped as raw JSON first
//! and read afterwards; contacts and statuses, whose text is not kept, are read as one value
//! per array. Anything this walk does not expect (another object or
//! field, a key written with escapes or repeated, an element its views cannot read) gives
//! `None`, and the delivery is read level by level as before.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{
    ContactInfo, ContactRef, Contacts, MessageRef, MetadataRef, StatusRef, message_from_view, status_event_fast,
};
use crate::domain::{AccountId, ContactId, WebhookEvent};

/// A position in the body, moved over JSON's structure by hand and over values by serde_json.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn skip_whitespace(&mut self) {
        let bytes = self.text.as_bytes();
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.text.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A key and its colon; `None` for a key with escapes (compared as written here, so it
    /// must be written plainly).
    fn key(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let rest = &self.text[self.at..];
        let end = rest.bytes().position(|b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest.as_bytes()[end] != b'"' {
            return None;
        }
        self.at += end + 1;
        self.eat(b':')?;
        Some(&rest[..end])
    }

    /// The value here, read as `T`, and its text.
    fn value<T: Deserialize<'a>>(&mut self) -> Option<(T, &'a str)> {
        self.skip_whitespace();
        let rest: &'a str = &self.text[self.at..];
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<T>();
        let value = values.next()?.ok()?;
        let end = values.byte_offset();
        self.at += end;
        Some((value, &rest[..end]))
    }

    /// `{ "key": value, ... }`, each value handed to `each` with its key.
    fn object(&mut self, mut each: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.sequence(b'{', b'}', |cursor| {
            let key = cursor.key()?;
            each(cursor, key)
        })
    }

    /// `[ value, ... ]`, each element handed to `each`.
    fn array(&mut self, each: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.sequence(b'[', b']', each)
    }

    /// `open` item (`,` item)* `close`, or `open close`: JSON's commas, strictly (none trailing).
    fn sequence(&mut self, open: u8, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(open)?;
        if self.peek()? == close {
            self.at += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.at += 1,
                byte if byte == close => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// Fills `slot` once; a key repeated gives `None` (the general path decides what it means).
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    slot.replace(value).is_none().then_some(())
}

/// The events of a WhatsApp delivery whose changes are all `messages` changes as Meta
/// documents them; `None` for anything else.
pub(super) fn whatsapp_delivery(body: &str, received_at: DateTime<Utc>) -> Option<Vec<WebhookEvent>> {
    let mut cursor = Cursor { text: body, at: 0 };
    // About one event per 350 bytes in Meta's deliveries: room for most without growing.
    let mut events = Vec::with_capacity(body.len() / 256 + 4);
    let (mut object, mut entries) = (None, None);
    cursor.object(|cursor, key| match key {
        "object" => once(&mut object, cursor.value::<Cow<str>>()?.0),
        "entry" => {
            once(&mut entries, ())?;
            cursor.array(|cursor| entry(cursor, received_at, &mut events))
        }
        _ => cursor.value::<IgnoredAny>().map(drop),
    })?;
    cursor.skip_whitespace();
    if cursor.at != body.len() || object? != "whatsapp_business_account" {
        return None;
    }
    Some(events)
}

fn entry<'a>(cursor: &mut Cursor<'a>, received_at: DateTime<Utc>, events: &mut Vec<WebhookEvent>) -> Option<()> {
    let (mut id, mut seen_changes) = (None, None);
    cursor.object(|cursor, key| match key {
        "id" => once(&mut id, cursor.value::<Cow<str>>()?.0),
        "changes" => {
            once(&mut seen_changes, ())?;
            cursor.array(|cursor| change(cursor, received_at, events))
        }
        _ => cursor.value::<IgnoredAny>().map(drop),
    })?;
    id.map(drop)
}

fn change<'a>(cursor: &mut Cursor<'a>, received_at: DateTime<Utc>, events: &mut Vec<WebhookEvent>) -> Option<()> {
    let (mut field, mut value) = (None, None);
    cursor.object(|cursor, key| match key {
        "field" => once(&mut field, cursor.value::<Cow<str>>()?.0),
        "value" => once(&mut value, messages_value(cursor, received_at, events)?),
        _ => cursor.value::<IgnoredAny>().map(drop),
    })?;
    // The field is known only once the change is read: its events are kept only if it says
    // `messages` (otherwise the whole delivery goes to the general path).
    (field? == "messages" && value.is_some()).then_some(())
}

/// A `messages` change's events, appended to `events` as each message and status is read, so
/// that a message's large view lives only while it is made into its event. That needs the
/// number (`metadata`) and the senders (`contacts`) first, as Meta writes them; an element read
/// before them waits in `later` until the change is read.
fn messages_value<'a>(
    cursor: &mut Cursor<'a>,
    received_at: DateTime<Utc>,
    events: &mut Vec<WebhookEvent>,
) -> Option<()> {
    let (mut account_id, mut contacts, mut product) = (None::<AccountId>, None::<Contacts>, None);
    let (mut seen_messages, mut seen_statuses) = (None, None);
    let before = events.len();
    let mut later = Later::default();
    cursor.object(|cursor, key| match key {
        "metadata" => {
            let metadata = cursor.value::<MetadataRef>()?.0;
            once(&mut account_id, AccountId::parse(metadata.phone_number_id.into_owned()).ok()?)
        }
        // Contacts are read as one value: their text is not kept.
        "contacts" => {
            let read = cursor.value::<Vec<ContactRef>>()?.0;
            let mut by_id: Contacts = HashMap::with_capacity(read.len());
            for contact in read {
                ContactId::parse(&*contact.wa_id).ok()?;
                let name = contact.profile.and_then(|p| p.name);
                by_id.insert(contact.wa_id, ContactInfo { name, user_id: contact.user_id });
            }
            once(&mut contacts, by_id)
        }
        // Messages before statuses: the order of events the general path makes.
        "messages" if seen_statuses.is_none() => {
            once(&mut seen_messages, ())?;
            cursor.array(|cursor| {
                let (message, raw) = cursor.value::<MessageRef>()?;
                match (&account_id, &contacts) {
                    (Some(account_id), Some(contacts)) => {
                        events.push(message_event(account_id, message, raw, contacts, received_at)?);
                    }
                    _ => later.messages.push((message, raw)),
                }
                Some(())
            })
        }
        "statuses" => {
            once(&mut seen_statuses, ())?;
            cursor.array(|cursor| {
                let status = cursor.value::<StatusRef>()?.0;
                match &account_id {
                    Some(account_id) if later.messages.is_empty() => {
                        events.push(status_event_fast(account_id, status, received_at)?);
                    }
                    _ => later.statuses.push(status),
                }
                Some(())
            })
        }
        "messaging_product" => once(&mut product, cursor.value::<IgnoredAny>()?.0),
        // Another key (`errors` about the number, or one Meta adds) is kept by the general path.
        _ => None,
    })?;
    let account_id = account_id?;
    let contacts = contacts.unwrap_or_default();
    for (message, raw) in later.messages {
        events.push(message_event(&account_id, message, raw, &contacts, received_at)?);
    }
    for status in later.statuses {
        events.push(status_event_fast(&account_id, status, received_at)?);
    }
    // A change with neither messages nor statuses is for the general path to keep.
    (events.len() > before).then_some(())
}

/// A change's elements read before the number or the senders they need.
#[derive(Default)]
struct Later<'a> {
    messages: Vec<(MessageRef<'a>, &'a str)>,
    statuses: Vec<StatusRef<'a>>,
}

fn message_event(
    account_id: &AccountId,
    message: MessageRef,
    raw: &str,
    contacts: &Contacts,
    received_at: DateTime<Utc>,
) -> Option<WebhookEvent> {
    let message = message_from_view(account_id, message, raw, contacts, received_at)?;
    Some(WebhookEvent::Message(Box::new(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_keeps_each_elements_text_and_refuses_what_is_not_json() {
        let mut cursor = Cursor { text: r#" { "a" : [ 1 , {"b":"\"}"} ] , "c":true } "#, at: 0 };
        let mut seen = Vec::new();
        cursor
            .object(|cursor, key| {
                seen.push(key.to_owned());
                match key {
                    "a" => cursor.array(|cursor| {
                        seen.push(cursor.value::<IgnoredAny>()?.1.to_owned());
                        Some(())
                    }),
                    _ => cursor.value::<IgnoredAny>().map(drop),
                }
            })
            .unwrap();
        assert_eq!(seen, ["a", "1", r#"{"b":"\"}"}"#, "c"]);
        fn walk(cursor: &mut Cursor) -> Option<()> {
            match cursor.peek()? {
                b'{' => cursor.object(|cursor, _| walk(cursor)),
                b'[' => cursor.array(walk),
                _ => cursor.value::<IgnoredAny>().map(drop),
            }
        }
        for invalid in [r#"{"a":1,}"#, r#"{"a" 1}"#, r#"[1,]"#, r#"{"a":[1 2]}"#, r#"{"a\u0062":1}"#, r#"{"a":tru}"#] {
            let mut cursor = Cursor { text: invalid, at: 0 };
            assert!(walk(&mut cursor).is_none(), "{invalid}");
        }
    }
}
