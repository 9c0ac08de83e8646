//! Broadcasts on the local stack: the fan-out writes one job per recipient (or a skip with its
//! reason), resumes after dying, stops at a cancel, respects the portfolio's messaging limit,
//! and the report — tallied from the jobs — always adds up.

use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use wapisnap::broadcasts::fanout::FanoutOutcome;
use wapisnap::broadcasts::spec::{BroadcastState, OverLimit};
use wapisnap::clock::Clock;
use wapisnap::domain::{Channel, SendRequest};
use wapisnap_local::aws_faults::AwsFault;
use wapisnap_local::sandbox::FaultEffect;
use wapisnap_tests::{NUMBER_A, NUMBER_B, TestApp, fault, meta_error};

#[tokio::test]
async fn dnd_and_do_not_send_contacts_are_skipped_with_their_reason_and_everyone_else_gets_one_message() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
    let audience = app.contacts_tagged(&ws, "vip", 0, 5).await;
    app.contacts_tagged(&ws, "newsletter", 5, 2).await;
    app.store().add_contact_tag(&ws, Channel::WhatsApp, &audience[1], "dnd").await.unwrap();
    app.store().add_contact_tag(&ws, Channel::WhatsApp, &audience[2], "do-not-send").await.unwrap();
    let id = app.broadcast_to_tag(&ws, "bc_spring", NUMBER_A, "vip", "spring_sale", OverLimit::Defer).await;

    assert_eq!(app.broadcast_fires(&ws, &id).await, FanoutOutcome::Sent { total: 5 });
    let report = app.broadcast_settles(&ws, &id).await;
    assert_eq!((report.total, report.accepted, report.skipped, report.failed), (5, 3, 2, 0), "{report:?}");
    let reasons: Vec<&String> = report.skipped_by_reason.keys().collect();
    assert!(
        reasons.iter().any(|r| r.contains("dnd")) && reasons.iter().any(|r| r.contains("do-not-send")),
        "{reasons:?}"
    );
    assert_eq!(app.template_sends_to(&audience), 3, "one message per recipient, none to the excluded");
    let sent = app.env.sandbox.requests_to("/messages");
    assert_eq!(sent[0].body["template"]["components"][0]["parameters"][0]["text"], "Sam", "{{name}} filled in");

    assert_eq!(app.broadcast_fires(&ws, &id).await, FanoutOutcome::Nothing("already done"), "a second firing");
    assert_eq!(app.template_sends_to(&audience), 3);
}

#[tokio::test]
async fn a_template_that_is_not_approved_fails_the_broadcast_before_any_send() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.contacts_tagged(&ws, "vip", 0, 3).await;
    let id = app.broadcast_to_tag(&ws, "bc_nope", NUMBER_A, "vip", "never_approved", OverLimit::Defer).await;
    let FanoutOutcome::Failed { reason } = app.broadcast_fires(&ws, &id).await else { panic!("not failed") };
    assert!(reason.contains("never_approved") && reason.contains("nothing was sent"), "{reason}");
    let record = app.broadcast(&ws, &id).await;
    assert_eq!((record.state, record.reason.as_deref()), (BroadcastState::Failed, Some(reason.as_str())));
    assert!(app.drain("SendQueue").await.is_empty());
    assert_eq!(app.broadcast_report(&ws, &id).await.total, 0);
}

