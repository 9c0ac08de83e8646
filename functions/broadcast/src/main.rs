use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Error, LambdaEvent, service_fn};
use wapisnap::aws;
use wapisnap::broadcasts::fanout::Fired;
use wapisnap::clock::SystemClock;
use wapisnap::config::Env;
use wapisnap::telemetry::{self, LogFormat};
use wapisnap_broadcast::{Broadcast, Config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = Env::from_process();
    telemetry::init(LogFormat::from_env(&env));
    wapisnap::metrics::init("broadcast");
    let config = Config::from_env(&env)?;
    // Only the clients broadcast uses, from Lambda's environment (no provider chain).
    let sdk = aws::lambda_config();
    let broadcast = Broadcast::new(config, aws::SchedulingClients::from_sdk_config(&sdk), Arc::new(SystemClock));
    let broadcast = &broadcast;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Fired>| async move {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let left = Duration::from_millis(event.context.deadline).saturating_sub(since_epoch);
        let deadline = Instant::now() + left;
        let handled = broadcast
            .handle(event.payload, &event.context.invoked_function_arn, Some(deadline))
            .await
            .map(|_| ())
            .map_err(Error::from);
        wapisnap::metrics::flush();
        handled
    }))
    .await
}
