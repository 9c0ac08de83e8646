//! The local runner plays AWS's glue faithfully: SQS event source mappings honour
//! `batchItemFailures` and redrive, Scheduler fires on the injected clock and cleans up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse};
use aws_sdk_scheduler::types::{ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, Target};
use aws_sdk_sqs::types::QueueAttributeName;
use wapisnap::clock::Clock;
use wapisnap_local::runner::SqsHandler;
use wapisnap_local::runner::sqs::EventSourceMapping;
use wapisnap_local::template::Resolver;
use wapisnap_tests::{TestApp, drain_bodies};

/// A handler that records every body it sees and fails the ones saying "fail".
fn recording_handler(seen: Arc<Mutex<Vec<String>>>) -> SqsHandler {
    Arc::new(move |event, _deadline| {
        let seen = seen.clone();
        Box::pin(async move {
            let mut response = SqsBatchResponse::default();
            for record in event.records {
                let body = record.body.unwrap_or_default();
                seen.lock().unwrap().push(body.clone());
                if body == "fail" {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = record.message_id.unwrap_or_default();
                    response.batch_item_failures.push(failure);
                }
            }
            Ok(response)
        })
    })
}

#[tokio::test]
async fn the_runner_redelivers_exactly_the_batch_item_failures_then_dead_letters_them() {
    let app = TestApp::spawn_idle().await;
    let sqs = &app.env.stack.aws.sqs;
    let prefix = &app.env.stack.resources.prefix;
    let dlq = sqs.create_queue().queue_name(format!("{prefix}-test-dlq")).send().await.unwrap();
    let dlq_url = dlq.queue_url().unwrap().to_owned();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let redrive = serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2 }).to_string();
    let queue = sqs
        .create_queue()
        .queue_name(format!("{prefix}-test"))
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .unwrap();
    let queue_url = queue.queue_url().unwrap().to_owned();
    for body in ["ok-1", "fail", "ok-2"] {
        sqs.send_message().queue_url(&queue_url).message_body(body).send().await.unwrap();
    }

    let seen = Arc::new(Mutex::new(Vec::new()));
    let mapping = EventSourceMapping {
        function: "TestFunction".into(),
        sqs: sqs.clone(),
        queue_url: queue_url.clone(),
        queue_arn: "arn:aws:sqs:us-east-1:123456789012:test".into(),
        batch_size: 10,
        visibility_timeout: Duration::from_secs(1),
        report_batch_item_failures: true,
        handler: recording_handler(seen.clone()),
        timeout: Duration::from_secs(30),
        timed_out: Default::default(),
    };

    let first = mapping.poll_once(Duration::from_secs(1)).await.unwrap();
    assert_eq!((first.received, first.deleted, first.failed), (3, 2, 1));

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = mapping.poll_once(Duration::from_secs(1)).await.unwrap();
    assert_eq!((second.received, second.failed), (1, 1), "only the failed message comes back");
    assert_eq!(seen.lock().unwrap().iter().filter(|b| *b == "fail").count(), 2);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let third = mapping.poll_once(Duration::from_secs(1)).await.unwrap();
    assert_eq!(third.received, 0, "after maxReceiveCount the message has left the queue");
    assert_eq!(drain_bodies(sqs, &dlq_url).await, ["fail"], "and waits in the dead-letter queue");
    let bodies = seen.lock().unwrap().clone();
    assert_eq!(bodies.iter().filter(|b| b.starts_with("ok")).count(), 2, "successes were delivered once: {bodies:?}");
}

async fn create_at_schedule(
    app: &TestApp,
    name: &str,
    at: chrono::DateTime<chrono::Utc>,
    after: ActionAfterCompletion,
) {
    let stack = &app.env.stack;
    let target_queue = stack.resources.queue("ScheduleDeadLetterQueue").unwrap();
    stack
        .aws
        .scheduler
        .create_schedule()
        .name(name)
        .group_name(stack.resources.schedule_group())
        .schedule_expression(format!("at({})", at.format("%Y-%m-%dT%H:%M:%S")))
        .flexible_time_window(FlexibleTimeWindow::builder().mode(FlexibleTimeWindowMode::Off).build().unwrap())
        .target(
            Target::builder()
                .arn(target_queue.arn)
                .role_arn(stack.resources.attribute("SchedulerRole", "Arn").unwrap())
                .input(format!("{{\"schedule\":\"{name}\"}}"))
                .build()
                .unwrap(),
        )
        .action_after_completion(after)
        .send()
        .await
        .unwrap();
}

