//! `make demo`: the local stack end to end, as a timeline a person can read. Each feature
//! adds its chapter here.

use std::time::{Duration, Instant};

use aws_sdk_scheduler::types::{ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, Target};
use serde_json::{Value, json};

use wapisnap::clock::Clock;
use wapisnap::ids::WorkspaceId;
use wapisnap::inbound::event::Channel;
use wapisnap::inbound::status::DeliveryState;
use wapisnap::store::Store;

use crate::environment::{EnvironmentOptions, LocalEnvironment};
use crate::sandbox::{Fault, FaultEffect, InboundText, StatusUpdate};
use crate::template::Resolver;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Prints what happened, with the time since the demo started.
pub struct Timeline {
    started: Instant,
}

impl Timeline {
    fn new() -> Self {
        Self { started: Instant::now() }
    }

    fn chapter(&self, title: &str) {
        println!("\n== {title}");
    }

    fn step(&self, text: impl AsRef<str>) {
        println!("[{:>7.3}s] {}", self.started.elapsed().as_secs_f64(), text.as_ref());
    }
}

pub async fn run(options: EnvironmentOptions) -> Result<(), Failure> {
    let timeline = Timeline::new();
    timeline.chapter("Local stack");
    let environment = LocalEnvironment::start(options).await?;
    environment.stack.start_background();
    let stack = &environment.stack;
    timeline.step(format!(
        "AWS emulator ready, resources provisioned from infra/template.yaml (prefix {})",
        stack.resources.prefix
    ));
    timeline.step(format!(
        "webhook {}  ·  API {}/  ·  Meta sandbox {}",
        stack.webhook_url(),
        stack.api_url(),
        environment.sandbox.url
    ));
    let http = reqwest::Client::new();

    timeline.chapter("Meta verifies the webhook (GET handshake)");
    let handshake = http
        .get(stack.webhook_url())
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", "local-verify-token"),
            ("hub.challenge", "1158201444"),
        ])
        .send()
        .await?;
    timeline.step(format!("right verify token → {} with body {:?}", handshake.status(), handshake.text().await?));
    let wrong = http
        .get(stack.webhook_url())
        .query(&[("hub.mode", "subscribe"), ("hub.verify_token", "guess"), ("hub.challenge", "1")])
        .send()
        .await?;
    timeline.step(format!("wrong verify token → {}", wrong.status()));

    webhook_chapters(&timeline, &environment).await?;

    timeline.chapter("The workspace API answers");
    let health: Value = http.get(format!("{}/health", stack.api_url())).send().await?.json().await?;
    timeline.step(format!("GET /v1/health → {health}"));

    timeline.chapter("The Meta sandbox speaks the Graph API and fails like Meta");
    let messages_url = format!("{}/v23.0/106540352242922/messages", environment.sandbox.url);
    let send =
        json!({ "messaging_product": "whatsapp", "to": "16505551234", "type": "text", "text": { "body": "hello" } });
    let accepted: Value = http.post(&messages_url).bearer_auth("demo-token").json(&send).send().await?.json().await?;
    timeline.step(format!("send accepted → wamid {}", accepted["messages"][0]["id"]));
    environment.sandbox.inject(Fault {
        path_contains: Some("/messages".into()),
        recipient: None,
        times: 1,
        effect: FaultEffect::MetaError { code: 131049, subcode: None, http_status: None, message: None },
    });
    let refused = http.post(&messages_url).bearer_auth("demo-token").json(&send).send().await?;
    let status = refused.status();
    let body: Value = refused.json().await?;
    timeline.step(format!("injected 131049 → {status} {}", body["error"]["message"]));
    timeline
        .step(format!("sandbox recorded {} requests to /messages", environment.sandbox.requests_to("/messages").len()));

    timeline.chapter("SQS: a send job the sender cannot handle yet is kept, not lost");
    let send_queue = stack.resources.queue("SendQueue").ok_or("no send queue")?;
    let dead_letters = stack.resources.queue("SendDeadLetterQueue").ok_or("no send DLQ")?;
    stack.aws.sqs.send_message().queue_url(&send_queue.url).message_body(r#"{"demo":"job-1"}"#).send().await?;
    timeline.step("job put on the send queue; the sender reports it in batchItemFailures on every delivery");
    let parked = wait_for_message(&stack.aws.sqs, &dead_letters.url, Duration::from_secs(30)).await?;
    timeline
        .step(format!("after maxReceiveCount deliveries it is parked in the send DLQ: {}", parked.unwrap_or_default()));

    timeline.chapter("Scheduler: a one-time schedule fires when the clock passes its time");
    let fire_at = stack.clock.now() + chrono::Duration::days(7);
    let target_queue = stack.resources.queue("ScheduleDeadLetterQueue").ok_or("no schedule DLQ")?;
    stack
        .aws
        .scheduler
        .create_schedule()
        .name("demo-in-7-days")
        .group_name(stack.resources.schedule_group())
        .schedule_expression(format!("at({})", fire_at.format("%Y-%m-%dT%H:%M:%S")))
        .flexible_time_window(FlexibleTimeWindow::builder().mode(FlexibleTimeWindowMode::Off).build()?)
        .target(
            Target::builder()
                .arn(&target_queue.arn)
                .role_arn(stack.resources.attribute("SchedulerRole", "Arn").unwrap_or_default())
                .input(r#"{"demo":"fired"}"#)
                .build()?,
        )
        .action_after_completion(ActionAfterCompletion::Delete)
        .send()
        .await?;
    timeline.step(format!("schedule created for {fire_at} (7 days from now)"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    timeline.step(format!("not fired yet: {} schedules in the group", count_schedules(stack).await?));
    stack.clock.advance(chrono::Duration::days(7));
    timeline.step("clock advanced 7 days");
    let fired = wait_for_message(&stack.aws.sqs, &target_queue.url, Duration::from_secs(10)).await?;
    timeline.step(format!("fired into its queue: {}", fired.unwrap_or_default()));
    timeline.step(format!("deleted after completion: {} schedules left", count_schedules(stack).await?));

    timeline.chapter("Where to look");
    if let Some(moto) = &environment.moto {
        timeline
            .step(format!("the emulator's log: .local/moto-{}.log", moto.endpoint.rsplit(':').next().unwrap_or("")));
    }
    timeline.step("`make dev` keeps the stack running; README.md shows how to try each feature by hand");
    Ok(())
}

/// Issue 3: Meta's deliveries stored exactly once; statuses of a sent message applied in order.
async fn webhook_chapters(timeline: &Timeline, environment: &LocalEnvironment) -> Result<(), Failure> {
    let stack = &environment.stack;
    let store = Store::new(stack.aws.dynamodb.clone(), stack.resources.table_name());
    let workspace = WorkspaceId::parse("acme")?;
    store.claim_route(&workspace, Channel::WhatsApp, DEMO_NUMBER, stack.clock.now()).await?;
    timeline.chapter("A customer writes; Meta delivers the webhook twice");
    timeline.step(format!("workspace acme owns WhatsApp number {DEMO_NUMBER}"));
    let inbound = InboundText {
        phone_number_id: DEMO_NUMBER.into(),
        from: "16505551234".into(),
        name: Some("Kerry Fisher".into()),
        text: "Hi! Is my order on its way?".into(),
        wamid: Some("wamid.DEMO-INBOUND-1".into()),
        timestamp: None,
    };
    for attempt in ["delivery", "redelivery (Meta retries at least once)"] {
        let (wamid, answered) = environment.sandbox.state.post_inbound_text(&inbound).await?;
        timeline.step(format!("sandbox signs and posts {wamid} — {attempt} → webhook answered {answered}"));
    }
    let conversation_id = format!("wa:{DEMO_NUMBER}:16505551234");
    let stored = store.conversation_messages(&workspace, &conversation_id).await?;
    timeline.step(format!("stored messages in the conversation: {} (exactly once)", stored.len()));
    if let Some(conversation) = store.conversation(&workspace, &conversation_id).await? {
        timeline.step(format!(
            "24-hour window open from Meta's timestamp {} until {}",
            conversation.last_inbound_at, conversation.window_closes_at
        ));
    }
    let contact = store.contact(&workspace, Channel::WhatsApp, "16505551234").await?;
    timeline.step(format!("contact: {:?}", contact.and_then(|c| c.profile_name)));

    timeline.chapter("A message we sent is reported sent → delivered → read");
    let send = json!({ "messaging_product": "whatsapp", "to": "16505551234", "type": "text",
                       "text": { "body": "Yes — it arrives tomorrow." }, "biz_opaque_callback_data": "demo-job-1" });
    let accepted: Value = reqwest::Client::new()
        .post(format!("{}/v23.0/{DEMO_NUMBER}/messages", environment.sandbox.url))
        .bearer_auth("demo-token")
        .json(&send)
        .send()
        .await?
        .json()
        .await?;
    let wamid = accepted["messages"][0]["id"].as_str().unwrap_or_default().to_owned();
    timeline.step(format!("Meta (sandbox) accepted the send: {wamid}; its status webhooks follow"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    while Instant::now() < deadline {
        let status = store.outbound_status(&workspace, &wamid).await?;
        let state = status.as_ref().map(|s| s.status);
        if state != last {
            if let Some(s) = &status {
                timeline.step(format!("status now {:?} (job {})", s.status, s.job_id.as_deref().unwrap_or("?")));
            }
            last = state;
        }
        if state == Some(DeliveryState::Read) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Some(s) = store.outbound_status(&workspace, &wamid).await? {
        let seen = |at: Option<chrono::DateTime<chrono::Utc>>| {
            at.map_or("—".to_owned(), |t| t.format("%H:%M:%S").to_string())
        };
        timeline.step(format!(
            "every state kept: sent {} · delivered {} · read {}",
            seen(s.sent_at),
            seen(s.delivered_at),
            seen(s.read_at)
        ));
    }
    timeline.step("a late duplicate 'delivered' arrives after 'read'…");
    let late = StatusUpdate {
        wamid: wamid.clone(),
        status: "delivered".into(),
        recipient_id: "16505551234".into(),
        biz_opaque_callback_data: Some("demo-job-1".into()),
        error_code: None,
        timestamp: None,
    };
    environment.sandbox.state.post_status(DEMO_NUMBER, &late).await?;
    let status = store.outbound_status(&workspace, &wamid).await?;
    timeline.step(format!("…and the status stays {:?}", status.map(|s| s.status)));
    Ok(())
}

const DEMO_NUMBER: &str = "106540352242922";

async fn count_schedules(stack: &crate::stack::LocalStack) -> Result<usize, Failure> {
    let listed = stack.aws.scheduler.list_schedules().group_name(stack.resources.schedule_group()).send().await?;
    Ok(listed.schedules().len())
}

async fn wait_for_message(sqs: &aws_sdk_sqs::Client, url: &str, within: Duration) -> Result<Option<String>, Failure> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let received = sqs.receive_message().queue_url(url).wait_time_seconds(1).send().await?;
        if let Some(message) = received.messages().first() {
            return Ok(message.body.clone());
        }
    }
    Ok(None)
}
