//! One adapter lifts a per-message handler to an SQS batch handler that reports exactly the
//! failed messages (`ReportBatchItemFailures`), so one bad message never makes SQS redeliver
//! the whole batch, and a poison message reaches the dead-letter queue on its own.

use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::{FutureExt, StreamExt};
use serde::de::DeserializeOwned;

use crate::correlation::Traced;

/// Why one message of a batch was not processed; it comes back after the visibility timeout.
#[derive(Debug, thiserror::Error)]
pub enum MessageFailure<E: Display> {
    #[error("message body is not a valid {expected}: {reason}")]
    Undecodable { expected: &'static str, reason: String },
    #[error("{0}")]
    Handler(E),
    #[error("handler panicked: {0}")]
    Panicked(String),
}

/// The batch could not be judged message by message (a record without an id cannot be
/// reported), so the whole invocation fails and SQS redelivers everything: nothing is lost.
#[derive(Debug, thiserror::Error)]
#[error("SQS record without a messageId: the whole batch is failed so that nothing is lost")]
pub struct UnreportableRecord;

/// Runs `handler` on each record, in order (FIFO queues rely on it), catching panics per
/// message, and returns the ids of the records that failed.
pub async fn each_message<F, Fut, E>(event: SqsEvent, handler: F) -> Result<SqsBatchResponse, UnreportableRecord>
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), MessageFailure<E>>>,
    E: Display,
{
    each_message_concurrently(event, 1, handler).await
}

/// Like [`each_message`], with up to `concurrency` records in flight at once, for queues
/// whose order does not matter: a batch of sends waits for Meta once, not once per record.
pub async fn each_message_concurrently<F, Fut, E>(
    event: SqsEvent,
    concurrency: usize,
    handler: F,
) -> Result<SqsBatchResponse, UnreportableRecord>
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), MessageFailure<E>>>,
    E: Display,
{
    if event.records.iter().any(|record| record.message_id.is_none()) {
        return Err(UnreportableRecord);
    }
    let handler = &handler;
    let outcomes: Vec<(String, Result<(), MessageFailure<E>>)> = futures_util::stream::iter(event.records)
        .map(|record| async move {
            let id = record.message_id.clone().unwrap_or_default();
            let outcome = match AssertUnwindSafe(handler(record)).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(panic) => Err(MessageFailure::Panicked(panic_message(panic.as_ref()))),
            };
            (id, outcome)
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    for (id, outcome) in outcomes {
        if let Err(failure) = outcome {
            tracing::warn!(message_id = %id, error = %failure, "message failed; SQS will redeliver it");
            let mut item = BatchItemFailure::default();
            item.item_identifier = id;
            response.batch_item_failures.push(item);
        }
    }
    Ok(response)
}

/// Like [`each_message`] for JSON bodies (with their correlation id beside the fields, see
/// [`crate::correlation`]): a body that does not decode as `T` is a failure of that message alone (it goes to the DLQ after `maxReceiveCount`), never of the batch.
pub async fn each_json_message<T, F, Fut, E>(
    event: SqsEvent,
    handler: F,
) -> Result<SqsBatchResponse, UnreportableRecord>
where
    T: DeserializeOwned,
    F: Fn(T, SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    each_json_message_concurrently(event, 1, handler).await
}

/// [`each_json_message`] with up to `concurrency` records in flight (see
/// [`each_message_concurrently`]).
pub async fn each_json_message_concurrently<T, F, Fut, E>(
    event: SqsEvent,
    concurrency: usize,
    handler: F,
) -> Result<SqsBatchResponse, UnreportableRecord>
where
    T: DeserializeOwned,
    F: Fn(T, SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    each_message_concurrently(event, concurrency, |record| {
        let decoded = serde_json::from_str::<Traced<T>>(record.body.as_deref().unwrap_or(""));
        let handler = &handler;
        async move {
            let Traced { correlation_id, message } = decoded.map_err(|e| MessageFailure::Undecodable {
                expected: std::any::type_name::<T>().rsplit("::").next().unwrap_or("message"),
                reason: e.to_string(),
            })?;
            // The message's chain: its log lines say so, the messages it queues carry it on.
            crate::correlation::scope(correlation_id, handler(message, record)).await.map_err(MessageFailure::Handler)
        }
    })
    .await
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, body: &str) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.into());
        message.body = Some(body.into());
        message
    }

    fn event(records: Vec<SqsMessage>) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = records;
        event
    }

    fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
        response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect()
    }

    #[tokio::test]
    async fn only_the_failed_messages_are_reported() {
        let batch = event(vec![record("a", "ok"), record("b", "fail"), record("c", "ok")]);
        let response = each_message(batch, |m| async move {
            match m.body.as_deref() {
                Some("ok") => Ok(()),
                _ => Err(MessageFailure::Handler("refused")),
            }
        })
        .await
        .unwrap();
        assert_eq!(failed_ids(&response), ["b"]);
    }

    #[tokio::test]
    async fn a_panic_fails_that_message_not_the_batch() {
        let batch = event(vec![record("a", "boom"), record("b", "ok")]);
        let response = each_message(batch, |m| async move {
            if m.body.as_deref() == Some("boom") {
                panic!("poison message");
            }
            Ok::<(), MessageFailure<&str>>(())
        })
        .await
        .unwrap();
        assert_eq!(failed_ids(&response), ["a"]);
    }

    #[tokio::test]
    async fn an_undecodable_body_fails_only_that_message() {
        #[derive(serde::Deserialize)]
        struct Job {
            #[allow(dead_code)]
            id: u32,
        }
        let batch = event(vec![record("a", "{\"id\":1}"), record("b", "not json")]);
        let response = each_json_message(batch, |_job: Job, _| async { Ok::<(), &str>(()) }).await.unwrap();
        assert_eq!(failed_ids(&response), ["b"]);
    }

    #[tokio::test]
    async fn records_run_side_by_side_up_to_the_limit_and_failures_are_still_exact() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (running, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let batch = event((0..6).map(|i| record(&i.to_string(), if i == 4 { "fail" } else { "ok" })).collect());
        let response = each_message_concurrently(batch, 3, |m| {
            let (running, most) = (&running, &most);
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                match m.body.as_deref() {
                    Some("ok") => Ok(()),
                    _ => Err(MessageFailure::Handler("refused")),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(failed_ids(&response), ["4"]);
        assert_eq!(most.load(Ordering::SeqCst), 3, "three at a time, never more");
    }

    #[tokio::test]
    async fn a_record_without_an_id_fails_the_whole_batch() {
        let mut anonymous = record("x", "ok");
        anonymous.message_id = None;
        let result = each_message(event(vec![anonymous]), |_| async { Ok::<(), MessageFailure<&str>>(()) }).await;
        assert!(result.is_err());
    }
}
