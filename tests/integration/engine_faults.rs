//! The send engine under faults found in review: an error of ours between reading a job and
//! calling Meta, KMS failing, a claim or a give-back whose answer was lost, a sender that dies after its claim, an answer that does not say
//! whether Meta has the message, a reused job id, a lost hand-over, an unreadable item in a
//! sweep. Each story ends with Meta having received each message once, or a documented resend.
//! (A Lambda running out of time has its own process: `tests/deadlines`.)

use chrono::Duration;
use wapisnap::clock::Clock;
use wapisnap::domain::Channel;
use wapisnap::domain::JobState;
use wapisnap::outbound::accept::{AcceptError, accept_send};
use wapisnap::outbound::sender::SendOutcome;
use wapisnap::policy::send::DND_TAG;
use wapisnap_local::aws_faults::AwsFault;
use wapisnap_local::environment::EnvironmentOptions;
use wapisnap_local::sandbox::FaultEffect;
use wapisnap_tests::{INSTAGRAM_ACCOUNT, TestApp, agent, broadcast, flow, job, template, text};

const CUSTOMER: &str = "16505551234";

#[tokio::test]
async fn an_unreadable_item_before_the_claim_leaves_the_job_waiting_and_it_is_sent_once_later() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.corrupt_contact(&ws, CUSTOMER, true).await;
    // An automated send: its policy reads the contact (dnd, do-not-send); an agent's own reply
    // does not need to.
    let reply = job(&ws, "corrupt-1", CUSTOMER, flow(), text("hi"));

    let request = wapisnap::domain::SendRequest::New { job: Box::new(reply.clone()) };
    assert!(app.sender().send(request).await.is_err(), "the request goes back to the queue");
    let waiting = app.job(&ws, "corrupt-1").await;
    assert_eq!(waiting.state, JobState::Queued, "not UNCERTAIN, not FAILED: Meta was never called");
    assert_eq!(app.sends_received(), 0);

    app.corrupt_contact(&ws, CUSTOMER, false).await;
    assert!(matches!(app.send(&reply).await, SendOutcome::Accepted { .. }));
    assert_eq!(app.sends_received(), 1, "sent once, later");
}

#[tokio::test]
async fn when_kms_cannot_open_the_token_nothing_is_claimed_and_the_job_is_sent_once_later() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    let reply = job(&ws, "kms-1", CUSTOMER, agent(), text("hi"));
    let request = wapisnap::domain::SendRequest::New { job: Box::new(reply.clone()) };

    app.aws_fails_next(AwsFault::internal_error("Decrypt", 100));
    assert!(app.sender().send(request).await.is_err(), "the request goes back to the queue");
    assert!(app.aws().faults_met("Decrypt") >= 1, "KMS is what failed");
    assert_eq!(
        app.job(&ws, "kms-1").await.state,
        JobState::Queued,
        "not claimed, not UNCERTAIN: Meta was never called"
    );
    assert_eq!(app.sends_received(), 0);

    app.aws().heal();
    assert!(matches!(app.send(&reply).await, SendOutcome::Accepted { .. }));
    assert_eq!(app.sends_received(), 1, "sent once, later");
}

#[tokio::test]
async fn a_claim_whose_answer_was_lost_is_still_this_senders_and_the_message_goes_at_once() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    let reply = job(&ws, "claim-lost-1", CUSTOMER, agent(), text("hi"));

    // DynamoDB makes the claim (QUEUED -> SENDING) and its answer is lost: the SDK sends the
    // claim again, and DynamoDB refuses it by its condition, the job being SENDING now. That
    // refusal comes from this sender's own first try, not from another sender.
    app.aws_fails_next(AwsFault::answer_lost("UpdateItem", 1).when_body_contains("\"SENDING"));
    assert!(matches!(app.send(&reply).await, SendOutcome::Accepted { .. }), "sent, not left to the sweeper");
    assert_eq!(app.aws().faults_met("UpdateItem"), 1, "the claim's answer was lost");
    assert_eq!(app.sends_received(), 1, "Meta got it once");
    assert_eq!(app.job(&ws, "claim-lost-1").await.state, JobState::Accepted);
}

