//! The send policy at send time, on the local stack: the 24-hour window, templates that must be
//! APPROVED, numbers that must be ACTIVE, and the token that only ever travels in a header.

use chrono::Duration;
use wapisnap::clock::Clock;
use wapisnap::domain::Channel;
use wapisnap::domain::JobState;
use wapisnap::domain::{NumberState, TemplateStatus};
use wapisnap::outbound::sender::SendOutcome;
use wapisnap_tests::{
    NUMBER_A, NUMBER_B, TOKEN, TestApp, agent, broadcast, fault, flow, job, meta_error, template, text,
};

const CUSTOMER: &str = "16505551234";

#[tokio::test]
async fn a_reply_inside_the_window_is_sent_once_with_the_token_only_in_the_header() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    let reply = job(&ws, "reply-1", CUSTOMER, agent(), text("It ships tomorrow."));

    let SendOutcome::Accepted { wamid } = app.send(&reply).await else { panic!("not accepted") };
    assert_eq!(app.send(&reply).await, SendOutcome::AlreadySettled(JobState::Accepted), "a redelivery is acknowledged");

    let requests = app.env.sandbox.requests_to("/messages");
    assert_eq!(requests.len(), 1, "exactly one request to Meta");
    let request = &requests[0];
    assert_eq!(request.authorization.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
    assert!(!request.path.contains(TOKEN) && !request.query.contains(TOKEN), "never in the URL");
    assert_eq!(request.body["biz_opaque_callback_data"], "reply-1");
    assert_eq!(request.body["text"]["body"], "It ships tomorrow.");
    let record = app.job(&ws, "reply-1").await;
    assert_eq!(record.wamid.as_deref(), Some(wamid.as_str()));
}

#[tokio::test]
async fn a_free_form_job_outside_the_window_is_refused_with_its_reason_and_not_sent() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    let outcome = app.send(&job(&ws, "late-1", CUSTOMER, flow(), text("Still there?"))).await;
    let SendOutcome::Refused { reason } = outcome else { panic!("{outcome:?}") };
    assert!(reason.contains("24-hour"), "{reason}");
    let record = app.job(&ws, "late-1").await;
    assert_eq!(record.state, JobState::Refused);
    assert_eq!(record.reason.as_deref(), Some(reason.as_str()), "recorded, never silently dropped");
    assert_eq!(app.sends_received(), 0);
    assert!(app.drain("RetryQueue").await.is_empty(), "and not retried");
}

#[tokio::test]
async fn a_template_goes_out_only_when_it_exists_and_is_approved() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    let missing = app.send(&job(&ws, "tpl-1", CUSTOMER, broadcast("b1"), template("order_update"))).await;
    assert!(matches!(missing, SendOutcome::Refused { ref reason } if reason.contains("does not exist")), "{missing:?}");

    let waba = format!("9{NUMBER_A}");
    app.store().put_template(&ws, &waba, "order_update", "en_US", TemplateStatus::Paused).await.unwrap();
    let paused = app.send(&job(&ws, "tpl-2", CUSTOMER, broadcast("b1"), template("order_update"))).await;
    assert!(matches!(paused, SendOutcome::Refused { ref reason } if reason.contains("Paused")), "{paused:?}");

    app.store().put_template(&ws, &waba, "order_update", "en_US", TemplateStatus::Approved).await.unwrap();
    let approved = app.send(&job(&ws, "tpl-3", CUSTOMER, broadcast("b1"), template("order_update"))).await;
    assert!(matches!(approved, SendOutcome::Accepted { .. }), "outside the window, as templates may: {approved:?}");
    assert_eq!(app.sends_received(), 1);
}

#[tokio::test]
async fn an_inbox_template_to_a_new_customer_over_metas_messaging_limit_is_refused_and_the_templates_page_says_why() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.number_in_portfolio(&ws, NUMBER_A, "portfolio-1", "TIER_250").await;
    app.approve_template(&ws, "spring_sale").await;
    let now = app.env.stack.clock.now();
    for i in 0..249 {
        app.store().mark_reached(&ws, "portfolio-1", &format!("1650555{i:04}"), now).await.unwrap();
    }
    let outreach = |id: &str, to: &str| job(&ws, id, to, agent(), template("spring_sale"));

    let last = app.send(&outreach("out-1", "16505559000")).await;
    assert!(matches!(last, SendOutcome::Accepted { .. }), "the 250th new customer: {last:?}");
    let over = app.send(&outreach("out-2", "16505559001")).await;
    let SendOutcome::Refused { reason } = over else { panic!("the 251st: {over:?}") };
    assert!(reason.contains("messaging limit"), "{reason}");
    let again = app.send(&outreach("out-3", "16505559000")).await;
    assert!(matches!(again, SendOutcome::Accepted { .. }), "reached already today, not new: {again:?}");
    app.customer_writes(CUSTOMER).await;
    let inside = app.send(&outreach("out-4", CUSTOMER)).await;
    assert!(matches!(inside, SendOutcome::Accepted { .. }), "inside the window a template is not counted: {inside:?}");
    assert_eq!(app.sends_received(), 3);

    let key = app.key_for(&ws).await;
    let url = format!("{}/v1/templates", app.env.stack.http_url);
    let page: serde_json::Value = app.http.get(url).bearer_auth(key).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["items"][0]["status"], "APPROVED");
    assert_eq!(
        page["messaging_limits"],
        serde_json::json!([{ "portfolio": "portfolio-1", "tier": "TIER_250", "limit": 250, "reached": 250, "left": 0,
                             "numbers": [NUMBER_A] }]),
        "the Templates page shows both"
    );
}

