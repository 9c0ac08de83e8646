//! The flows function: one automation step ("tick") per message of the FIFO flow queue (see
//! `wapisnap::flows`), plus the mover for wake-ups arriving on the timer queue.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use wapisnap::aws::SchedulingClients;
use wapisnap::clock::SharedClock;
use wapisnap::config::{ConfigError, Env, FlowTimerConfig, QueueConfig, StoreConfig};
use wapisnap::flows::runner::{FlowError, FlowRunner, TickOutcome};
use wapisnap::flows::timers::FlowTimers;
use wapisnap::lambda::sqs::{UnreportableRecord, each_json_message};
use wapisnap::queues::{FlowTick, Queues};
use wapisnap::store::Store;

#[derive(Debug, Clone)]
pub struct Config {
    pub store: StoreConfig,
    pub queues: QueueConfig,
    pub timers: FlowTimerConfig,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            store: StoreConfig::from_env(env)?,
            queues: QueueConfig::from_env(env)?,
            timers: FlowTimerConfig::from_env(env)?,
        })
    }
}

pub struct Flows {
    runner: FlowRunner,
}

impl Flows {
    pub fn new(config: Config, clients: SchedulingClients, clock: SharedClock) -> Self {
        let SchedulingClients { dynamodb, sqs, scheduler } = clients;
        let store = Store::new(dynamodb, &config.store.table_name);
        let queues = Queues::new(sqs.clone(), config.queues);
        let timers = FlowTimers::new(sqs, scheduler, config.timers);
        Self { runner: FlowRunner::new(store, queues, timers, clock) }
    }

    pub fn runner(&self) -> &FlowRunner {
        &self.runner
    }

    /// Ticks run in order, one at a time (FIFO: a conversation's ticks must not overtake each
    /// other); a wake-up from the timer queue is moved onto its conversation's FIFO group.
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, UnreportableRecord> {
        each_json_message(event, |tick: FlowTick, record| async move {
            if self.runner.timers().is_timer_queue(record.event_source_arn.as_deref()) {
                return self.runner.forward(&tick).await;
            }
            // Boxed: the tick's future is deep, and the Lambda runtime nests it further.
            let outcome = Box::pin(self.runner.tick(tick)).await?;
            wapisnap::metrics::flow_tick(match &outcome {
                TickOutcome::Started { .. } => "started",
                TickOutcome::Stepped { .. } => "stepped",
                TickOutcome::Stopped { .. } => "stopped",
                TickOutcome::Nothing(_) => "nothing",
            });
            tracing::info!(?outcome, "flow tick");
            Ok::<(), FlowError>(())
        })
        .await
    }
}
