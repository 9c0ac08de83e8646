//! Meta's webhook payloads as typed structs. Everything Meta documents has a field; whatever
//! Meta adds later is ignored by these types (and kept by the caller as raw JSON where it
//! matters), so a new field never makes a delivery unreadable.

pub mod instagram;
pub mod whatsapp;

use serde::Deserialize;

/// The envelope every webhook shares; `object` says which product it is from.
/// Entries stay raw JSON until `object` says how to read them: no intermediate `Value` tree is
/// built on the hot path, and an entry we cannot read is still kept verbatim.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub object: String,
    #[serde(default)]
    pub entry: Vec<Box<serde_json::value::RawValue>>,
}

/// Meta sends Unix timestamps as strings of seconds (WhatsApp) or numbers of milliseconds
/// (Instagram).
pub(crate) fn seconds_from_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Timestamp {
        Text(String),
        Number(i64),
    }
    match Timestamp::deserialize(d)? {
        Timestamp::Text(s) => s.parse().map_err(serde::de::Error::custom),
        Timestamp::Number(n) => Ok(n),
    }
}
