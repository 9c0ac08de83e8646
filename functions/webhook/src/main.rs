use std::sync::Arc;

use lambda_http::{Error, service_fn};
use wapisnap::aws;
use wapisnap::clock::SystemClock;
use wapisnap::config::Env;
use wapisnap::telemetry::{self, LogFormat};
use wapisnap_webhook::{Config, Webhook};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = Env::from_process();
    telemetry::init(LogFormat::from_env(&env));
    wapisnap::metrics::init("webhook");
    let config = Config::from_env(&env)?;
    // Only the clients the webhook uses, from Lambda's environment (no provider chain).
    let sdk = aws::lambda_config();
    let secrets_manager = aws_sdk_secretsmanager::Client::new(&sdk);
    let webhook =
        Webhook::with_clients(config, aws::dynamodb(&sdk), aws::sqs(&sdk), secrets_manager, Arc::new(SystemClock));
    let webhook = &webhook;
    lambda_http::run(service_fn(move |request| async move {
        let response = webhook.handle(request).await;
        wapisnap::metrics::flush();
        Ok::<_, Error>(response)
    }))
    .await
}
