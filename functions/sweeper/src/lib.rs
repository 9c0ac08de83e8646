//! The sweeper function, on a rate schedule (see `wapisnap::outbound::sweeper`): settles
//! UNCERTAIN sends, marks sends Meta accepted but never reported on as FAILED with no error
//! message, flags broadcasts with a high silent-failure rate, re-hands lost retry hand-overs.

use wapisnap::aws::AwsClients;
use wapisnap::clock::SharedClock;
use wapisnap::config::{ConfigError, Env, QueueConfig, StoreConfig};
use wapisnap::outbound::sweeper::{SweepError, SweepPolicy, SweepReport, Sweeper as SweepService};
use wapisnap::queues::Queues;
use wapisnap::store::Store;

#[derive(Debug, Clone)]
pub struct Config {
    pub store: StoreConfig,
    pub queues: QueueConfig,
    pub policy: SweepPolicy,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            store: StoreConfig::from_env(env)?,
            queues: QueueConfig::from_env(env)?,
            policy: SweepPolicy::from_env(env)?,
        })
    }
}

pub struct Sweeper {
    service: SweepService,
}

impl Sweeper {
    pub fn new(config: Config, aws: &AwsClients, clock: SharedClock) -> Self {
        let store = Store::new(aws.dynamodb.clone(), &config.store.table_name);
        let queues = Queues::new(aws.sqs.clone(), config.queues.clone());
        Self { service: SweepService::new(store, queues, clock, config.policy) }
    }

    /// A failed sweep fails the invocation; the next scheduled run picks up where it stopped.
    pub async fn handle(&self) -> Result<SweepReport, SweepError> {
        self.service.sweep().await
    }
}
