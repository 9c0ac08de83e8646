//! `make bench-peers`: the webhook's CPU path per delivery (signature check + typed parse +
//! routing into storage groups, what `benches/webhook_ingest.rs` measures) against the
//! JavaScript it replaces, on the same signed payloads in the same run:
//! - a hand-written Node handler (`crypto.createHmac` + `timingSafeEqual` + `JSON.parse`), the
//!   floor for any JavaScript implementation (`bench/peers/node-floor.js`);
//! - the `whatsapp-api-js` package's webhook entry point, `post(data, raw_body, signature)`
//!   (`bench/peers/whatsapp-api-js.js`, pinned in `bench/peers/package-lock.json`).
//!
//! Payloads, shaped like Meta's (compact JSON, non-ASCII and `/` escaped as Meta escapes
//! them): a 2 KB delivery of a few messages, a 20 KB batch of messages and statuses from many
//! customers, and a batch of 1,000 statuses (~325 KB). They are written once to
//! `target/bench-peers/` with their signatures; each side times them the same way (warm-up,
//! then samples of a batch of deliveries each) and the median per delivery is compared.
//!
//! Run: `make bench-peers` (or `cargo run --release -p wapisnap --example bench_peers`, after
//! `npm ci` in `bench/peers`). Options: `--samples N`, `--sample-ms N`, `--rust-only`, `--breakdown`,
//! `--only 2kb|20kb|1000` (one payload, e.g. to profile it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::Sha256;
use wapisnap::domain::WebhookEvent;
use wapisnap::inbound::event::{Delivery, parse_delivery};
use wapisnap::inbound::receiver::in_storage_order;
use wapisnap::meta::signature::verify_signature;

/// The webhook function's allocator, so that what is measured is what runs.
#[global_allocator]
static ALLOCATOR: wapisnap::inbound::Allocator = wapisnap::inbound::Allocator;

const SECRET: &str = "bench-peers-app-secret";

struct Payload {
    name: &'static str,
    file: &'static str,
    body: Vec<u8>,
    signature: String,
    /// Messages and statuses in the body: the events the Rust path must yield.
    elements: usize,
}

struct Timing {
    samples: usize,
    sample: Duration,
    warmup: Duration,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let option = |name: &str| {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(|v| v.parse::<u64>().expect(name))
    };
    let timing = Timing {
        samples: option("--samples").unwrap_or(41) as usize,
        sample: Duration::from_millis(option("--sample-ms").unwrap_or(20)),
        warmup: Duration::from_millis(500),
    };
    let rust_only = args.iter().any(|a| a == "--rust-only");

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = root.join("target/bench-peers");
    std::fs::create_dir_all(&out).expect("target/bench-peers");
    let now = chrono::Utc::now().timestamp();
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let payloads: Vec<Payload> = [
        payload("2 KB delivery", "delivery-2kb.json", messages_and_statuses(now, 2 * 1024, false)),
        payload("20 KB batch", "batch-20kb.json", messages_and_statuses(now, 20 * 1024, true)),
        payload("1,000 statuses", "statuses-1000.json", statuses(now, 1000)),
    ]
    .into_iter()
    .filter(|p| only.as_ref().is_none_or(|only| p.file.contains(only.as_str())))
    .collect();
    let manifest = write_manifest(&out, &payloads, &timing);

    let rust: Vec<f64> = payloads.iter().map(|p| rust_median_ns(p, &timing)).collect();
    if args.iter().any(|a| a == "--breakdown") {
        breakdown(&payloads, &timing);
    }
    let peers: Vec<(&str, Option<Vec<f64>>)> = if rust_only {
        vec![]
    } else {
        ["node-floor", "whatsapp-api-js"]
            .into_iter()
            .map(|script| (script, node_medians(&root.join("bench/peers"), script, &manifest, &payloads)))
            .collect()
    };