#[tokio::test]
async fn two_numbers_of_a_250_portfolio_share_its_limit_and_a_customer_reached_already_counts_once() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.connect_number(&ws, NUMBER_B).await;
    app.number_in_portfolio(&ws, NUMBER_A, "portfolio-1", "TIER_250").await;
    app.number_in_portfolio(&ws, NUMBER_B, "portfolio-1", "TIER_250").await;
    app.approve_template(&ws, "spring_sale").await;
    let waba_b = format!("9{NUMBER_B}");
    app.store()
        .put_template(&ws, &waba_b, "spring_sale", "en_US", wapisnap::domain::TemplateStatus::Approved)
        .await
        .unwrap();
    app.contacts_tagged(&ws, "first", 0, 200).await;
    // Ten of the second audience were in the first: reached already, they do not count again.
    app.contacts_tagged(&ws, "second", 190, 100).await;

    let first = app.broadcast_to_tag(&ws, "bc_first", NUMBER_A, "first", "spring_sale", OverLimit::Skip).await;
    assert_eq!(app.broadcast_fires(&ws, &first).await, FanoutOutcome::Sent { total: 200 });
    let second = app.broadcast_to_tag(&ws, "bc_second", NUMBER_B, "second", "spring_sale", OverLimit::Skip).await;
    assert_eq!(app.broadcast_fires(&ws, &second).await, FanoutOutcome::Sent { total: 100 });
    let report = app.broadcast_report(&ws, &second).await;
    assert_eq!(report.total, 100);
    // 200 reached by number A; 10 of B's audience among them; 50 new ones fit under 250.
    assert_eq!((report.pending, report.skipped), (60, 40), "{report:?}");
    assert!(report.skipped_by_reason.keys().all(|r| r.contains("messaging limit")), "{report:?}");

    // The same, deferred: the broadcast pauses at the limit and resumes when the window has room.
    app.contacts_tagged(&ws, "third", 400, 10).await;
    let third = app.broadcast_to_tag(&ws, "bc_third", NUMBER_B, "third", "spring_sale", OverLimit::Defer).await;
    let FanoutOutcome::Deferred { until } = app.broadcast_fires(&ws, &third).await else { panic!("not deferred") };
    assert_eq!(app.broadcast(&ws, &third).await.state, BroadcastState::Deferred);
    assert!(app.schedules().await.len() == 1, "its resumption is scheduled");
    app.advance(Duration::hours(26)).await;
    assert!(app.env.stack.clock.now() > until);
    assert_eq!(app.broadcast_fires(&ws, &third).await, FanoutOutcome::Sent { total: 10 });
    assert_eq!(app.broadcast_report(&ws, &third).await.pending, 10, "all ten queued once the window had room");
}

#[tokio::test]
async fn a_fan_out_that_dies_part_way_resumes_and_meta_gets_exactly_one_message_per_recipient() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
    let audience = app.contacts_tagged(&ws, "vip", 0, 130).await;
    let id = app.broadcast_to_tag(&ws, "bc_crash", NUMBER_A, "vip", "spring_sale", OverLimit::Defer).await;

    // The first run is killed part-way, wherever it is (a crash, the Lambda's timeout).
    let killed = tokio::time::timeout(StdDuration::from_millis(400), app.broadcast_fires(&ws, &id)).await;
    assert!(killed.is_err(), "the first run was killed before it finished: {killed:?}");
    let partial = app.broadcast(&ws, &id).await;
    assert_eq!(partial.state, BroadcastState::Sending);
    assert!(partial.enumerated < 130, "killed part-way: {}", partial.enumerated);

    // Scheduler fires it again; it resumes.
    assert_eq!(app.broadcast_fires(&ws, &id).await, FanoutOutcome::Sent { total: 130 });
    let report = app.broadcast_settles(&ws, &id).await;
    assert_eq!((report.total, report.accepted), (130, 130), "{report:?}");
    assert_eq!(app.template_sends_to(&audience), 130, "exactly one message per recipient at Meta");
}

#[tokio::test]
async fn a_fan_out_whose_write_fails_part_way_resumes_and_meta_gets_exactly_one_message_per_recipient() {
    let app = TestApp::spawn_idle().await;
    app.env.stack.start_background();
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
    let audience = app.contacts_tagged(&ws, "vip", 0, 30).await;
    let id = app.broadcast_to_tag(&ws, "bc_fails", NUMBER_A, "vip", "spring_sale", OverLimit::Defer).await;

    // DynamoDB fails the 13th recipient's write (its reach marker and the number's hourly
    // count, one transaction), each time the SDK tries it: the run fails part-way through its
    // page, with 12 jobs accepted and none queued yet.
    app.aws_fails_next(AwsFault::internal_error("TransactWriteItems", 3).after(12));
    let failed = app.broadcast_run(&ws, &id, None).await;
    assert!(failed.is_err(), "the run fails, for Scheduler to fire it again: {failed:?}");
    assert!(app.aws().faults_met("TransactWriteItems") >= 1);
    let partial = app.broadcast(&ws, &id).await;
    assert_eq!(partial.state, BroadcastState::Sending);
    assert_eq!(partial.enumerated, 0, "the page's progress was not saved");
    assert_eq!(app.template_sends_to(&audience), 0, "nothing was queued, so nothing was sent");

    // Scheduler fires it again; it resumes where it stopped.
    assert_eq!(app.broadcast_fires(&ws, &id).await, FanoutOutcome::Sent { total: 30 });
    let report = app.broadcast_settles(&ws, &id).await;
    assert_eq!((report.total, report.accepted), (30, 30), "{report:?}");
    assert_eq!(app.template_sends_to(&audience), 30, "exactly one message per recipient at Meta");
}

