//! Webhook receipt on the local stack: Meta's deliveries are authenticated, then stored
//! exactly once — across redeliveries, concurrency, batches and write failures — and 200 is
//! answered only when everything is durable.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wapisnap::domain::DeliveryState;
use wapisnap::domain::{Channel, MessageContent};
use wapisnap::store::statuses::RetryHandoff;
use wapisnap_local::aws_faults::AwsFault;
use wapisnap_tests::{INSTAGRAM_ACCOUNT, NUMBER_A, NUMBER_B, TestApp, sample};

const TEXT_WAMID: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=";
const SENT_WAMID: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA";
const CONVERSATION: &str = "wa:106540352242922:16505551234";

/// A text message body with a given id and Meta timestamp.
fn text_message(wamid: &str, timestamp: i64, body: &str) -> Vec<u8> {
    let mut payload: Value = serde_json::from_slice(&sample("whatsapp-text.json")).unwrap();
    let message = &mut payload["entry"][0]["changes"][0]["value"]["messages"][0];
    message["id"] = json!(wamid);
    message["timestamp"] = json!(timestamp.to_string());
    message["text"]["body"] = json!(body);
    serde_json::to_vec(&payload).unwrap()
}

fn today() -> DateTime<Utc> {
    Utc::now()
}

#[tokio::test]
async fn an_inbound_message_is_stored_with_its_contact_conversation_and_one_flow_event() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;

    assert_eq!(app.deliver(&sample("whatsapp-text.json")).await, (200, "EVENT_RECEIVED".into()));

    let store = app.store();
    let stored = store.message(&ws, TEXT_WAMID).await.unwrap().expect("message stored");
    assert!(stored.processed);
    assert_eq!(stored.message.content, MessageContent::Text { body: "Hi! Is my order on its way?".into() });
    let contact = store.contact(&ws, Channel::WhatsApp, "16505551234").await.unwrap().expect("contact");
    assert_eq!(contact.profile_name.as_deref(), Some("Kerry Fisher"));
    let conversation = store.conversation(&ws, CONVERSATION).await.unwrap().expect("conversation");
    assert_eq!(conversation.last_inbound_at.timestamp(), 1_795_680_000, "Meta's timestamp, not arrival time");
    assert_eq!(conversation.window_closes_at - conversation.last_inbound_at, chrono::Duration::hours(24));

    let events = app.drain("FlowQueue").await;
    assert_eq!(events.len(), 1);
    let tick: wapisnap::queues::FlowTick = serde_json::from_value(events[0].clone()).expect("a flow tick");
    let wapisnap::queues::FlowTick::Inbound { conversation, message_id, .. } = tick else { panic!("{tick:?}") };
    assert_eq!(message_id.as_str(), TEXT_WAMID);
    assert_eq!(conversation.id(), CONVERSATION);
    assert_eq!(conversation.workspace_id, ws);
}

#[tokio::test]
async fn every_documented_message_type_is_stored() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    let kinds = [
        "text",
        "text-reply",
        "image",
        "audio",
        "video",
        "document",
        "sticker",
        "location",
        "contacts",
        "interactive-button-reply",
        "interactive-list-reply",
        "interactive-nfm-reply",
        "button",
        "reaction",
        "order",
        "system",
        "unsupported",
        "unknown-type",
    ];
    for kind in kinds {
        let body = sample(&format!("whatsapp-{kind}.json"));
        assert_eq!(app.deliver(&body).await.0, 200, "{kind}");
        let payload: Value = serde_json::from_slice(&body).unwrap();
        let id = payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"].as_str().unwrap();
        assert!(app.store().message(&ws, id).await.unwrap().is_some(), "{kind} not stored");
    }
    assert_eq!(app.drain("FlowQueue").await.len(), kinds.len());
}

#[tokio::test]
async fn the_same_delivery_three_times_in_a_row_is_stored_once() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    for _ in 0..3 {
        assert_eq!(app.deliver(&sample("whatsapp-text.json")).await.0, 200);
    }
    let messages = app.store().conversation_messages(&ws, CONVERSATION).await.unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(app.drain("FlowQueue").await.len(), 1, "one flow event");
}

