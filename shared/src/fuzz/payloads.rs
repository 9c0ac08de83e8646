//! Strategies for Meta's webhook bodies, for the fuzz properties of the parser
//! (`wapisnap::fuzz`) and of the webhook itself (`tests/integration/webhook_fuzz.rs`, which
//! includes this file by path). Only `proptest` and `serde_json` are used, so both crates can
//! build it.
//!
//! Bodies come from five sources, mixed:
//! - **structured**: WhatsApp and Instagram deliveries built from Meta's documented shapes
//!   (entries, changes, contacts, every message type, statuses, account updates; Instagram
//!   messages, echoes, postbacks, reads), each field drawn from plausible *and* hostile values
//!   (empty, huge, unicode, control characters, `#`, wrong types);
//! - **samples**: the bodies in `events/meta/`, edited as JSON ([`Edit`]: a key dropped or
//!   renamed, a value replaced by another type, an element repeated, a value nested deeper);
//! - **bytes**: either of the above serialised and then damaged byte by byte ([`ByteEdit`]:
//!   truncation, flipped bytes, spliced tokens such as `1e400` or a lone surrogate);
//! - **noise**: any JSON value, any bytes;
//! - **odd lenient blocks**: structured WhatsApp deliveries whose undocumented-shape-tolerant
//!   blocks (`context`, `referral`, …) carry an unknown field serde_json's `Value` refuses (a
//!   lone surrogate, a number beyond `f64`), written into the text ([`odd_lenient_blocks`]).

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{Value, json};

macro_rules! samples {
    ($($name:literal),* $(,)?) => {
        /// The sample deliveries in `events/meta/`, by file name.
        pub const SAMPLES: &[(&str, &[u8])] = &[
            $(($name, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/meta/", $name)))),*
        ];
    };
}

samples!(
    "instagram-dm.json",
    "instagram-echo.json",
    "instagram-read.json",
    "malformed.txt",
    "whatsapp-audio.json",
    "whatsapp-batch-two-numbers.json",
    "whatsapp-button.json",
    "whatsapp-contact-missing-wa-id.json",
    "whatsapp-contacts.json",
    "whatsapp-document.json",
    "whatsapp-errors-only.json",
    "whatsapp-forwarded.json",
    "whatsapp-identity.json",
    "whatsapp-image.json",
    "whatsapp-interactive-button-reply.json",
    "whatsapp-interactive-list-reply.json",
    "whatsapp-interactive-nfm-reply.json",
    "whatsapp-location.json",
    "whatsapp-order.json",
    "whatsapp-reaction.json",
    "whatsapp-referral.json",
    "whatsapp-status-failed-131049.json",
    "whatsapp-status-missing-recipient.json",
    "whatsapp-status-played.json",
    "whatsapp-status-read.json",
    "whatsapp-statuses-sent-delivered.json",
    "whatsapp-sticker.json",
    "whatsapp-system.json",
    "whatsapp-template-status.json",
    "whatsapp-text-reply.json",
    "whatsapp-text.json",
    "whatsapp-unknown-field.json",
    "whatsapp-unknown-type.json",
    "whatsapp-unsupported.json",
    "whatsapp-video.json",
);

/// One of `items`, shrinking towards the first.
pub fn one_of<T: Clone + std::fmt::Debug + 'static>(items: &[T]) -> impl Strategy<Value = T> + Clone {
    prop::sample::select(items.to_vec())
}

/// How large the generated values may get.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest string a field may be given (drawn rarely).
    pub long_string: usize,
    /// The most elements a list (entries, changes, messages, statuses) may hold.
    pub elements: usize,
}

impl Limits {
    /// For the parser in memory: strings up to 64 KiB, lists of up to 6.
    pub const PARSER: Limits = Limits { long_string: 64 * 1024, elements: 6 };
}

