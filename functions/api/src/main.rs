use std::sync::Arc;

use lambda_http::{Error, service_fn};
use wapisnap::clock::SystemClock;
use wapisnap::config::Env;
use wapisnap::telemetry::{self, LogFormat};
use wapisnap_api::{Api, Config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = Env::from_process();
    telemetry::init(LogFormat::from_env(&env));
    let api = Api::new(Config::from_env(&env)?, Arc::new(SystemClock));
    let api = &api;
    lambda_http::run(service_fn(move |request| async move { Ok::<_, Error>(api.handle(request).await) })).await
}
