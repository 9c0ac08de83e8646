//! Every message sent once, or not at all: answers lost on the way back, senders that crash,
//! failures that overtake the sender's own record. Meta's `/messages` has no idempotency key,
//! so each of these would otherwise be a duplicate.

use chrono::Duration;
use wapisnap::domain::Channel;
use wapisnap::domain::JobState;
use wapisnap::outbound::sender::SendOutcome;
use wapisnap_local::aws_faults::AwsFault;
use wapisnap_local::sandbox::FaultEffect;
use wapisnap_tests::{TestApp, agent, broadcast, fault, job, meta_error, template, text};

const CUSTOMER: &str = "16505551234";

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
    app.meta_reports("delivered", &accepted_wamid, CUSTOMER, Some("slow-1")).await;
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
    let request = wapisnap::domain::SendRequest::New { job: Box::new(crashed.clone()) };

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
    app.meta_reports("sent", accepted["messages"][0]["id"].as_str().unwrap(), CUSTOMER, Some("crash-1")).await;
    assert_eq!(app.job(&ws, "crash-1").await.state, JobState::Accepted);
}

#[tokio::test]
async fn when_meta_accepted_but_its_answer_cannot_be_recorded_the_message_is_never_sent_twice() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.env.sandbox.set_auto_statuses(&[]);
    let reply = job(&ws, "unrecorded-1", CUSTOMER, agent(), text("hi"));
    let request = wapisnap::domain::SendRequest::New { job: Box::new(reply) };

    // Meta accepts the message; DynamoDB fails the write that records it, every time it is tried.
    app.aws_fails_next(AwsFault::internal_error("UpdateItem", 100).when_body_contains("wamid."));
    assert!(app.sender().send(request.clone()).await.is_err(), "the request comes back from the queue");
    assert!(app.aws().faults_met("UpdateItem") >= 1, "the record of Meta's answer is what failed");
    app.aws().heal();
    assert_eq!(app.sends_received(), 1);
    assert_eq!(app.job(&ws, "unrecorded-1").await.state, JobState::Sending, "claimed; its outcome unknown to us");

    // Redelivered: held back while the claim's lease lives, then UNCERTAIN, never sent blind.
    assert!(app.sender().send(request.clone()).await.is_err(), "lease held: back on the queue");
    app.advance(Duration::seconds(61)).await;
    assert_eq!(app.sender().send(request).await.unwrap(), SendOutcome::Uncertain);
    assert_eq!(app.sends_received(), 1, "zero additional requests");

    // Its status webhook settles it.
    let wamid = app.env.sandbox.requests_to("/messages")[0].accepted_id.clone().expect("Meta accepted it");
    app.meta_reports("sent", &wamid, CUSTOMER, Some("unrecorded-1")).await;
    assert_eq!(app.job(&ws, "unrecorded-1").await.state, JobState::Accepted);
}

#[tokio::test]
async fn a_failed_webhook_that_overtakes_the_senders_record_is_handled_later_not_lost() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    let sending = job(&ws, "race-1", CUSTOMER, broadcast("b"), template("spring_sale"));
    app.claimed_by_a_sender_that_dies(&sending).await;
    let failure = wapisnap::queues::SendFailure {
        workspace_id: ws.clone(),
        job_id: Some(wapisnap::domain::SendJobId::parse("race-1").unwrap()),
        message_id: Some(wapisnap::domain::MessageId::parse("wamid.RACE").unwrap()),
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
    app.approve_template(&ws, "spring_sale").await;
    app.env.sandbox.set_auto_statuses(&[]);
    app.env.sandbox.inject(fault(FaultEffect::AcceptThenFail { status: Some(200), delay_millis: Some(1000) }, 1));
    let sale = job(&ws, "unsure-1", CUSTOMER, broadcast("spring"), template("spring_sale"));
    assert_eq!(app.send(&sale).await, SendOutcome::Uncertain);

    // Meta had it after all, and reports it failed with 131049 (no `sent` first).
    let wamid = app.env.sandbox.requests_to("/messages")[0].accepted_id.clone().unwrap();
    app.meta_reports_failure(131049, &wamid, CUSTOMER, Some("unsure-1")).await;
    let record = app.job_reaches(&ws, "unsure-1", JobState::RetryScheduled).await;
    assert_eq!(record.ladder.as_deref(), Some("frequency_cap"));
    assert_eq!(record.failed_wamids, [wamid]);
    assert_eq!(app.sends_received(), 1, "not resent inside Meta's cooldown");
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
    let request: wapisnap::domain::SendRequest = serde_json::from_value(queued[0].clone()).unwrap();
    assert!(matches!(app.sender().send(request).await.unwrap(), SendOutcome::Accepted { .. }));
}

