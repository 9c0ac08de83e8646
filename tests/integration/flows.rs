//! Automations on the local stack: a customer talks to a bot through the webhook, the flow
//! queue carries one tick per node, sends go through the send queue to the Meta sandbox, and
//! the run's history says what happened. Each story is one rule of the issue and the FAQ.

use chrono::Duration;
use serde_json::{Value, json};
use wapisnap::clock::Clock;
use wapisnap::domain::{Channel, RunId, WorkspaceId};
use wapisnap::queues::FlowTick;
use wapisnap_local::aws_faults::AwsFault;
use wapisnap_tests::flows::{ANA, BEN, outcome, story};
use wapisnap_tests::{INSTAGRAM_ACCOUNT, NUMBER_A, TestApp};

fn welcome() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/flows/welcome.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn conversation(customer: &str) -> String {
    format!("wa:{NUMBER_A}:{customer}")
}

fn texts(received: &[Value]) -> Vec<String> {
    received
        .iter()
        .map(|body| match body["type"].as_str() {
            Some("text") => body["text"]["body"].as_str().unwrap_or_default().to_owned(),
            Some("interactive") => {
                format!("[buttons] {}", body["interactive"]["body"]["text"].as_str().unwrap_or_default())
            }
            Some("template") => format!("[template] {}", body["template"]["name"].as_str().unwrap_or_default()),
            other => format!("[{other:?}]"),
        })
        .collect()
}

#[tokio::test]
async fn hi_starts_the_welcome_flow_a_button_tap_branches_and_the_bot_answers() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    app.automate(&ws, welcome()).await;

    app.customer_says(ANA, "Hi!").await;
    let received = app.meta_receives(1).await;
    assert_eq!(texts(&received), ["[buttons] Hi Ana! How can we help?"]);
    assert_eq!(received[0]["interactive"]["action"]["buttons"][0]["reply"]["id"], "order");
    assert!(received[0]["biz_opaque_callback_data"].as_str().unwrap().starts_with("flow-run_"), "a flow job");

    app.customer_taps(ANA, "order", "Track my order").await;
    let received = app.meta_receives(2).await;
    assert_eq!(texts(&received)[1], "Your order ships tomorrow, Ana.");
    let history = app.history_shows(&ws, &conversation(ANA), "the run to end", |e| e.record.node == "tag").await;
    assert_eq!(
        story(&history),
        ["greet:sent", "ask:waiting", "ask:replied", "route:branched", "order:sent", "tag:tagged"]
    );
    assert_eq!(history[0].started_by.as_deref().map(|s| s.starts_with("message wamid.")), Some(true));
    let tags = app.store().contact_tags(&ws, Channel::WhatsApp, ANA).await.unwrap();
    assert!(tags.contains("asked-about-order"));
    assert_eq!(app.meta_received().len(), 2, "nothing more was sent");
}

/// An idle stack (the test moves the queues), the welcome bot, and Ana's "hi" as the one tick
/// on the flow queue.
async fn ana_says_hi_to_the_welcome_bot_with_the_queues_in_the_tests_hands() -> (TestApp, WorkspaceId, FlowTick) {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.automate(&ws, welcome()).await;
    app.customer_says(ANA, "hi").await;
    let ticks = app.drain("FlowQueue").await;
    assert_eq!(ticks.len(), 1, "one tick for one message: {ticks:?}");
    let tick = serde_json::from_value(ticks[0].clone()).unwrap();
    (app, ws, tick)
}

#[tokio::test]
async fn the_same_inbound_delivered_twice_steps_once() {
    let (app, ws, tick) = ana_says_hi_to_the_welcome_bot_with_the_queues_in_the_tests_hands().await;

    // SQS delivers the tick twice (a visibility timeout ran out while the first was working).
    let flows = app.env.stack.functions.flows.runner();
    flows.tick(tick.clone()).await.unwrap();
    let again = flows.tick(tick).await.unwrap();
    assert!(matches!(again, wapisnap::flows::runner::TickOutcome::Nothing(_)), "{again:?}");

    assert_eq!(story(&app.run_history(&ws, &conversation(ANA)).await), ["greet:sent"], "one step");
    let sends = app.drain("SendQueue").await;
    assert_eq!(sends.len(), 1, "one send job queued: {sends:?}");
    let next = app.drain("FlowQueue").await;
    assert_eq!(next.len(), 1, "one next tick: {next:?}");
    assert_eq!(next[0]["tick"], "step");
}

