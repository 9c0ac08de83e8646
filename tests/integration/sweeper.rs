//! The sweeper's safety nets: silent failures, UNCERTAIN sends settled by the documented policy.

use chrono::Duration;
use wapisnap::clock::Clock;
use wapisnap::domain::Channel;
use wapisnap::domain::JobState;
use wapisnap::domain::WorkspaceId;
use wapisnap::outbound::sender::SendOutcome;
use wapisnap_local::aws_faults::AwsFault;
use wapisnap_local::sandbox::FaultEffect;
use wapisnap_tests::{NUMBER_A, TestApp, agent, broadcast, fault, job, template, text};

const CUSTOMER: &str = "16505551234";

/// A workspace whose broadcast "spring" went to `count` customers (jobs `bc-0`, `bc-1`, ...),
/// each accepted by Meta; Meta reports only the first delivered, and nothing of the others.
async fn spring_sent_and_only_the_first_delivered(app: &TestApp, count: usize) -> WorkspaceId {
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
    app.env.sandbox.set_auto_statuses(&[]);
    for i in 0..count {
        let to = format!("1650555000{i}");
        assert!(matches!(
            app.send(&job(&ws, &format!("bc-{i}"), &to, broadcast("spring"), template("spring_sale"))).await,
            SendOutcome::Accepted { .. }
        ));
    }
    let delivered = app.job(&ws, "bc-0").await;
    app.claim(&ws, Channel::WhatsApp, NUMBER_A).await;
    app.meta_reports("delivered", &delivered.wamid.unwrap().to_string(), "16505550000", Some("bc-0")).await;
    ws
}

#[tokio::test]
async fn the_sweeper_fails_silent_sends_and_flags_the_broadcast() {
    let app = TestApp::spawn_idle().await;
    let ws = spring_sent_and_only_the_first_delivered(&app, 4).await;

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
    let jobs = app.store().broadcast_jobs(&ws, "spring").await.unwrap();
    assert_eq!(jobs.len(), 4, "every send of the broadcast is listed for its report");
    assert!((wapisnap::broadcasts::report::silent_failure_rate(&jobs) - 0.75).abs() < 1e-9);
}

#[tokio::test]
async fn a_status_meta_sends_after_the_send_was_judged_silent_still_counts_as_delivered() {
    let app = TestApp::spawn_idle().await;
    let ws = spring_sent_and_only_the_first_delivered(&app, 2).await;
    app.advance(Duration::hours(73)).await;
    assert_eq!(app.sweep().await.silent_failures, 1);
    assert_eq!(app.job(&ws, "bc-1").await.state, JobState::Failed);

    // Meta's webhook retries run for days: its status was late, not missing.
    let late = app.job(&ws, "bc-1").await.wamid.unwrap().to_string();
    app.meta_reports("delivered", &late, "16505550001", Some("bc-1")).await;
    assert_eq!(app.job(&ws, "bc-1").await.state, JobState::Delivered);
    let jobs = app.store().broadcast_jobs(&ws, "spring").await.unwrap();
    assert_eq!(wapisnap::broadcasts::report::silent_failure_rate(&jobs), 0.0, "the report counts it delivered");
}

