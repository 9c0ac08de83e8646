//! The whole local stack in one value: provisioned resources on the emulator, the functions
//! built from the template's environment, and the runner playing what the template puts in
//! front of them: the webhook's function URL, API Gateway, the SQS event source mappings and
//! Scheduler. Dropping it stops everything it started.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use wapisnap::aws::AwsClients;
use wapisnap::clock::{ControlledClock, SharedClock};

use crate::aws_requests::AwsRequestCounter;
use crate::functions::LocalFunctions;
use crate::provision::{Provisioned, provision};
use crate::runner::http::{EventSource, HttpEvents, HttpHandler, HttpTarget, Routes, serve};
use crate::runner::scheduler::{RateSchedule, SchedulerEmulator, parse_rate};
use crate::runner::sqs::EventSourceMapping;
use crate::template::{HttpEntry, Resolver, Template};

#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The AWS emulator's endpoint.
    pub aws_endpoint: String,
    /// Prefix of every resource name, so stacks sharing an emulator never meet.
    pub prefix: String,
    pub http_addr: SocketAddr,
    pub meta_graph_url: String,
    pub meta_app_secret: String,
    /// The previous app secret during a rotation (either verifies).
    pub meta_app_secret_previous: Option<String>,
    pub meta_verify_token: String,
    /// How long a failed SQS message stays invisible before redelivery (seconds in the
    /// template; short locally so redelivery can be watched).
    pub visibility_timeout: Duration,
    /// How often the local Scheduler looks for due schedules.
    pub scheduler_tick: Duration,
    /// How long the sender waits for the Graph API (10 s in Lambda; tests play timeouts shorter).
    pub graph_timeout: Duration,
    /// Function timeouts other than the template's (tests play a Lambda running out of time).
    pub function_timeouts: HashMap<String, Duration>,
    /// The sender's records in flight per batch, instead of the template's `SEND_CONCURRENCY`.
    pub sender_concurrency: Option<usize>,
    /// A workspace's API requests per second, instead of the template's `API_WORKSPACE_RATE`.
    pub api_workspace_rate: Option<u32>,
    /// Pollers per SQS event source mapping, each invoking the function with its own batch
    /// (Lambda scales its pollers with the backlog; locally the number is fixed).
    pub sqs_pollers: usize,
}

/// Pollers per SQS event source mapping unless told otherwise.
pub const DEFAULT_SQS_POLLERS: usize = 4;

impl StackOptions {
    pub fn new(aws_endpoint: impl Into<String>, meta_graph_url: impl Into<String>) -> Self {
        Self {
            aws_endpoint: aws_endpoint.into(),
            prefix: unique_prefix("ws"),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            meta_graph_url: meta_graph_url.into(),
            meta_app_secret: "local-app-secret".into(),
            meta_app_secret_previous: None,
            meta_verify_token: "local-verify-token".into(),
            visibility_timeout: Duration::from_secs(1),
            scheduler_tick: Duration::from_millis(250),
            graph_timeout: wapisnap::meta::graph::GRAPH_TIMEOUT,
            function_timeouts: HashMap::new(),
            sender_concurrency: None,
            api_workspace_rate: None,
            sqs_pollers: DEFAULT_SQS_POLLERS,
        }
    }
}

