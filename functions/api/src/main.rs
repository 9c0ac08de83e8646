use std::sync::Arc;

use lambda_http::Error;
use wapisnap::aws::AwsClients;
use wapisnap::clock::SystemClock;
use wapisnap::config::Env;
use wapisnap::meta::graph::GraphClient;
use wapisnap::telemetry::{self, LogFormat};
use wapisnap_api::{Api, Config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = Env::from_process();
    telemetry::init(LogFormat::from_env(&env));
    wapisnap::metrics::init("api");
    let config = Config::from_env(&env)?;
    let graph = GraphClient::new(&config.meta);
    // From Lambda's environment (no provider chain); the API uses every client.
    let sdk = wapisnap::aws::lambda_config();
    let secrets_manager = aws_sdk_secretsmanager::Client::new(&sdk);
    let api = Api::new(config, &AwsClients::from_sdk_config(&sdk), secrets_manager, graph, Arc::new(SystemClock));
    // The runtime serves any tower service: the router itself.
    // Each request's metrics go out with it, as one EMF line.
    let router = api.router().layer(axum::middleware::map_response(|response: axum::response::Response| async move {
        wapisnap::metrics::flush();
        response
    }));
    lambda_http::run(router).await
}
