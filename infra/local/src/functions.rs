//! The seven functions, built locally from exactly the environment the template gives them,
//! and exposed to the runner in the shapes Lambda would invoke them with.

use std::sync::Arc;

use futures_util::FutureExt;
use wapisnap::aws::AwsClients;
use wapisnap::clock::SharedClock;

use crate::provision::Provisioned;
use crate::runner::http::HttpHandler;
use crate::runner::{InvokeHandler, SqsHandler};
use crate::template::{Resolver, Template};

#[derive(Debug, thiserror::Error)]
#[error("{function}: {reason}")]
pub struct BuildError {
    pub function: &'static str,
    pub reason: String,
}

/// How long each handler invocation took, in the order they ended: the runner times every
/// invocation it makes (the webhook's function URL, API Gateway, the SQS event source
/// mappings, Scheduler and rate targets), as Lambda bills it. `make bench-cost` reads it.
#[derive(Debug, Clone, Default)]
pub struct InvocationTimings {
    ended: Arc<std::sync::Mutex<Vec<(&'static str, std::time::Duration)>>>,
}

impl InvocationTimings {
    /// How many invocations ended so far (a mark for [`Self::since`]).
    pub fn mark(&self) -> usize {
        self.ended.lock().expect("invocation timings").len()
    }

    /// The invocations that ended after `mark`, as (function logical id, duration).
    pub fn since(&self, mark: usize) -> Vec<(&'static str, std::time::Duration)> {
        self.ended.lock().expect("invocation timings").get(mark..).map(<[_]>::to_vec).unwrap_or_default()
    }

    fn record(&self, function: &'static str, took: std::time::Duration) {
        self.ended.lock().expect("invocation timings").push((function, took));
    }

    /// Runs one invocation of `function` and records how long it took.
    async fn time<T>(&self, function: &'static str, invocation: impl std::future::Future<Output = T>) -> T {
        let started = std::time::Instant::now();
        let result = invocation.await;
        self.record(function, started.elapsed());
        result
    }
}

pub struct LocalFunctions {
    /// Every invocation the runner made, timed.
    pub timings: InvocationTimings,
    pub webhook: Arc<wapisnap_webhook::Webhook>,
    pub api: Arc<wapisnap_api::Api>,
    pub sender: Arc<wapisnap_sender::SenderFunction>,
    pub flows: Arc<wapisnap_flows::Flows>,
    pub retry: Arc<wapisnap_retry::Retry>,
    pub broadcast: Arc<wapisnap_broadcast::Broadcast>,
    /// The broadcast function's ARN, which it fires itself with to continue.
    pub broadcast_arn: String,
    pub sweeper: Arc<wapisnap_sweeper::Sweeper>,
}

/// What the local stack sets differently from the template (tests and benches).
#[derive(Debug, Clone, Copy)]
pub struct FunctionTuning {
    pub graph_timeout: std::time::Duration,
    pub sender_concurrency: Option<usize>,
    pub api_workspace_rate: Option<u32>,
}

impl LocalFunctions {
    pub fn build(
        template: &Template,
        stack: &Provisioned,
        aws: &AwsClients,
        secrets_manager: &aws_sdk_secretsmanager::Client,
        tuning: FunctionTuning,
        clock: SharedClock,
    ) -> Result<Self, BuildError> {
        let FunctionTuning { graph_timeout, sender_concurrency, api_workspace_rate } = tuning;
        fn env(
            template: &Template,
            stack: &Provisioned,
            function: &'static str,
        ) -> Result<wapisnap::config::Env, BuildError> {
            stack.function_env(template, function).map_err(|e| BuildError { function, reason: e.to_string() })
        }
        fn config<T, E: std::fmt::Display>(function: &'static str, result: Result<T, E>) -> Result<T, BuildError> {
            result.map_err(|e| BuildError { function, reason: e.to_string() })
        }
        let webhook_env = env(template, stack, "WebhookFunction")?;
        let api_env = env(template, stack, "ApiFunction")?;
        let sender_env = env(template, stack, "SenderFunction")?;
        let retry_env = env(template, stack, "RetryFunction")?;
        let sweeper_env = env(template, stack, "SweeperFunction")?;
        let flows_env = env(template, stack, "FlowsFunction")?;
        let broadcast_env = env(template, stack, "BroadcastFunction")?;
        let mut sender_config = config("SenderFunction", wapisnap_sender::Config::from_env(&sender_env))?;
        if let Some(concurrency) = sender_concurrency {
            sender_config.concurrency = concurrency;
        }
        let graph = wapisnap::meta::graph::GraphClient::with_timeout(&sender_config.meta, graph_timeout);
        Ok(Self {
            timings: InvocationTimings::default(),
            webhook: Arc::new(wapisnap_webhook::Webhook::new(
                config("WebhookFunction", wapisnap_webhook::Config::from_env(&webhook_env))?,
                aws,
                secrets_manager.clone(),
                clock.clone(),
            )),
            api: Arc::new(wapisnap_api::Api::new(
                {
                    let mut api = config("ApiFunction", wapisnap_api::Config::from_env(&api_env))?;
                    api.workspace_rate = api_workspace_rate.unwrap_or(api.workspace_rate);
                    api
                },
                aws,
                secrets_manager.clone(),
                graph.clone(),
                clock.clone(),
            )),
            sender: Arc::new(wapisnap_sender::SenderFunction::new(sender_config, aws, graph, clock.clone())),
            flows: Arc::new(wapisnap_flows::Flows::new(
                config("FlowsFunction", wapisnap_flows::Config::from_env(&flows_env))?,
                aws.into(),
                clock.clone(),
            )),
            retry: Arc::new(wapisnap_retry::Retry::new(
                config("RetryFunction", wapisnap_retry::Config::from_env(&retry_env))?,
                aws.into(),
                clock.clone(),
            )),
            broadcast: Arc::new(wapisnap_broadcast::Broadcast::new(
                config("BroadcastFunction", wapisnap_broadcast::Config::from_env(&broadcast_env))?,
                aws.into(),
                clock.clone(),
            )),
            broadcast_arn: stack.attribute("BroadcastFunction", "Arn").unwrap_or_default(),
            sweeper: Arc::new(wapisnap_sweeper::Sweeper::new(
                config("SweeperFunction", wapisnap_sweeper::Config::from_env(&sweeper_env))?,
                aws.into(),
                clock.clone(),
            )),
        })
    }

