//! `make demo`: the local stack end to end, as a timeline a person can read. Each feature
//! adds its chapter.

mod automations;
mod broadcasts;
mod inbox;
mod operations;
mod receiving;
mod sending;

use std::time::{Duration, Instant};

use serde_json::Value;
use wapisnap::domain::WorkspaceId;
use wapisnap::store::Store;

use crate::environment::{EnvironmentOptions, LocalEnvironment};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The demo workspace's WhatsApp number.
const DEMO_NUMBER: &str = "106540352242922";
const DEMO_TOKEN: &str = "EAAGdemoACCESStokenNEVERshown1234";
const DEMO_WABA: &str = "102290129340398";

/// Prints what happened, with the time since the demo started.
pub struct Timeline {
    started: Instant,
}

impl Timeline {
    fn chapter(&self, title: &str) {
        println!("\n== {title}");
    }

    fn step(&self, text: impl AsRef<str>) {
        println!("[{:>7.3}s] {}", self.started.elapsed().as_secs_f64(), text.as_ref());
    }
}

/// What every chapter works with.
struct Demo<'a> {
    timeline: Timeline,
    environment: &'a LocalEnvironment,
    store: Store,
    workspace: WorkspaceId,
    http: reqwest::Client,
}

pub async fn run(options: EnvironmentOptions) -> Result<(), Failure> {
    let timeline = Timeline { started: Instant::now() };
    timeline.chapter("Local stack");
    let mut environment = LocalEnvironment::start(options).await?;
    environment.stack.start_background();
    timeline.step(format!(
        "AWS emulator ready, resources provisioned from infra/template.yaml (prefix {})",
        environment.stack.resources.prefix
    ));
    timeline.step(format!(
        "webhook {}  ·  API {}/  ·  Meta sandbox {}",
        environment.stack.webhook_url(),
        environment.stack.api_url(),
        environment.sandbox.url
    ));
    let workspace = WorkspaceId::parse("acme")?;
    open_workspace(&timeline, &mut environment, &workspace).await?;
    let stack = &environment.stack;
    let demo = Demo {
        timeline,
        store: Store::new(stack.aws.dynamodb.clone(), stack.resources.table_name()),
        workspace,
        environment: &environment,
        http: reqwest::Client::new(),
    };
    demo.handshake().await?;
    demo.onboard_through_the_api().await?;
    demo.receiving().await?;
    demo.inbox().await?;
    demo.automations().await?;
    demo.sending().await?;
    demo.broadcasts().await?;
    demo.operations().await?;
    demo.api().await?;

    demo.timeline.chapter("Where to look");
    if let Some(moto) = &environment.moto {
        let port = moto.endpoint.rsplit(':').next().unwrap_or("");
        demo.timeline.step(format!("the emulator's log: .local/moto-{port}.log"));
    }
    demo.timeline.step("`make dev` keeps the stack running; README.md shows how to try each feature by hand");
    Ok(())
}

/// What `wapisnap-admin workspace create acme` does: the workspace and its first API key.
async fn open_workspace(
    timeline: &Timeline,
    environment: &mut LocalEnvironment,
    workspace: &WorkspaceId,
) -> Result<(), Failure> {
    use secrecy::ExposeSecret;
    timeline.chapter("An operator creates workspace acme (wapisnap-admin workspace create acme)");
    let opened = environment.open_workspace(workspace, "Acme").await?;
    // Printed on purpose: the demo's key, for a table that disappears with the demo.
    timeline.step(format!("API key for workspace acme: {}", opened.key.key.expose_secret()));
    timeline.step(format!("shown once: the table keeps only its SHA-256, listed as prefix {}", opened.key.prefix));
    let store = Store::new(environment.stack.aws.dynamodb.clone(), environment.stack.resources.table_name());
    let owner = store.authenticate(opened.key.key.expose_secret()).await?;
    timeline.step(format!(
        "the key authenticates as workspace {}",
        owner.map_or_else(|| "(none)".into(), |ws| ws.to_string())
    ));
    let guessed = format!("wsk_{}_{}", opened.key.prefix, "A".repeat(43));
    let guessed_owner = store.authenticate(&guessed).await?;
    timeline.step(format!(
        "the same prefix with a guessed secret → {}",
        if guessed_owner.is_none() { "refused" } else { "ACCEPTED (a bug)" }
    ));
    Ok(())
}

impl Demo<'_> {
    async fn handshake(&self) -> Result<(), Failure> {
        self.timeline.chapter("Meta verifies the webhook (GET handshake)");
        let url = self.environment.stack.webhook_url();
        let right =
            [("hub.mode", "subscribe"), ("hub.verify_token", "local-verify-token"), ("hub.challenge", "1158201444")];
        let answer = self.http.get(&url).query(&right).send().await?;
        self.timeline.step(format!("right verify token → {} with body {:?}", answer.status(), answer.text().await?));
        let wrong = [("hub.mode", "subscribe"), ("hub.verify_token", "guess"), ("hub.challenge", "1")];
        let answer = self.http.get(&url).query(&wrong).send().await?;
        self.timeline.step(format!("wrong verify token → {}", answer.status()));
        Ok(())
    }

    async fn api(&self) -> Result<(), Failure> {
        self.timeline.chapter("The workspace API answers");
        let url = format!("{}/health", self.environment.stack.api_url());
        let health: Value = self.http.get(url).send().await?.json().await?;
        self.timeline.step(format!("GET /v1/health → {health}"));
        Ok(())
    }

    /// Polls until `check` says yes, for at most `within`.
    async fn until<T, F, Fut>(&self, within: Duration, mut check: F) -> Result<Option<T>, Failure>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, Failure>>,
    {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(value) = check().await? {
                return Ok(Some(value));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(None)
    }
}
