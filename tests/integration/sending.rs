//! Outbound sends on the local stack: every message sent once, or not at all. The Meta sandbox
//! fails the way Meta fails; the clock plays Smart Retry's days in seconds.

use chrono::Duration;
use wapisnap::clock::Clock;
use wapisnap::inbound::event::Channel;
use wapisnap::outbound::job::JobState;
use wapisnap::outbound::sender::SendOutcome;
use wapisnap::policy::send::{DND_TAG, DO_NOT_SEND_TAG, NumberState, TemplateStatus};
use wapisnap_local::sandbox::{Fault, FaultEffect};
use wapisnap_tests::{NUMBER_A, NUMBER_B, TOKEN, TestApp, agent, broadcast, flow, job, template, text};

const CUSTOMER: &str = "16505551234";

fn fault(effect: FaultEffect, times: u32) -> Fault {
    Fault { path_contains: Some("/messages".into()), recipient: None, times, effect }
}

fn meta_error(code: i64) -> FaultEffect {
    FaultEffect::MetaError { code, subcode: None, http_status: None, message: None }
}

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

#[tokio::test]
async fn accept_then_500_is_reconciled_from_the_status_webhook_and_never_sent_twice() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.env.sandbox.inject(fault(FaultEffect::AcceptThenFail { status: Some(500), delay_millis: None }, 1));

    app.enqueue(&job(&ws, "a500-1", CUSTOMER, agent(), text("hi"))).await;
    let record = app.job_reaches(&ws, "a500-1", JobState::Delivered).await;
    assert!(record.wamid.is_some(), "reconciled from the status webhook");

    app.advance(Duration::hours(13)).await; // past every step of the hours ladder
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(app.sends_received(), 1, "Meta received the message exactly once");
    assert_eq!(app.job(&ws, "a500-1").await.state, JobState::Delivered);
}

#[tokio::test]
async fn accept_then_timeout_is_uncertain_until_its_status_arrives_and_never_sent_twice() {
    let app = TestApp::spawn_with(wapisnap_local::environment::EnvironmentOptions {
        graph_timeout: std::time::Duration::from_millis(500),
        ..Default::default()
    })
    .await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.env.sandbox.set_auto_statuses(&[]);
    app.env.sandbox.inject(fault(FaultEffect::AcceptThenFail { status: Some(200), delay_millis: Some(1500) }, 1));

    assert_eq!(app.send(&job(&ws, "slow-1", CUSTOMER, agent(), text("hi"))).await, SendOutcome::Uncertain);
    assert_eq!(app.job(&ws, "slow-1").await.state, JobState::Uncertain);
    assert_eq!(
        app.send(&job(&ws, "slow-1", CUSTOMER, agent(), text("hi"))).await,
        SendOutcome::AlreadySettled(JobState::Uncertain),
        "never resent blindly"
    );

    // Meta's status webhook names the job: that settles it.
    let accepted_wamid = app.env.sandbox.requests_to("/messages")[0].accepted_id.clone().expect("Meta accepted it");
    let status = wapisnap_local::sandbox::StatusUpdate {
        wamid: accepted_wamid,
        status: "delivered".into(),
        recipient_id: CUSTOMER.into(),
        biz_opaque_callback_data: Some("slow-1".into()),
        ..Default::default()
    };
    app.env.sandbox.state.post_status(NUMBER_A, &status).await.unwrap();
    assert_eq!(app.job(&ws, "slow-1").await.state, JobState::Delivered);
    let report = app.env.stack.functions.sweeper.handle().await.unwrap();
    assert_eq!(report.uncertain_resent, 0);
    assert_eq!(app.sends_received(), 1, "exactly one message");
}