    pub fn webhook_handler(&self) -> HttpHandler {
        let (webhook, timings) = (self.webhook.clone(), self.timings.clone());
        Arc::new(move |request| {
            let (webhook, timings) = (webhook.clone(), timings.clone());
            async move { timings.time("WebhookFunction", webhook.handle(request)).await }.boxed()
        })
    }

    pub fn api_handler(&self) -> HttpHandler {
        let (api, timings) = (self.api.clone(), self.timings.clone());
        Arc::new(move |request| {
            let (api, timings) = (api.clone(), timings.clone());
            async move { timings.time("ApiFunction", api.handle(request)).await }.boxed()
        })
    }

    /// The SQS-triggered function with this logical id.
    pub fn sqs_handler(&self, function: &str) -> Option<SqsHandler> {
        macro_rules! sqs {
            ($name:literal, $field:ident, |$f:ident, $event:ident, $deadline:ident| $call:expr) => {{
                let (f, timings) = (self.$field.clone(), self.timings.clone());
                let handler: SqsHandler = Arc::new(move |$event, $deadline| {
                    let ($f, timings) = (f.clone(), timings.clone());
                    async move { timings.time($name, $call).await.map_err(|e| e.to_string()) }.boxed()
                });
                Some(handler)
            }};
        }
        match function {
            "SenderFunction" => sqs!("SenderFunction", sender, |f, event, deadline| f.handle(event, Some(deadline))),
            "FlowsFunction" => sqs!("FlowsFunction", flows, |f, event, _deadline| f.handle(event)),
            "RetryFunction" => sqs!("RetryFunction", retry, |f, event, _deadline| f.handle(event)),
            _ => None,
        }
    }

    /// Functions invoked directly with a JSON payload: Scheduler targets and rate schedules.
    pub fn invoke_handler(&self, function: &str) -> Option<InvokeHandler> {
        match function {
            "BroadcastFunction" => {
                let broadcast = self.broadcast.clone();
                let arn = self.broadcast_arn.clone();
                let timings = self.timings.clone();
                Some(Arc::new(move |payload| {
                    let (broadcast, arn, timings) = (broadcast.clone(), arn.clone(), timings.clone());
                    async move {
                        let fired = serde_json::from_value(payload).map_err(|e| format!("broadcast input: {e}"))?;
                        let outcome = timings
                            .time("BroadcastFunction", broadcast.handle(fired, &arn, None))
                            .await
                            .map_err(|e| e.to_string())?;
                        Ok(serde_json::Value::String(format!("{outcome:?}")))
                    }
                    .boxed()
                }))
            }
            "SweeperFunction" => {
                let (sweeper, timings) = (self.sweeper.clone(), self.timings.clone());
                Some(Arc::new(move |_| {
                    let (sweeper, timings) = (sweeper.clone(), timings.clone());
                    async move {
                        let report =
                            timings.time("SweeperFunction", sweeper.handle()).await.map_err(|e| e.to_string())?;
                        serde_json::to_value(report).map_err(|e| e.to_string())
                    }
                    .boxed()
                }))
            }
            _ => None,
        }
    }
}