/// The sample at `index` (modulo their number) as JSON, or `null` for the one that is not JSON.
pub fn sample_value(index: usize) -> Value {
    let (_, bytes) = SAMPLES[index % SAMPLES.len()];
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------------------------
// Field values.

/// Strings a field may hold: mostly ordinary, sometimes hostile.
pub fn text(limits: Limits) -> BoxedStrategy<String> {
    let long = limits.long_string.max(1);
    prop_oneof![
        6 => "[a-zA-Z0-9 ._-]{0,24}",
        3 => "\\PC{0,16}",
        2 => any::<String>(),
        2 => one_of(&[
            "", " ", "#", "a#b", "null", "0", "-1", "1e400", "wamid.", "\u{0}", "\t\n", "\u{202e}abc",
            "😀👍🏽", "\u{feff}", "\u{fffd}", "{\"a\":1}", "[]", "\\", "\"", "ﾟ", "\u{10ffff}", "1795680000",
            "16505551234", "+1 650-555-1234", "US.13491208655302741918",
        ])
        .prop_map(str::to_owned),
        1 => (1..=long, one_of(&['x', '9', 'é', '😀', '#', '"']))
            .prop_map(|(n, c)| std::iter::repeat_n(c, n / c.len_utf8()).collect()),
    ]
    .boxed()
}

/// A WhatsApp id as Meta writes it (digits), or not.
pub fn wa_id(limits: Limits) -> BoxedStrategy<String> {
    prop_oneof![12 => "[1-9][0-9]{6,14}", 1 => "[0-9]{0,40}", 2 => text(limits)].boxed()
}

/// A Meta id (`wamid.…`, a mid, a phone number id), or not.
pub fn meta_id(limits: Limits) -> BoxedStrategy<String> {
    prop_oneof![
        10 => "wamid\\.[A-Za-z0-9=_-]{4,60}",
        5 => "[1-9][0-9]{10,16}",
        2 => text(limits),
        1 => "[a-z]{1,8}".prop_map(|s| s.repeat(40)),
    ]
    .boxed()
}

/// Numbers of every kind JSON can hold (huge ones as floats).
pub fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        one_of(&[0i64, -1, 1, i64::MIN, i64::MAX, 1_795_680_000, 1_795_680_000_123]).prop_map(Value::from),
    ]
    .boxed()
}

/// Timestamps: seconds or milliseconds as a string or a number, and whatever else.
pub fn timestamp() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => (1_795_000_000i64..1_796_000_000).prop_map(|s| Value::String(s.to_string())),
        2 => (1_795_000_000_000i64..1_796_000_000_000).prop_map(Value::from),
        1 => (1_795_000_000_000i64..1_796_000_000_000).prop_map(|s| Value::String(s.to_string())),
        1 => any::<i64>().prop_map(|s| Value::String(s.to_string())),
        1 => number(),
        1 => one_of(&["", "soon", "1795680000.5", "99999999999999999999999", " 1795680000 ", "-0"])
            .prop_map(Value::from),
        1 => Just(Value::Null),
    ]
    .boxed()
}

/// A JSON value of any shape, a few levels deep.
pub fn any_json(limits: Limits) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text(limits).prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec(("[a-z_]{1,12}", inner), 0..6).prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A value for a field that should be a string: a string, mostly.
fn string_field(limits: Limits) -> BoxedStrategy<Value> {
    prop_oneof![19 => text(limits).prop_map(Value::String), 1 => any_json(limits)].boxed()
}

/// An object from optional fields: `None` leaves the key out.
fn object(fields: Vec<(&'static str, Option<Value>)>) -> Value {
    Value::Object(fields.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_owned(), v))).collect())
}

fn maybe<S: Strategy<Value = Value> + 'static>(s: S) -> BoxedStrategy<Option<Value>> {
    prop::option::weighted(0.6, s).boxed()
}

/// For a field Meta documents as required: there, mostly.
fn mostly<S: Strategy<Value = Value> + 'static>(s: S) -> BoxedStrategy<Option<Value>> {
    prop::option::weighted(0.95, s).boxed()
}

// ---------------------------------------------------------------------------------------------
// WhatsApp.

const MESSAGE_TYPES: &[&str] = &[
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
    "order",
    "system",
    "unsupported",
    "request_welcome",
    "ephemeral",
    "hologram",
];

fn media(limits: Limits) -> BoxedStrategy<Value> {
    (
        string_field(limits),
        maybe(Just(Value::from("image/jpeg"))),
        maybe(string_field(limits)),
        maybe(string_field(limits)),
        maybe(string_field(limits)),
        maybe(any::<bool>().prop_map(Value::Bool)),
    )
        .prop_map(|(id, mime, sha, caption, filename, voice)| {
            object(vec![
                ("id", Some(id)),
                ("mime_type", mime),
                ("sha256", sha),
                ("caption", caption),
                ("filename", filename),
                ("voice", voice),
            ])
        })
        .boxed()
}