#[tokio::test]
async fn a_tick_that_died_after_accepting_its_send_runs_again_and_meta_gets_the_message_once() {
    let (app, ws, start) = ana_says_hi_to_the_welcome_bot_with_the_queues_in_the_tests_hands().await;
    let flows = app.env.stack.functions.flows.runner();
    flows.tick(start.clone()).await.unwrap();
    app.tick_dies_before_storing_its_state(&ws, &conversation(ANA)).await;

    flows.tick(start).await.unwrap();
    assert_eq!(story(&app.run_history(&ws, &conversation(ANA)).await), ["greet:sent"]);
    let requests = app.drain("SendQueue").await;
    assert_eq!(requests.len(), 2, "the job was queued by both runs of the tick");
    for request in requests {
        app.sender().send(serde_json::from_value(request).unwrap()).await.unwrap();
    }
    assert_eq!(app.sends_received(), 1, "one job, sent once");
}

#[tokio::test]
async fn a_step_tick_delivered_again_after_its_step_rearms_the_next_one_instead_of_repeating() {
    let (app, ws, start) = ana_says_hi_to_the_welcome_bot_with_the_queues_in_the_tests_hands().await;
    let flows = app.env.stack.functions.flows.runner();
    flows.tick(start).await.unwrap();
    let step: FlowTick = serde_json::from_value(app.drain("FlowQueue").await.remove(0)).unwrap();
    flows.tick(step.clone()).await.unwrap();
    assert_eq!(story(&app.run_history(&ws, &conversation(ANA)).await), ["greet:sent", "ask:waiting"]);
    let armed = app.schedules().await;
    assert_eq!(armed.len(), 1, "the hour-long timeout is armed as a schedule");

    // The schedule was lost after the step was stored, and the step tick comes back.
    let stack = &app.env.stack;
    let group = stack.resources.schedule_group();
    stack.aws.scheduler.delete_schedule().group_name(group).name(&armed[0]).send().await.unwrap();
    flows.tick(step).await.unwrap();
    assert_eq!(story(&app.run_history(&ws, &conversation(ANA)).await), ["greet:sent", "ask:waiting"], "not run twice");
    assert_eq!(app.schedules().await, armed, "the same timeout, armed again");
}

#[tokio::test]
async fn an_agents_text_reply_stops_the_run_on_the_next_tick_while_a_template_send_does_not() {
    let app = TestApp::spawn().await;
    let (ws, key) = app.workspace_with_key().await;
    app.connect_number(&ws, NUMBER_A).await;
    app.approve_template(&ws, "order_update").await;
    app.automate(&ws, welcome()).await;

    // Ana: an agent answers in text while the bot waits for her tap.
    app.customer_says(ANA, "hi").await;
    app.meta_receives(1).await;
    let queued = app
        .agent_sends(&key, &conversation(ANA), json!({ "type": "text", "body": "Dana here, I'll help." }), "a-1")
        .await;
    assert_eq!(queued["human_handoff"], true);
    app.meta_receives(2).await;
    app.customer_taps(ANA, "order", "Track my order").await;
    let history = app.history_shows(&ws, &conversation(ANA), "the run to stop", |e| outcome(e) == "stopped").await;
    let serde_json::Value::Object(last) = serde_json::to_value(&history.last().unwrap().record).unwrap() else {
        panic!()
    };
    assert!(last["reason"].as_str().unwrap().contains("human took over"), "{last:?}");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        texts(&app.meta_received()),
        ["[buttons] Hi Ana! How can we help?", "Dana here, I'll help."],
        "the bot is silent"
    );

    // Ben: an agent sends a template; the bot keeps answering.
    app.customer_says(BEN, "hi").await;
    app.meta_receives(3).await;
    let template = json!({ "type": "template", "name": "order_update", "language": "en_US" });
    let queued = app.agent_sends(&key, &conversation(BEN), template, "b-1").await;
    assert_eq!(queued["human_handoff"], false);
    app.meta_receives(4).await;
    app.customer_taps(BEN, "order", "Track my order").await;
    let received = app.meta_receives(5).await;
    assert_eq!(texts(&received)[4], "Your order ships tomorrow, Ben.", "the bot answered the tap");

    // Turning the takeover off (the conversation header's switch) lets automation start again
    // on Ana's next message.
    let toggle = format!("{}/v1/conversations/{}/handoff", app.env.stack.http_url, conversation(ANA));
    let answer = app.http.put(toggle).bearer_auth(&key).json(&json!({ "human_handoff": false })).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    app.customer_says(ANA, "hello again").await;
    let received = app.meta_receives(6).await;
    assert_eq!(texts(&received)[5], "[buttons] Hi Ana! How can we help?");
}