#[tokio::test]
async fn three_concurrent_deliveries_store_one_message_and_one_flow_event() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    let body = sample("whatsapp-text.json");
    let (a, b, c) = tokio::join!(app.deliver(&body), app.deliver(&body), app.deliver(&body));
    assert_eq!((a.0, b.0, c.0), (200, 200, 200));
    assert_eq!(app.store().conversation_messages(&ws, CONVERSATION).await.unwrap().len(), 1);
    assert_eq!(app.drain("FlowQueue").await.len(), 1);
}

#[tokio::test]
async fn the_same_message_inside_two_different_batches_is_stored_once() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    app.claim(&ws, Channel::WhatsApp, NUMBER_B).await;
    assert_eq!(app.deliver(&sample("whatsapp-text.json")).await.0, 200);
    // The batch repeats that message next to one for another number.
    assert_eq!(app.deliver(&sample("whatsapp-batch-two-numbers.json")).await.0, 200);
    assert_eq!(app.store().conversation_messages(&ws, CONVERSATION).await.unwrap().len(), 1);
    assert_eq!(app.drain("FlowQueue").await.len(), 2, "the repeated message and the new one");
}

#[tokio::test]
async fn a_batch_mixing_two_workspaces_lands_in_each_and_only_there() {
    let app = TestApp::spawn_idle().await;
    let ws_a = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    let ws_b = wapisnap::domain::WorkspaceId::parse(format!("{ws_a}-b")).unwrap();
    app.claim(&ws_b, Channel::WhatsApp, NUMBER_B).await;

    assert_eq!(app.deliver(&sample("whatsapp-batch-two-numbers.json")).await.0, 200);
    let store = app.store();
    assert!(store.message(&ws_a, TEXT_WAMID).await.unwrap().is_some());
    assert!(store.message(&ws_b, "wamid.WORKSPACEB1").await.unwrap().is_some());
    assert!(store.message(&ws_a, "wamid.WORKSPACEB1").await.unwrap().is_none(), "nothing crosses workspaces");
    assert!(store.message(&ws_b, TEXT_WAMID).await.unwrap().is_none());
    let b_status = store.outbound_status(&ws_b, "wamid.BSENT1").await.unwrap().expect("B's status");
    assert_eq!(b_status.status, DeliveryState::Delivered);
}

#[tokio::test]
async fn a_missing_malformed_or_wrong_signature_is_refused_and_nothing_is_written() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    let body = sample("whatsapp-text.json");
    let wrong = wapisnap_local::sandbox::webhooks::signature("not-the-app-secret", &body);
    for signature in [None, Some("sha256=nothex"), Some("md5=abc"), Some(wrong.as_str())] {
        let (status, answer) = app.post_webhook(&body, signature).await;
        assert_eq!(status, 401, "{signature:?}: {answer}");
    }
    assert!(app.store().message(&ws, TEXT_WAMID).await.unwrap().is_none());
    assert!(app.store().unrouted_on(today()).await.unwrap().is_empty());
    assert!(app.drain("FlowQueue").await.is_empty());
}

#[tokio::test]
async fn during_a_secret_rotation_either_secret_verifies() {
    let app = TestApp::spawn_with(wapisnap_local::environment::EnvironmentOptions {
        meta_app_secret: "new-secret".into(),
        meta_app_secret_previous: Some("local-app-secret".into()),
        ..Default::default()
    })
    .await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    let old = text_message("wamid.OLDSECRET", 1_795_680_000, "signed with the old secret");
    assert_eq!(app.deliver(&old).await.0, 200, "the previous secret still verifies");
    let new = text_message("wamid.NEWSECRET", 1_795_680_001, "signed with the new secret");
    let signature = wapisnap_local::sandbox::webhooks::signature("new-secret", &new);
    assert_eq!(app.post_webhook(&new, Some(&signature)).await.0, 200);
    assert!(app.store().message(&ws, "wamid.NEWSECRET").await.unwrap().is_some());
}

