//! Smart Retry on the local stack: the sandbox fails the way Meta fails; the clock plays the
//! 7-day backoff in seconds.

use chrono::Duration;
use wapisnap::clock::Clock;
use wapisnap::domain::Channel;
use wapisnap::domain::JobState;
use wapisnap::domain::NumberState;
use wapisnap::outbound::sender::SendOutcome;
use wapisnap::policy::send::{DND_TAG, DO_NOT_SEND_TAG};
use wapisnap_local::aws_faults::AwsFault;
use wapisnap_local::sandbox::FaultEffect;
use wapisnap_tests::{NUMBER_A, NUMBER_B, TestApp, agent, broadcast, fault, flow, job, meta_error, template, text};

const CUSTOMER: &str = "16505551234";

#[tokio::test]
async fn frequency_cap_is_retried_after_7_then_8_then_9_days_then_failed() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
    // Meta accepts each attempt, then reports it failed with 131049, as it does.
    app.env.sandbox.inject(fault(FaultEffect::FailedStatus { code: 131049 }, 4));
    app.enqueue(&job(&ws, "cap-1", CUSTOMER, broadcast("spring"), template("spring_sale"))).await;

    let mut sent_at = app.env.stack.clock.now();
    for (retry, days) in [(1u32, 7i64), (2, 8), (3, 9)] {
        let record =
            wapisnap_tests::eventually("the retry to be scheduled", std::time::Duration::from_secs(20), || async {
                let job_id = wapisnap::domain::SendJobId::parse("cap-1").unwrap();
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
    app.approve_template(&ws, "spring_sale").await;
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
    let again = wapisnap::domain::SendRequest::Attempt {
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
    app.approve_template(&ws, "spring_sale").await;
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
async fn a_late_sent_for_an_earlier_failed_wamid_does_not_cancel_the_next_retry() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
    app.env.sandbox.set_auto_statuses(&[]);
    app.env.sandbox.inject(fault(FaultEffect::FailedStatus { code: 131049 }, 2));
    app.enqueue(&job(&ws, "late-sent", CUSTOMER, broadcast("spring"), template("spring_sale"))).await;
    wapisnap_tests::eventually("the first retry", std::time::Duration::from_secs(20), || async {
        let record = app.store().job(&ws, &wapisnap::domain::SendJobId::parse("late-sent").unwrap()).await.unwrap()?;
        (record.state == JobState::RetryScheduled && record.retries == 1).then_some(())
    })
    .await;
    app.advance(Duration::days(7) + Duration::minutes(61)).await;
    let record = wapisnap_tests::eventually("the second retry", std::time::Duration::from_secs(20), || async {
        let record = app.store().job(&ws, &wapisnap::domain::SendJobId::parse("late-sent").unwrap()).await.unwrap()?;
        (record.state == JobState::RetryScheduled && record.retries == 2).then_some(record)
    })
    .await;
    assert_eq!(record.failed_wamids.len(), 2, "both failed wamids remembered: {:?}", record.failed_wamids);

    // Meta's delayed `sent` for the first, failed, wamid arrives now.
    app.meta_reports("sent", &record.failed_wamids[0].to_string(), CUSTOMER, Some("late-sent")).await;
    assert_eq!(app.job(&ws, "late-sent").await.state, JobState::RetryScheduled, "the retry still waits");
}

#[tokio::test]
async fn a_retry_whose_scheduling_answer_was_lost_keeps_its_schedule_and_is_sent_after_7_days() {
    let app = TestApp::spawn_idle().await;
    app.env.stack.start_background();
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
    app.env.sandbox.inject(fault(FaultEffect::FailedStatus { code: 131049 }, 1));

    // Smart Retry makes the 7-day schedule, then moves the job to RETRY_SCHEDULED: DynamoDB
    // makes that move and its answer is lost, so the SDK's second try is refused by it.
    app.aws_fails_next(AwsFault::answer_lost("UpdateItem", 1).when_body_contains("RETRY_SCHEDULED"));
    app.enqueue(&job(&ws, "cap-lost-1", CUSTOMER, broadcast("spring"), template("spring_sale"))).await;
    app.job_reaches(&ws, "cap-lost-1", JobState::RetryScheduled).await;
    wapisnap_tests::eventually("the lost answer", std::time::Duration::from_secs(10), || async {
        (app.aws().faults_met("UpdateItem") == 1).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(app.schedules().await.len(), 1, "the schedule the job waits for is kept");

    app.advance(Duration::days(7) + Duration::minutes(61)).await;
    wapisnap_tests::eventually("the resend after 7 days", std::time::Duration::from_secs(20), || async {
        (app.sends_received() == 2).then_some(())
    })
    .await;
}