#[tokio::test]
async fn a_throttled_attempt_whose_give_back_answer_was_lost_is_still_put_back_on_the_queue() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    let reply = job(&ws, "requeue-lost-1", CUSTOMER, agent(), text("hi"));

    // Meta asks us to slow down; the job is given back (SENDING -> QUEUED after the backoff) and
    // that write's answer is lost: the SDK's second try is refused by the first one.
    app.meta_fails_next(130429);
    app.aws_fails_next(AwsFault::answer_lost("UpdateItem", 1).when_body_contains("\"throttled\""));
    assert!(matches!(app.send(&reply).await, SendOutcome::Requeued));
    assert_eq!(app.aws().faults_met("UpdateItem"), 1, "the give-back's answer was lost");
    assert_eq!(app.job(&ws, "requeue-lost-1").await.state, JobState::RetryScheduled, "waiting out the backoff");
    assert_eq!(app.delayed_on("SendQueue").await, 1, "back on the queue after the backoff, not left to the sweeper");
}

#[tokio::test]
async fn a_refused_attempt_whose_recorded_answer_was_lost_is_handed_to_smart_retry_at_once() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    let reply = job(&ws, "finish-lost-1", CUSTOMER, agent(), text("hi"));

    // Meta refuses the send; the attempt is recorded (SENDING -> FAILED_ATTEMPT) and that
    // write's answer is lost: the SDK's second try is refused by the first one.
    app.meta_fails_next(131049);
    app.aws_fails_next(AwsFault::answer_lost("UpdateItem", 1).when_body_contains("FAILED_ATTEMPT"));
    let outcome = app.send(&reply).await;
    assert_eq!(app.aws().faults_met("UpdateItem"), 1, "the record's answer was lost");
    assert!(matches!(outcome, SendOutcome::HandedToRetry { code: Some(131049) }), "{outcome:?}");
    assert_eq!(app.drain("RetryQueue").await.len(), 1, "handed to Smart Retry now, not by the sweeper later");
    assert_eq!(app.job(&ws, "finish-lost-1").await.state, JobState::FailedAttempt);
}

#[tokio::test]
async fn an_accepted_send_whose_recorded_answer_was_lost_is_counted_as_accepted() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    let reply = job(&ws, "accept-lost-1", CUSTOMER, agent(), text("hi"));

    app.aws_fails_next(AwsFault::answer_lost("UpdateItem", 1).when_body_contains("\"ACCEPTED"));
    let outcome = app.send(&reply).await;
    assert_eq!(app.aws().faults_met("UpdateItem"), 1, "the record's answer was lost");
    assert!(matches!(outcome, SendOutcome::Accepted { .. }), "ours, not a lost claim: {outcome:?}");
    assert_eq!(app.sends_received(), 1);
}

#[tokio::test]
async fn a_sender_that_dies_after_its_claim_is_found_by_the_sweeper_once_its_lease_runs_out() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.claimed_by_a_sender_that_dies(&job(&ws, "dead-1", CUSTOMER, agent(), text("hi"))).await;

    assert_eq!(app.sweep().await.leases_expired, 0, "the lease still runs");
    app.advance(Duration::seconds(61)).await;
    assert_eq!(app.sweep().await.leases_expired, 1);
    assert_eq!(app.job(&ws, "dead-1").await.state, JobState::Uncertain, "Meta may have it: never resent blindly");
}

#[tokio::test]
async fn a_request_is_durable_when_accepted_and_the_sweeper_queues_it_again_if_its_message_is_lost() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    let reply = job(&ws, "lost-1", CUSTOMER, agent(), text("hi"));
    let state = accept_send(&app.store(), &app.queues(), &reply, app.env.stack.clock.now()).await.unwrap();
    assert_eq!(state, JobState::Queued);
    assert_eq!(app.job(&ws, "lost-1").await.state, JobState::Queued, "the job exists before its queue message");
    assert_eq!(app.drain("SendQueue").await.len(), 1, "its message, lost here");

    app.advance(Duration::hours(3)).await;
    assert_eq!(app.sweep().await.overdue_requeued, 1);
    app.env.stack.start_background();
    app.job_reaches(&ws, "lost-1", JobState::Delivered).await;
    assert_eq!(app.sends_received(), 1);
}

