use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use wapisnap::aws;
use wapisnap::clock::SystemClock;
use wapisnap::config::Env;
use wapisnap::telemetry::{self, LogFormat};
use wapisnap_flows::{Config, Flows};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = Env::from_process();
    telemetry::init(LogFormat::from_env(&env));
    wapisnap::metrics::init("flows");
    let config = Config::from_env(&env)?;
    // Only the clients flows uses, from Lambda's environment (no provider chain).
    let sdk = aws::lambda_config();
    let flows = Flows::new(config, aws::SchedulingClients::from_sdk_config(&sdk), Arc::new(SystemClock));
    let flows = &flows;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        let handled = flows.handle(event.payload).await.map_err(Error::from);
        wapisnap::metrics::flush();
        handled
    }))
    .await
}