#[tokio::test]
async fn a_crash_after_meta_accepted_makes_no_second_request_on_redelivery() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.env.sandbox.set_auto_statuses(&[]);
    let crashed = job(&ws, "crash-1", CUSTOMER, agent(), text("hi"));
    let request = wapisnap::outbound::job::SendRequest::New { job: Box::new(crashed.clone()) };

    // The first sender claims the job, Meta accepts the message, and the sender dies before
    // it can record anything.
    app.claimed_by_a_sender_that_dies(&crashed).await;
    let body = crashed.content.graph_body(Channel::WhatsApp, CUSTOMER, "crash-1");
    let accepted = app.post_to_graph(&body).await;

    // SQS redelivers the job: while the lease lives it is put back; after, it is UNCERTAIN.
    assert!(app.sender().send(request.clone()).await.is_err(), "lease held: back on the queue");
    app.advance(Duration::seconds(61)).await;
    assert_eq!(app.sender().send(request.clone()).await.unwrap(), SendOutcome::Uncertain);
    assert_eq!(app.sender().send(request).await.unwrap(), SendOutcome::AlreadySettled(JobState::Uncertain));
    assert_eq!(app.sends_received(), 1, "zero additional requests");

    // Its status webhook settles it.
    let status = wapisnap_local::sandbox::StatusUpdate {
        wamid: accepted["messages"][0]["id"].as_str().unwrap().into(),
        status: "sent".into(),
        recipient_id: CUSTOMER.into(),
        biz_opaque_callback_data: Some("crash-1".into()),
        ..Default::default()
    };
    app.env.sandbox.state.post_status(NUMBER_A, &status).await.unwrap();
    assert_eq!(app.job(&ws, "crash-1").await.state, JobState::Accepted);
}

#[tokio::test]
async fn frequency_cap_is_retried_after_7_then_8_then_9_days_then_failed() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    let waba = format!("9{NUMBER_A}");
    app.store().put_template(&ws, &waba, "spring_sale", "en_US", TemplateStatus::Approved).await.unwrap();
    // Meta accepts each attempt, then reports it failed with 131049, as it does.
    app.env.sandbox.inject(fault(FaultEffect::FailedStatus { code: 131049 }, 4));
    app.enqueue(&job(&ws, "cap-1", CUSTOMER, broadcast("spring"), template("spring_sale"))).await;

    let mut sent_at = app.env.stack.clock.now();
    for (retry, days) in [(1u32, 7i64), (2, 8), (3, 9)] {
        let record =
            wapisnap_tests::eventually("the retry to be scheduled", std::time::Duration::from_secs(20), || async {
                let job_id = wapisnap::ids::SendJobId::parse("cap-1").unwrap();
                let record = app.store().job(&ws, &job_id).await.unwrap()?;
                (record.state == JobState::RetryScheduled && record.retries == retry).then_some(record)
            })
            .await;
        let wait = record.retry_at.unwrap() - sent_at;
        assert!(
            wait >= Duration::days(days) && wait < Duration::days(days) + Duration::minutes(5),
            "retry {retry}: {wait}"
        );
        assert_eq!(app.schedules().await.len(), 1, "one schedule per retry");
        assert_eq!(app.sends_received() as u32, retry, "nothing resent inside the cooldown");

        app.advance(Duration::hours(12)).await;
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        assert_eq!(app.sends_received() as u32, retry, "never the hours ladder");

        app.advance(Duration::days(days) - Duration::hours(12) + Duration::minutes(61)).await;
        sent_at = app.env.stack.clock.now();
        wapisnap_tests::eventually("the resend", std::time::Duration::from_secs(20), || async {
            (app.sends_received() as u32 == retry + 1).then_some(())
        })
        .await;
    }
    let record = app.job_reaches(&ws, "cap-1", JobState::Failed).await;
    assert_eq!(record.error_code, Some(131049));
    assert!(app.schedules().await.is_empty(), "schedules are deleted after they fire");
    assert_eq!(app.sends_received(), 4);
}

#[tokio::test]
async fn a_contact_tagged_dnd_while_a_retry_waited_is_not_sent_to() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    let waba = format!("9{NUMBER_A}");
    app.store().put_template(&ws, &waba, "spring_sale", "en_US", TemplateStatus::Approved).await.unwrap();
    app.env.sandbox.inject(fault(FaultEffect::FailedStatus { code: 131049 }, 1));
    app.enqueue(&job(&ws, "dnd-1", CUSTOMER, broadcast("spring"), template("spring_sale"))).await;
    app.job_reaches(&ws, "dnd-1", JobState::RetryScheduled).await;

    app.store().add_contact_tag(&ws, Channel::WhatsApp, CUSTOMER, DND_TAG).await.unwrap();
    app.advance(Duration::days(7) + Duration::minutes(61)).await;
    let record = app.job_reaches(&ws, "dnd-1", JobState::Refused).await;
    assert!(record.reason.unwrap().contains("dnd"));
    assert_eq!(app.sends_received(), 1, "the resend never reached Meta");
}