#[tokio::test]
async fn a_secret_rotated_in_secrets_manager_verifies_without_a_redeploy_and_the_old_one_still_does() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    let before = text_message("wamid.BEFOREROTATION", 1_795_680_000, "before");
    assert_eq!(app.deliver(&before).await.0, 200, "the first delivery reads the secret");

    // The operator stores a new value; Meta signs with it from now on.
    app.env.stack.rotate_meta_secrets("rotated-secret", "local-verify-token").await.unwrap();
    let after = text_message("wamid.AFTERROTATION", 1_795_680_001, "after");
    let signed_new = wapisnap_local::sandbox::webhooks::signature("rotated-secret", &after);
    app.advance(chrono::Duration::seconds(31)).await;
    assert_eq!(app.post_webhook(&after, Some(&signed_new)).await.0, 200, "a mismatch re-reads the secret");
    assert!(app.store().message(&ws, "wamid.AFTERROTATION").await.unwrap().is_some());

    let late = text_message("wamid.SIGNEDWITHOLD", 1_795_680_002, "in flight during the rotation");
    assert_eq!(app.deliver(&late).await.0, 200, "the previous value (AWSPREVIOUS) still verifies");
    let forged = text_message("wamid.FORGED", 1_795_680_003, "forged");
    let signed_wrong = wapisnap_local::sandbox::webhooks::signature("guessed-secret", &forged);
    assert_eq!(app.post_webhook(&forged, Some(&signed_wrong)).await.0, 401);
    assert!(app.store().message(&ws, "wamid.FORGED").await.unwrap().is_none());
}

#[tokio::test]
async fn when_the_secret_cannot_be_read_the_webhook_answers_503_so_meta_redelivers() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    let arn = app.env.stack.resources.meta_secrets_arn().unwrap();
    let secrets = &app.env.stack.secrets_manager;
    secrets.delete_secret().secret_id(&arn).force_delete_without_recovery(true).send().await.unwrap();

    let body = text_message("wamid.NOSECRET", 1_795_680_000, "hello");
    let (status, answer) = app.deliver(&body).await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("secrets_unavailable"), "{answer}");
    assert!(app.store().message(&ws, "wamid.NOSECRET").await.unwrap().is_none(), "nothing half-done");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_before_its_signature_is_computed() {
    let app = TestApp::spawn_idle().await;
    let huge = vec![b' '; 4 * 1024 * 1024 + 1];
    let (status, answer) = app.post_webhook(&huge, None).await;
    assert_eq!(status, 413, "unsigned, yet 413 not 401: the size is checked first ({answer})");
}

#[tokio::test]
async fn malformed_json_with_a_valid_signature_is_kept_raw_and_acknowledged() {
    let app = TestApp::spawn_idle().await;
    let body = sample("malformed.txt");
    assert_eq!(app.deliver(&body).await.0, 200, "a 5xx would make Meta retry it for 7 days");
    let kept = app.store().unrouted_on(today()).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].0.starts_with("malformed JSON"));
    assert_eq!(kept[0].1, body, "the raw bytes are kept for inspection");
}

#[tokio::test]
async fn a_delivery_for_an_unknown_number_is_kept_as_an_orphan_and_acknowledged() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, "999000111").await;
    for _ in 0..2 {
        assert_eq!(app.deliver(&sample("whatsapp-text.json")).await.0, 200);
    }
    let kept = app.store().unrouted_on(today()).await.unwrap();
    assert_eq!(kept.len(), 1, "kept once despite the redelivery");
    assert!(kept[0].0.contains("no workspace owns wa account 106540352242922"));
    assert!(app.store().message(&ws, TEXT_WAMID).await.unwrap().is_none(), "no write into any workspace");
    assert!(app.drain("FlowQueue").await.is_empty());
}

#[tokio::test]
async fn an_unknown_field_or_object_is_kept_and_acknowledged() {
    let app = TestApp::spawn_idle().await;
    assert_eq!(app.deliver(&sample("whatsapp-unknown-field.json")).await.0, 200);
    assert_eq!(app.deliver(br#"{"object":"page","entry":[{"id":"42","time":1}]}"#).await.0, 200);
    let reasons: Vec<String> = app.store().unrouted_on(today()).await.unwrap().into_iter().map(|(r, _)| r).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("account_review_update")));
    assert!(reasons.iter().any(|r| r.contains("unknown object \"page\"")));
}

#[tokio::test]
async fn an_old_message_delivered_late_does_not_reopen_the_window() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    let newest = 1_795_680_000;
    assert_eq!(app.deliver(&text_message("wamid.NEW", newest, "newer")).await.0, 200);
    assert_eq!(app.deliver(&text_message("wamid.OLD", newest - 30 * 3600, "30 hours older")).await.0, 200);

    let conversation = app.store().conversation(&ws, CONVERSATION).await.unwrap().unwrap();
    assert_eq!(conversation.last_inbound_at.timestamp(), newest);
    assert_eq!(conversation.last_message_id, "wamid.NEW");
    assert!(app.store().message(&ws, "wamid.OLD").await.unwrap().is_some(), "the late message is still stored");
}

