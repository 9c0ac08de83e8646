//! The sender function: one send job at a time from the send queue (see
//! `wapisnap::outbound::sender`): policy gates, token decryption, the Graph API call, the result
//! recorded; failures classified and passed to Smart Retry. A job another sender holds, or one
//! that could not be recorded, is reported as a batch item failure and comes back later.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use wapisnap::aws::AwsClients;
use wapisnap::clock::SharedClock;
use wapisnap::config::{ConfigError, Env, MetaConfig, QueueConfig, StoreConfig, VaultConfig};
use wapisnap::lambda::sqs::{UnreportableRecord, each_json_message};
use wapisnap::meta::graph::GraphClient;
use wapisnap::outbound::job::SendRequest;
use wapisnap::outbound::sender::{SendError, Sender};
use wapisnap::queues::Queues;
use wapisnap::store::Store;
use wapisnap::vault::Vault;

#[derive(Debug, Clone)]
pub struct Config {
    pub meta: MetaConfig,
    pub store: StoreConfig,
    pub queues: QueueConfig,
    pub vault: VaultConfig,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            meta: MetaConfig::from_env(env)?,
            store: StoreConfig::from_env(env)?,
            queues: QueueConfig::from_env(env)?,
            vault: VaultConfig::from_env(env)?,
        })
    }
}

pub struct SenderFunction {
    sender: Sender,
}

impl SenderFunction {
    pub fn new(config: Config, aws: &AwsClients, graph: GraphClient, clock: SharedClock) -> Self {
        let store = Store::new(aws.dynamodb.clone(), &config.store.table_name);
        let vault = Arc::new(Vault::new(aws.kms.clone(), &config.vault.kms_key_id));
        let queues = Queues::new(aws.sqs.clone(), config.queues.clone());
        Self { sender: Sender::new(store, vault, graph, queues, clock) }
    }

    pub fn from_config(config: Config, aws: &AwsClients, clock: SharedClock) -> Self {
        let graph = GraphClient::new(&config.meta);
        Self::new(config, aws, graph, clock)
    }

    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, UnreportableRecord> {
        each_json_message(event, |request: SendRequest, _| async move {
            // Boxed: the send future is deep, and the Lambda runtime nests it further.
            let outcome = Box::pin(self.sender.send(request)).await?;
            tracing::debug!(?outcome, "send request done");
            Ok::<(), SendError>(())
        })
        .await
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