    println!();
    println!("Webhook CPU path per delivery (median), signature check + parse (+ routing for Rust):");
    print!("{:<16} {:>9} {:>12}", "payload", "bytes", "rust");
    for (name, _) in &peers {
        print!(" {:>16}", name);
    }
    for (name, _) in &peers {
        print!(" {:>20}", format!("rust vs {name}"));
    }
    println!();
    for (i, p) in payloads.iter().enumerate() {
        print!("{:<16} {:>9} {:>12}", p.name, p.body.len(), human(rust[i]));
        for (_, medians) in &peers {
            print!(" {:>16}", medians.as_ref().map_or("n/a".into(), |m| human(m[i])));
        }
        for (_, medians) in &peers {
            let ratio = medians.as_ref().map_or("n/a".into(), |m| format!("{:.2}x faster", m[i] / rust[i]));
            print!(" {:>20}", ratio);
        }
        println!();
    }
    println!("(ratio: the peer's median over Rust's; above 1 means Rust is faster)");
}

fn human(ns: f64) -> String {
    if ns >= 1e6 { format!("{:.2} ms", ns / 1e6) } else { format!("{:.1} µs", ns / 1e3) }
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn payload(name: &'static str, file: &'static str, (body, elements): (String, usize)) -> Payload {
    let body = meta_escaped(&body).into_bytes();
    let signature = sign(&body);
    Payload { name, file, body, signature, elements }
}

/// JSON as Meta writes it: every non-ASCII character as `\uXXXX` (surrogate pairs beyond the
/// BMP) and `/` as `\/`. Both only occur inside strings, so the result is the same JSON.
fn meta_escaped(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 8);
    for c in json.chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

/// A delivery's JSON with the keys of its change in Meta's order (`messaging_product`,
/// `metadata`, `contacts`, then `messages` or `statuses`), which a `Value` would sort.
fn envelope(contacts: &[Value], messages: &[Value], statuses: &[Value]) -> String {
    let mut value = String::from(
        r#"{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"106540352242922"}"#,
    );
    for (key, list) in [("contacts", contacts), ("messages", messages), ("statuses", statuses)] {
        if !list.is_empty() {
            value.push_str(&format!(r#","{key}":{}"#, serde_json::to_string(list).expect("serializes")));
        }
    }
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"value":{value}}},"field":"messages"}}]}}]}}"#
    )
}

fn wamid(i: usize) -> String {
    format!("wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0{i:08}RgA=")
}

/// The `i`-th message of a batch, cycling through the types customers send most.
fn message(i: usize, from: &str, timestamp: i64) -> Value {
    let (kind, body, extra): (&str, Value, Option<(&str, Value)>) = match i % 6 {
        0 => ("text", json!({ "body": "Hi! Is my order on its way? It was supposed to arrive yesterday 🙏" }), None),
        1 => (
            "image",
            json!({ "caption": "This is what arrived — the box was damaged", "mime_type": "image/jpeg",
                    "sha256": "Bd1Kc0F4oa+a4rC4yxHYdNQaZHxyVKF0fbNRcJmdVkY=", "id": "1003383421387256" }),
            None,
        ),
        2 => (
            "interactive",
            json!({ "type": "button_reply", "button_reply": { "id": "track-order", "title": "Track my order" } }),
            Some(("context", json!({ "from": "15550001111", "id": wamid(i + 1_000_000) }))),
        ),
        3 => ("reaction", json!({ "message_id": wamid(i + 2_000_000), "emoji": "👍" }), None),
        4 => (
            "text",
            json!({ "body": "Hello, do you still have the blue one in size M?" }),
            Some((
                "referral",
                json!({ "source_url": "https://fb.me/2ZulEu42P", "source_id": "120211234567890123",
                        "source_type": "ad", "headline": "Spring sale: 30% off", "body": "Tap to chat with us",
                        "media_type": "image", "image_url": "https://scontent.xx.fbcdn.net/v/t45.1600-4/spring.jpg",
                        "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0" }),
            )),
        ),
        _ => (
            "location",
            json!({ "latitude": 38.7223, "longitude": -9.1393, "name": "Café Lisboa", "address": "Rua Augusta 1, Lisboa" }),
            None,
        ),
    };
    let mut m = json!({ "from": from, "id": wamid(i), "timestamp": timestamp.to_string(), "type": kind });
    // The content sits under the key named by the type.
    m[kind] = body;
    if let Some((key, value)) = extra {
        m[key] = value;
    }
    m
}