#[tokio::test]
async fn statuses_apply_monotonically_whatever_order_they_arrive_in() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    assert_eq!(app.deliver(&sample("whatsapp-status-read.json")).await.0, 200);
    assert_eq!(app.deliver(&sample("whatsapp-statuses-sent-delivered.json")).await.0, 200);
    assert_eq!(app.deliver(&sample("whatsapp-statuses-sent-delivered.json")).await.0, 200);

    let status = app.store().outbound_status(&ws, SENT_WAMID).await.unwrap().unwrap();
    assert_eq!(status.status, DeliveryState::Read, "a late sent/delivered never downgrades read");
    assert_eq!(status.sent_at.unwrap().timestamp(), 1_795_680_001, "each state's time is kept");
    assert_eq!(status.delivered_at.unwrap().timestamp(), 1_795_680_002);
    assert_eq!(status.read_at.unwrap().timestamp(), 1_795_680_003);
    assert_eq!(status.job_id.as_deref(), Some("job-42"));
    let by_job = app.store().status_for_job(&ws, "job-42").await.unwrap().expect("found by our job id");
    assert_eq!(by_job.message_id, SENT_WAMID, "biz_opaque_callback_data leads to the wamid");
}

fn failed_status(wamid: &str, code: i64, at: i64) -> Vec<u8> {
    let mut payload: Value = serde_json::from_slice(&sample("whatsapp-status-failed-131049.json")).unwrap();
    let status = &mut payload["entry"][0]["changes"][0]["value"]["statuses"][0];
    status["id"] = json!(wamid);
    status["timestamp"] = json!(at.to_string());
    status["errors"][0]["code"] = json!(code);
    serde_json::to_vec(&payload).unwrap()
}

#[tokio::test]
async fn a_failed_status_is_handed_to_smart_retry_once_even_when_redelivered() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    let body = sample("whatsapp-status-failed-131049.json");
    assert_eq!(app.deliver(&body).await.0, 200);
    assert_eq!(app.deliver(&body).await.0, 200);

    let handed = app.drain("RetryQueue").await;
    assert_eq!(handed.len(), 1, "{handed:?}");
    assert_eq!(handed[0]["error_code"], 131049);
    assert_eq!(handed[0]["job_id"], "job-43");
    assert_eq!(handed[0]["workspace_id"], ws.as_str());
    let status = app.store().outbound_status(&ws, "wamid.FAILED1").await.unwrap().unwrap();
    assert_eq!(status.status, DeliveryState::Failed);
    assert_eq!(status.error_code, Some(131049));
    assert!(status.error_title.unwrap().contains("healthy ecosystem engagement"));
    assert_eq!(status.retry_handoff, Some(RetryHandoff::Done));
}

#[tokio::test]
async fn a_failed_after_delivered_or_read_is_recorded_but_not_retried() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    assert_eq!(app.deliver(&sample("whatsapp-status-read.json")).await.0, 200);
    assert_eq!(app.deliver(&failed_status(SENT_WAMID, 131000, 1_795_680_009)).await.0, 200);

    let status = app.store().outbound_status(&ws, SENT_WAMID).await.unwrap().unwrap();
    assert_eq!(status.status, DeliveryState::Read, "the customer has the message");
    assert_eq!(status.error_code, Some(131000), "the failure is recorded");
    assert!(status.failed_at.is_some());
    assert!(app.drain("RetryQueue").await.is_empty(), "and not retried: a resend would duplicate it");
}

#[tokio::test]
async fn a_write_failure_answers_5xx_and_metas_retry_completes_the_delivery() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    // The message is stored, then SQS refuses its flow event, every time the SDK tries.
    app.aws_fails_next(AwsFault::internal_error("SendMessage", 100));

    let (status, answer) = app.deliver(&sample("whatsapp-text.json")).await;
    assert_eq!(status, 500, "{answer}");
    assert!(app.aws().faults_met("SendMessage") >= 1, "handing on the flow event is what failed");
    let half_done = app.store().message(&ws, TEXT_WAMID).await.unwrap().expect("the message itself was stored");
    assert!(!half_done.processed);

    app.aws().heal();
    assert_eq!(app.deliver(&sample("whatsapp-text.json")).await.0, 200, "Meta's retry");
    assert!(app.store().message(&ws, TEXT_WAMID).await.unwrap().unwrap().processed);
    assert_eq!(app.store().conversation_messages(&ws, CONVERSATION).await.unwrap().len(), 1);
    assert!(app.store().conversation(&ws, CONVERSATION).await.unwrap().is_some());
    assert_eq!(app.drain("FlowQueue").await.len(), 1, "the flow event the first attempt could not emit");
}