#[tokio::test]
async fn a_rescue_whose_answer_was_lost_counts_once_and_queues_the_job() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    let reply = job(&ws, "rescue-lost-1", CUSTOMER, agent(), text("hi"));
    accept_send(&app.store(), &app.queues(), &reply, app.env.stack.clock.now()).await.unwrap();
    assert_eq!(app.drain("SendQueue").await.len(), 1, "its message, lost here");
    app.advance(Duration::hours(3)).await;

    // The rescue (one more `rescued`, the job refiled) is written and its answer lost: the
    // SDK's second try would count it again, as nothing in the job's state refuses it.
    app.aws_fails_next(AwsFault::answer_lost("UpdateItem", 1).when_body_contains("rescued"));
    assert_eq!(app.sweep().await.overdue_requeued, 1);
    assert_eq!(app.aws().faults_met("UpdateItem"), 1, "the rescue's answer was lost");
    assert_eq!(app.job(&ws, "rescue-lost-1").await.rescued, 1, "one rescue counted once, against the job's limit");
    assert_eq!(app.drain("SendQueue").await.len(), 1, "back on the queue");
}

#[tokio::test]
async fn a_gateway_5xx_without_metas_body_is_maybe_sent_never_not_sent() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.meta_answers_next(FaultEffect::HttpStatus { status: 502 });
    assert_eq!(app.send(&job(&ws, "gw-1", CUSTOMER, agent(), text("hi"))).await, SendOutcome::Uncertain);
    assert!(app.drain("RetryQueue").await.is_empty(), "not handed to Smart Retry: a retry could be a duplicate");
}

#[tokio::test]
async fn a_5xx_that_carries_metas_code_is_classified_by_the_code() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.meta_answers_next(FaultEffect::MetaError {
        code: 131026,
        subcode: None,
        http_status: Some(500),
        message: None,
    });
    let outcome = app.send(&job(&ws, "code-1", CUSTOMER, agent(), text("hi"))).await;
    assert_eq!(outcome, SendOutcome::HandedToRetry { code: Some(131026) });
}

#[tokio::test]
async fn an_account_in_maintenance_is_retried_not_failed() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.meta_fails_next(131057);
    assert_eq!(
        app.send(&job(&ws, "maint-1", CUSTOMER, agent(), text("hi"))).await,
        SendOutcome::HandedToRetry { code: Some(131057) }
    );
    let failures = app.drain("RetryQueue").await;
    let failure = serde_json::from_value(failures[0].clone()).unwrap();
    let outcome = app.env.stack.functions.retry.smart_retry().handle(failure).await.unwrap();
    assert!(matches!(outcome, wapisnap::retry::smart::RetryOutcome::Scheduled { attempt: 1, .. }), "{outcome:?}");
    assert_eq!(app.job(&ws, "maint-1").await.state, JobState::RetryScheduled);
}

#[tokio::test]
async fn a_job_id_reused_with_other_content_is_a_conflict_recorded_on_the_job_never_a_silent_drop() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    let first = job(&ws, "key-1", CUSTOMER, agent(), text("Your order shipped"));
    assert!(matches!(app.send(&first).await, SendOutcome::Accepted { .. }));
    assert_eq!(app.send(&first).await, SendOutcome::AlreadySettled(JobState::Accepted), "the same request again");

    let other = job(&ws, "key-1", CUSTOMER, agent(), text("Your order was cancelled"));
    assert_eq!(app.send(&other).await, SendOutcome::Conflict);
    let accepted = accept_send(&app.store(), &app.queues(), &other, app.env.stack.clock.now()).await;
    assert!(matches!(accepted, Err(AcceptError::Conflict(_))), "{accepted:?}");
    let record = app.job(&ws, "key-1").await;
    assert_eq!(record.conflicts, 2, "each conflicting request is counted on the job");
    assert_eq!(record.job.content, first.content, "the first request stands");
    assert_eq!(app.sends_received(), 1);
}

