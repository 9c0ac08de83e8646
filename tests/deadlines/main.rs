//! A sender invocation against its deadline, on a slow day: AWS answers each request late
//! (the local stack's fault pass-through), Meta each send late, and the invocation must start
//! no send it cannot finish, give up reads that run into the time a send needs, and put back
//! what it did not start, without outliving its Lambda and without losing a message.
//!
//! Its own process (and so its own emulator): whether an invocation outlives its Lambda depends
//! on the store's pace, which must be the one the story sets, not the other stories' load.

use std::collections::HashMap;

use wapisnap::clock::Clock;
use wapisnap::domain::JobState;
use wapisnap::outbound::accept::accept_send;
use wapisnap_local::environment::EnvironmentOptions;
use wapisnap_local::sandbox::FaultEffect;
use wapisnap_tests::{TestApp, agent, job, text};

const CUSTOMER: &str = "16505551234";

#[tokio::test]
async fn a_sender_running_out_of_time_starts_no_send_it_cannot_finish_and_loses_none() {
    // AWS answers each request after 0.2 s and Meta each send after 0.6 s; a send needs its
    // Graph call (0.8 s at most) + 2 s of margin, the Lambda has 6 s. The reads before a claim
    // take a second or more, so a batch of ten has time for two or four sends: the rest, and a
    // record whose reads are still running when only a send's time is left, must be put back
    // without outliving the invocation.
    let app = TestApp::spawn_with(EnvironmentOptions {
        graph_timeout: std::time::Duration::from_millis(800),
        function_timeouts: HashMap::from([("SenderFunction".to_owned(), std::time::Duration::from_secs(6))]),
        sender_concurrency: Some(2),
        sqs_pollers: Some(1),
        ..Default::default()
    })
    .await;
    let ws = app.workspace_with_number().await;
    app.customer_writes(CUSTOMER).await;
    app.env.sandbox.inject(wapisnap_local::sandbox::Fault {
        path_contains: Some("/messages".into()),
        recipient: None,
        times: 100,
        effect: FaultEffect::Delay { millis: 600 },
    });
    let (store, queues) = (app.store(), app.queues());
    for i in 0..10 {
        let reply = job(&ws, &format!("batch-{i}"), CUSTOMER, agent(), text(&format!("part {i}")));
        accept_send(&store, &queues, &reply, app.env.stack.clock.now()).await.unwrap();
    }
    app.aws_answers_after(std::time::Duration::from_millis(200));
    app.env.stack.start_background();

    for i in 0..10 {
        app.job_reaches(&ws, &format!("batch-{i}"), JobState::Delivered).await;
    }
    assert_eq!(app.sends_received(), 10, "each message once");
    let mapping = app.env.stack.mappings.iter().find(|m| m.function == "SenderFunction").unwrap();
    assert_eq!(mapping.timed_out.load(std::sync::atomic::Ordering::SeqCst), 0, "no invocation outlived its Lambda");
    assert!(app.drain("SendDeadLetterQueue").await.is_empty(), "nothing not started was charged a receive");
}