#[tokio::test]
async fn a_flow_message_still_on_the_queue_when_an_agent_takes_over_is_never_sent() {
    let (app, ws, start) = ana_says_hi_to_the_welcome_bot_with_the_queues_in_the_tests_hands().await;
    app.env.stack.functions.flows.runner().tick(start).await.unwrap();
    let greeting = app.drain("SendQueue").await;
    let greeting_job = greeting[0]["job_id"].as_str().unwrap().to_owned();

    // Dana answers Ana before a sender has taken the bot's greeting off the queue.
    let key = app.key_for(&ws).await;
    let reply = json!({ "type": "text", "body": "Dana here, I'll help." });
    let queued = app.agent_sends(&key, &conversation(ANA), reply, "a-1").await;
    assert_eq!(queued["human_handoff"], true);
    let replies = app.drain("SendQueue").await;
    for request in replies.into_iter().chain(greeting) {
        app.sender().send(serde_json::from_value(request).unwrap()).await.unwrap();
    }

    assert_eq!(texts(&app.meta_received()), ["Dana here, I'll help."], "the bot does not talk over Dana");
    let refused = app.job(&ws, &greeting_job).await;
    assert_eq!(refused.state, wapisnap::domain::JobState::Refused);
    assert!(refused.reason.unwrap().contains("human took over"));
}

#[tokio::test]
async fn a_flow_that_hands_over_itself_still_sends_what_it_said_before() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_with_number().await;
    app.automate(
        &ws,
        json!({
            "name": "To a human", "trigger": { "type": "message" }, "start": "tell",
            "nodes": [
                { "id": "tell", "type": "sendMessage", "text": "An agent will answer you shortly.", "next": "human" },
                { "id": "human", "type": "handoff" }
            ]
        }),
    )
    .await;
    app.customer_says(ANA, "I need help").await;
    let flows = app.env.stack.functions.flows.runner();
    flows.tick(serde_json::from_value(app.drain("FlowQueue").await.remove(0)).unwrap()).await.unwrap();
    let told = app.drain("SendQueue").await;
    // The handoff node runs before a sender takes the message off the queue.
    flows.tick(serde_json::from_value(app.drain("FlowQueue").await.remove(0)).unwrap()).await.unwrap();
    let conversation = app.store().conversation(&ws, &conversation(ANA)).await.unwrap().unwrap();
    assert!(conversation.human_handoff, "the flow asked for a human");

    for request in told {
        app.sender().send(serde_json::from_value(request).unwrap()).await.unwrap();
    }
    assert_eq!(
        texts(&app.meta_received()),
        ["An agent will answer you shortly."],
        "its own handoff does not silence it"
    );
}

#[tokio::test]
async fn the_default_channel_filter_ignores_an_instagram_dm_and_both_answers_it_skipping_buttons() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    app.connect_instagram(&ws).await;
    app.automate(&ws, welcome()).await;
    let ig_conversation = format!("ig:{INSTAGRAM_ACCOUNT}:{ANA}");
    let dm = |mid: &str, text: &str| {
        json!({
            "sender": { "id": ANA }, "recipient": { "id": INSTAGRAM_ACCOUNT },
            "timestamp": app.env.stack.clock.now().timestamp_millis(),
            "message": { "mid": mid, "text": text },
        })
    };
    app.instagram_posts(dm("mid.1", "hi")).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(app.run_history(&ws, &ig_conversation).await.is_empty(), "a WhatsApp automation stays silent on Instagram");
    assert!(app.meta_received().is_empty());

    let mut both = welcome();
    both["name"] = json!("Welcome everywhere");
    both["priority"] = json!(20);
    both["trigger"]["channel"] = json!("both");
    app.automate(&ws, both).await;
    app.instagram_posts(dm("mid.2", "hi")).await;
    let history =
        app.history_shows(&ws, &ig_conversation, "the Instagram run to wait", |e| outcome(e) == "waiting").await;
    assert_eq!(story(&history), ["greet:skipped", "ask:waiting"]);
    let serde_json::Value::Object(skip) = serde_json::to_value(&history[0].record).unwrap() else { panic!() };
    assert!(skip["reason"].as_str().unwrap().contains("Instagram has no interactive messages"), "{skip:?}");

    app.instagram_posts(dm("mid.3", "order")).await;
    let received = app.meta_receives(1).await;
    assert_eq!(received[0]["message"]["text"], "Your order ships tomorrow, friend.", "text goes out on Instagram");
    assert_eq!(received[0]["recipient"]["id"], ANA);
}

#[tokio::test]
async fn dnd_skips_the_sends_and_nothing_reaches_meta() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    app.automate(&ws, welcome()).await;
    app.customer_says(ANA, "hello").await;
    app.meta_receives(1).await;
    app.store().add_contact_tag(&ws, Channel::WhatsApp, ANA, "dnd").await.unwrap();

    app.customer_taps(ANA, "order", "Track my order").await;
    let history = app.history_shows(&ws, &conversation(ANA), "the run to end", |e| e.record.node == "tag").await;
    assert_eq!(
        story(&history),
        ["greet:sent", "ask:waiting", "ask:replied", "route:branched", "order:skipped", "tag:tagged"]
    );
    let serde_json::Value::Object(skip) = serde_json::to_value(&history[4].record).unwrap() else { panic!() };
    assert!(skip["reason"].as_str().unwrap().contains("dnd"), "{skip:?}");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(app.meta_received().len(), 1, "only the greeting, sent before the tag");
}

