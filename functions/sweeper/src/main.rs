use lambda_runtime::{Error, LambdaEvent, service_fn};
use wapisnap::config::Env;
use wapisnap::telemetry::{self, LogFormat};
use wapisnap_sweeper::Sweeper;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = Env::from_process();
    telemetry::init(LogFormat::from_env(&env));
    let handler = &Sweeper;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        Ok::<_, Error>(handler.handle().await)
    }))
    .await
}
