use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use wapisnap::aws;
use wapisnap::clock::SystemClock;
use wapisnap::config::Env;
use wapisnap::telemetry::{self, LogFormat};
use wapisnap_sweeper::{Config, Sweeper};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = Env::from_process();
    telemetry::init(LogFormat::from_env(&env));
    wapisnap::metrics::init("sweeper");
    let config = Config::from_env(&env)?;
    // Only the clients sweeper uses, from Lambda's environment (no provider chain).
    let sdk = aws::lambda_config();
    let sweeper = Sweeper::new(config, aws::SchedulingClients::from_sdk_config(&sdk), Arc::new(SystemClock));
    let sweeper = &sweeper;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        let handled = sweeper.handle().await.map_err(Error::from);
        wapisnap::metrics::flush();
        handled
    }))
    .await
}
