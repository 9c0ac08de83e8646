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
    if value.contains('#') || value.chars().any(char::is_control) {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn ids_deserialize_only_when_valid() {
        assert!(serde_json::from_str::<WaId>("\"16505551234\"").is_ok());
        assert!(serde_json::from_str::<WaId>("\"not a number\"").is_err());
    }
}