#[tokio::test]
async fn instagram_dms_are_stored_and_our_own_echoes_are_not() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::Instagram, INSTAGRAM_ACCOUNT).await;
    assert_eq!(app.deliver(&sample("instagram-dm.json")).await.0, 200);
    let conversation = format!("ig:{INSTAGRAM_ACCOUNT}:6180712345678901");
    let messages = app.store().conversation_messages(&ws, &conversation).await.unwrap();
    assert_eq!(messages.len(), 3, "text, attachment and postback");
    assert!(messages.iter().all(|m| m.message.channel == Channel::Instagram));
    let echo = "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1MzA5MjExODQ2";
    assert!(app.store().message(&ws, echo).await.unwrap().is_none(), "the echo of our own reply is not inbound");
    assert_eq!(app.drain("FlowQueue").await.len(), 3);
}

#[tokio::test]
async fn the_sandbox_plays_meta_end_to_end_with_signed_webhooks() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    let inbound = wapisnap_local::sandbox::InboundText {
        phone_number_id: NUMBER_A.into(),
        from: "16505551234".into(),
        name: Some("Kerry".into()),
        text: "hello from the sandbox".into(),
        wamid: None,
        timestamp: None,
        button_id: None,
    };
    let (wamid, answered) = app.env.sandbox.state.post_inbound_text(&inbound).await.unwrap();
    assert_eq!(answered, 200);
    assert!(app.store().message(&ws, &wamid).await.unwrap().is_some());

    // A send accepted by the sandbox is reported sent → delivered → read through the webhook.
    let send = json!({ "messaging_product": "whatsapp", "to": "16505551234", "type": "text",
                       "text": { "body": "hi" }, "biz_opaque_callback_data": "job-e2e" });
    let accepted = app.post_to_graph(&send).await;
    let sent_wamid = accepted["messages"][0]["id"].as_str().unwrap().to_owned();
    let status = wapisnap_tests::eventually("the read status", std::time::Duration::from_secs(10), || {
        let (store, ws, wamid) = (app.store(), ws.clone(), sent_wamid.clone());
        async move { store.outbound_status(&ws, &wamid).await.unwrap().filter(|s| s.status == DeliveryState::Read) }
    })
    .await;
    assert_eq!(status.job_id.as_deref(), Some("job-e2e"));
    assert!(status.sent_at.is_some() && status.delivered_at.is_some());
}

#[tokio::test]
async fn meta_reaches_the_webhook_through_its_function_url_not_through_api_gateway() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    assert!(app.webhook_url().ends_with("/webhook"), "the path registered at Meta is unchanged");

    assert_eq!(app.deliver(&sample("whatsapp-text.json")).await, (200, "EVENT_RECEIVED".into()));
    assert!(app.store().message(&ws, TEXT_WAMID).await.unwrap().is_some());
    let health = app.http.get(format!("{}/health", app.api_url())).send().await.unwrap();
    assert_eq!(health.status(), 200);

    // What the webhook function was invoked with: a function URL's event — payload 2.0, the
    // `$default` route (no API Gateway route), a lambda-url domain, no path parameters.
    let events = app.env.stack.http_events.of("WebhookFunction");
    let [delivery] = events.as_slice() else { panic!("one webhook invocation, got {}", events.len()) };
    assert_eq!(delivery["version"], "2.0");
    assert_eq!(delivery["routeKey"], "$default");
    assert_eq!(delivery["requestContext"]["routeKey"], "$default");
    assert_eq!(delivery["requestContext"]["http"]["method"], "POST");
    assert_eq!(delivery["rawPath"], "/webhook");
    let domain = delivery["requestContext"]["domainName"].as_str().unwrap();
    let url_id = domain.strip_suffix(".lambda-url.us-east-1.on.aws").unwrap_or_else(|| panic!("{domain}"));
    assert!(url_id.len() == 32 && url_id.chars().all(|c| c.is_ascii_alphanumeric()), "{url_id}");
    assert_eq!(delivery["requestContext"]["domainPrefix"], url_id);
    assert!(delivery.get("pathParameters").is_none_or(Value::is_null));
    assert!(delivery["headers"]["x-hub-signature-256"].as_str().is_some_and(|s| s.starts_with("sha256=")));

    // The workspace API stays behind API Gateway's HTTP API, with its route.
    let api = app.env.stack.http_events.of("ApiFunction");
    let [health] = api.as_slice() else { panic!("one API invocation, got {}", api.len()) };
    assert_eq!(health["routeKey"], "ANY /v1/{proxy+}");
    assert_eq!(health["pathParameters"]["proxy"], "health");
    assert!(health["requestContext"]["domainName"].as_str().unwrap().contains(".execute-api."));
}