#[tokio::test]
async fn two_131026_in_a_row_tag_the_contact_do_not_send_once() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.env.sandbox.inject(fault(meta_error(131026), 3));
    for id in ["nw-1", "nw-2", "nw-3"] {
        app.enqueue(&job(&ws, id, CUSTOMER, flow(), text("hi"))).await;
        app.job_reaches(&ws, id, JobState::Failed).await;
        if id == "nw-1" {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let tags = app.store().contact_tags(&ws, Channel::WhatsApp, CUSTOMER).await.unwrap();
            assert!(!tags.contains(DO_NOT_SEND_TAG), "one 131026 is not a streak: {tags:?}");
        } else {
            wapisnap_tests::eventually("the do-not-send tag", std::time::Duration::from_secs(10), || async {
                let tags = app.store().contact_tags(&ws, Channel::WhatsApp, CUSTOMER).await.unwrap();
                tags.contains(DO_NOT_SEND_TAG).then_some(())
            })
            .await;
        }
    }
    assert!(app.schedules().await.is_empty(), "131026 is never retried");
    assert!(
        !app.store().add_contact_tag(&ws, Channel::WhatsApp, CUSTOMER, DO_NOT_SEND_TAG).await.unwrap(),
        "added once"
    );
    let refused = app.send(&job(&ws, "nw-bc", CUSTOMER, broadcast("b"), text("sale"))).await;
    assert!(matches!(refused, SendOutcome::Refused { ref reason } if reason.contains("do-not-send")), "{refused:?}");
}

#[tokio::test]
async fn a_delivery_resets_the_131026_streak() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.env.sandbox.inject(fault(meta_error(131026), 1));
    app.enqueue(&job(&ws, "r-1", CUSTOMER, flow(), text("one"))).await;
    app.job_reaches(&ws, "r-1", JobState::Failed).await;
    app.enqueue(&job(&ws, "r-2", CUSTOMER, flow(), text("two"))).await;
    app.job_reaches(&ws, "r-2", JobState::Delivered).await;
    app.env.sandbox.inject(fault(meta_error(131026), 1));
    app.enqueue(&job(&ws, "r-3", CUSTOMER, flow(), text("three"))).await;
    app.job_reaches(&ws, "r-3", JobState::Failed).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let tags = app.store().contact_tags(&ws, Channel::WhatsApp, CUSTOMER).await.unwrap();
    assert!(!tags.contains(DO_NOT_SEND_TAG), "not two in a row: {tags:?}");
}

#[tokio::test]
async fn transient_errors_use_the_hours_ladder() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.env.sandbox.inject(fault(meta_error(131016), 1));
    app.enqueue(&job(&ws, "t-1", CUSTOMER, agent(), text("hi"))).await;
    let scheduled = app.job_reaches(&ws, "t-1", JobState::RetryScheduled).await;
    let wait = scheduled.retry_at.unwrap() - app.env.stack.clock.now();
    assert!(wait <= Duration::hours(1) && wait > Duration::minutes(55), "{wait}");
    app.advance(Duration::hours(1) + Duration::minutes(1)).await;
    app.job_reaches(&ws, "t-1", JobState::Delivered).await;
    assert_eq!(app.sends_received(), 2);
}

#[tokio::test]
async fn rate_limits_back_off_without_counting_an_attempt() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.env.sandbox.inject(fault(meta_error(130429), 1));
    assert_eq!(app.send(&job(&ws, "rl-1", CUSTOMER, agent(), text("hi"))).await, SendOutcome::Requeued);
    let record = app.job(&ws, "rl-1").await;
    assert_eq!((record.state, record.attempt, record.retries, record.throttled), (JobState::RetryScheduled, 0, 0, 1));
    let again = wapisnap::outbound::job::SendRequest::Attempt {
        workspace_id: ws.clone(),
        job_id: record.job.job_id.clone(),
        attempt: 0,
    };
    assert!(matches!(app.sender().send(again).await.unwrap(), SendOutcome::Accepted { .. }));
}

