//! Typed identifiers. Parse, don't validate: a value of one of these types is known to be
//! usable as part of a DynamoDB key (non-empty, bounded, free of our `#` key separator).

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct InvalidId {
    pub kind: &'static str,
    pub reason: &'static str,
}

const MAX_ID_LEN: usize = 256;

fn check(kind: &'static str, value: &str, digits_only: bool) -> Result<(), InvalidId> {
    let fail = |reason| Err(InvalidId { kind, reason });
    if value.is_empty() {
        return fail("must not be empty");
    }
    if value.len() > MAX_ID_LEN {
        return fail("is longer than 256 characters");
    }
    // Ids are printable ASCII almost always: one branch-free pass over the bytes (it
    // vectorises), the per-character check only for the others.
    let printable_ascii = value.bytes().fold(true, |ok, b| ok & (b' '..=b'~').contains(&b) & (b != b'#'));
    if !printable_ascii && (value.contains('#') || value.chars().any(char::is_control)) {
        return fail("must not contain '#' or control characters");
    }
    if digits_only && !value.bytes().all(|b| b.is_ascii_digit()) {
        return fail("must contain digits only");
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, digits_only = $digits:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value = value.into();
                check($kind, &value, $digits)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, InvalidId> {
                Self::parse(value)
            }
        }

        impl From<&$name> for String {
            fn from(id: &$name) -> String {
                id.0.clone()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        // An id is read as the text it is (a key part, a URL segment, a JSON field), never
        // built from one without `parse`.
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

id_type!(
    /// A tenant of wapisnap. Every stored item is keyed by it first.
    WorkspaceId, "workspace id", digits_only = false
);
id_type!(
    /// Meta's id of a WhatsApp business phone number (`phone_number_id`), not the number itself.
    PhoneNumberId, "phone number id", digits_only = true
);
id_type!(
    /// The business side of a conversation: a WhatsApp phone number id or an Instagram
    /// professional account id.
    AccountId, "account id", digits_only = false
);
id_type!(
    /// Meta's id of a WhatsApp Business Account.
    WabaId, "WhatsApp Business Account id", digits_only = true
);
id_type!(
    /// A customer's WhatsApp id (their phone number in international format, digits only).
    WaId, "WhatsApp id", digits_only = true
);
id_type!(
    /// Meta's id of one message (`wamid.…` on WhatsApp, `mid` on Instagram).
    MessageId, "message id", digits_only = false
);
id_type!(
    /// Our id of one outbound send; deterministic so that redelivered work maps to one send.
    SendJobId, "send job id", digits_only = false
);

id_type!(
    /// A workspace's broadcast (`bc_…`).
    BroadcastId, "broadcast id", digits_only = false
);
id_type!(
    /// A workspace's automation (`auto_…`).
    AutomationId, "automation id", digits_only = false
);
id_type!(
    /// One run of an automation in one conversation (`run_…`).
    RunId, "run id", digits_only = false
);
id_type!(
    /// Follows one piece of work across functions (`c-…`): a customer's message from the
    /// webhook through its flow, the sends it caused and their Smart Retries. See
    /// [`crate::correlation`].
    CorrelationId, "correlation id", digits_only = false
);
id_type!(
    /// A node of an automation's graph, named by its author (`greet`, `ask-size`).
    NodeId, "node id", digits_only = false
);

id_type!(
    /// A customer on a channel: a WhatsApp id (phone digits) or an Instagram-scoped id. Built
    /// with [`ContactId::for_channel`] from whatever a caller wrote, so that `+1 650-555-1234`,
    /// `16505551234` and Meta's `wa_id` are one contact — and `dnd`, `do-not-send`, the 24-hour
    /// window and the 131026 streak cannot be bypassed by formatting.
    ContactId, "contact id", digits_only = false
);

impl ContactId {
    /// For a log line or an alarm: the last 4 characters only (`…1234`), never a whole phone
    /// number or Instagram-scoped id.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }

    /// The customer `raw` names on `channel`, normalised.
    pub fn for_channel(channel: super::Channel, raw: &str) -> Result<Self, InvalidId> {
        match channel {
            super::Channel::WhatsApp => Ok(Self(whatsapp_id(raw)?)),
            super::Channel::Instagram => Self::parse(raw.trim()),
        }
    }
}

/// A phone number as WhatsApp names its user: international format, digits only (E.164 without
/// the `+`, at most 15 digits). Spaces, dashes, dots, brackets and a leading `+` or `00` are
/// what people write around those digits; anything else is refused.
fn whatsapp_id(raw: &str) -> Result<String, InvalidId> {
    let fail = |reason| Err(InvalidId { kind: "WhatsApp id", reason });
    let trimmed = raw.trim();
    let international = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let mut digits = String::with_capacity(international.len());
    for c in international.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return fail("must be a phone number in international format, e.g. +1 650 555 1234"),
        }
    }
    let digits = match digits.strip_prefix("00") {
        Some(rest) if !trimmed.starts_with('+') => rest.to_owned(),
        _ => digits,
    };
    if !(7..=15).contains(&digits.len()) {
        return fail("must have 7 to 15 digits with the country code");
    }
    if digits.starts_with('0') {
        return fail("must start with the country code, not 0");
    }
    Ok(digits)
}

/// One conversation per business account and customer; the one place its key is spelled.
pub fn conversation_id(channel: super::Channel, account_id: &str, contact_id: &str) -> String {
    format!("{}:{account_id}:{contact_id}", channel.as_str())
}

/// A phone number (or any customer identifier) cut to its last 4 characters: `…1234`. What
/// a log line at info or above may show of a customer.
pub fn mask(identifier: &str) -> String {
    let tail: String = identifier.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Channel;

    #[test]
    fn every_way_of_writing_a_number_is_the_same_whatsapp_contact() {
        for written in ["+1 650-555-1234", "16505551234", "+1 (650) 555.1234", " 0016505551234 "] {
            assert_eq!(
                ContactId::for_channel(Channel::WhatsApp, written).unwrap().as_str(),
                "16505551234",
                "{written}"
            );
        }
    }

    #[test]
    fn what_is_not_a_phone_number_is_refused_with_the_reason() {
        assert!(ContactId::for_channel(Channel::WhatsApp, "call me").is_err());
        assert!(ContactId::for_channel(Channel::WhatsApp, "+1 555").is_err(), "too short");
        assert!(ContactId::for_channel(Channel::WhatsApp, "0650 555 1234").is_err(), "no country code");
        assert_eq!(ContactId::for_channel(Channel::Instagram, "1784140530921").unwrap().as_str(), "1784140530921");
    }

    #[test]
    fn phone_number_ids_are_digits() {
        assert!(PhoneNumberId::parse("106540352242922").is_ok());
        assert_eq!(PhoneNumberId::parse("+1 555").unwrap_err().reason, "must contain digits only");
    }

    #[test]
    fn the_key_separator_is_refused() {
        assert!(WorkspaceId::parse("acme#evil").is_err());
        assert!(WorkspaceId::parse("").is_err());
    }

    proptest::proptest! {
        #[test]
        fn an_id_is_refused_exactly_when_it_holds_the_separator_or_a_control_character(value in "\\PC{0,8}[\\x00-\\x7f\\u{80}-\\u{a0}#]{0,4}\\PC{0,8}") {
            let refused = value.contains('#') || value.chars().any(char::is_control);
            proptest::prop_assert_eq!(MessageId::parse(value.clone()).is_err(), refused || value.is_empty(), "{:?}", value);
        }
    }

    #[test]
    fn ids_deserialize_only_when_valid() {
        assert!(serde_json::from_str::<WaId>("\"16505551234\"").is_ok());
        assert!(serde_json::from_str::<WaId>("\"not a number\"").is_err());
    }

    #[test]
    fn a_customer_shows_in_a_log_line_by_the_last_4_digits_only() {
        let contact = ContactId::for_channel(Channel::WhatsApp, "+1 650-555-1234").unwrap();
        assert_eq!(contact.masked(), "…1234");
        assert_eq!(mask("12"), "…12");
    }
}
