use lambda_runtime::{Error, LambdaEvent, service_fn};
use wapisnap::config::Env;
use wapisnap::telemetry::{self, LogFormat};
use wapisnap_broadcast::{Broadcast, BroadcastFired};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = Env::from_process();
    telemetry::init(LogFormat::from_env(&env));
    let handler = &Broadcast;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<BroadcastFired>| async move {
        handler.handle(event.payload).await.map_err(Error::from)
    }))
    .await
}