async fn schedule_names(app: &TestApp) -> Vec<String> {
    let stack = &app.env.stack;
    let listed =
        stack.aws.scheduler.list_schedules().group_name(stack.resources.schedule_group()).send().await.unwrap();
    listed.schedules().iter().filter_map(|s| s.name().map(str::to_owned)).collect()
}

#[tokio::test]
async fn a_schedule_fires_only_after_the_clock_passes_its_time_and_is_deleted_after() {
    let app = TestApp::spawn_idle().await;
    let stack = &app.env.stack;
    create_at_schedule(
        &app,
        "in-one-hour",
        stack.clock.now() + chrono::Duration::hours(1),
        ActionAfterCompletion::Delete,
    )
    .await;

    assert!(stack.scheduler.tick().await.unwrap().is_empty(), "not due yet");
    stack.clock.advance(chrono::Duration::minutes(59));
    assert!(stack.scheduler.tick().await.unwrap().is_empty(), "still not due a minute early");

    stack.clock.advance(chrono::Duration::minutes(2));
    let fired = stack.scheduler.tick().await.unwrap();
    assert_eq!(fired.len(), 1);
    assert!(fired[0].deleted);
    let queue = stack.resources.queue("ScheduleDeadLetterQueue").unwrap();
    assert_eq!(drain_bodies(&stack.aws.sqs, &queue.url).await, [r#"{"schedule":"in-one-hour"}"#]);
    assert!(schedule_names(&app).await.is_empty(), "deleted after completion");
    assert!(stack.scheduler.tick().await.unwrap().is_empty(), "and never fires again");
}

#[tokio::test]
async fn a_schedule_kept_after_completion_fires_once() {
    let app = TestApp::spawn_idle().await;
    let stack = &app.env.stack;
    create_at_schedule(&app, "kept", stack.clock.now() + chrono::Duration::minutes(5), ActionAfterCompletion::None)
        .await;
    stack.clock.advance(chrono::Duration::minutes(6));
    assert_eq!(stack.scheduler.tick().await.unwrap().len(), 1);
    assert!(stack.scheduler.tick().await.unwrap().is_empty());
    assert_eq!(schedule_names(&app).await, ["kept"]);
}

#[tokio::test]
async fn every_function_gets_a_fully_resolved_environment_from_the_template() {
    let app = TestApp::spawn_idle().await;
    let stack = &app.env.stack;
    for (function, _) in stack.template.of_kind("AWS::Serverless::Function") {
        let env = stack.resources.function_env(&stack.template, function).unwrap();
        assert_eq!(env.optional("TABLE_NAME").as_deref(), Some(stack.resources.table_name().as_str()), "{function}");
    }
    let sender = stack.resources.function_env(&stack.template, "SenderFunction").unwrap();
    assert_eq!(sender.optional("SEND_QUEUE_URL"), stack.resources.queue("SendQueue").map(|q| q.url));
    let table = stack.aws.dynamodb.describe_table().table_name(stack.resources.table_name()).send().await.unwrap();
    let indexes = table.table().unwrap().global_secondary_indexes();
    let mut names: Vec<_> = indexes.iter().filter_map(|i| i.index_name()).collect();
    names.sort();
    assert_eq!(names, ["gsi1", "gsi2"]);
}

#[tokio::test]
async fn an_unknown_api_route_says_so_in_the_one_error_shape() {
    let app = TestApp::spawn_idle().await;
    let response = app.http.get(format!("{}/nothing-here", app.api_url())).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let broadcasts = app.http.get(format!("{}/broadcasts", app.api_url())).send().await.unwrap();
    assert_eq!(broadcasts.status(), 401, "a built route: it wants the workspace's key");
    let health = app.http.get(format!("{}/health", app.api_url())).send().await.unwrap();
    assert_eq!(health.status(), 200);
}