/// A sample body with its first change's `value` edited.
fn with_value(name: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut payload: Value = serde_json::from_slice(&sample(name)).unwrap();
    edit(&mut payload["entry"][0]["changes"][0]["value"]);
    serde_json::to_vec(&payload).unwrap()
}

fn unrouted_reasons(kept: &[(String, Vec<u8>)]) -> Vec<&str> {
    kept.iter().map(|(reason, _)| reason.as_str()).collect()
}

#[tokio::test]
async fn one_unreadable_status_or_contact_is_kept_on_its_own_and_the_rest_of_the_change_is_stored() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;

    assert_eq!(app.deliver(&sample("whatsapp-status-missing-recipient.json")).await.0, 200);
    let status = app.store().outbound_status(&ws, SENT_WAMID).await.unwrap().expect("the readable status applied");
    assert_eq!(status.status, DeliveryState::Delivered);

    assert_eq!(app.deliver(&sample("whatsapp-contact-missing-wa-id.json")).await.0, 200);
    let kerry = app.store().message(&ws, "wamid.BESIDEUSERNAME1").await.unwrap().expect("the readable message stored");
    assert!(kerry.processed);
    assert_eq!(kerry.message.profile_name.as_deref(), Some("Kerry Fisher"));
    assert_eq!(app.drain("FlowQueue").await.len(), 1);

    let kept = app.store().unrouted_on(today()).await.unwrap();
    let reasons = unrouted_reasons(&kept);
    assert_eq!(reasons.len(), 3, "the status, the contact and the message without `from`: {reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("status") && r.contains("recipient_id")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("contact") && r.contains("wa_id")), "{reasons:?}");
    let status_kept: Value = kept
        .iter()
        .find(|(r, _)| r.contains("recipient_id"))
        .map(|(_, raw)| serde_json::from_slice(raw).unwrap())
        .unwrap();
    assert_eq!(status_kept["id"], "wamid.USERNAMEONLY1", "the element itself is kept, whole");
}

#[tokio::test]
async fn a_change_carrying_only_errors_is_kept_and_acknowledged() {
    let app = TestApp::spawn_idle().await;
    app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    assert_eq!(app.deliver(&sample("whatsapp-errors-only.json")).await.0, 200);
    let kept = app.store().unrouted_on(today()).await.unwrap();
    assert_eq!(kept.len(), 1, "never dropped with zero events");
    assert!(kept[0].0.contains("errors"), "{}", kept[0].0);
    let raw: Value = serde_json::from_slice(&kept[0].1).unwrap();
    assert_eq!(raw["errors"][0]["code"], 131051);
}

#[tokio::test]
async fn an_absurd_timestamp_is_stored_at_receipt_time_with_the_reason_and_never_crashes_receipt() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    // A minute short of the latest time chrono can hold: adding the 24-hour window overflows.
    let at_the_limit = DateTime::<Utc>::MAX_UTC.timestamp() - 60;
    let (status, answer) = app.deliver(&text_message("wamid.FARFUTURE", at_the_limit, "from the far future")).await;
    assert_eq!(status, 200, "{answer}");

    let stored = app.store().message(&ws, "wamid.FARFUTURE").await.unwrap().expect("stored");
    assert!(stored.processed);
    assert!((stored.message.sent_at - Utc::now()).num_minutes().abs() < 5, "the receipt time, not Meta's");
    assert!(stored.message.timestamp_note.unwrap().contains(&at_the_limit.to_string()), "with what Meta sent");
    let conversation = app.store().conversation(&ws, CONVERSATION).await.unwrap().unwrap();
    assert!(conversation.window_closes_at < Utc::now() + chrono::Duration::hours(25), "no window held open for ever");

    let millis = 1_795_680_000_123;
    assert_eq!(app.deliver(&text_message("wamid.MILLIS", millis, "in milliseconds")).await.0, 200);
    let stored = app.store().message(&ws, "wamid.MILLIS").await.unwrap().unwrap();
    assert_eq!(stored.message.sent_at.timestamp_millis(), millis);
    assert!(stored.message.timestamp_note.unwrap().contains("milliseconds"));
}

