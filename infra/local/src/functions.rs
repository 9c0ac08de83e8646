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

pub struct LocalFunctions {
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

impl LocalFunctions {
    pub fn build(
        template: &Template,
        stack: &Provisioned,
        aws: &AwsClients,
        graph_timeout: std::time::Duration,
        sender_concurrency: Option<usize>,
        api_workspace_rate: Option<u32>,
        clock: SharedClock,
    ) -> Result<Self, BuildError> {
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
            webhook: Arc::new(wapisnap_webhook::Webhook::new(
                config("WebhookFunction", wapisnap_webhook::Config::from_env(&webhook_env))?,
                aws,
                clock.clone(),
            )),
            api: Arc::new(wapisnap_api::Api::new(
                {
                    let mut api = config("ApiFunction", wapisnap_api::Config::from_env(&api_env))?;
                    api.workspace_rate = api_workspace_rate.unwrap_or(api.workspace_rate);
                    api
                },
                aws,
                graph.clone(),
                clock.clone(),
            )),
            sender: Arc::new(wapisnap_sender::SenderFunction::new(sender_config, aws, graph, clock.clone())),
            flows: Arc::new(wapisnap_flows::Flows::new(
                config("FlowsFunction", wapisnap_flows::Config::from_env(&flows_env))?,
                aws,
                clock.clone(),
            )),
            retry: Arc::new(wapisnap_retry::Retry::new(
                config("RetryFunction", wapisnap_retry::Config::from_env(&retry_env))?,
                aws,
                clock.clone(),
            )),
            broadcast: Arc::new(wapisnap_broadcast::Broadcast::new(
                config("BroadcastFunction", wapisnap_broadcast::Config::from_env(&broadcast_env))?,
                aws,
                clock.clone(),
            )),
            broadcast_arn: stack.attribute("BroadcastFunction", "Arn").unwrap_or_default(),
            sweeper: Arc::new(wapisnap_sweeper::Sweeper::new(
                config("SweeperFunction", wapisnap_sweeper::Config::from_env(&sweeper_env))?,
                aws,
                clock.clone(),
            )),
        })
    }

    pub fn webhook_handler(&self) -> HttpHandler {
        let webhook = self.webhook.clone();
        Arc::new(move |request| {
            let webhook = webhook.clone();
            async move { webhook.handle(request).await }.boxed()
        })
    }

    pub fn api_handler(&self) -> HttpHandler {
        let api = self.api.clone();
        Arc::new(move |request| {
            let api = api.clone();
            async move { api.handle(request).await }.boxed()
        })
    }

    /// The SQS-triggered function with this logical id.
    pub fn sqs_handler(&self, function: &str) -> Option<SqsHandler> {
        macro_rules! sqs {
            ($field:ident, |$f:ident, $event:ident, $deadline:ident| $call:expr) => {{
                let f = self.$field.clone();
                let handler: SqsHandler = Arc::new(move |$event, $deadline| {
                    let $f = f.clone();
                    async move { $call.await.map_err(|e| e.to_string()) }.boxed()
                });
                Some(handler)
            }};
        }
        match function {
            "SenderFunction" => sqs!(sender, |f, event, deadline| f.handle(event, Some(deadline))),
            "FlowsFunction" => sqs!(flows, |f, event, _deadline| f.handle(event)),
            "RetryFunction" => sqs!(retry, |f, event, _deadline| f.handle(event)),
            _ => None,
        }
    }

    /// Functions invoked directly with a JSON payload: Scheduler targets and rate schedules.
    pub fn invoke_handler(&self, function: &str) -> Option<InvokeHandler> {
        match function {
            "BroadcastFunction" => {
                let broadcast = self.broadcast.clone();
                let arn = self.broadcast_arn.clone();
                Some(Arc::new(move |payload| {
                    let (broadcast, arn) = (broadcast.clone(), arn.clone());
                    async move {
                        let fired = serde_json::from_value(payload).map_err(|e| format!("broadcast input: {e}"))?;
                        let outcome = broadcast.handle(fired, &arn, None).await.map_err(|e| e.to_string())?;
                        Ok(serde_json::Value::String(format!("{outcome:?}")))
                    }
                    .boxed()
                }))
            }
            "SweeperFunction" => {
                let sweeper = self.sweeper.clone();
                Some(Arc::new(move |_| {
                    let sweeper = sweeper.clone();
                    async move {
                        let report = sweeper.handle().await.map_err(|e| e.to_string())?;
                        serde_json::to_value(report).map_err(|e| e.to_string())
                    }
                    .boxed()
                }))
            }
            _ => None,
        }
    }
}