/// A status of a message we sent, with our send job id, as Meta shapes each state: `sent` with
/// the conversation (and when it expires) and the pricing, `delivered` with both (no
/// expiration), `read` with neither.
fn status(i: usize, recipient: &str, timestamp: i64) -> Value {
    let state = ["sent", "delivered", "read"][i % 3];
    let mut s = json!({
        "id": wamid(i + 5_000_000),
        "status": state,
        "timestamp": timestamp.to_string(),
        "recipient_id": recipient,
        "biz_opaque_callback_data": format!("job-01JD3Q8Z{i:06}"),
    });
    if state != "read" {
        s["conversation"] = json!({ "id": "8a4f2c0e1b9d7f6a5c3e2d1b0a9f8e7d", "origin": { "type": "marketing" } });
        s["pricing"] = json!({ "billable": true, "pricing_model": "PMP", "category": "marketing", "type": "regular" });
    }
    if state == "sent" {
        s["conversation"]["expiration_timestamp"] = (timestamp + 86_400).to_string().into();
    }
    s
}

fn customer(i: usize) -> String {
    format!("1650555{:04}", i % 10_000)
}

/// Messages from a few customers each (and, for a batch, statuses of what we sent them) until
/// the body reaches `target` bytes.
fn messages_and_statuses(now: i64, target: usize, with_statuses: bool) -> (String, usize) {
    let (mut contacts, mut messages, mut statuses) = (Vec::new(), Vec::new(), Vec::new());
    let mut i = 0;
    loop {
        let body = envelope(&contacts, &messages, &statuses);
        if body.len() >= target {
            return (body, messages.len() + statuses.len());
        }
        let from = customer(i / 2);
        if i % 2 == 0 {
            contacts.push(json!({ "profile": { "name": format!("Customer {} Ñandú", i / 2) }, "wa_id": from }));
        }
        messages.push(message(i, &from, now - 60 + i as i64));
        if with_statuses {
            statuses.push(status(i, &from, now - 30 + i as i64));
        }
        i += 1;
    }
}

fn statuses(now: i64, count: usize) -> (String, usize) {
    let statuses: Vec<Value> = (0..count).map(|i| status(i, &customer(i), now - 30)).collect();
    (envelope(&[], &[], &statuses), count)
}

fn write_manifest(out: &Path, payloads: &[Payload], timing: &Timing) -> PathBuf {
    for p in payloads {
        std::fs::write(out.join(p.file), &p.body).expect("payload written");
    }
    let manifest = json!({
        "secret": SECRET,
        "timing": {
            "samples": timing.samples,
            "sampleMillis": timing.sample.as_millis() as u64,
            "warmupMillis": timing.warmup.as_millis() as u64,
        },
        "payloads": payloads.iter().map(|p| json!({
            "name": p.name, "file": p.file, "signature": p.signature, "bytes": p.body.len(),
        })).collect::<Vec<_>>(),
    });
    let path = out.join("manifest.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).expect("serializes")).expect("manifest written");
    path
}

/// What the webhook does with a delivery before storing it: the same as
/// `benches/webhook_ingest.rs`.
fn rust_path(body: &[u8], header: &str, secrets: &[SecretString]) -> Vec<Vec<WebhookEvent>> {
    verify_signature(Some(header), body, secrets).expect("signed");
    let Delivery::Events(events) = parse_delivery(body) else { panic!("malformed") };
    in_storage_order(events)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 }
}

