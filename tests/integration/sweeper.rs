//! The sweeper's safety nets: silent failures, UNCERTAIN sends settled by the documented policy.

use chrono::Duration;
use wapisnap::domain::Channel;
use wapisnap::domain::JobState;
use wapisnap::outbound::sender::SendOutcome;
use wapisnap_local::aws_faults::AwsFault;
use wapisnap_local::sandbox::FaultEffect;
use wapisnap_tests::{NUMBER_A, TestApp, agent, broadcast, fault, job, template, text};

const CUSTOMER: &str = "16505551234";

#[tokio::test]
async fn the_sweeper_fails_silent_sends_and_flags_the_broadcast() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
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
    app.claim(&ws, Channel::WhatsApp, NUMBER_A).await;
    app.meta_reports("delivered", &delivered.wamid.unwrap().to_string(), "16505550000", Some("bc-0")).await;

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
