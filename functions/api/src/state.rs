//! What the API's handlers share, built once per cold start.

use std::sync::Arc;

use secrecy::SecretString;

use wapisnap::clock::SharedClock;
use wapisnap::config::{ConfigError, Env};
use wapisnap::meta::graph::GraphClient;
use wapisnap::queues::Queues;
use wapisnap::secrets::MetaSecretsSource;
use wapisnap::store::Store;
use wapisnap::vault::Vault;

use crate::error::ApiError;

pub struct ApiState {
    pub store: Store,
    pub queues: Queues,
    pub vault: Vault,
    pub graph: GraphClient,
    pub clock: SharedClock,
    pub limiter: crate::limits::WorkspaceLimiter,
    /// Embedded Signup's code exchange.
    pub app_id: Option<String>,
    /// The Meta app secret, read from Secrets Manager when first needed.
    pub meta_secrets: Option<MetaSecretsSource>,
    /// One-time schedules: a broadcast's start.
    pub scheduler: aws_sdk_scheduler::Client,
    pub broadcasts: BroadcastScheduling,
}

/// Where a broadcast's start goes: a one-time EventBridge Scheduler schedule firing the
/// broadcast function.
#[derive(Debug, Clone)]
pub struct BroadcastScheduling {
    /// `SCHEDULE_GROUP`.
    pub group_name: String,
    /// `SCHEDULER_ROLE_ARN`: the role Scheduler assumes to invoke the broadcast function.
    pub role_arn: String,
    /// `SCHEDULE_DLQ_ARN`, optional: where Scheduler parks a firing it could not deliver.
    pub dead_letter_arn: Option<String>,
    /// `BROADCAST_FUNCTION_ARN`: the schedule's target.
    pub function_arn: String,
}

impl BroadcastScheduling {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            group_name: env.required("SCHEDULE_GROUP", "the Scheduler group of broadcast starts")?,
            role_arn: env
                .required("SCHEDULER_ROLE_ARN", "the role Scheduler assumes to invoke the broadcast function")?,
            dead_letter_arn: env.optional("SCHEDULE_DLQ_ARN"),
            function_arn: env.required("BROADCAST_FUNCTION_ARN", "the broadcast function, which starts broadcasts")?,
        })
    }
}

pub type Shared = Arc<ApiState>;

impl ApiState {
    /// The Meta app's id and current secret, when Embedded Signup is configured.
    pub async fn app_credentials(&self) -> Result<Option<(String, SecretString)>, ApiError> {
        let (Some(app_id), Some(secrets)) = (&self.app_id, &self.meta_secrets) else {
            return Ok(None);
        };
        let secrets = secrets.current().await.map_err(|e| {
            ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "secrets_unavailable", e.to_string())
        })?;
        Ok(Some((app_id.clone(), secrets.app_secret().clone())))
    }
}
