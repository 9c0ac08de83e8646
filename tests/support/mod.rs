//! What every integration test starts from: one AWS emulator per test binary (started on
//! first use; tests never share resources because every stack has its own name prefix), and a
//! `TestApp` with the real functions wired into a fresh local stack and Meta sandbox.

use std::time::{Duration, Instant};

use tokio::sync::OnceCell;
use wapisnap_local::environment::{EnvironmentOptions, LocalEnvironment};
use wapisnap_local::moto::Moto;

static MOTO: OnceCell<Moto> = OnceCell::const_new();

/// The emulator's endpoint. Fails the test with instructions when moto is not installed.
pub async fn aws_endpoint() -> String {
    let moto = MOTO
        .get_or_init(|| async {
            Moto::start().await.unwrap_or_else(|e| panic!("the integration tests need the AWS emulator: {e}"))
        })
        .await;
    moto.endpoint.clone()
}

pub struct TestApp {
    pub env: LocalEnvironment,
    pub http: reqwest::Client,
}

impl TestApp {
    /// A fresh stack with its SQS pollers and Scheduler loop running, like `make dev`.
    pub async fn spawn() -> Self {
        let app = Self::spawn_idle().await;
        app.env.stack.start_background();
        app
    }

    /// A fresh stack whose queues and schedules are driven by the test itself.
    pub async fn spawn_idle() -> Self {
        let options = EnvironmentOptions { aws_endpoint: Some(aws_endpoint().await), ..EnvironmentOptions::default() };
        let env = LocalEnvironment::start(options).await.expect("local stack starts");
        Self { env, http: reqwest::Client::new() }
    }

    pub fn webhook_url(&self) -> String {
        self.env.stack.webhook_url()
    }

    pub fn api_url(&self) -> String {
        self.env.stack.api_url()
    }
}

/// Polls `check` until it returns `Some`, or panics after `within` saying what was awaited.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Bodies of the messages waiting on a queue (received and left in flight).
pub async fn drain_bodies(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let received = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("receive");
    received.messages().iter().filter_map(|m| m.body.clone()).collect()
}
