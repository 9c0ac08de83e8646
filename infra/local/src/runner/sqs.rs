//! A local SQS event source mapping: long-polls a queue, invokes the function with a real
//! `SqsEvent`, deletes what succeeded and leaves the `batchItemFailures` on the queue, where
//! they reappear after the visibility timeout and move to the DLQ after `maxReceiveCount`
//! (the emulator applies the queue's redrive policy, as SQS does).
//!
//! Lambda runs several pollers per mapping and scales them with the backlog; locally a mapping
//! runs a fixed number of them side by side ([`EventSourceMapping::spawn_pollers`]), each
//! invoking the function with its own batch. A received batch stays invisible for the whole
//! invocation (the template's queues keep messages invisible longer than the function's
//! timeout), so no other poller is handed a message still being handled; FIFO queues never
//! hand out a message group that is in flight. Only the failures are then made visible again
//! after the short local visibility timeout.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, MessageSystemAttributeName,
};
use tokio::sync::watch;

use super::SqsHandler;

#[derive(Clone)]
pub struct EventSourceMapping {
    pub function: String,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: i32,
    /// How long an unfinished or failed message stays invisible. SQS uses the queue's
    /// setting (minutes, in the template); locally a short one makes redelivery watchable.
    pub visibility_timeout: Duration,
    pub report_batch_item_failures: bool,
    pub handler: SqsHandler,
    /// The function's `Timeout`: an invocation still running then is stopped where it is, and
    /// its whole batch returns to the queue, as Lambda does.
    pub timeout: Duration,
    /// Invocations stopped by their timeout.
    pub timed_out: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// What one poll did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollOutcome {
    pub received: usize,
    pub deleted: usize,
    pub failed: usize,
}

impl EventSourceMapping {
    /// One receive–invoke–delete round. `wait` is the long-poll time.
    pub async fn poll_once(&self, wait: Duration) -> Result<PollOutcome, String> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size.clamp(1, 10))
            .visibility_timeout(self.in_flight_visibility())
            .wait_time_seconds(wait.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| format!("receive from {}: {e:?}", self.queue_url))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(PollOutcome::default());
        }
        let mut event = SqsEvent::default();
        event.records = messages.iter().map(|m| self.record(m)).collect();
        let receipts: HashMap<String, String> =
            messages.iter().filter_map(|m| Some((m.message_id.clone()?, m.receipt_handle.clone()?))).collect();

        let deadline = std::time::Instant::now() + self.timeout;
        let invoked = match tokio::time::timeout(self.timeout, (self.handler)(event, deadline)).await {
            Ok(result) => result,
            Err(_) => {
                self.timed_out.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Err(format!("Task timed out after {:?}", self.timeout))
            }
        };
        let failed: HashSet<String> = match invoked {
            Ok(response) if self.report_batch_item_failures => {
                let ids: HashSet<String> =
                    response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
                if ids.iter().any(|id| !receipts.contains_key(id)) {
                    // Lambda treats an unknown identifier as a failure of the whole batch.
                    tracing::warn!(function = %self.function, "batch response names an unknown message id");
                    receipts.keys().cloned().collect()
                } else {
                    ids
                }
            }
            Ok(_) => HashSet::new(),
            Err(error) => {
                tracing::warn!(function = %self.function, %error, "invocation failed; the whole batch returns");
                receipts.keys().cloned().collect()
            }
        };
        let to_delete: Vec<_> = receipts.iter().filter(|(id, _)| !failed.contains(*id)).collect();
        if !to_delete.is_empty() {
            let entries = to_delete
                .iter()
                .enumerate()
                .map(|(i, (_, receipt))| {
                    DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(*receipt).build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            self.sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| format!("delete from {}: {e:?}", self.queue_url))?;
        }
        self.return_after_visibility_timeout(&receipts, &failed).await;
        Ok(PollOutcome { received: receipts.len(), deleted: to_delete.len(), failed: failed.len() })
    }

    /// How long a received batch stays invisible: longer than the invocation may run, so a
    /// message is never handed to a second poller while the first still handles it.
    fn in_flight_visibility(&self) -> i32 {
        let seconds = (self.timeout.as_secs() + 5).max(self.visibility_timeout.as_secs().max(1));
        i32::try_from(seconds).unwrap_or(43_200).min(43_200)
    }

    /// The failed messages reappear after the (short, local) visibility timeout, counted from
    /// the end of the invocation.
    async fn return_after_visibility_timeout(&self, receipts: &HashMap<String, String>, failed: &HashSet<String>) {
        let visibility = self.visibility_timeout.as_secs().max(1) as i32;
        let entries: Vec<_> = receipts
            .iter()
            .filter(|(id, _)| failed.contains(*id))
            .enumerate()
            .filter_map(|(i, (_, receipt))| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(visibility)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        let changed = self
            .sqs
            .change_message_visibility_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        if let Err(error) = changed {
            // They still come back, after the in-flight visibility instead.
            tracing::warn!(function = %self.function, error = %aws_sdk_sqs::error::DisplayErrorContext(&error),
                "failed messages not made visible again");
        }
    }

    fn record(&self, message: &aws_sdk_sqs::types::Message) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = message.message_id.clone();
        record.receipt_handle = message.receipt_handle.clone();
        record.body = message.body.clone();
        record.md5_of_body = message.md5_of_body.clone();
        record.attributes =
            message.attributes.iter().flatten().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect();
        record.message_attributes = message
            .message_attributes
            .iter()
            .flatten()
            .map(|(k, v)| {
                let mut attribute = SqsMessageAttribute::default();
                attribute.string_value = v.string_value.clone();
                attribute.data_type = Some(v.data_type.clone());
                (k.clone(), attribute)
            })
            .collect();
        record.event_source = Some("aws:sqs".into());
        record.event_source_arn = Some(self.queue_arn.clone());
        record.aws_region = Some(wapisnap::aws::LOCAL_REGION.into());
        record
    }

    /// `pollers` pollers side by side (at least one), each as [`Self::spawn`].
    pub fn spawn_pollers(self, pollers: usize, shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        (0..pollers.max(1)).map(|_| self.clone().spawn(shutdown.clone())).collect()
    }

    /// One poller: polls until `shutdown` turns true.
    pub fn spawn(self, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    outcome = self.poll_once(Duration::from_secs(1)) => {
                        if let Err(error) = outcome {
                            tracing::warn!(function = %self.function, %error, "poll failed; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            }
        })
    }
}
