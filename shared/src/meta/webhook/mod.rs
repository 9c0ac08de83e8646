//! Meta's webhook payloads as typed structs. Everything Meta documents has a field; whatever
//! Meta adds later is ignored by these types (and kept by the caller as raw JSON where it
//! matters), so a new field never makes a delivery unreadable.

pub mod instagram;
pub mod whatsapp;

use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The envelope every webhook shares; `object` says which product it is from.
/// Entries stay raw JSON until `object` says how to read them: no intermediate `Value` tree is
/// built on the hot path, and an entry we cannot read is still kept verbatim.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub object: String,
    #[serde(default)]
    pub entry: Vec<Box<serde_json::value::RawValue>>,
}

/// A timestamp as Meta sent it: WhatsApp writes seconds in a string, Instagram milliseconds as
/// a number. Reading it never fails, so a strange timestamp never makes its element unreadable;
/// what it means is decided by [`resolve_time`], against the time we received it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MetaTimestamp {
    Integer(i64),
    /// Not an integer that fits in 64 bits (a fraction, a word, a huge number), kept as text.
    Unreadable(String),
}

impl<'de> Deserialize<'de> for MetaTimestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum AsSent {
            Integer(i64),
            Text(String),
            Other(Value),
        }
        Ok(match AsSent::deserialize(d)? {
            AsSent::Integer(n) => Self::Integer(n),
            AsSent::Text(text) => text.trim().parse().map_or(Self::Unreadable(text), Self::Integer),
            AsSent::Other(value) => Self::Unreadable(value.to_string()),
        })
    }
}

/// The unit Meta documents for a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Seconds,
    Milliseconds,
}

/// Nothing Meta sends predates WhatsApp (2009); an earlier time is a wrong unit or garbage.
const EARLIEST_PLAUSIBLE_SECONDS: i64 = 1_230_768_000;

/// How far ahead of our clock Meta's may be before a time counts as "in the future".
const FUTURE_TOLERANCE: Duration = Duration::minutes(15);

/// Meta's time for an element, and why it is not Meta's value as sent, when it is not.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTime {
    pub at: DateTime<Utc>,
    pub note: Option<String>,
}

/// Checks Meta's timestamp against the time we received it. Meta's times decide the 24-hour
/// window (a far-future time would hold it open, and adding 24 hours to an extreme one
/// overflows), the order a conversation's messages are stored in and the sort keys, so a time we
/// cannot trust is never used as is, and the element is still stored — a customer's message with
/// a bad timestamp is still a message to answer:
/// - between 2009 and a few minutes after receipt: Meta's time, as sent;
/// - plausible only in the other unit (milliseconds where Meta documents seconds, or the
///   reverse): read in that unit, with a note;
/// - anything else (negative, far future, too large to be a time, unreadable, missing): the
///   receipt time, with a note saying what Meta sent.
pub fn resolve_time(timestamp: Option<&MetaTimestamp>, unit: TimeUnit, received_at: DateTime<Utc>) -> ResolvedTime {
    let plausible = |at: Option<DateTime<Utc>>| {
        at.filter(|at| at.timestamp() >= EARLIEST_PLAUSIBLE_SECONDS && *at <= received_at + FUTURE_TOLERANCE)
    };
    let clamped =
        |why: String| ResolvedTime { at: received_at, note: Some(format!("{why}; the receipt time is used")) };
    let value = match timestamp {
        None => return clamped("no timestamp".into()),
        Some(MetaTimestamp::Unreadable(text)) => return clamped(format!("unreadable timestamp {text:?}")),
        Some(MetaTimestamp::Integer(value)) => *value,
    };
    let as_seconds = DateTime::from_timestamp(value, 0);
    let as_millis = DateTime::from_timestamp_millis(value);
    let (documented, other, other_unit) = match unit {
        TimeUnit::Seconds => (as_seconds, as_millis, "milliseconds"),
        TimeUnit::Milliseconds => (as_millis, as_seconds, "seconds"),
    };
    if let Some(at) = plausible(documented) {
        return ResolvedTime { at, note: None };
    }
    if let Some(at) = plausible(other) {
        return ResolvedTime { at, note: Some(format!("timestamp {value} is in {other_unit}; read as such")) };
    }
    let why = match documented {
        Some(at) if at > received_at => format!("timestamp {value} is in the future ({at})"),
        Some(at) => format!("timestamp {value} is implausibly old ({at})"),
        None => format!("timestamp {value} is out of range"),
    };
    clamped(why)
}