#[tokio::test]
async fn a_number_that_is_not_active_does_not_send() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.store()
        .set_number_state(
            &ws,
            Channel::WhatsApp,
            NUMBER_A,
            NumberState::Disconnected,
            "deregistered",
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let outcome = app.send(&job(&ws, "n-1", CUSTOMER, agent(), text("hi"))).await;
    assert!(matches!(outcome, SendOutcome::Refused { ref reason } if reason.contains("Disconnected")), "{outcome:?}");
    assert_eq!(app.sends_received(), 0);
}

#[tokio::test]
async fn a_sealed_token_copied_to_another_number_or_workspace_or_tampered_with_does_not_open() {
    let app = TestApp::spawn_idle().await;
    let vault = app.vault();
    let token = secrecy::SecretString::from(TOKEN);
    let sealed = vault.seal("acme", NUMBER_A, &token).await.unwrap();
    assert_eq!(sealed.last4, "tXYZ", "only the last 4 characters are kept in clear");
    assert!(!format!("{sealed:?}").contains(TOKEN));
    assert!(vault.open("acme", NUMBER_A, &sealed).await.is_ok());
    assert!(vault.open("acme", NUMBER_B, &sealed).await.is_err(), "copied to another number");
    assert!(vault.open("globex", NUMBER_A, &sealed).await.is_err(), "copied to another workspace");
    let mut tampered = sealed.clone();
    tampered.ciphertext.replace_range(0..2, if tampered.ciphertext.starts_with("00") { "11" } else { "00" });
    assert!(vault.open("acme", NUMBER_A, &tampered).await.is_err(), "altered");

    // Through the sender: a token copied from another number means no send and a clear error.
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    let mut number = app.store().number(&ws, Channel::WhatsApp, NUMBER_A).await.unwrap().unwrap();
    number.token = vault.seal(ws.as_str(), NUMBER_B, &token).await.unwrap();
    app.store().put_number(&number).await.unwrap();
    let outcome = app.send(&job(&ws, "copied-1", CUSTOMER, agent(), text("hi"))).await;
    assert!(matches!(outcome, SendOutcome::Failed { ref reason } if reason.contains("does not open")), "{outcome:?}");
    assert_eq!(app.sends_received(), 0);
}

/// Captures every log line of the current thread.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One thread runs the whole stack here, so a thread-local subscriber sees every log line.
#[tokio::test(flavor = "current_thread")]
async fn the_plaintext_token_appears_in_no_log_line_no_response_and_no_stored_item() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(move || writer.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.env.sandbox.inject(fault(meta_error(131000), 1));
    // One after the other: the send queue is a standard queue read by several pollers, so two
    // jobs queued together may reach Meta in either order (and the fault is for the first).
    app.enqueue(&job(&ws, "log-1", CUSTOMER, agent(), text("one"))).await;
    app.job_reaches(&ws, "log-1", JobState::RetryScheduled).await;
    app.enqueue(&job(&ws, "log-2", CUSTOMER, agent(), text("two"))).await;
    app.job_reaches(&ws, "log-2", JobState::Delivered).await;
    app.advance(Duration::hours(2)).await;
    app.job_reaches(&ws, "log-1", JobState::Delivered).await;

    let mut responses = String::new();
    for path in ["/health", "/numbers", "/broadcasts"] {
        responses
            .push_str(&app.http.get(format!("{}{path}", app.api_url())).send().await.unwrap().text().await.unwrap());
    }
    let items =
        app.env.stack.aws.dynamodb.scan().table_name(app.env.stack.resources.table_name()).send().await.unwrap();
    let stored = format!("{:?}", items.items());

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.lines().count() > 50, "trace logging was on ({} lines)", logs.lines().count());
    assert!(!logs.contains(TOKEN), "the token leaked into a log line");
    assert!(!responses.contains(TOKEN), "the token leaked into an API response");
    assert!(!stored.contains(TOKEN), "the token is stored only sealed");
    assert_eq!(app.sends_received(), 3, "Meta itself did receive it, in the Authorization header");
}