#[tokio::test]
async fn the_sweeper_resends_an_uncertain_reply_once_and_fails_an_uncertain_template() {
    let app = TestApp::spawn_with(wapisnap_local::environment::EnvironmentOptions {
        graph_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
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
    let resend = wapisnap::domain::SendRequest::Attempt {
        workspace_id: ws.clone(),
        job_id: wapisnap::domain::SendJobId::parse("u-reply").unwrap(),
        attempt: 1,
    };
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await; // the slow answers are over
    assert!(matches!(app.sender().send(resend).await.unwrap(), SendOutcome::Accepted { .. }));
    let again = app.env.stack.functions.sweeper.handle().await.unwrap();
    assert_eq!(again.uncertain_resent, 0, "resent once at most");
}

#[tokio::test]
async fn a_sweep_whose_reads_fail_changes_nothing_and_the_next_sweep_does_the_work() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.claimed_by_a_sender_that_dies(&job(&ws, "dead-1", CUSTOMER, agent(), text("hi"))).await;
    app.advance(Duration::seconds(61)).await;

    app.aws_fails_next(AwsFault::internal_error("BatchGetItem", 100));
    let failed = app.env.stack.functions.sweeper.handle().await;
    assert!(failed.is_err(), "the run fails (its schedule runs it again), it does not report an empty sweep");
    assert_eq!(app.job(&ws, "dead-1").await.state, JobState::Sending, "nothing was decided on a failed read");

    app.aws().heal();
    assert_eq!(app.sweep().await.leases_expired, 1);
    assert_eq!(app.job(&ws, "dead-1").await.state, JobState::Uncertain);
}

#[tokio::test]
async fn a_silent_failure_whose_write_answer_was_lost_still_counts_and_flags_its_broadcast() {
    let app = TestApp::spawn_idle().await;
    let ws = spring_sent_and_only_the_first_delivered(&app, 2).await;
    app.advance(Duration::hours(73)).await;

    // DynamoDB fails the silent send (ACCEPTED -> FAILED) and its answer is lost: the SDK's
    // second try is refused by the first one.
    app.aws_fails_next(AwsFault::answer_lost("UpdateItem", 1).when_body_contains("\"FAILED\""));
    let report = app.sweep().await;
    assert_eq!(app.aws().faults_met("UpdateItem"), 1, "the failure's answer was lost");
    assert_eq!(report.silent_failures, 1, "counted by the sweep that wrote it");
    assert_eq!(report.flagged_broadcasts, ["spring"], "the only sweep that sees it judges its broadcast");
    assert_eq!(app.job(&ws, "bc-1").await.state, JobState::Failed);
}

/// Dana's reply `job_id` that Meta answered only after the Graph client gave up (300 ms): it is
/// UNCERTAIN, 16 minutes have passed, and statuses flow for the number since (so the reply is
/// really missing): due for the sweeper's one resend.
async fn an_uncertain_reply_due_for_its_resend(job_id: &str) -> (TestApp, WorkspaceId) {
    let app = TestApp::spawn_with(wapisnap_local::environment::EnvironmentOptions {
        graph_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.env.sandbox.set_auto_statuses(&[]);
    app.env.sandbox.inject(fault(FaultEffect::Delay { millis: 1000 }, 1));
    assert_eq!(app.send(&job(&ws, job_id, CUSTOMER, agent(), text("hi"))).await, SendOutcome::Uncertain);
    app.advance(Duration::minutes(16)).await;
    app.statuses_flow_for_the_number().await;
    app.drain("SendQueue").await;
    (app, ws)
}

#[tokio::test]
async fn an_agents_reply_to_a_dnd_contact_resent_after_its_answer_never_came_is_still_the_agents_reply() {
    let (app, ws) = an_uncertain_reply_due_for_its_resend("dana-1").await;
    // The customer opts out of automation meanwhile.
    app.store().add_contact_tag(&ws, Channel::WhatsApp, CUSTOMER, "dnd").await.unwrap();

    let report = app.sweep().await;
    assert_eq!(report.uncertain_resent, 1);
    for request in app.drain("SendQueue").await {
        let outcome = app.sender().send(serde_json::from_value(request).unwrap()).await.unwrap();
        assert!(matches!(outcome, SendOutcome::Accepted { .. }), "dnd does not block a human reply: {outcome:?}");
    }
    assert_eq!(app.job(&ws, "dana-1").await.state, JobState::Accepted);
}

#[tokio::test]
async fn an_uncertain_reply_whose_resend_answer_was_lost_is_still_put_on_the_queue() {
    let (app, ws) = an_uncertain_reply_due_for_its_resend("u-lost").await;

    // The resend is filed (UNCERTAIN -> waiting for attempt 1) and that write's answer is
    // lost: the SDK's second try is refused by the first one.
    app.aws_fails_next(AwsFault::answer_lost("UpdateItem", 1).when_body_contains("uncertain_resent"));
    let report = app.sweep().await;
    assert_eq!(app.aws().faults_met("UpdateItem"), 1, "the resend's answer was lost");
    assert_eq!(report.uncertain_resent, 1);
    assert_eq!(app.drain("SendQueue").await.len(), 1, "on the queue now, not 2 hours later by the overdue pass");
    assert_eq!(app.job(&ws, "u-lost").await.attempt, 1);
}

#[tokio::test]
async fn two_sweeps_expiring_one_lease_at_once_count_it_once() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.claimed_by_a_sender_that_dies(&job(&ws, "dead-2", CUSTOMER, agent(), text("hi"))).await;
    app.advance(Duration::seconds(61)).await;
    // Both read the job SENDING; the second one's write is refused by the first one's.
    let seen = app.job(&ws, "dead-2").await;
    let now = app.env.stack.clock.now();
    assert!(app.store().expire_lease(&seen, now).await.unwrap());
    assert!(
        !app.store().expire_lease(&seen, now).await.unwrap(),
        "refused by another sweep's write, which is not its own first try"
    );
    assert_eq!(app.job(&ws, "dead-2").await.state, JobState::Uncertain);
}

#[tokio::test]
async fn two_sweeps_rescuing_one_job_at_once_count_one_rescue() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    let reply = job(&ws, "rescue-2", CUSTOMER, agent(), text("hi"));
    let now = app.env.stack.clock.now();
    wapisnap::outbound::accept::accept_send(&app.store(), &app.queues(), &reply, now).await.unwrap();
    // Both read the job QUEUED, never rescued; the second one's write is refused by the first.
    let seen = app.job(&ws, "rescue-2").await;
    let current = wapisnap::store::jobs::AttemptRef::of(&seen);
    assert!(app.store().rescue_job(current, seen.rescued, now).await.unwrap());
    assert!(!app.store().rescue_job(current, seen.rescued, now).await.unwrap(), "one rescue, counted once");
    assert_eq!(app.job(&ws, "rescue-2").await.rescued, 1);
}