#[tokio::test]
async fn everything_meta_sends_with_a_message_is_on_the_stored_item() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    for name in ["referral", "forwarded", "identity", "unsupported"] {
        assert_eq!(app.deliver(&sample(&format!("whatsapp-{name}.json"))).await.0, 200, "{name}");
    }
    let store = app.store();

    let ad_click = store.message(&ws, "wamid.REFERRAL1").await.unwrap().unwrap().message;
    let referral = ad_click.referral.expect("the ad referral Meta sends only once");
    assert_eq!(
        (referral.source_type.as_deref(), referral.source_id.as_deref()),
        (Some("ad"), Some("120211234567890123"))
    );
    assert!(referral.ctwa_clid.is_some());
    assert_eq!(ad_click.contact_user_id.as_deref(), Some("US.13491208655302741918"));
    let raw: Value = serde_json::from_str(&ad_click.raw_json.expect("Meta's JSON")).unwrap();
    assert_eq!(raw["referral"]["welcome_message"]["text"], "Hi there! Let us know how we can help.");

    let forwarded = store.message(&ws, "wamid.FORWARDED1").await.unwrap().unwrap().message;
    assert!(forwarded.forwarded && forwarded.frequently_forwarded);

    let identity = store.message(&ws, "wamid.IDENTITY1").await.unwrap().unwrap().message;
    assert_eq!(identity.identity.and_then(|i| i.hash).as_deref(), Some("a1b2c3d4e5f6"));

    let unsupported = store.message(&ws, "wamid.UNSUPPORTED1").await.unwrap().unwrap().message;
    assert!(matches!(&unsupported.content, MessageContent::Unsupported { kind: Some(k), .. } if k == "edit"));
    assert_eq!(unsupported.errors.first().map(|e| e.code), Some(131051), "the message-level errors");
}

#[tokio::test]
async fn a_played_status_is_applied_with_its_time_and_outranks_read() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    assert_eq!(app.deliver(&sample("whatsapp-status-played.json")).await.0, 200);
    let late_read = with_value("whatsapp-status-read.json", |value| {
        value["statuses"][0]["id"] = json!("wamid.VOICENOTE1");
        value["statuses"][0]["biz_opaque_callback_data"] = json!("job-44");
    });
    assert_eq!(app.deliver(&late_read).await.0, 200);

    let status = app.store().outbound_status(&ws, "wamid.VOICENOTE1").await.unwrap().expect("applied, not set aside");
    assert_eq!(status.status, DeliveryState::Played, "a late read never downgrades played");
    assert_eq!(status.played_at.unwrap().timestamp(), 1_795_680_004);
    assert_eq!(status.read_at.unwrap().timestamp(), 1_795_680_003, "the read's own time is kept too");
    assert!(app.store().unrouted_on(today()).await.unwrap().is_empty());
}

#[tokio::test]
async fn instagram_echoes_and_reads_are_stored_as_statuses_of_our_messages() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::Instagram, INSTAGRAM_ACCOUNT).await;
    let mid = "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1MzA5MjExODUw";

    assert_eq!(app.deliver(&sample("instagram-echo.json")).await.0, 200);
    let sent = app.store().outbound_status(&ws, mid).await.unwrap().expect("the echo is our send's status");
    assert_eq!((sent.status, sent.channel), (DeliveryState::Sent, Some(Channel::Instagram)));
    assert_eq!(sent.recipient_id, "6180712345678901");
    assert!(app.store().message(&ws, mid).await.unwrap().is_none(), "and not an inbound message");

    assert_eq!(app.deliver(&sample("instagram-read.json")).await.0, 200);
    let read = app.store().outbound_status(&ws, mid).await.unwrap().unwrap();
    assert_eq!(read.status, DeliveryState::Read);
    assert_eq!(read.read_at.unwrap().timestamp_millis(), 1_795_680_009_000);
    assert_eq!(read.sent_at.unwrap().timestamp_millis(), 1_795_680_002_000);
    assert!(app.store().unrouted_on(today()).await.unwrap().is_empty(), "nothing set aside");
    assert!(app.drain("FlowQueue").await.is_empty(), "our own messages start no flow");
}
