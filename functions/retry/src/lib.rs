//! The retry function (Smart Retry, see `wapisnap::retry`): takes failed sends off the retry
//! queue, picks the ladder by Meta's error and schedules the resend with EventBridge Scheduler,
//! or settles the job as FAILED (tagging `do-not-send` after two 131026 in a row).

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use wapisnap::aws::SchedulingClients;
use wapisnap::clock::SharedClock;
use wapisnap::config::{ConfigError, Env, QueueConfig, SchedulerConfig, StoreConfig};
use wapisnap::lambda::sqs::{UnreportableRecord, each_json_message};
use wapisnap::queues::{Queues, SendFailure};
use wapisnap::retry::smart::{RetryError, SmartRetry};
use wapisnap::store::Store;

#[derive(Debug, Clone)]
pub struct Config {
    pub store: StoreConfig,
    pub queues: QueueConfig,
    pub scheduler: SchedulerConfig,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            store: StoreConfig::from_env(env)?,
            queues: QueueConfig::from_env(env)?,
            scheduler: SchedulerConfig::from_env(env)?,
        })
    }
}

pub struct Retry {
    smart_retry: SmartRetry,
}

impl Retry {
    pub fn new(config: Config, clients: SchedulingClients, clock: SharedClock) -> Self {
        let SchedulingClients { dynamodb, sqs, scheduler } = clients;
        let store = Store::new(dynamodb, &config.store.table_name);
        let queues = Queues::new(sqs, config.queues.clone());
        Self { smart_retry: SmartRetry::new(store, scheduler, config.scheduler, queues, clock) }
    }

    pub fn smart_retry(&self) -> &SmartRetry {
        &self.smart_retry
    }

    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, UnreportableRecord> {
        each_json_message(event, |failure: SendFailure, _| async move {
            // Boxed: the Smart Retry future is deep, and the Lambda runtime nests it further.
            let outcome = Box::pin(self.smart_retry.handle(failure)).await?;
            tracing::info!(?outcome, "failed send handled");
            Ok::<(), RetryError>(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_sqs_event_carries_a_send_failure() {
        let event: SqsEvent = serde_json::from_str(include_str!("../../../events/sqs/retry-failure.json")).unwrap();
        let failure: SendFailure = serde_json::from_str(event.records[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(failure.error_code, Some(131049));
    }
}