/// The same method as `bench/peers/harness.js`: warm up while finding how many deliveries fill
/// a sample, then the median over the samples of the time per delivery.
fn rust_median_ns(p: &Payload, timing: &Timing) -> f64 {
    let secrets = [SecretString::from(SECRET)];
    let groups = rust_path(&p.body, &p.signature, &secrets);
    let events: Vec<&WebhookEvent> = groups.iter().flatten().collect();
    assert_eq!(events.len(), p.elements, "{}: one event per message and status", p.name);
    assert!(
        events.iter().all(|e| matches!(e, WebhookEvent::Message(_) | WebhookEvent::Status(_))),
        "{}: every element read",
        p.name
    );
    time_ns(timing, || {
        std::hint::black_box(rust_path(std::hint::black_box(&p.body), &p.signature, &secrets));
    })
}

/// Where the Rust path's time goes: each step on its own, medians per delivery.
fn breakdown(payloads: &[Payload], timing: &Timing) {
    let secrets = [SecretString::from(SECRET)];
    println!("{:<16} {:>12} {:>12} {:>12}", "rust, by step", "signature", "parse", "routing");
    for p in payloads {
        let signature = time_ns(timing, || {
            verify_signature(Some(&p.signature), std::hint::black_box(&p.body), &secrets).expect("signed");
        });
        let parse = time_ns(timing, || {
            std::hint::black_box(parse_delivery(std::hint::black_box(&p.body)));
        });
        let Delivery::Events(events) = parse_delivery(&p.body) else { panic!("malformed") };
        let with_routing = time_ns(timing, || {
            let Delivery::Events(events) = parse_delivery(std::hint::black_box(&p.body)) else { panic!("malformed") };
            std::hint::black_box(in_storage_order(events));
        });
        drop(events);
        println!("{:<16} {:>12} {:>12} {:>12}", p.name, human(signature), human(parse), human(with_routing - parse));
    }
}

fn time_ns(timing: &Timing, mut f: impl FnMut()) -> f64 {
    let (mut batch, mut per_call) = (1usize, f64::INFINITY);
    let warmup_end = Instant::now() + timing.warmup;
    while Instant::now() < warmup_end {
        let start = Instant::now();
        (0..batch).for_each(|_| f());
        per_call = per_call.min(start.elapsed().as_nanos() as f64 / batch as f64);
        if per_call * (batch as f64) < timing.sample.as_nanos() as f64 / 4.0 {
            batch *= 2;
        }
    }
    let batch = ((timing.sample.as_nanos() as f64 / per_call).round() as usize).max(1);
    let times = (0..timing.samples)
        .map(|_| {
            let start = Instant::now();
            (0..batch).for_each(|_| f());
            start.elapsed().as_nanos() as f64 / batch as f64
        })
        .collect();
    median(times)
}

/// Runs one Node script on the manifest; `None` (with a message) when Node or its packages
/// are missing.
fn node_medians(dir: &Path, script: &str, manifest: &Path, payloads: &[Payload]) -> Option<Vec<f64>> {
    let output = Command::new("node").arg(dir.join(format!("{script}.js"))).arg(manifest).current_dir(dir).output();
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!("{script}: failed ({}): {}", o.status, String::from_utf8_lossy(&o.stderr));
            return None;
        }
        Err(e) => {
            eprintln!("{script}: cannot run node: {e}");
            return None;
        }
    };
    let report: Value = serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    let results = report["results"].as_array().expect("results");
    Some(
        payloads
            .iter()
            .map(|p| {
                let r = results.iter().find(|r| r["name"] == p.name).expect("a result per payload");
                assert_eq!(r["bytes"].as_u64(), Some(p.body.len() as u64), "{script} read {}", p.file);
                r["median_ns"].as_f64().expect("median_ns")
            })
            .collect(),
    )
}
