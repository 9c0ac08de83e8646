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

/// One scenario at a time: the recorder and the log capture are global to the process, so two
/// scenarios at once would count each other's work.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn of(sums: &BTreeMap<(String, String), u64>, metric: &str, value: &str) -> u64 {
    sums.get(&(metric.to_owned(), value.to_owned())).copied().unwrap_or(0)
}

#[tokio::test]
async fn one_inbound_message_delivered_three_times_is_counted_once_and_twice_as_duplicate() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // Before any log line of the process: a callsite first hit with no subscriber can stay
    // silent for the subscriber installed later, and the other scenarios read the logs.
    capture_logs();
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

/// Every log line the process writes, for the leak check.
static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct Captured;

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().expect("logs").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line from here on goes to [`LOGS`], as JSON lines like Lambda's.
fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(|| Captured)
        .try_init();
}

#[tokio::test]
async fn no_log_line_holds_a_phone_number_a_message_text_a_token_or_a_pin() {
    let _alone = ONE_AT_A_TIME.lock().await;
    capture_logs();
    let app = TestApp::spawn().await;
    let (ws, key) = app.workspace_with_key().await;
    app.connect_number(&ws, NUMBER_A).await;
    app.approve_template(&ws, "spring_sale").await;
    let customer = "16505551234";
    app.customer_says(customer, "My secret order 4711 is late").await;
    let conversation = format!("wa:{NUMBER_A}:{customer}");
    let reply = serde_json::json!({ "type": "text", "body": "Your parcel 9911 leaves today" });
    app.agent_sends(&key, &conversation, reply, "leak-1").await;
    app.contacts_tagged(&ws, "vip", 0, 3).await;
    let id = app
        .broadcast_to_tag(&ws, "bc_leak", NUMBER_A, "vip", "spring_sale", wapisnap::broadcasts::spec::OverLimit::Skip)
        .await;
    app.broadcast_fires(&ws, &id).await;
    app.broadcast_settles(&ws, &id).await;
    let pin = app
        .http
        .post(format!("{}/v1/numbers/{NUMBER_A}/register", app.env.stack.http_url))
        .bearer_auth(&key)
        .json(&serde_json::json!({ "pin": "246810" }))
        .send()
        .await
        .unwrap();
    assert!(pin.status().is_success() || pin.status().is_client_error());

    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
    assert!(logs.lines().count() > 10, "the scenario was logged ({} lines)", logs.lines().count());
    for (secret, what) in [
        ("1650555", "a customer's phone number"),
        ("My secret order", "a customer's message"),
        ("parcel 9911", "an agent's message"),
        (wapisnap_tests::TOKEN, "an access token"),
        ("246810", "a PIN"),
    ] {
        let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(secret)).take(3).collect();
        assert!(leaks.is_empty(), "{what} in the logs: {leaks:#?}");
    }
}

/// The log lines written inside one chain of work.
fn lines_of(chain: &str) -> Vec<Value> {
    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
    logs.lines().filter(|l| l.contains(chain)).filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// A running stack whose workspace answers `keyword` with one message.
async fn with_a_reply_to(keyword: &str) -> (TestApp, wapisnap::domain::WorkspaceId) {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    let reply = serde_json::json!({
        "name": "Echo", "priority": 1,
        "trigger": { "type": "keyword", "keywords": [keyword] },
        "start": "answer",
        "nodes": [{ "id": "answer", "type": "sendMessage", "text": "On its way!", "next": "done" },
                  { "id": "done", "type": "end" }]
    });
    app.automate(&ws, reply).await;
    (app, ws)
}

#[tokio::test]
async fn one_customer_message_can_be_followed_from_the_webhook_through_its_flow_its_send_and_its_retry() {
    let _alone = ONE_AT_A_TIME.lock().await;
    capture_logs();
    let (app, ws) = with_a_reply_to("where").await;
    app.env.sandbox.inject(wapisnap_tests::fault(wapisnap_tests::meta_error(131000), 1));

    let wamid = app.customer_says(wapisnap_tests::flows::BEN, "where is my parcel?").await;
    let chain = wapisnap::correlation::for_inbound(&ws, &wapisnap::domain::MessageId::parse(wamid).unwrap());
    let targets = |lines: &[Value]| -> Vec<String> {
        lines.iter().filter_map(|l| l["target"].as_str().map(str::to_owned)).collect()
    };
    let reached_retry =
        wapisnap_tests::eventually("the chain to reach Smart Retry", std::time::Duration::from_secs(60), || {
            let lines = lines_of(chain.as_str());
            async move { targets(&lines).iter().any(|t| t.starts_with("wapisnap::retry")).then_some(lines) }
        })
        .await;
    let seen = targets(&reached_retry);
    for stage in ["wapisnap::flows", "wapisnap::outbound", "wapisnap::retry"] {
        assert!(seen.iter().any(|t| t.starts_with(stage)), "no {stage} line in chain {chain}: {seen:?}");
    }
}

#[tokio::test]
async fn a_failure_meta_reports_by_webhook_is_judged_in_the_chain_of_the_message_it_failed() {
    let _alone = ONE_AT_A_TIME.lock().await;
    capture_logs();
    let (app, ws) = with_a_reply_to("where").await;
    // Meta accepts the reply, then reports it failed by webhook: the hand-over to Smart Retry
    // comes from the webhook, outside the message's chain.
    app.env
        .sandbox
        .inject(wapisnap_tests::fault(wapisnap_local::sandbox::FaultEffect::FailedStatus { code: 131000 }, 1));

    let wamid = app.customer_says(wapisnap_tests::flows::BEN, "where is my parcel?").await;
    let chain = wapisnap::correlation::for_inbound(&ws, &wapisnap::domain::MessageId::parse(wamid).unwrap());
    let judged = wapisnap_tests::eventually("Smart Retry's line in the chain", std::time::Duration::from_secs(60), || {
        let lines = lines_of(chain.as_str());
        async move { lines.into_iter().find(|l| l["target"].as_str().is_some_and(|t| t.starts_with("wapisnap::retry"))) }
    })
    .await;
    assert_eq!(judged["span"]["name"], "smart_retry", "{judged}");
    assert!(judged["span"]["job"].as_str().is_some_and(|j| j.starts_with("flow-run_")), "{judged}");
}
