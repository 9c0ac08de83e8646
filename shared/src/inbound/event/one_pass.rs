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

/// One `messages` change's elements, as read.
struct Change<'a> {
    account_id: AccountId,
    contacts: Vec<ContactRef<'a>>,
    messages: Vec<(MessageRef<'a>, &'a str)>,
    statuses: Vec<StatusRef<'a>>,
}

/// The events of a WhatsApp delivery whose changes are all `messages` changes as Meta
/// documents them; `None` for anything else.
pub(super) fn whatsapp_delivery(body: &str, received_at: DateTime<Utc>) -> Option<Vec<WebhookEvent>> {
    let mut cursor = Cursor { text: body, at: 0 };
    let (mut object, mut entries) = (None, None);
    cursor.object(|cursor, key| match key {
        "object" => once(&mut object, cursor.value::<Cow<str>>()?.0),
        "entry" => {
            let mut changes = Vec::new();
            cursor.array(|cursor| entry(cursor, &mut changes))?;
            once(&mut entries, changes)
        }
        _ => cursor.value::<IgnoredAny>().map(drop),
    })?;
    cursor.skip_whitespace();
    if cursor.at != body.len() || object? != "whatsapp_business_account" {
        return None;
    }
    let changes = entries.unwrap_or_default();
    let mut events = Vec::with_capacity(changes.iter().map(|c| c.messages.len() + c.statuses.len()).sum());
    for change in changes {
        let mut contacts: Contacts = HashMap::with_capacity(change.contacts.len());
        for contact in change.contacts {
            ContactId::parse(&*contact.wa_id).ok()?;
            let name = contact.profile.and_then(|p| p.name);
            contacts.insert(contact.wa_id, ContactInfo { name, user_id: contact.user_id });
        }
        for (message, raw) in change.messages {
            let message = message_from_view(&change.account_id, message, raw, &contacts, received_at)?;
            events.push(WebhookEvent::Message(Box::new(message)));
        }
        for status in change.statuses {
            events.push(status_event_fast(&change.account_id, status, received_at)?);
        }
    }
    Some(events)
}

fn entry<'a>(cursor: &mut Cursor<'a>, changes: &mut Vec<Change<'a>>) -> Option<()> {
    let (mut id, mut seen_changes) = (None, None);
    cursor.object(|cursor, key| match key {
        "id" => once(&mut id, cursor.value::<Cow<str>>()?.0),
        "changes" => {
            once(&mut seen_changes, ())?;
            cursor.array(|cursor| change(cursor, changes))
        }
        _ => cursor.value::<IgnoredAny>().map(drop),
    })?;
    id.map(drop)
}

fn change<'a>(cursor: &mut Cursor<'a>, changes: &mut Vec<Change<'a>>) -> Option<()> {
    let (mut field, mut value) = (None, None);
    cursor.object(|cursor, key| match key {
        "field" => once(&mut field, cursor.value::<Cow<str>>()?.0),
        "value" => once(&mut value, messages_value(cursor)?),
        _ => cursor.value::<IgnoredAny>().map(drop),
    })?;
    if field? != "messages" {
        return None;
    }
    changes.push(value?);
    Some(())
}

fn messages_value<'a>(cursor: &mut Cursor<'a>) -> Option<Change<'a>> {
    let (mut metadata, mut contacts, mut messages, mut statuses, mut product) = (None, None, None, None, None);
    cursor.object(|cursor, key| match key {
        "metadata" => once(&mut metadata, cursor.value::<MetadataRef>()?.0),
        // Neither contacts nor statuses keep their text: read as one value each.
        "contacts" => once(&mut contacts, cursor.value::<Vec<ContactRef>>()?.0),
        "messages" => {
            let mut read = Vec::new();
            cursor.array(|cursor| {
                read.push(cursor.value::<MessageRef>()?);
                Some(())
            })?;
            once(&mut messages, read)
        }
        "statuses" => once(&mut statuses, cursor.value::<Vec<StatusRef>>()?.0),
        "messaging_product" => once(&mut product, cursor.value::<IgnoredAny>()?.0),
        // Another key (`errors` about the number, or one Meta adds) is kept by the general path.
        _ => None,
    })?;
    let (messages, statuses) = (messages.unwrap_or_default(), statuses.unwrap_or_default());
    if messages.is_empty() && statuses.is_empty() {
        return None;
    }
    let account_id = AccountId::parse(metadata?.phone_number_id.into_owned()).ok()?;
    Some(Change { account_id, contacts: contacts.unwrap_or_default(), messages, statuses })
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