/// For the blocks we keep but do not act on (an ad referral, an identity change, errors): typed
/// when they match Meta's documentation, left out of the typed fields when they do not. The
/// element's raw JSON is kept whole beside them, so a surprise in one of these blocks loses
/// nothing and never makes the customer's message unreadable.
pub(crate) fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(serde_json::from_value(Value::deserialize(d)?).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received_at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_800_000, 0).unwrap()
    }

    fn resolve(json: &str, unit: TimeUnit) -> ResolvedTime {
        let timestamp: Option<MetaTimestamp> = serde_json::from_str(json).unwrap();
        resolve_time(timestamp.as_ref(), unit, received_at())
    }

    #[test]
    fn a_plausible_time_is_metas_time_as_sent() {
        assert_eq!(resolve(r#""1795680000""#, TimeUnit::Seconds).at.timestamp(), 1_795_680_000);
        assert_eq!(resolve("1795680000", TimeUnit::Seconds).note, None);
        assert_eq!(resolve("1795680000123", TimeUnit::Milliseconds).at.timestamp_millis(), 1_795_680_000_123);
    }

    #[test]
    fn milliseconds_where_seconds_are_documented_are_read_as_milliseconds_with_a_note() {
        let resolved = resolve(r#""1795680000123""#, TimeUnit::Seconds);
        assert_eq!(resolved.at.timestamp_millis(), 1_795_680_000_123);
        assert!(resolved.note.unwrap().contains("milliseconds"));

        let resolved = resolve("1795680000", TimeUnit::Milliseconds);
        assert_eq!(resolved.at.timestamp(), 1_795_680_000, "seconds where Instagram documents milliseconds");
        assert!(resolved.note.unwrap().contains("seconds"));
    }

    #[test]
    fn absurd_timestamps_become_the_receipt_time_with_the_reason() {
        use TimeUnit::{Milliseconds, Seconds};
        let (max, min) = (i64::MAX.to_string(), i64::MIN.to_string());
        let cases = [
            (r#""-5""#, Seconds, "implausibly old"),
            ("-5", Milliseconds, "implausibly old"),
            (r#""0""#, Seconds, "implausibly old"),
            (r#""1895680000""#, Seconds, "in the future"),
            ("1895680000000", Milliseconds, "in the future"),
            ("1895680000000000", Seconds, "out of range"),
            (&max, Seconds, "out of range"),
            (&min, Seconds, "out of range"),
            (&max, Milliseconds, "out of range"),
            (&min, Milliseconds, "out of range"),
            ("18446744073709551615", Seconds, "unreadable"),
            (r#""99999999999999999999999""#, Seconds, "unreadable"),
            ("1795680000.5", Seconds, "unreadable"),
            (r#""soon""#, Seconds, "unreadable"),
            ("{}", Milliseconds, "unreadable"),
            ("null", Seconds, "no timestamp"),
        ];
        for (json, unit, why) in cases {
            let resolved = resolve(json, unit);
            assert_eq!(resolved.at, received_at(), "{json} in {unit:?}");
            let note = resolved.note.unwrap_or_default();
            assert!(note.contains(why) && note.contains("receipt time"), "{json} in {unit:?}: {note}");
        }
    }

    #[test]
    fn a_few_minutes_ahead_of_our_clock_is_meta_being_a_little_ahead() {
        let ahead = (received_at() + Duration::minutes(5)).timestamp().to_string();
        assert_eq!(resolve(&ahead, TimeUnit::Seconds).note, None);
    }

    #[test]
    fn a_block_that_does_not_match_the_documentation_is_left_out_not_fatal() {
        #[derive(Deserialize)]
        struct Message {
            #[serde(default, deserialize_with = "lenient")]
            referral: Option<Referral>,
            id: String,
        }
        #[derive(Deserialize)]
        struct Referral {
            #[allow(dead_code)]
            source_url: String,
        }
        let message: Message = serde_json::from_str(r#"{"id":"m1","referral":{"source_url":42}}"#).unwrap();
        assert_eq!((message.id.as_str(), message.referral.is_none()), ("m1", true));
    }
}