#[tokio::test]
async fn a_customer_whose_reach_meets_another_broadcasts_write_is_still_counted_against_the_limit() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.number_in_portfolio(&ws, NUMBER_A, "portfolio-1", "TIER_250").await;
    app.approve_template(&ws, "spring_sale").await;
    app.contacts_tagged(&ws, "vip", 0, 30).await;
    let id = app.broadcast_to_tag(&ws, "bc_conflict", NUMBER_A, "vip", "spring_sale", OverLimit::Skip).await;

    // The 13th recipient's reach (its marker and the portfolio's hourly count, one
    // transaction) meets another broadcast's transaction on the shared count, twice: DynamoDB
    // cancels it with `TransactionConflict`, having written nothing. That is not "counted
    // already" (a refused condition); it is written again.
    app.aws_fails_next(AwsFault::transaction_conflict(2).after(12));
    assert_eq!(app.broadcast_fires(&ws, &id).await, FanoutOutcome::Sent { total: 30 });
    assert_eq!(app.aws().faults_met("TransactWriteItems"), 2);
    let reached = app.store().reached_in_window(&ws, "portfolio-1", app.env.stack.clock.now()).await.unwrap();
    assert_eq!(reached, 30, "every customer queued for is counted against the portfolio's limit");
    assert_eq!(app.broadcast_report(&ws, &id).await.pending, 30);
}

#[tokio::test]
async fn a_fan_out_whose_progress_answer_was_lost_goes_on_and_counts_each_page_once() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
    app.contacts_tagged(&ws, "vip", 0, 130).await;
    let id = app.broadcast_to_tag(&ws, "bc_progress", NUMBER_A, "vip", "spring_sale", OverLimit::Defer).await;

    // Each page's progress (its cursor and count) is saved, and the answer lost: the SDK's
    // second try is refused, the page count having moved, by this very run.
    app.aws_fails_next(AwsFault::answer_lost("UpdateItem", 2).when_body_contains("enumerated"));
    assert_eq!(app.broadcast_fires(&ws, &id).await, FanoutOutcome::Sent { total: 130 });
    assert_eq!(app.aws().faults_met("UpdateItem"), 2, "both pages' answers were lost");
    let record = app.broadcast(&ws, &id).await;
    assert_eq!((record.state, record.enumerated, record.pages), (BroadcastState::Sent, 130, 2));
}

#[tokio::test]
async fn a_fan_out_that_stops_between_its_last_page_and_its_finish_finishes_without_counting_twice() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
    app.contacts_tagged(&ws, "vip", 0, 30).await;
    let id = app.broadcast_to_tag(&ws, "bc_finish", NUMBER_A, "vip", "spring_sale", OverLimit::Defer).await;

    // The only page is saved (no cursor left); marking the broadcast SENT fails, each time
    // the SDK tries it, and the run fails.
    app.aws_fails_next(AwsFault::internal_error("UpdateItem", 3).when_body_contains("audience_total"));
    assert!(app.broadcast_run(&ws, &id, None).await.is_err());
    let stopped = app.broadcast(&ws, &id).await;
    assert_eq!((stopped.state, stopped.enumerated, stopped.cursor), (BroadcastState::Sending, 30, None));

    // Fired again (by Scheduler's retry or the sweeper's restart), it finishes.
    assert_eq!(app.broadcast_fires(&ws, &id).await, FanoutOutcome::Sent { total: 30 });
    let done = app.broadcast(&ws, &id).await;
    assert_eq!((done.enumerated, done.audience_total), (30, Some(30)), "the audience counted once");
}

#[tokio::test]
async fn a_fan_out_near_its_deadline_schedules_its_own_continuation() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
    app.contacts_tagged(&ws, "vip", 0, 150).await;
    let id = app.broadcast_to_tag(&ws, "bc_long", NUMBER_A, "vip", "spring_sale", OverLimit::Defer).await;
    // 20 s are kept back for stopping cleanly: after its first page this run stops.
    let deadline = Instant::now() + StdDuration::from_secs(20);
    let outcome = app.broadcast_runs_until(&ws, &id, Some(deadline)).await;
    assert_eq!(outcome, FanoutOutcome::Continued { enumerated: 100 });
    assert_eq!(app.schedules().await.len(), 1, "the continuation is scheduled");
    assert_eq!(app.broadcast_fires(&ws, &id).await, FanoutOutcome::Sent { total: 150 });
    assert_eq!(app.broadcast_report(&ws, &id).await.pending, 150);
    assert_eq!(app.drain("SendQueue").await.len(), 150, "one send request per recipient");
}