#[tokio::test]
async fn permanent_errors_fail_with_metas_reason_and_no_retry() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    let waba = format!("9{NUMBER_A}");
    app.store().put_template(&ws, &waba, "spring_sale", "en_US", TemplateStatus::Approved).await.unwrap();
    app.env.sandbox.inject(fault(meta_error(132015), 1));
    app.enqueue(&job(&ws, "p-1", CUSTOMER, broadcast("b"), template("spring_sale"))).await;
    let record = app.job_reaches(&ws, "p-1", JobState::Failed).await;
    assert_eq!(record.error_code, Some(132015));
    assert!(record.reason.unwrap().contains("Template is Paused"));
    assert!(app.schedules().await.is_empty());
}

#[tokio::test]
async fn an_invalid_token_moves_only_that_number_to_error() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    app.connect_number(&ws, NUMBER_B).await;
    app.customer_writes(CUSTOMER).await;
    app.env.sandbox.inject(fault(meta_error(190), 1));
    app.enqueue(&job(&ws, "tok-1", CUSTOMER, agent(), text("hi"))).await;
    app.job_reaches(&ws, "tok-1", JobState::Failed).await;
    let a = wapisnap_tests::eventually("number A in ERROR", std::time::Duration::from_secs(10), || async {
        let n = app.store().number(&ws, Channel::WhatsApp, NUMBER_A).await.unwrap().unwrap();
        (n.state == NumberState::Error).then_some(n)
    })
    .await;
    assert!(a.state_reason.unwrap().contains("access token"));
    let b = app.store().number(&ws, Channel::WhatsApp, NUMBER_B).await.unwrap().unwrap();
    assert_eq!(b.state, NumberState::Active, "other numbers are unaffected");
    assert!(app.schedules().await.is_empty());
}

#[tokio::test]
async fn the_sweeper_fails_silent_sends_and_flags_the_broadcast() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    let waba = format!("9{NUMBER_A}");
    app.store().put_template(&ws, &waba, "spring_sale", "en_US", TemplateStatus::Approved).await.unwrap();
    app.env.sandbox.set_auto_statuses(&[]);
    for i in 0..4 {
        let to = format!("1650555000{i}");
        assert!(matches!(
            app.send(&job(&ws, &format!("bc-{i}"), &to, broadcast("spring"), template("spring_sale"))).await,
            SendOutcome::Accepted { .. }
        ));
    }
    // One of them is reported delivered; the others never are.
    let delivered = app.job(&ws, "bc-0").await;
    let status = wapisnap_local::sandbox::StatusUpdate {
        wamid: delivered.wamid.unwrap(),
        status: "delivered".into(),
        recipient_id: "16505550000".into(),
        biz_opaque_callback_data: Some("bc-0".into()),
        ..Default::default()
    };
    app.claim(&ws, Channel::WhatsApp, NUMBER_A).await;
    app.env.sandbox.state.post_status(NUMBER_A, &status).await.unwrap();

    let early = app.env.stack.functions.sweeper.handle().await.unwrap();
    assert_eq!(early.silent_failures, 0, "inside the retention window nothing is judged");
    app.advance(Duration::hours(73)).await;
    let report = app.env.stack.functions.sweeper.handle().await.unwrap();
    assert_eq!(report.silent_failures, 3);
    assert_eq!(report.flagged_broadcasts, ["spring"]);
    let silent = app.job(&ws, "bc-1").await;
    assert_eq!(silent.state, JobState::Failed);
    assert_eq!(silent.reason, None, "FAILED with no error message");
    assert_eq!(app.job(&ws, "bc-0").await.state, JobState::Delivered);
    let broadcast = app.store().broadcast_report(&ws, "spring").await.unwrap().unwrap();
    assert_eq!((broadcast.accepted, broadcast.silent_failures, broadcast.flagged), (4, 3, true));
}