#[tokio::test]
async fn a_status_whose_job_update_fails_settles_the_job_when_meta_delivers_it_again() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.env.sandbox.set_auto_statuses(&[]);
    let SendOutcome::Accepted { wamid } = app.send(&job(&ws, "settle-1", CUSTOMER, agent(), text("hi"))).await else {
        panic!("Meta accepts the message")
    };
    let delivered = wapisnap_local::sandbox::StatusUpdate {
        wamid: wamid.to_string(),
        status: "delivered".into(),
        recipient_id: CUSTOMER.into(),
        biz_opaque_callback_data: Some("settle-1".into()),
        ..Default::default()
    };

    // The status is stored; DynamoDB fails the job's update, every time the SDK tries it.
    app.aws_fails_next(AwsFault::internal_error("UpdateItem", 100).when_body_contains("#JOB#"));
    let first = app.meta_posts(&delivered).await;
    assert!(first >= 500, "Meta is asked to deliver it again, answered {first}");
    assert!(app.aws().faults_met("UpdateItem") >= 1, "the job's update is what failed");
    app.aws().heal();

    assert_eq!(app.meta_posts(&delivered).await, 200, "Meta's redelivery");
    assert_eq!(app.job(&ws, "settle-1").await.state, JobState::Delivered, "settled by the redelivered status");
}

#[tokio::test]
async fn a_status_stored_but_whose_answer_was_lost_still_settles_the_job_and_its_read_receipt() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
    app.env.sandbox.set_auto_statuses(&[]);
    let sent = job(&ws, "lost-status-1", CUSTOMER, broadcast("spring"), template("spring_sale"));
    let SendOutcome::Accepted { wamid } = app.send(&sent).await else { panic!("Meta accepts the message") };
    let status = |state: &str| wapisnap_local::sandbox::StatusUpdate {
        wamid: wamid.to_string(),
        status: state.into(),
        recipient_id: CUSTOMER.into(),
        biz_opaque_callback_data: Some("lost-status-1".into()),
        ..Default::default()
    };

    // Each status is stored, and its answer lost: the SDK's second try is refused as "not
    // newer than what is stored", which is this status itself.
    for (state, settled) in [("delivered", JobState::Delivered), ("read", JobState::Delivered)] {
        app.aws_fails_next(AwsFault::answer_lost("UpdateItem", 1).when_body_contains("status_rank"));
        assert_eq!(app.meta_posts(&status(state)).await, 200);
        assert_eq!(app.aws().faults_met("UpdateItem"), if state == "delivered" { 1 } else { 2 });
        assert_eq!(app.job(&ws, "lost-status-1").await.state, settled, "{state} reaches the job");
    }
    let lines = app.store().broadcast_jobs(&ws, "spring").await.unwrap();
    assert!(lines[0].read, "the read receipt is on the job, for the broadcast's report: {lines:?}");
}

#[tokio::test]
async fn a_refusal_whose_hand_over_to_smart_retry_fails_is_not_resent_at_once_and_the_sweeper_hands_it_over() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
    let capped = job(&ws, "cap-lost-1", CUSTOMER, broadcast("spring"), template("spring_sale"));
    let request = wapisnap::domain::SendRequest::New { job: Box::new(capped) };

    // Meta refuses with its frequency cap; SQS refuses the hand-over to Smart Retry.
    app.meta_fails_next(131049);
    app.aws_fails_next(AwsFault::internal_error("SendMessage", 100).when_body_contains("131049"));
    assert!(app.sender().send(request.clone()).await.is_err(), "the request comes back from the queue");
    assert!(app.aws().faults_met("SendMessage") >= 1, "the hand-over is what failed");
    app.aws().heal();
    assert_eq!(app.job(&ws, "cap-lost-1").await.state, JobState::FailedAttempt, "the failure is recorded first");

    // SQS redelivers the request: the cap's cooldown is not skipped by a resend.
    assert_eq!(app.sender().send(request).await.unwrap(), SendOutcome::AlreadySettled(JobState::FailedAttempt));
    assert_eq!(app.sends_received(), 1);

    // The sweeper finds the failure nobody took over and hands it to Smart Retry, which puts
    // the retry 7 days out, as for any 131049.
    app.advance(Duration::minutes(11)).await;
    assert_eq!(app.sweep().await.handed_to_retry_again, 1);
    app.env.stack.start_background();
    let scheduled = app.job_reaches(&ws, "cap-lost-1", JobState::RetryScheduled).await;
    let now = wapisnap::clock::Clock::now(&*app.env.stack.clock);
    assert!(scheduled.retry_at.unwrap() - now > Duration::days(6), "{:?}", scheduled.retry_at);
    assert_eq!(app.sweep().await.handed_to_retry_again, 0, "taken over: nothing left to hand");
    assert_eq!(app.sends_received(), 1, "nothing resent inside the cooldown");
}