#[tokio::test]
async fn a_cancel_mid_way_starts_no_new_send_and_the_rest_are_skipped_as_cancelled() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
    let audience = app.contacts_tagged(&ws, "vip", 0, 150).await;
    let id = app.broadcast_to_tag(&ws, "bc_cancel", NUMBER_A, "vip", "spring_sale", OverLimit::Defer).await;
    let deadline = Instant::now() + StdDuration::from_secs(20);
    assert_eq!(app.broadcast_runs_until(&ws, &id, Some(deadline)).await, FanoutOutcome::Continued { enumerated: 100 });

    // Thirty of the hundred queued sends go out; then the business cancels.
    let requests = app.drain("SendQueue").await;
    for request in &requests[..30] {
        let request: SendRequest = serde_json::from_value(request.clone()).unwrap();
        app.sender().send(request).await.unwrap();
    }
    let now = app.env.stack.clock.now();
    let cancel = wapisnap::store::update::Update::new().set("state", wapisnap::store::update::s("CANCELLED"));
    let from = [BroadcastState::Sending];
    assert!(app.store().move_broadcast(&ws, &id, &from, cancel, now).await.unwrap());

    for request in &requests[30..] {
        let request: SendRequest = serde_json::from_value(request.clone()).unwrap();
        app.sender().send(request).await.unwrap();
    }
    assert_eq!(app.broadcast_fires(&ws, &id).await, FanoutOutcome::Cancelled { total: 150 });
    let report = app.broadcast_report(&ws, &id).await;
    assert_eq!((report.total, report.accepted, report.skipped, report.pending), (150, 30, 120, 0), "{report:?}");
    assert!(report.skipped_by_reason.keys().all(|r| r.contains("cancelled")), "{report:?}");
    assert_eq!(app.template_sends_to(&audience), 30, "no send started after the cancel");
}

#[tokio::test]
async fn a_131049_for_some_recipients_goes_to_smart_retry_and_the_report_shows_it() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
    let audience = app.contacts_tagged(&ws, "vip", 0, 6).await;
    for recipient in &audience[..2] {
        let mut capped = fault(FaultEffect::FailedStatus { code: 131049 }, 1);
        capped.recipient = Some(recipient.clone());
        app.env.sandbox.inject(capped);
    }
    let _ = meta_error;
    let id = app.broadcast_to_tag(&ws, "bc_capped", NUMBER_A, "vip", "spring_sale", OverLimit::Defer).await;
    app.broadcast_fires(&ws, &id).await;
    // Meta accepts all six, then reports two of them failed: they go to Smart Retry.
    let report = wapisnap_tests::eventually("two recipients in Smart Retry", StdDuration::from_secs(60), || async {
        let report = app.broadcast_report(&ws, &id).await;
        (report.in_smart_retry == 2 && report.accepted == 4).then_some(report)
    })
    .await;
    assert_eq!((report.total, report.pending, report.failed), (6, 2, 0), "waiting days for their retry: {report:?}");
    wapisnap_tests::eventually("two 131049 retries scheduled days ahead", StdDuration::from_secs(30), || async {
        (app.schedules().await.len() == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_fan_out_that_died_and_was_not_retried_is_fired_again_by_the_sweeper() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
    app.contacts_tagged(&ws, "vip", 0, 150).await;
    let id = app.broadcast_to_tag(&ws, "bc_stalled", NUMBER_A, "vip", "spring_sale", OverLimit::Defer).await;
    let deadline = Instant::now() + StdDuration::from_secs(20);
    assert_eq!(app.broadcast_runs_until(&ws, &id, Some(deadline)).await, FanoutOutcome::Continued { enumerated: 100 });
    // Its continuation schedule is lost; nothing moves for a while.
    for name in app.schedules().await {
        let stack = &app.env.stack;
        stack
            .aws
            .scheduler
            .delete_schedule()
            .group_name(stack.resources.schedule_group())
            .name(name)
            .send()
            .await
            .unwrap();
    }
    assert!(app.sweep().await.restarted_broadcasts.is_empty(), "a fan-out that moved recently is left alone");
    app.advance(Duration::minutes(21)).await;
    assert_eq!(app.sweep().await.restarted_broadcasts, [id.to_string()]);
    assert_eq!(app.schedules().await.len(), 1, "fired again through a one-time schedule");
    assert_eq!(app.broadcast_fires(&ws, &id).await, FanoutOutcome::Sent { total: 150 });
    app.advance(Duration::minutes(21)).await;
    assert!(app.sweep().await.restarted_broadcasts.is_empty(), "a finished broadcast is not active any more");
}