#[tokio::test]
async fn dnd_cannot_be_bypassed_by_writing_the_number_another_way_and_metas_wa_id_is_recorded() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.store().add_contact_tag(&ws, Channel::WhatsApp, CUSTOMER, DND_TAG).await.unwrap();
    let formatted = job(&ws, "fmt-1", "+1 650-555-1234", flow(), text("Still there?"));
    assert!(matches!(app.send(&formatted).await, SendOutcome::Refused { ref reason } if reason.contains("dnd")));

    let human = job(&ws, "fmt-2", "+1 (650) 555-1234", agent(), text("Hi, Dana here"));
    assert!(matches!(app.send(&human).await, SendOutcome::Accepted { .. }), "a human reply still goes");
    let record = app.job(&ws, "fmt-2").await;
    assert_eq!(record.job.to.as_str(), CUSTOMER);
    assert_eq!(record.wa_id.as_deref(), Some(CUSTOMER), "the send answer's wa_id is kept");
}

#[tokio::test]
async fn a_failure_reported_by_webhook_whose_hand_over_was_lost_is_handed_over_again_by_the_sweeper() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
    app.meta_answers_next(FaultEffect::FailedStatus { code: 131049 });
    assert!(matches!(
        app.send(&job(&ws, "lost-hand-1", CUSTOMER, broadcast("b"), template("spring_sale"))).await,
        SendOutcome::Accepted { .. }
    ));
    let record = app.job_reaches(&ws, "lost-hand-1", JobState::FailedAttempt).await;
    assert!(record.failure_wamid.is_some(), "the job itself records the reported failure");
    assert_eq!(app.drain("RetryQueue").await.len(), 1, "the hand-over, lost here");

    app.advance(Duration::minutes(11)).await;
    assert_eq!(app.sweep().await.handed_to_retry_again, 1);
    let failures = app.drain("RetryQueue").await;
    let failure = serde_json::from_value(failures[0].clone()).unwrap();
    let outcome = app.env.stack.functions.retry.smart_retry().handle(failure).await.unwrap();
    assert!(matches!(outcome, wapisnap::retry::smart::RetryOutcome::Scheduled { .. }), "{outcome:?}");
    let waiting = app.job(&ws, "lost-hand-1").await;
    assert_eq!(waiting.state, JobState::RetryScheduled);
    assert!(waiting.retry_at.unwrap() - app.env.stack.clock.now() >= Duration::days(7) - Duration::minutes(12));
}

#[tokio::test]
async fn one_unreadable_item_never_stops_a_sweep() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.claimed_by_a_sender_that_dies(&job(&ws, "good-1", CUSTOMER, agent(), text("hi"))).await;
    app.put_unreadable_job_in_the_sweep(&ws).await;

    app.advance(Duration::seconds(61)).await;
    let report = app.sweep().await;
    assert_eq!(report.errors, 1, "the unreadable one is logged and skipped");
    assert_eq!(report.leases_expired, 1, "the rest is swept");
}