fn interactive(limits: Limits) -> BoxedStrategy<Value> {
    let option = (string_field(limits), string_field(limits), maybe(string_field(limits))).prop_map(
        |(id, title, description)| object(vec![("id", Some(id)), ("title", Some(title)), ("description", description)]),
    );
    let flow_json = prop_oneof![
        Just(r#"{"flow_token":"ft-1","appointment_day":"2026-12-01"}"#.to_owned()),
        any_json(limits).prop_map(|v| v.to_string()),
        text(limits),
    ];
    let flow = (maybe(string_field(limits)), flow_json).prop_map(|(name, response)| {
        object(vec![("name", name), ("body", Some("Sent".into())), ("response_json", Some(response.into()))])
    });
    (one_of(&["button_reply", "list_reply", "nfm_reply", "product_list", ""]), option, flow)
        .prop_map(|(kind, option, flow)| match kind {
            "button_reply" => json!({ "type": kind, "button_reply": option }),
            "list_reply" => json!({ "type": kind, "list_reply": option }),
            "nfm_reply" => json!({ "type": kind, "nfm_reply": flow }),
            _ => json!({ "type": kind, "button_reply": option, "nfm_reply": flow }),
        })
        .boxed()
}

/// The block a message of `type` carries (`text`, `image`, ...), as Meta documents it.
fn message_block(kind: &'static str, limits: Limits) -> BoxedStrategy<Value> {
    match kind {
        "text" => string_field(limits).prop_map(|body| json!({ "body": body })).boxed(),
        "image" | "audio" | "video" | "document" | "sticker" => media(limits),
        "location" => (any::<f64>(), -90.0..90.0f64, maybe(string_field(limits)))
            .prop_map(|(lat, lon, name)| {
                object(vec![("latitude", Some(lat.into())), ("longitude", Some(lon.into())), ("name", name)])
            })
            .boxed(),
        "contacts" => vec(any_json(limits), 0..3)
            .prop_map(|extra| {
                let mut list = vec![json!({ "name": { "formatted_name": "Ana" }, "phones": [{ "phone": "+1 555" }] })];
                list.extend(extra);
                Value::Array(list)
            })
            .boxed(),
        "interactive" => interactive(limits),
        "button" => (maybe(string_field(limits)), string_field(limits))
            .prop_map(|(payload, text)| object(vec![("payload", payload), ("text", Some(text))]))
            .boxed(),
        "reaction" => (meta_id(limits), maybe(string_field(limits)))
            .prop_map(|(id, emoji)| object(vec![("message_id", Some(id.into())), ("emoji", emoji)]))
            .boxed(),
        "order" => (string_field(limits), maybe(string_field(limits)), vec(any_json(limits), 0..4))
            .prop_map(|(catalog, text, items)| {
                object(vec![
                    ("catalog_id", Some(catalog)),
                    ("text", text),
                    ("product_items", Some(Value::Array(items))),
                ])
            })
            .boxed(),
        "system" => (
            one_of(&["user_changed_number", "customer_identity_changed", "other"]),
            maybe(string_field(limits)),
            maybe(wa_id(limits).prop_map(Value::String)),
        )
            .prop_map(|(kind, body, new_wa_id)| {
                object(vec![("type", Some(kind.into())), ("body", body), ("new_wa_id", new_wa_id)])
            })
            .boxed(),
        "unsupported" => maybe(string_field(limits)).prop_map(|kind| object(vec![("type", kind)])).boxed(),
        _ => any_json(limits),
    }
}

fn error_detail(limits: Limits) -> BoxedStrategy<Value> {
    (
        prop_oneof![3 => one_of(&[131000i64, 131026, 131049, 131051, 130429, 190]).prop_map(Value::from), 1 => number()],
        maybe(string_field(limits)),
        maybe(string_field(limits)),
        maybe(string_field(limits).prop_map(|details| json!({ "details": details }))),
    )
        .prop_map(|(code, title, message, data)| {
            object(vec![("code", Some(code)), ("title", title), ("message", message), ("error_data", data)])
        }).boxed()
}

fn referral(limits: Limits) -> BoxedStrategy<Value> {
    (maybe(string_field(limits)), maybe(string_field(limits)), maybe(string_field(limits)))
        .prop_map(|(url, source_type, clid)| {
            object(vec![
                ("source_url", url),
                ("source_id", Some("120211234567890123".into())),
                ("source_type", source_type),
                ("ctwa_clid", clid),
                ("welcome_message", Some(json!({ "text": "Hi" }))),
            ])
        })
        .boxed()
}

/// One WhatsApp message, of any documented type (and some that are not), its block usually
/// matching its type.
pub fn whatsapp_message(limits: Limits) -> BoxedStrategy<Value> {
    let kind = one_of(MESSAGE_TYPES);
    let block_kind = prop_oneof![6 => Just(None), 1 => one_of(MESSAGE_TYPES).prop_map(Some)];
    (kind, block_kind)
        .prop_flat_map(move |(kind, block_kind)| {
            let block_kind = block_kind.unwrap_or(kind);
            (
                Just(kind),
                Just(block_kind),
                message_block(block_kind, limits),
                wa_id(limits),
                meta_id(limits),
                maybe(timestamp()),
                maybe((maybe(meta_id(limits).prop_map(Value::String)), any::<bool>()).prop_map(|(id, forwarded)| {
                    object(vec![
                        ("id", id),
                        ("forwarded", Some(forwarded.into())),
                        ("from", Some("16505551234".into())),
                    ])
                })),
                maybe(referral(limits)),
                maybe(vec(error_detail(limits), 0..3).prop_map(Value::Array)),
                maybe(string_field(limits)),
            )
        })
        .prop_map(|(kind, block_kind, block, from, id, timestamp, context, referral, errors, from_user_id)| {
            let mut message = object(vec![
                ("from", Some(from.into())),
                ("id", Some(id.into())),
                ("timestamp", timestamp),
                ("type", Some(kind.into())),
                ("context", context),
                ("referral", referral),
                ("errors", errors),
                ("from_user_id", from_user_id),
            ]);
            message[block_kind] = block;
            message
        })
        .boxed()
}

/// One status of a message we sent.
pub fn whatsapp_status(limits: Limits) -> BoxedStrategy<Value> {
    let state = prop_oneof![
        6 => one_of(&["sent", "delivered", "read", "failed", "played", "deleted", "warning"])
            .prop_map(str::to_owned),
        1 => text(limits),
    ];
    (
        meta_id(limits),
        state,
        maybe(timestamp()),
        mostly(wa_id(limits).prop_map(Value::String)),
        maybe(string_field(limits)),
        maybe(prop_oneof![Just(Value::from("job-42")), string_field(limits)]),
        maybe(any_json(limits)),
        maybe(vec(error_detail(limits), 0..3).prop_map(Value::Array)),
    )
        .prop_map(|(id, status, timestamp, recipient, user_id, callback, pricing, errors)| {
            object(vec![
                ("id", Some(id.into())),
                ("status", Some(status.into())),
                ("timestamp", timestamp),
                ("recipient_id", recipient),
                ("recipient_user_id", user_id),
                ("biz_opaque_callback_data", callback),
                ("pricing", pricing),
                ("conversation", Some(json!({ "id": "CONVERSATION_ID", "origin": { "type": "service" } }))),
                ("errors", errors),
            ])
        })
        .boxed()
}

fn whatsapp_contact(limits: Limits) -> BoxedStrategy<Value> {
    (mostly(wa_id(limits).prop_map(Value::String)), maybe(string_field(limits)), maybe(string_field(limits)))
        .prop_map(|(wa_id, name, user_id)| {
            object(vec![("wa_id", wa_id), ("profile", Some(object(vec![("name", name)]))), ("user_id", user_id)])
        })
        .boxed()
}

/// The phone number ids of the changes: mostly the samples' own (which the integration test's
/// workspace owns), sometimes anything.
fn phone_number_id(limits: Limits) -> BoxedStrategy<Value> {
    prop_oneof![
        6 => one_of(&["106540352242922", "106540352242923"]).prop_map(Value::from),
        1 => string_field(limits),
    ]
    .boxed()
}

fn messages_change(limits: Limits) -> BoxedStrategy<Value> {
    let n = limits.elements;
    (
        phone_number_id(limits),
        vec(whatsapp_contact(limits), 0..n),
        vec(whatsapp_message(limits), 0..n),
        vec(whatsapp_status(limits), 0..n),
        maybe(vec(error_detail(limits), 1..3).prop_map(Value::Array)),
        prop_oneof![8 => Just(true), 1 => Just(false)],
        maybe(any_json(limits)),
    )
        .prop_map(|(phone_number_id, contacts, messages, statuses, errors, metadata, other_metadata)| {
            // Without metadata (or with metadata of another shape) the change is unreadable.
            let metadata = if metadata {
                Some(json!({ "display_phone_number": "15550001111", "phone_number_id": phone_number_id }))
            } else {
                other_metadata
            };
            let nonempty = |list: Vec<Value>| (!list.is_empty()).then_some(Value::Array(list));
            json!({
                "field": "messages",
                "value": object(vec![
                    ("messaging_product", Some("whatsapp".into())),
                    ("metadata", metadata),
                    ("contacts", nonempty(contacts)),
                    ("messages", nonempty(messages)),
                    ("statuses", nonempty(statuses)),
                    ("errors", errors),
                ]),
            })
        })
        .boxed()
}

fn account_change(limits: Limits) -> BoxedStrategy<Value> {
    let template = (
        one_of(&["APPROVED", "REJECTED", "PAUSED", "DISABLED", "PENDING_DELETION", "NEW_STATE"]),
        maybe(string_field(limits)),
        maybe(string_field(limits)),
        maybe(prop_oneof![Just(Value::from("NONE")), Just(Value::Null), string_field(limits)]),
    )
        .prop_map(|(event, name, language, reason)| {
            json!({ "field": "message_template_status_update", "value": object(vec![
                ("event", Some(event.into())), ("message_template_id", Some(594425479261596i64.into())),
                ("message_template_name", name), ("message_template_language", language), ("reason", reason),
            ]) })
        });
    let quality = (maybe(string_field(limits)), maybe(string_field(limits)), maybe(string_field(limits))).prop_map(
        |(number, event, limit)| {
            json!({ "field": "phone_number_quality_update", "value": object(vec![
                ("display_phone_number", number), ("event", event), ("current_limit", limit),
            ]) })
        },
    );
    let account = (maybe(string_field(limits)), maybe(string_field(limits)), maybe(any_json(limits))).prop_map(
        |(number, event, ban)| {
            json!({ "field": "account_update", "value": object(vec![
                ("phone_number", number), ("event", event), ("ban_info", ban),
            ]) })
        },
    );
    let other = (text(limits), any_json(limits)).prop_map(|(field, value)| json!({ "field": field, "value": value }));
    prop_oneof![template, quality, account, other].boxed()
}

/// A WhatsApp Business Account delivery.
pub fn whatsapp_body(limits: Limits) -> BoxedStrategy<Value> {
    let change = prop_oneof![4 => messages_change(limits), 1 => account_change(limits)];
    let entry = (prop_oneof![4 => Just("102290129340398".to_owned()), 1 => text(limits)], vec(change, 0..3))
        .prop_map(|(id, changes)| json!({ "id": id, "changes": changes }));
    vec(entry, 0..3).prop_map(|entry| json!({ "object": "whatsapp_business_account", "entry": entry })).boxed()
}

// ---------------------------------------------------------------------------------------------
// Instagram.

fn instagram_event(limits: Limits) -> BoxedStrategy<Value> {
    const ACCOUNT: &str = "17841405309211844";
    let customer = prop_oneof![4 => Just("6180712345678901".to_owned()), 1 => text(limits)];
    let message = (
        meta_id(limits),
        maybe(string_field(limits)),
        maybe(vec((string_field(limits), maybe(string_field(limits))), 0..3).prop_map(|list| {
            Value::Array(
                list.into_iter().map(|(kind, url)| json!({ "type": kind, "payload": { "url": url } })).collect(),
            )
        })),
        any::<bool>(),
        maybe(meta_id(limits).prop_map(|mid| json!({ "mid": mid }))),
        maybe(string_field(limits).prop_map(|payload| json!({ "payload": payload }))),
    )
        .prop_map(|(mid, text, attachments, echo, reply_to, quick_reply)| {
            json!({ "message": object(vec![
                ("mid", Some(mid.into())), ("text", text), ("attachments", attachments),
                ("is_echo", Some(echo.into())), ("reply_to", reply_to), ("quick_reply", quick_reply),
            ]) })
        });
    let postback = (maybe(meta_id(limits).prop_map(Value::String)), maybe(string_field(limits)))
        .prop_map(|(mid, payload)| json!({ "postback": object(vec![("mid", mid), ("title", Some("Yes".into())), ("payload", payload)]) }));
    let read =
        maybe(meta_id(limits).prop_map(Value::String)).prop_map(|mid| json!({ "read": object(vec![("mid", mid)]) }));
    let reaction =
        meta_id(limits).prop_map(|mid| json!({ "reaction": { "mid": mid, "action": "react", "emoji": "❤" } }));
    let what = prop_oneof![4 => message, 1 => postback, 1 => read, 1 => reaction, 1 => Just(json!({}))];
    (customer, any::<bool>(), maybe(timestamp()), what)
        .prop_map(|(customer, echo, timestamp, what)| {
            let (sender, recipient) =
                if echo { (ACCOUNT.to_owned(), customer) } else { (customer, ACCOUNT.to_owned()) };
            let mut event = object(vec![
                ("sender", Some(json!({ "id": sender }))),
                ("recipient", Some(json!({ "id": recipient }))),
                ("timestamp", timestamp),
            ]);
            if let (Value::Object(event), Value::Object(what)) = (&mut event, what) {
                event.extend(what);
            }
            event
        })
        .boxed()
}

/// An Instagram Messaging delivery.
pub fn instagram_body(limits: Limits) -> BoxedStrategy<Value> {
    let entry = (
        prop_oneof![4 => Just("17841405309211844".to_owned()), 1 => text(limits)],
        vec(instagram_event(limits), 0..limits.elements),
    )
        .prop_map(|(id, messaging)| json!({ "id": id, "time": 1795680000123i64, "messaging": messaging }));
    vec(entry, 0..3).prop_map(|entry| json!({ "object": "instagram", "entry": entry })).boxed()
}

// ---------------------------------------------------------------------------------------------
// Edits.

/// One change to a JSON document, at the node `at` picks (modulo the number of nodes, in
/// depth-first order).
#[derive(Debug, Clone)]
pub enum Edit {
    /// Removes one key of an object or one element of an array.
    RemoveChild(usize),
    /// Replaces the node with another value (often of another type).
    Replace(Value),
    /// Repeats one element of an array (or a whole object's value) `n` times.
    Repeat(usize, usize),
    /// Wraps the node in `depth` arrays or objects.
    Nest(usize),
    /// Renames one key of an object.
    Rename(usize, String),
    /// Adds a key to an object (or an element to an array).
    Add(String, Value),
}

pub fn edit(limits: Limits) -> BoxedStrategy<Edit> {
    prop_oneof![
        3 => any::<usize>().prop_map(Edit::RemoveChild),
        3 => any_json(limits).prop_map(Edit::Replace),
        2 => (any::<usize>(), 2usize..24).prop_map(|(i, n)| Edit::Repeat(i, n)),
        1 => prop_oneof![4 => 1usize..8, 1 => 100usize..140].prop_map(Edit::Nest),
        1 => (any::<usize>(), text(limits)).prop_map(|(i, k)| Edit::Rename(i, k)),
        2 => (prop_oneof![text(limits), Just("errors".to_owned()), Just("messages".to_owned())], any_json(limits))
            .prop_map(|(k, v)| Edit::Add(k, v)),
    ]
    .boxed()
}

/// `(at, edit)` pairs.
pub fn edits(limits: Limits, count: std::ops::Range<usize>) -> BoxedStrategy<Vec<(usize, Edit)>> {
    vec((any::<usize>(), edit(limits)), count).boxed()
}

/// Repetitions stop growing a document beyond about this many nodes.
const MAX_NODES: usize = 20_000;

/// Nesting stops at this depth.
const MAX_DEPTH: usize = 136;

fn depth(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

fn nth_node(value: &mut Value, n: usize) -> &mut Value {
    if n == 0 {
        return value;
    }
    let mut rest = n - 1;
    let children: Vec<&mut Value> = match value {
        Value::Array(items) => items.iter_mut().collect(),
        Value::Object(map) => map.values_mut().collect(),
        _ => unreachable!("n is below the node count"),
    };
    for child in children {
        let size = count_nodes(child);
        if rest < size {
            return nth_node(child, rest);
        }
        rest -= size;
    }
    unreachable!("n is below the node count")
}

/// Applies the edits in order. Deterministic, so a failing case shrinks and replays.
pub fn apply(value: &mut Value, edits: &[(usize, Edit)]) {
    for (at, edit) in edits {
        let total = count_nodes(value);
        let doc_depth = depth(value);
        let node = nth_node(value, at % total);
        match edit {
            Edit::RemoveChild(i) => match node {
                Value::Array(items) if !items.is_empty() => {
                    items.remove(i % items.len());
                }
                Value::Object(map) if !map.is_empty() => {
                    let key = map.keys().nth(i % map.len()).cloned().expect("in range");
                    map.remove(&key);
                }
                _ => *node = Value::Null,
            },
            Edit::Replace(v) => *node = v.clone(),
            Edit::Repeat(i, n) => {
                // Repetitions compound; the document stays below `MAX_NODES` or so.
                let n = (*n).min(MAX_NODES / total).max(1);
                match node {
                    Value::Array(items) if !items.is_empty() => {
                        let item = items[i % items.len()].clone();
                        items.extend(std::iter::repeat_n(item, n));
                    }
                    other => *other = Value::Array(vec![other.clone(); n]),
                }
            }
            Edit::Nest(depth) => {
                // A little beyond serde_json's limit of 128 levels, and no further: that is what
                // any body read from bytes can hold (and deeper values overflow the stack of a
                // debug build's test thread when serialised).
                let depth = (*depth).min(MAX_DEPTH.saturating_sub(doc_depth));
                let mut nested = node.take();
                for level in 0..depth {
                    nested = if level % 2 == 0 { Value::Array(vec![nested]) } else { json!({ "a": nested }) };
                }
                *node = nested;
            }
            Edit::Rename(i, key) => {
                if let Value::Object(map) = node
                    && !map.is_empty()
                {
                    let old = map.keys().nth(i % map.len()).cloned().expect("in range");
                    let v = map.remove(&old).expect("present");
                    map.insert(key.clone(), v);
                }
            }
            Edit::Add(key, v) => match node {
                Value::Object(map) => {
                    map.insert(key.clone(), v.clone());
                }
                Value::Array(items) => items.push(v.clone()),
                _ => {}
            },
        }
    }
}

/// One change to a body's bytes.
#[derive(Debug, Clone)]
pub enum ByteEdit {
    Truncate(usize),
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    /// Splices in a token the JSON reader finds hard: `1e400`, a lone surrogate, deep nesting.
    Splice(usize, &'static str),
    Delete(usize, usize),
    Duplicate(usize, usize),
}

const TOKENS: &[&str] = &[
    "1e400",
    "-1e400",
    "99999999999999999999999999999",
    "-0",
    "0.0000000000000000000000000001",
    "\"\\ud800\"",
    "\"\\udc00\\ud800\"",
    "\"\\u0000\"",
    "\u{0}",
    "\u{feff}",
    "\\",
    "\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "null",
    "true",
    "NaN",
    "Infinity",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "\"object\":\"instagram\"",
    "\"object\":\"whatsapp_business_account\"",
    "\"type\":\"text\"",
];

pub fn byte_edit() -> BoxedStrategy<ByteEdit> {
    prop_oneof![
        1 => any::<usize>().prop_map(ByteEdit::Truncate),
        3 => (any::<usize>(), 1..=255u8).prop_map(|(i, x)| ByteEdit::Flip(i, x)),
        2 => (any::<usize>(), vec(any::<u8>(), 1..8)).prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        3 => (any::<usize>(), one_of(TOKENS)).prop_map(|(i, t)| ByteEdit::Splice(i, t)),
        1 => (any::<usize>(), 1usize..32).prop_map(|(i, n)| ByteEdit::Delete(i, n)),
        1 => (any::<usize>(), 1usize..64).prop_map(|(i, n)| ByteEdit::Duplicate(i, n)),
    ]
    .boxed()
}

pub fn apply_bytes(bytes: &mut Vec<u8>, edits: &[ByteEdit]) {
    for edit in edits {
        let at = |i: &usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match edit {
            ByteEdit::Truncate(i) => {
                let len = bytes.len();
                bytes.truncate(at(i, len));
            }
            ByteEdit::Flip(i, x) => {
                if !bytes.is_empty() {
                    let i = i % bytes.len();
                    bytes[i] ^= x;
                }
            }
            ByteEdit::Insert(i, b) => {
                let i = at(i, bytes.len());
                bytes.splice(i..i, b.iter().copied());
            }
            ByteEdit::Splice(i, token) => {
                let i = at(i, bytes.len());
                bytes.splice(i..i, token.bytes());
            }
            ByteEdit::Delete(i, n) => {
                let i = at(i, bytes.len());
                let end = (i + n).min(bytes.len());
                bytes.drain(i..end);
            }
            ByteEdit::Duplicate(i, n) => {
                let i = at(i, bytes.len());
                let end = (i + n).min(bytes.len());
                let copy = bytes[i..end].to_vec();
                bytes.splice(end..end, copy);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies.

/// A structured delivery of either product.
pub fn structured_body(limits: Limits) -> BoxedStrategy<Value> {
    prop_oneof![3 => whatsapp_body(limits), 1 => instagram_body(limits)].boxed()
}

/// Values JSON allows that serde_json's `Value` refuses (and its skipping of a field does not):
/// the general path reads the blocks Meta may send in undocumented shapes as `Value`s.
const VALUE_REFUSES: &[&str] = &[
    "\"\\ud800\"",
    "\"a\\udc00\\ud83d\"",
    "\"\\uDBFF x\"",
    "1e400",
    "-2.5E+309",
    "[1,{\"y\":\"\\ud83d\"}]",
    "\"\\ud83d\\ude4f\"",
    "1e30",
];

/// A structured WhatsApp body whose `context`, `referral`, `identity`, `unsupported` and
/// `errors` blocks carry an unknown field holding a value from [`VALUE_REFUSES`] (or a
/// harmless one): written into the text, as a `Value` cannot hold them.
pub fn odd_lenient_blocks(limits: Limits) -> BoxedStrategy<Vec<u8>> {
    (whatsapp_body(limits), one_of(VALUE_REFUSES))
        .prop_map(|(body, odd)| {
            let mut text = serde_json::to_string(&body).expect("values serialize");
            for block in ["\"context\":{", "\"referral\":{", "\"identity\":{", "\"unsupported\":{", "\"errors\":[{"] {
                text = text.replace(block, &format!("{block}\"zz_unknown\":{odd},"));
            }
            text.into_bytes()
        })
        .boxed()
}

/// A webhook body, from any of the sources above, as the bytes Meta would POST.
pub fn webhook_body(limits: Limits) -> BoxedStrategy<Vec<u8>> {
    let edited_structured = (structured_body(limits), edits(limits, 0..3)).prop_map(|(mut v, e)| {
        apply(&mut v, &e);
        serde_json::to_vec(&v).expect("values serialize")
    });
    let edited_sample = (any::<usize>(), edits(limits, 1..5)).prop_map(|(i, e)| {
        let mut v = sample_value(i);
        apply(&mut v, &e);
        serde_json::to_vec(&v).expect("values serialize")
    });
    let damaged = (
        prop_oneof![
            any::<usize>().prop_map(|i| SAMPLES[i % SAMPLES.len()].1.to_vec()),
            structured_body(limits).prop_map(|v| serde_json::to_vec(&v).expect("values serialize")),
        ],
        vec(byte_edit(), 1..4),
    )
        .prop_map(|(mut bytes, e)| {
            apply_bytes(&mut bytes, &e);
            bytes
        });
    let other_object = (text(limits), any_json(limits)).prop_map(|(object, entry)| {
        serde_json::to_vec(&json!({ "object": object, "entry": entry })).expect("values serialize")
    });
    let noise_json = any_json(limits).prop_map(|v| serde_json::to_vec(&v).expect("values serialize"));
    let noise_bytes = vec(any::<u8>(), 0..512);
    prop_oneof![
        4 => edited_structured,
        3 => edited_sample,
        2 => damaged,
        1 => other_object,
        1 => noise_json,
        1 => noise_bytes,
        1 => odd_lenient_blocks(limits),
    ]
    .boxed()
}