/// A short, collision-free name prefix.
pub fn unique_prefix(stem: &str) -> String {
    format!("{stem}{:08x}", rand::random::<u32>())
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    #[error(transparent)]
    Provision(#[from] crate::provision::ProvisionError),
    #[error(transparent)]
    Function(#[from] crate::functions::BuildError),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("the template's {0} has no local queue")]
    MissingQueue(String),
    #[error("the template gives {0} neither a FunctionUrlConfig nor an HttpApi event")]
    NoHttpEntry(String),
    #[error("the template has no MetaSecrets secret")]
    MissingMetaSecrets,
    #[error("storing the Meta secrets on the emulator failed: {0}")]
    MetaSecrets(String),
}

/// A new value of the Meta secrets, as an operator's `put-secret-value` stores it (the value
/// it replaces becomes `AWSPREVIOUS`).
pub async fn put_meta_secrets(
    secrets_manager: &aws_sdk_secretsmanager::Client,
    secret_arn: &str,
    app_secret: &str,
    verify_token: &str,
) -> Result<(), StackError> {
    let value = serde_json::json!({ "appSecret": app_secret, "verifyToken": verify_token }).to_string();
    secrets_manager
        .put_secret_value()
        .secret_id(secret_arn)
        .secret_string(value)
        .send()
        .await
        .map_err(|e| StackError::MetaSecrets(aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string()))?;
    Ok(())
}

pub struct LocalStack {
    pub http_url: String,
    pub aws: AwsClients,
    /// Where the Meta app secret and verify token live (the webhook's and the API's client).
    pub secrets_manager: aws_sdk_secretsmanager::Client,
    pub resources: Provisioned,
    pub template: Template,
    pub clock: Arc<ControlledClock>,
    pub functions: Arc<LocalFunctions>,
    pub scheduler: Arc<SchedulerEmulator>,
    pub mappings: Vec<EventSourceMapping>,
    /// The latest events the runner handed to the webhook and the API (function URL or API
    /// Gateway shaped, as the template says).
    pub http_events: HttpEvents,
    /// Every AWS request the stack's clients made, by service and operation.
    pub aws_requests: AwsRequestCounter,
    /// The local Scheduler's requests (finding due schedules, delivering them), kept apart:
    /// in AWS they are Scheduler's own work, billed as one invocation per schedule fired.
    pub runner_requests: AwsRequestCounter,
    sqs_pollers: usize,
    scheduler_tick: Duration,
    shutdown: watch::Sender<bool>,
}

impl LocalStack {
    /// Rotates the Meta secrets the way an operator does, with a new value in Secrets Manager:
    /// no restart, no redeploy; the value replaced keeps verifying.
    pub async fn rotate_meta_secrets(&self, app_secret: &str, verify_token: &str) -> Result<(), StackError> {
        let arn = self.resources.meta_secrets_arn().ok_or(StackError::MissingMetaSecrets)?;
        put_meta_secrets(&self.secrets_manager, &arn, app_secret, verify_token).await
    }

    pub async fn start(options: StackOptions) -> Result<Self, StackError> {
        let aws_requests = AwsRequestCounter::default();
        let aws: AwsClients = aws_requests.clients_for_emulator(&options.aws_endpoint).await;
        let secrets_manager = aws_requests.secrets_manager_for_emulator(&options.aws_endpoint).await;
        // The local Scheduler's own calls (listing and reading schedules to find the due ones)
        // are this emulation's, not the stack's: Scheduler does that inside AWS, unbilled.
        let runner_requests = AwsRequestCounter::default();
        let runner_aws = runner_requests.clients_for_emulator(&options.aws_endpoint).await;
        let template = Template::load()?;
        let parameters = BTreeMap::from([
            ("MetaAppSecret".to_owned(), options.meta_app_secret.clone()),
            ("MetaVerifyToken".to_owned(), options.meta_verify_token.clone()),
            ("MetaGraphUrl".to_owned(), options.meta_graph_url.clone()),
            ("MetaAppId".to_owned(), "local-app".to_owned()),
        ]);
        let resources = provision(&aws, &secrets_manager, &template, &options.prefix, &parameters).await?;
        if let Some(previous) = &options.meta_app_secret_previous {
            // A rotation under way: the previous value, then the current one on top of it.
            let meta_secrets = resources.meta_secrets_arn().ok_or(StackError::MissingMetaSecrets)?;
            for secret in [previous, &options.meta_app_secret] {
                put_meta_secrets(&secrets_manager, &meta_secrets, secret, &options.meta_verify_token).await?;
            }
        }
        let clock = Arc::new(ControlledClock::new());
        let shared_clock: SharedClock = clock.clone();
        let functions = Arc::new(LocalFunctions::build(
            &template,
            &resources,
            &aws,
            &secrets_manager,
            crate::functions::FunctionTuning {
                graph_timeout: options.graph_timeout,
                sender_concurrency: options.sender_concurrency,
                api_workspace_rate: options.api_workspace_rate,
            },
            shared_clock.clone(),
        )?);

        let mut mappings = Vec::new();
        for source in template.sqs_event_sources() {
            let queue = resources.queue(&source.queue).ok_or_else(|| StackError::MissingQueue(source.queue.clone()))?;
            let Some(handler) = functions.sqs_handler(&source.function) else { continue };
            mappings.push(EventSourceMapping {
                function: source.function.clone(),
                sqs: aws.sqs.clone(),
                queue_url: queue.url,
                queue_arn: queue.arn,
                batch_size: source.batch_size,
                visibility_timeout: options.visibility_timeout,
                report_batch_item_failures: source.report_batch_item_failures,
                handler,
                timeout: options
                    .function_timeouts
                    .get(&source.function)
                    .copied()
                    .unwrap_or_else(|| template.function_timeout(&source.function)),
                timed_out: Default::default(),
            });
        }

        let mut targets = HashMap::new();
        for (function, _) in template.of_kind("AWS::Serverless::Function") {
            if let (Some(arn), Some(handler)) =
                (resources.attribute(function, "Arn"), functions.invoke_handler(function))
            {
                targets.insert(arn, handler);
            }
        }
        let mut rates = Vec::new();
        for (function, expression) in template.rate_schedules() {
            let every = resources.resolve(&expression).ok().and_then(|e| parse_rate(&e));
            if let (Some(every), Some(handler)) = (every, functions.invoke_handler(&function)) {
                rates.push(RateSchedule::new(function, every, handler));
            }
        }
        let scheduler = Arc::new(SchedulerEmulator::new(
            runner_aws.scheduler.clone(),
            runner_aws.sqs.clone(),
            shared_clock.clone(),
            vec![resources.schedule_group()],
            targets,
            rates,
        ));

        let listener =
            TcpListener::bind(options.http_addr).await.map_err(|e| StackError::Listen(options.http_addr, e))?;
        let http_url =
            format!("http://{}", listener.local_addr().map_err(|e| StackError::Listen(options.http_addr, e))?);
        let (shutdown, stopped) = watch::channel(false);
        let http_events = HttpEvents::default();
        let routes = Routes {
            webhook: http_target(&template, &resources, "WebhookFunction", functions.webhook_handler())?,
            api: http_target(&template, &resources, "ApiFunction", functions.api_handler())?,
            events: http_events.clone(),
            clock: clock.clone(),
            fire_schedules: {
                let scheduler = scheduler.clone();
                Arc::new(move || {
                    let scheduler = scheduler.clone();
                    async move {
                        let fired = scheduler.tick().await?;
                        Ok(serde_json::json!({ "fired": fired.iter().map(|f| &f.name).collect::<Vec<_>>() }))
                    }
                    .boxed()
                })
            },
            sweep: {
                let sweep = functions.invoke_handler("SweeperFunction");
                Arc::new(move || {
                    let sweep = sweep.clone();
                    async move {
                        match sweep {
                            Some(sweep) => sweep(serde_json::json!({ "source": "local.manual" })).await,
                            None => Err("no sweeper function".into()),
                        }
                    }
                    .boxed()
                })
            },
            enqueue_send: {
                let store = wapisnap::store::Store::new(aws.dynamodb.clone(), resources.table_name());
                let queues = wapisnap::queues::Queues::new(
                    aws.sqs.clone(),
                    wapisnap::config::QueueConfig {
                        flow_queue_url: resources.queue("FlowQueue").map(|q| q.url).unwrap_or_default(),
                        send_queue_url: resources.queue("SendQueue").map(|q| q.url).unwrap_or_default(),
                        retry_queue_url: resources.queue("RetryQueue").map(|q| q.url).unwrap_or_default(),
                    },
                );
                let clock = shared_clock.clone();
                Arc::new(move |body| {
                    let (store, queues, clock) = (store.clone(), queues.clone(), clock.clone());
                    async move {
                        let request: wapisnap::domain::SendRequest = serde_json::from_slice(&body)
                            .map_err(|e| format!("not a send request ({e}); see events/sqs/send-job.json"))?;
                        let wapisnap::domain::SendRequest::New { job } = request else {
                            return Err("only new jobs are accepted here: {\"kind\":\"new\",\"job\":{...}}".into());
                        };
                        let state = wapisnap::outbound::accept::accept_send(&store, &queues, &job, clock.now())
                            .await
                            .map_err(|e| e.to_string())?;
                        Ok(serde_json::json!({ "job_id": job.job_id, "state": state }))
                    }
                    .boxed()
                })
            },
        };
        tokio::spawn(serve(listener, routes, stopped.clone()));

        let scheduler_tick = options.scheduler_tick;
        Ok(Self {
            http_url,
            aws,
            secrets_manager,
            resources,
            template,
            clock,
            functions,
            scheduler,
            mappings,
            http_events,
            aws_requests,
            runner_requests,
            sqs_pollers: options.sqs_pollers,
            scheduler_tick,
            shutdown,
        })
    }

    /// Starts the SQS pollers (`sqs_pollers` per mapping) and the Scheduler loop. Tests of a single function can leave
    /// them off and drive the queues by hand.
    pub fn start_background(&self) {
        for mapping in &self.mappings {
            mapping.clone().spawn_pollers(self.sqs_pollers, self.shutdown.subscribe());
        }
        self.scheduler.clone().spawn(self.scheduler_tick, self.shutdown.subscribe());
    }

    /// Where Meta reaches the webhook locally: its function URL, served at the path registered
    /// at Meta (`/webhook`), beside the API.
    pub fn webhook_url(&self) -> String {
        format!("{}/webhook", self.http_url)
    }

    pub fn api_url(&self) -> String {
        format!("{}/v1", self.http_url)
    }
}

/// What the template puts in front of `function`: its function URL (served at the same local
/// path, with function URL events) or its HTTP API routes (API Gateway events).
fn http_target(
    template: &Template,
    resources: &Provisioned,
    function: &str,
    handler: HttpHandler,
) -> Result<HttpTarget, StackError> {
    let source = match template.http_entry(function) {
        Some(HttpEntry::FunctionUrl { .. }) => EventSource::FunctionUrl {
            url: resources.function_url(function).ok_or_else(|| StackError::NoHttpEntry(function.to_owned()))?,
        },
        Some(HttpEntry::HttpApi { api, routes }) => EventSource::HttpApi {
            api_id: api.and_then(|api| resources.reference(&api)).unwrap_or_else(|| "localhttp".to_owned()),
            routes,
        },
        None => return Err(StackError::NoHttpEntry(function.to_owned())),
    };
    Ok(HttpTarget { function: function.to_owned(), source, handler })
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
