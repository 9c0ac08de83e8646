use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use wapisnap::aws::AwsClients;
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
    let sweeper = Sweeper::new(config, &AwsClients::from_env().await, Arc::new(SystemClock));
    let sweeper = &sweeper;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        let handled = sweeper.handle().await.map_err(Error::from);
        wapisnap::metrics::flush();
        handled
    }))
    .await
}
