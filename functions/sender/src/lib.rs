//! The sender function: send jobs from the send queue (see `wapisnap::outbound::sender`):
//! policy gates, token decryption, the Graph API call, the result recorded; failures
//! classified and passed to Smart Retry. A job another sender holds, or one that could not be
//! recorded, is reported as a batch item failure and comes back later.
//!
//! The records of a batch are sent side by side (`SEND_CONCURRENCY`, default 10), and the
//! invocation never outlives its Lambda: a record that would start with less time left than a
//! Graph call and its recording is not started (nor one whose reads, on a slow day, run into
//! that time), but put back on the queue as a fresh message (and acknowledged), so it costs no
//! receive towards the dead-letter queue.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use wapisnap::aws::AwsClients;
use wapisnap::clock::SharedClock;
use wapisnap::config::{ConfigError, Env, MetaConfig, QueueConfig, StoreConfig, VaultConfig};
use wapisnap::domain::SendRequest;
use wapisnap::lambda::deadline::done_with_time_left;
use wapisnap::lambda::sqs::{UnreportableRecord, each_json_message_concurrently};
use wapisnap::meta::graph::GraphClient;
use wapisnap::outbound::sender::{SendError, SendOutcome, Sender};
use wapisnap::queues::Queues;
use wapisnap::store::Store;
use wapisnap::vault::Vault;

/// Time kept back before the invocation's deadline to answer the batch.
pub const ANSWER_MARGIN: std::time::Duration = std::time::Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct Config {
    pub meta: MetaConfig,
    pub store: StoreConfig,
    pub queues: QueueConfig,
    pub vault: VaultConfig,
    /// Records of one batch in flight at once.
    pub concurrency: usize,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            meta: MetaConfig::from_env(env)?,
            store: StoreConfig::from_env(env)?,
            queues: QueueConfig::from_env(env)?,
            vault: VaultConfig::from_env(env)?,
            concurrency: env.parsed_or("SEND_CONCURRENCY", 10)?,
        })
    }
}

pub struct SenderFunction {
    sender: Sender,
    queues: Queues,
    concurrency: usize,
}

impl SenderFunction {
    pub fn new(config: Config, aws: &AwsClients, graph: GraphClient, clock: SharedClock) -> Self {
        Self::with_clients(config, aws.dynamodb.clone(), aws.sqs.clone(), aws.kms.clone(), graph, clock)
    }

    /// With only the AWS clients the sender uses (its Lambda builds, and so links, no other).
    pub fn with_clients(
        config: Config,
        dynamodb: wapisnap::aws::aws_sdk_dynamodb::Client,
        sqs: wapisnap::aws::aws_sdk_sqs::Client,
        kms: wapisnap::aws::aws_sdk_kms::Client,
        graph: GraphClient,
        clock: SharedClock,
    ) -> Self {
        let store = Store::new(dynamodb, &config.store.table_name);
        let vault = Arc::new(Vault::new(kms, &config.vault.kms_key_id));
        let queues = Queues::new(sqs, config.queues.clone());
        Self {
            sender: Sender::new(store, vault, graph, queues.clone(), clock),
            queues,
            concurrency: config.concurrency,
        }
    }

    pub fn from_config(config: Config, aws: &AwsClients, clock: SharedClock) -> Self {
        let graph = GraphClient::new(&config.meta);
        Self::new(config, aws, graph, clock)
    }

    /// One batch, to be done by `deadline` (the invocation's, from the Lambda context).
    pub async fn handle(
        &self,
        event: SqsEvent,
        deadline: Option<std::time::Instant>,
    ) -> Result<SqsBatchResponse, UnreportableRecord> {
        each_json_message_concurrently(event, self.concurrency, |request: SendRequest, record| async move {
            // Boxed: the send future is deep, and the Lambda runtime nests it further.
            let outcome = Box::pin(self.sender.send_before(request, deadline)).await?;
            let body = record.body.as_deref().unwrap_or_default();
            match outcome {
                SendOutcome::NotStarted => {
                    self.put_back(body, std::time::Duration::ZERO, deadline).await?;
                    tracing::info!("not started before the deadline: put back on the queue");
                }
                SendOutcome::Paced { retry_after } => {
                    self.put_back(body, retry_after, deadline).await?;
                    tracing::debug!(?retry_after, "the number's pace is taken ahead: put back with a delay");
                }
                _ => {}
            }
            Ok::<(), SendError>(())
        })
        .await
    }

    /// Puts a request back on the queue to come again after `delay`, if that is done before
    /// the invocation must answer: otherwise (a slow queue on a slow day) it is reported as a
    /// failure and comes back after its visibility timeout, rather than keeping the whole batch
    /// past its end. Should the put-back have landed all the same, the request comes twice,
    /// and the job's conditional claim sends it once.
    async fn put_back(
        &self,
        body: &str,
        delay: std::time::Duration,
        deadline: Option<std::time::Instant>,
    ) -> Result<(), SendError> {
        let requeue = self.queues.requeue_send_body(body, delay);
        Ok(done_with_time_left(deadline, ANSWER_MARGIN, requeue).await.ok_or(SendError::OutOfTime)??)
    }

    pub fn sender(&self) -> &Sender {
        &self.sender
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_sqs_event_carries_send_requests() {
        let event: SqsEvent = serde_json::from_str(include_str!("../../../events/sqs/send-job.json")).unwrap();
        for record in event.records {
            let request: SendRequest = serde_json::from_str(record.body.as_deref().unwrap()).unwrap();
            assert!(matches!(request, SendRequest::New { .. } | SendRequest::Attempt { .. }));
        }
    }
}
