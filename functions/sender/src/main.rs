use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use wapisnap::aws;
use wapisnap::clock::SystemClock;
use wapisnap::config::Env;
use wapisnap::telemetry::{self, LogFormat};
use wapisnap_sender::{Config, SenderFunction};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = Env::from_process();
    telemetry::init(LogFormat::from_env(&env));
    wapisnap::metrics::init("sender");
    let config = Config::from_env(&env)?;
    // Only the clients the sender uses, from Lambda's environment (no provider chain).
    let sdk = aws::lambda_config();
    let graph = wapisnap::meta::graph::GraphClient::new(&config.meta);
    let function = SenderFunction::with_clients(
        config,
        aws::dynamodb(&sdk),
        aws::sqs(&sdk),
        aws::kms(&sdk),
        graph,
        Arc::new(SystemClock),
    );
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        let left = event.context.deadline().duration_since(std::time::SystemTime::now()).unwrap_or_default();
        let handled = function.handle(event.payload, Some(std::time::Instant::now() + left)).await.map_err(Error::from);
        wapisnap::metrics::flush();
        handled
    }))
    .await
}
