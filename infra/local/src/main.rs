//! `wapisnap-local dev`: the local stack in the foreground, for trying things by hand.
//! `wapisnap-local demo`: a scripted scenario end to end, printed as a timeline.

use std::net::SocketAddr;

use secrecy::ExposeSecret;
use wapisnap::config::Env;
use wapisnap::telemetry::{self, LogFormat};
use wapisnap_local::environment::{EnvironmentOptions, LocalEnvironment};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// What `make dev` connects, so there is something to receive for and send from right away.
const DEV_WORKSPACE: &str = "acme";
const DEV_NUMBER: &str = "106540352242922";
const DEV_WABA: &str = "102290129340398";
const DEV_TEMPLATE: &str = "spring_sale";

fn addr(env: &Env, name: &'static str, default: &str) -> Result<SocketAddr, Failure> {
    let value = env.optional(name).unwrap_or_else(|| default.to_owned());
    value.parse().map_err(|e| format!("{name}={value:?} is not an address like 127.0.0.1:3000: {e}").into())
}

fn options_from(env: &Env) -> Result<EnvironmentOptions, Failure> {
    let defaults = EnvironmentOptions::default();
    Ok(EnvironmentOptions {
        aws_endpoint: env.optional("AWS_ENDPOINT_URL"),
        http_addr: addr(env, "LOCAL_HTTP_ADDR", "127.0.0.1:3000")?,
        sandbox_addr: addr(env, "LOCAL_SANDBOX_ADDR", "127.0.0.1:3001")?,
        meta_graph_url: env.optional("META_GRAPH_URL"),
        meta_app_secret: env.optional("META_APP_SECRET").unwrap_or(defaults.meta_app_secret),
        meta_app_secret_previous: env.optional("META_APP_SECRET_PREVIOUS"),
        meta_verify_token: env.optional("META_VERIFY_TOKEN").unwrap_or(defaults.meta_verify_token),
        sqs_pollers: match env.optional("LOCAL_SQS_POLLERS") {
            Some(value) => Some(
                value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("LOCAL_SQS_POLLERS={value:?} is not a number of pollers (1 or more)"))?,
            ),
            None => None,
        },
        ..defaults
    })
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let env = Env::from_process();
    let command = std::env::args().nth(1).unwrap_or_default();
    match command.as_str() {
        "dev" => {
            telemetry::init(LogFormat::from_env(&env));
            dev(options_from(&env)?).await
        }
        "demo" => {
            // The demo prints its own timeline; logs only when asked for with RUST_LOG.
            if env.optional("RUST_LOG").is_some() {
                telemetry::init(LogFormat::Pretty);
            }
            let options = EnvironmentOptions {
                http_addr: addr(&env, "DEMO_HTTP_ADDR", "127.0.0.1:0")?,
                sandbox_addr: addr(&env, "DEMO_SANDBOX_ADDR", "127.0.0.1:0")?,
                ..options_from(&env)?
            };
            wapisnap_local::demo::run(options).await
        }
        _ => Err("usage: wapisnap-local dev | demo   (see README.md)".into()),
    }
}

async fn dev(options: EnvironmentOptions) -> Result<(), Failure> {
    let mut environment = LocalEnvironment::start(options).await?;
    environment.stack.start_background();
    let workspace = wapisnap::domain::WorkspaceId::parse(DEV_WORKSPACE)?;
    let opened = environment.open_workspace(&workspace, "Acme (local)").await?;
    let stack = &environment.stack;
    let number = environment.connect_number(&workspace, DEV_NUMBER, DEV_WABA, "local-dev-access-token").await?;
    let store = wapisnap::store::Store::new(stack.aws.dynamodb.clone(), stack.resources.table_name());
    store.put_template(&workspace, DEV_WABA, DEV_TEMPLATE, "en_US", wapisnap::domain::TemplateStatus::Approved).await?;
    println!("wapisnap local stack is up (Ctrl-C stops everything it started)");
    println!("  webhook (Meta calls this):  {}", stack.webhook_url());
    println!("  workspace API:              {}/", stack.api_url());
    println!("  Meta sandbox (Graph API):   {}", environment.sandbox.url);
    println!(
        "  local controls:             {}/_local/clock, /_local/clock/advance, /_local/schedules/fire, /_local/sweep",
        stack.http_url
    );
    if let Some(moto) = &environment.moto {
        println!("  AWS emulator (moto):        {}", moto.endpoint);
    }
    println!("  resources prefix:           {}", stack.resources.prefix);
    println!(
        "  workspace {DEV_WORKSPACE} owns WhatsApp number {DEV_NUMBER} (WABA {DEV_WABA}, token …{})",
        number.token.last4
    );
    println!("  approved template:          {DEV_TEMPLATE} (en_US)");
    // Printed on purpose: a local key for a throwaway table, shown once like any issued key.
    println!("  API key for workspace {DEV_WORKSPACE}: {}", opened.key.key.expose_secret());
    println!(
        "  wapisnap-admin environment: TABLE_NAME={} AWS_ENDPOINT_URL={}",
        stack.resources.table_name(),
        environment.aws_endpoint
    );
    wait_for_stop_signal().await;
    println!("stopping");
    Ok(())
}

async fn wait_for_stop_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match terminate.as_mut() {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
