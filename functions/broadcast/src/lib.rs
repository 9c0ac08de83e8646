//! The broadcast function, fired by EventBridge Scheduler at a broadcast's time (and again to
//! continue or resume it): writes the audience as send jobs, page by page, resuming where the
//! last run stopped (see `wapisnap::broadcasts::fanout`). An error fails the invocation, so
//! Scheduler's retries (and its dead-letter queue) keep the firing: nothing is silently skipped.

use std::time::Instant;

use wapisnap::aws::SchedulingClients;
use wapisnap::broadcasts::fanout::{Fanout, FanoutError, FanoutOutcome, FanoutSchedules, Fired};
use wapisnap::clock::SharedClock;
use wapisnap::config::{ConfigError, Env, QueueConfig, StoreConfig};
use wapisnap::queues::Queues;
use wapisnap::store::Store;

#[derive(Debug, Clone)]
pub struct Config {
    pub store: StoreConfig,
    pub queues: QueueConfig,
    pub schedules: FanoutSchedules,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            store: StoreConfig::from_env(env)?,
            queues: QueueConfig::from_env(env)?,
            schedules: FanoutSchedules {
                group_name: env.required("SCHEDULE_GROUP", "the Scheduler group of broadcast firings")?,
                role_arn: env.required("SCHEDULER_ROLE_ARN", "the role Scheduler assumes to invoke this function")?,
                dead_letter_arn: env.optional("SCHEDULE_DLQ_ARN"),
            },
        })
    }
}

pub struct Broadcast {
    fanout: Fanout,
}

impl Broadcast {
    pub fn new(config: Config, clients: SchedulingClients, clock: SharedClock) -> Self {
        let SchedulingClients { dynamodb, sqs, scheduler } = clients;
        let store = Store::new(dynamodb, &config.store.table_name);
        let queues = Queues::new(sqs, config.queues);
        Self { fanout: Fanout::new(store, queues, scheduler, config.schedules, clock) }
    }

    pub fn fanout(&self) -> &Fanout {
        &self.fanout
    }

    /// `function_arn` is this function's own (a continuation fires it again).
    pub async fn handle(
        &self,
        fired: Fired,
        function_arn: &str,
        deadline: Option<Instant>,
    ) -> Result<FanoutOutcome, FanoutError> {
        use tracing::Instrument;
        let span = tracing::info_span!("broadcast", workspace = %fired.workspace_id, broadcast = %fired.broadcast_id);
        let chain = wapisnap::correlation::for_broadcast(&fired.workspace_id, &fired.broadcast_id);
        let run = Box::pin(self.fanout.run(&fired, deadline, function_arn));
        let outcome = wapisnap::correlation::scope(Some(chain), run).instrument(span.clone()).await?;
        span.in_scope(|| tracing::info!(?outcome, "broadcast run done"));
        Ok(outcome)
    }
}