#[tokio::test]
async fn a_three_day_delay_fires_after_a_clock_jump_and_a_stale_wake_up_is_a_no_op() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    app.approve_template(&ws, "review_request").await;
    app.automate(
        &ws,
        json!({
            "name": "Review", "trigger": { "type": "keyword", "keywords": ["delivered"] }, "start": "thanks",
            "nodes": [
                { "id": "thanks", "type": "sendMessage", "text": "Glad it arrived!", "next": "wait" },
                { "id": "wait", "type": "delay", "seconds": 259200, "next": "review" },
                { "id": "review", "type": "sendTemplate", "name": "review_request", "language": "en_US" }
            ]
        }),
    )
    .await;
    app.customer_says(ANA, "it was delivered").await;
    app.meta_receives(1).await;
    app.history_shows(&ws, &conversation(ANA), "the run to park", |e| outcome(e) == "delayed").await;
    assert_eq!(app.schedules().await.len(), 1, "beyond 15 minutes the wake-up is a Scheduler schedule");

    app.advance(Duration::days(3) + Duration::minutes(1)).await;
    let received = app.meta_receives(2).await;
    assert_eq!(texts(&received), ["Glad it arrived!", "[template] review_request"]);
    let history = app.history_shows(&ws, &conversation(ANA), "the run to end", |e| e.record.node == "review").await;
    assert_eq!(story(&history), ["thanks:sent", "wait:delayed", "wait:resumed", "review:sent"]);

    // The same wake-up fires again (Scheduler delivers at least once): nothing happens.
    let first = &history[0];
    let stale = FlowTick::Wake {
        conversation: wapisnap::queues::FlowConversation {
            workspace_id: ws.clone(),
            channel: Channel::WhatsApp,
            account_id: wapisnap::domain::AccountId::parse(NUMBER_A).unwrap(),
            contact_id: wapisnap::domain::ContactId::parse(ANA).unwrap(),
        },
        run_id: RunId::clone(&first.run_id),
        step: 2,
    };
    let outcome = app.env.stack.functions.flows.runner().tick(stale).await.unwrap();
    assert!(matches!(outcome, wapisnap::flows::runner::TickOutcome::Nothing(_)), "{outcome:?}");
    assert_eq!(app.run_history(&ws, &conversation(ANA)).await.len(), 4);
}

#[tokio::test]
async fn a_reply_before_the_timeout_makes_the_timeout_a_no_op_and_a_silent_customer_gets_the_timeout_branch() {
    let app = TestApp::spawn().await;
    let ws = app.workspace_with_number().await;
    let mut quick = welcome();
    quick["nodes"][1]["timeout_seconds"] = json!(2);
    app.automate(&ws, quick).await;

    app.customer_says(ANA, "hi").await;
    app.meta_receives(1).await;
    app.customer_taps(ANA, "order", "Track my order").await;
    app.meta_receives(2).await;
    app.customer_says(BEN, "hi").await;
    app.meta_receives(3).await;
    let ben = app.history_shows(&ws, &conversation(BEN), "Ben's run to end", |e| outcome(e) == "ended").await;
    assert_eq!(story(&ben), ["greet:sent", "ask:waiting", "ask:timed_out", "bye:ended"]);
    let ana = app.run_history(&ws, &conversation(ANA)).await;
    assert!(!story(&ana).iter().any(|s| s.contains("timed_out")), "Ana answered in time: {:?}", story(&ana));
}

#[tokio::test]
async fn a_tick_whose_write_fails_comes_back_from_the_queue_and_the_bot_answers_once() {
    let app = TestApp::spawn_idle().await;
    app.env.stack.start_background();
    let ws = app.workspace_with_number().await;
    app.automate(&ws, welcome()).await;
    // DynamoDB fails the first tick's write (its state and history, one transaction) each of
    // the 3 times the SDK tries it: the invocation fails and the tick comes back.
    app.aws_fails_next(AwsFault::internal_error("TransactWriteItems", 3));

    app.customer_says(ANA, "Hi!").await;
    let history = app.history_shows(&ws, &conversation(ANA), "the bot to wait", |e| e.record.node == "ask").await;
    assert!(app.aws().faults_met("TransactWriteItems") >= 1, "the first tick's write failed");
    assert_eq!(story(&history), ["greet:sent", "ask:waiting"], "each step once");
    let received = app.meta_receives(1).await;
    assert_eq!(texts(&received), ["[buttons] Hi Ana! How can we help?"]);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(app.meta_received().len(), 1, "answered once");
}
