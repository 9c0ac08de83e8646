//! The webhook's CPU path per delivery: signature check + parse + routing into storage groups.
//! Target: under 20 µs for a typical 2 KB delivery. Run: `cargo bench -p wapisnap`.
//! Criterion prints the time per delivery and the throughput in MB/s (MiB/s).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::SecretString;
use sha2::Sha256;
use wapisnap::inbound::event::{Delivery, parse_delivery};
use wapisnap::inbound::receiver::in_storage_order;
use wapisnap::meta::signature::verify_signature;

/// The webhook function's allocator, so that what is measured is what runs.
#[global_allocator]
static ALLOCATOR: wapisnap::inbound::Allocator = wapisnap::inbound::Allocator;

const SECRET: &str = "bench-app-secret";

/// A WhatsApp delivery of at least `target` bytes: text messages from many customers of one
/// number, as Meta batches them.
fn delivery(target: usize) -> Vec<u8> {
    let mut messages = Vec::new();
    let mut contacts = Vec::new();
    let mut size = 0;
    let mut i = 0u64;
    while size < target {
        let from = format!("1650555{i:04}");
        let message = serde_json::json!({
            "from": from, "id": format!("wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0{i:08}"),
            "timestamp": "1795680000", "type": "text",
            "text": { "body": "Hi! Is my order on its way? It was supposed to arrive yesterday afternoon." }
        });
        size += message.to_string().len() + 80;
        messages.push(message);
        contacts.push(serde_json::json!({ "profile": { "name": format!("Customer {i}") }, "wa_id": from }));
        i += 1;
    }
    let body = serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "102290129340398", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550001111", "phone_number_id": "106540352242922" },
            "contacts": contacts, "messages": messages,
        }}]}]
    });
    serde_json::to_vec(&body).unwrap()
}

fn signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn ingest(c: &mut Criterion) {
    let secrets = [SecretString::from(SECRET)];
    let mut group = c.benchmark_group("webhook signature+parse+route");
    for (label, size) in [("2KB", 2 * 1024), ("100KB", 100 * 1024), ("3MB", 3 * 1024 * 1024)] {
        let body = delivery(size);
        let header = signature(&body);
        group.throughput(Throughput::Bytes(body.len() as u64));
        if size > 1024 * 1024 {
            group.sample_size(10);
        }
        group.bench_with_input(BenchmarkId::from_parameter(label), &body, |b, body| {
            b.iter(|| {
                verify_signature(Some(&header), body, &secrets).expect("signed");
                let Delivery::Events(events) = parse_delivery(body) else { panic!("malformed") };
                std::hint::black_box(in_storage_order(events))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
