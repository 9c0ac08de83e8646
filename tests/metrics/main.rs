//! The metrics a scenario emits, captured as the EMF lines CloudWatch would read. Its own test
//! binary: the recorder is global to a process, so no other test's counts mix in.

use std::collections::BTreeMap;

use serde_json::Value;
use wapisnap::domain::Channel;
use wapisnap_tests::{NUMBER_A, TestApp, sample};

/// Sums of each (metric, dimension value) in EMF lines.
fn counts(emf: &[u8]) -> BTreeMap<(String, String), u64> {
    let mut sums = BTreeMap::new();
    for line in String::from_utf8_lossy(emf).lines() {
        let record: Value = serde_json::from_str(line).expect("one JSON object per line");
        let definition = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(definition["Namespace"], "wapisnap");
        let dimensions: Vec<&str> =
            definition["Dimensions"][0].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        let label = dimensions.first().map_or(String::new(), |d| record[*d].as_str().unwrap_or_default().to_owned());
        for metric in definition["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap().to_owned();
            *sums.entry((name.clone(), label.clone())).or_default() += record[&name].as_u64().unwrap_or(0);
        }
    }
    sums
}

fn of(sums: &BTreeMap<(String, String), u64>, metric: &str, value: &str) -> u64 {
    sums.get(&(metric.to_owned(), value.to_owned())).copied().unwrap_or(0)
}

#[tokio::test]
async fn one_inbound_message_delivered_three_times_is_counted_once_and_twice_as_duplicate() {
    wapisnap::metrics::init("webhook");
    let app = TestApp::spawn_idle().await;
    app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    wapisnap::metrics::flush_to(std::io::sink());

    for _ in 0..3 {
        assert_eq!(app.deliver(&sample("whatsapp-text.json")).await.0, 200);
    }
    assert_eq!(app.post_webhook(&sample("whatsapp-text.json"), Some("sha256=00")).await.0, 401);
    let mut emf = Vec::new();
    wapisnap::metrics::flush_to(&mut emf);
    let sums = counts(&emf);
    assert_eq!(of(&sums, "InboundMessages", "new"), 1, "{sums:?}");
    assert_eq!(of(&sums, "InboundMessages", "duplicate"), 2, "{sums:?}");
    assert_eq!(of(&sums, "WebhookDeliveries", "accepted"), 3, "{sums:?}");
    assert_eq!(of(&sums, "WebhookDeliveries", "bad_signature"), 1, "{sums:?}");
    for (_, label) in sums.keys() {
        assert!(!label.contains("1650555"), "no phone number in a dimension: {label}");
    }
}
