//! The sweeper function, on a rate schedule (see `wapisnap::outbound::sweeper`): settles
//! UNCERTAIN sends, marks sends Meta accepted but never reported on as FAILED with no error
//! message, flags broadcasts with a high silent-failure rate, re-hands lost retry hand-overs,
//! and fires again a broadcast whose fan-out stalled (its run died and was not retried).

use wapisnap::aws::SchedulingClients;
use wapisnap::broadcasts::fanout::{Fanout, FanoutSchedules};
use wapisnap::clock::SharedClock;
use wapisnap::config::{ConfigError, Env, QueueConfig, StoreConfig};
use wapisnap::outbound::sweeper::{SweepError, SweepPolicy, SweepReport, Sweeper as SweepService};
use wapisnap::queues::Queues;
use wapisnap::store::Store;

/// A fan-out that has not moved for this long is fired again (a page takes about a second).
pub const BROADCAST_STALLED_AFTER_MINUTES: i64 = 20;

#[derive(Debug, Clone)]
pub struct Config {
    pub store: StoreConfig,
    pub queues: QueueConfig,
    pub policy: SweepPolicy,
    pub broadcasts: BroadcastRestart,
}

/// Where stalled broadcasts are fired again.
#[derive(Debug, Clone)]
pub struct BroadcastRestart {
    pub schedules: FanoutSchedules,
    pub function_arn: String,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            store: StoreConfig::from_env(env)?,
            queues: QueueConfig::from_env(env)?,
            policy: SweepPolicy::from_env(env)?,
            broadcasts: BroadcastRestart {
                schedules: FanoutSchedules {
                    group_name: env.required("SCHEDULE_GROUP", "the Scheduler group of broadcast firings")?,
                    role_arn: env.required("SCHEDULER_ROLE_ARN", "the role Scheduler assumes to fire a broadcast")?,
                    dead_letter_arn: env.optional("SCHEDULE_DLQ_ARN"),
                },
                function_arn: env
                    .required("BROADCAST_FUNCTION_ARN", "the broadcast function, fired again when stalled")?,
            },
        })
    }
}

pub struct Sweeper {
    service: SweepService,
    fanout: Fanout,
    broadcast_function: String,
}

impl Sweeper {
    pub fn new(config: Config, clients: SchedulingClients, clock: SharedClock) -> Self {
        let SchedulingClients { dynamodb, sqs, scheduler } = clients;
        let store = Store::new(dynamodb, &config.store.table_name);
        let queues = Queues::new(sqs, config.queues.clone());
        let fanout = Fanout::new(store.clone(), queues.clone(), scheduler, config.broadcasts.schedules, clock.clone());
        Self {
            service: SweepService::new(store, queues, clock, config.policy),
            fanout,
            broadcast_function: config.broadcasts.function_arn,
        }
    }

    /// A failed sweep fails the invocation; the next scheduled run picks up where it stopped.
    pub async fn handle(&self) -> Result<SweepReport, SweepError> {
        let mut report = self.service.sweep().await?;
        let quiet = chrono::Duration::minutes(BROADCAST_STALLED_AFTER_MINUTES);
        match self.fanout.restart_stalled(quiet, &self.broadcast_function).await {
            Ok(restarted) => report.restarted_broadcasts = restarted.iter().map(ToString::to_string).collect(),
            // The jobs were swept; the next sweep looks at the broadcasts again.
            Err(error) => {
                tracing::warn!(%error, "stalled broadcasts not restarted this time");
                report.errors += 1;
            }
        }
        Ok(report)
    }
}