#[tokio::test]
async fn an_uncertain_send_waits_for_proof_that_statuses_flow_and_is_not_resent_without_it() {
    let app = TestApp::spawn_with(EnvironmentOptions {
        graph_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.env.sandbox.set_auto_statuses(&[]);
    app.meta_answers_next(FaultEffect::AcceptThenFail { status: Some(200), delay_millis: Some(1000) });
    assert_eq!(app.send(&job(&ws, "quiet-1", CUSTOMER, agent(), text("hi"))).await, SendOutcome::Uncertain);

    app.advance(Duration::minutes(16)).await;
    let report = app.sweep().await;
    assert_eq!((report.uncertain_waiting, report.uncertain_resent), (1, 0), "statuses may just be late");
    app.advance(Duration::hours(72)).await;
    let report = app.sweep().await;
    assert_eq!((report.uncertain_failed, report.uncertain_resent), (1, 0));
    let record = app.job(&ws, "quiet-1").await;
    assert_eq!(record.state, JobState::Failed);
    assert!(record.reason.unwrap().contains("not resent"));
    assert_eq!(app.sends_received(), 1, "Meta had it all along: no duplicate");
}

#[tokio::test]
async fn alternating_error_classes_cannot_keep_a_job_retrying_forever() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "spring_sale").await;
    let retry = app.env.stack.functions.retry.smart_retry();
    let mut gave_up = None;
    for (round, code) in [131049, 131000, 131049, 131000, 131049, 131000, 131049, 131000].into_iter().enumerate() {
        app.meta_fails_next(code);
        let request = if round == 0 {
            wapisnap::domain::SendRequest::New {
                job: Box::new(job(&ws, "alt-1", CUSTOMER, broadcast("b"), template("spring_sale"))),
            }
        } else {
            let record = app.job(&ws, "alt-1").await;
            app.advance(record.retry_at.unwrap() - app.env.stack.clock.now() + Duration::minutes(1)).await;
            wapisnap::domain::SendRequest::Attempt {
                workspace_id: ws.clone(),
                job_id: record.job.job_id.clone(),
                attempt: record.attempt,
            }
        };
        assert!(matches!(app.sender().send(request).await.unwrap(), SendOutcome::HandedToRetry { .. }));
        let failure = serde_json::from_value(app.drain("RetryQueue").await.remove(0)).unwrap();
        if let wapisnap::retry::smart::RetryOutcome::GaveUp { .. } = retry.handle(failure).await.unwrap() {
            gave_up = Some(round);
            break;
        }
    }
    assert_eq!(gave_up, Some(wapisnap::retry::ATTEMPT_BUDGET as usize - 1), "the attempt budget ends it");
    let record = app.job(&ws, "alt-1").await;
    assert_eq!(record.state, JobState::Failed);
    assert!(record.reason.unwrap().contains("attempts used"));
    assert_eq!(app.sends_received(), wapisnap::retry::ATTEMPT_BUDGET as usize);
}

#[tokio::test]
async fn an_instagram_send_is_settled_by_instagrams_read_and_never_judged_a_silent_failure() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::Instagram, INSTAGRAM_ACCOUNT).await;
    app.connect_instagram(&ws).await;
    let customer = "6180712345678901";
    let now = app.env.stack.clock.now().timestamp_millis();
    app.instagram_posts(serde_json::json!({
        "sender": { "id": customer }, "recipient": { "id": INSTAGRAM_ACCOUNT }, "timestamp": now,
        "message": { "mid": "mid.CUSTOMER1", "text": "Do you ship to Lisbon?" },
    }))
    .await;
    let mut reply = job(&ws, "ig-1", CUSTOMER, agent(), text("We do!"));
    reply.channel = Channel::Instagram;
    reply.account_id = wapisnap::domain::AccountId::parse(INSTAGRAM_ACCOUNT).unwrap();
    reply.to = wapisnap::domain::ContactId::for_channel(Channel::Instagram, customer).unwrap();
    let SendOutcome::Accepted { wamid: mid } = app.send(&reply).await else { panic!("not accepted") };

    app.instagram_posts(serde_json::json!({
        "sender": { "id": customer }, "recipient": { "id": INSTAGRAM_ACCOUNT }, "timestamp": now + 5_000,
        "read": { "mid": mid },
    }))
    .await;
    assert_eq!(app.job(&ws, "ig-1").await.state, JobState::Delivered, "read by the customer");

    let mut unread = job(&ws, "ig-2", CUSTOMER, agent(), text("Anything else?"));
    unread.channel = Channel::Instagram;
    unread.account_id = wapisnap::domain::AccountId::parse(INSTAGRAM_ACCOUNT).unwrap();
    unread.to = wapisnap::domain::ContactId::for_channel(Channel::Instagram, customer).unwrap();
    assert!(matches!(app.send(&unread).await, SendOutcome::Accepted { .. }));
    app.advance(Duration::hours(73)).await;
    assert_eq!(app.sweep().await.silent_failures, 0, "Instagram reports no deliveries: silence is not failure");
    assert_eq!(app.job(&ws, "ig-2").await.state, JobState::Accepted);
}