#[tokio::test]
async fn the_sweeper_resends_an_uncertain_reply_once_and_fails_an_uncertain_template() {
    let app = TestApp::spawn_with(wapisnap_local::environment::EnvironmentOptions {
        graph_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let ws = app.workspace_with_number().await;
    let waba = format!("9{NUMBER_A}");
    app.store().put_template(&ws, &waba, "spring_sale", "en_US", TemplateStatus::Approved).await.unwrap();
    app.customer_writes(CUSTOMER).await;
    app.env.sandbox.set_auto_statuses(&[]);
    app.env.sandbox.inject(fault(FaultEffect::Delay { millis: 1000 }, 2));
    assert_eq!(app.send(&job(&ws, "u-reply", CUSTOMER, agent(), text("hi"))).await, SendOutcome::Uncertain);
    assert_eq!(
        app.send(&job(&ws, "u-tpl", CUSTOMER, broadcast("b"), template("spring_sale"))).await,
        SendOutcome::Uncertain
    );

    app.advance(Duration::minutes(16)).await;
    let report = app.sweep().await;
    assert_eq!(report.uncertain_waiting, 2, "no statuses since: nothing proves the sends were lost");
    app.statuses_flow_for_the_number().await;
    let report = app.sweep().await;
    assert_eq!((report.uncertain_resent, report.uncertain_failed), (1, 1));
    assert_eq!(app.job(&ws, "u-tpl").await.state, JobState::Failed);
    let resend = wapisnap::outbound::job::SendRequest::Attempt {
        workspace_id: ws.clone(),
        job_id: wapisnap::ids::SendJobId::parse("u-reply").unwrap(),
        attempt: 1,
    };
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await; // the slow answers are over
    assert!(matches!(app.sender().send(resend).await.unwrap(), SendOutcome::Accepted { .. }));
    let again = app.env.stack.functions.sweeper.handle().await.unwrap();
    assert_eq!(again.uncertain_resent, 0, "resent once at most");
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
    app.enqueue(&job(&ws, "log-1", CUSTOMER, agent(), text("one"))).await;
    app.enqueue(&job(&ws, "log-2", CUSTOMER, agent(), text("two"))).await;
    app.job_reaches(&ws, "log-1", JobState::RetryScheduled).await;
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

#[tokio::test]
async fn a_failed_webhook_that_overtakes_the_senders_record_is_handled_later_not_lost() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    let sending = job(&ws, "race-1", CUSTOMER, broadcast("b"), template("spring_sale"));
    app.claimed_by_a_sender_that_dies(&sending).await;
    let failure = wapisnap::queues::SendFailure {
        workspace_id: ws.clone(),
        job_id: Some("race-1".into()),
        message_id: Some("wamid.RACE".into()),
        attempt: None,
        recipient_id: CUSTOMER.into(),
        error_code: Some(131049),
        http_status: None,
        error_title: None,
        failed_at: chrono::Utc::now(),
    };
    let retry = app.env.stack.functions.retry.smart_retry();
    assert!(retry.handle(failure).await.is_err(), "left on the retry queue for a later delivery");
    assert_eq!(app.job(&ws, "race-1").await.state, JobState::Sending, "nothing decided yet");
}

#[tokio::test]
async fn a_failure_reported_for_an_uncertain_send_goes_through_smart_retry() {
    let app = TestApp::spawn_with(wapisnap_local::environment::EnvironmentOptions {
        graph_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    app.env.stack.start_background();
    let ws = app.workspace_with_number().await;
    let waba = format!("9{NUMBER_A}");
    app.store().put_template(&ws, &waba, "spring_sale", "en_US", TemplateStatus::Approved).await.unwrap();
    app.env.sandbox.set_auto_statuses(&[]);
    app.env.sandbox.inject(fault(FaultEffect::AcceptThenFail { status: Some(200), delay_millis: Some(1000) }, 1));
    let sale = job(&ws, "unsure-1", CUSTOMER, broadcast("spring"), template("spring_sale"));
    assert_eq!(app.send(&sale).await, SendOutcome::Uncertain);

    // Meta had it after all, and reports it failed with 131049 (no `sent` first).
    let wamid = app.env.sandbox.requests_to("/messages")[0].accepted_id.clone().unwrap();
    let failed = wapisnap_local::sandbox::StatusUpdate {
        wamid: wamid.clone(),
        status: "failed".into(),
        recipient_id: CUSTOMER.into(),
        biz_opaque_callback_data: Some("unsure-1".into()),
        error_code: Some(131049),
        ..Default::default()
    };
    app.env.sandbox.state.post_status(NUMBER_A, &failed).await.unwrap();
    let record = app.job_reaches(&ws, "unsure-1", JobState::RetryScheduled).await;
    assert_eq!(record.ladder.as_deref(), Some("frequency_cap"));
    assert_eq!(record.failed_wamids, [wamid]);
    assert_eq!(app.sends_received(), 1, "not resent inside Meta's cooldown");
}

#[tokio::test]
async fn a_rate_limit_reported_by_webhook_backs_off_without_using_a_retry() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.env.sandbox.inject(fault(FaultEffect::FailedStatus { code: 130429 }, 1));
    app.enqueue(&job(&ws, "rl-async", CUSTOMER, flow(), text("hi"))).await;
    let record = app.job_reaches(&ws, "rl-async", JobState::RetryScheduled).await;
    assert_eq!((record.attempt, record.retries, record.throttled), (1, 0, 1), "a backoff, not a retry");
    let wait = record.retry_at.unwrap() - app.env.stack.clock.now();
    assert!(wait <= Duration::seconds(30), "seconds, through SQS: {wait}");
    assert!(app.schedules().await.is_empty(), "no Scheduler schedule for a short backoff");
}

#[tokio::test]
async fn a_job_given_back_is_claimed_by_its_redelivered_request_or_queued_again_by_the_sweeper() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.env.sandbox.inject(fault(meta_error(130429), 2));
    let reply = job(&ws, "lost-1", CUSTOMER, agent(), text("hi"));
    assert_eq!(app.send(&reply).await, SendOutcome::Requeued);
    // SQS redelivers the original request (say the backoff message could not be sent).
    assert_eq!(app.send(&reply).await, SendOutcome::Requeued, "it claims attempt 0 again");
    assert_eq!(app.job(&ws, "lost-1").await.throttled, 2);

    // Both backoff messages are lost.
    let sqs = &app.env.stack.aws.sqs;
    sqs.purge_queue().queue_url(app.queue_url("SendQueue")).send().await.unwrap();
    app.advance(Duration::hours(3)).await;
    let report = app.env.stack.functions.sweeper.handle().await.unwrap();
    assert_eq!(report.overdue_requeued, 1);
    let queued = app.drain("SendQueue").await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    let request: wapisnap::outbound::job::SendRequest = serde_json::from_value(queued[0].clone()).unwrap();
    assert!(matches!(app.sender().send(request).await.unwrap(), SendOutcome::Accepted { .. }));
}

#[tokio::test]
async fn a_late_sent_for_an_earlier_failed_wamid_does_not_cancel_the_next_retry() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    let waba = format!("9{NUMBER_A}");
    app.store().put_template(&ws, &waba, "spring_sale", "en_US", TemplateStatus::Approved).await.unwrap();
    app.env.sandbox.set_auto_statuses(&[]);
    app.env.sandbox.inject(fault(FaultEffect::FailedStatus { code: 131049 }, 2));
    app.enqueue(&job(&ws, "late-sent", CUSTOMER, broadcast("spring"), template("spring_sale"))).await;
    wapisnap_tests::eventually("the first retry", std::time::Duration::from_secs(20), || async {
        let record = app.store().job(&ws, &wapisnap::ids::SendJobId::parse("late-sent").unwrap()).await.unwrap()?;
        (record.state == JobState::RetryScheduled && record.retries == 1).then_some(())
    })
    .await;
    app.advance(Duration::days(7) + Duration::minutes(61)).await;
    let record = wapisnap_tests::eventually("the second retry", std::time::Duration::from_secs(20), || async {
        let record = app.store().job(&ws, &wapisnap::ids::SendJobId::parse("late-sent").unwrap()).await.unwrap()?;
        (record.state == JobState::RetryScheduled && record.retries == 2).then_some(record)
    })
    .await;
    assert_eq!(record.failed_wamids.len(), 2, "both failed wamids remembered: {:?}", record.failed_wamids);

    // Meta's delayed `sent` for the first, failed, wamid arrives now.
    let late = wapisnap_local::sandbox::StatusUpdate {
        wamid: record.failed_wamids[0].clone(),
        status: "sent".into(),
        recipient_id: CUSTOMER.into(),
        biz_opaque_callback_data: Some("late-sent".into()),
        ..Default::default()
    };
    app.env.sandbox.state.post_status(NUMBER_A, &late).await.unwrap();
    assert_eq!(app.job(&ws, "late-sent").await.state, JobState::RetryScheduled, "the retry still waits");
}
