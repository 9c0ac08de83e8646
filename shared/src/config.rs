//! Configuration from environment variables, read once per cold start.
//!
//! Each function composes the sections it needs; a missing required variable is a startup
//! error that names it and says what it is for. Every variable is documented in README.md.

use std::collections::HashMap;
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("missing required environment variable {name} ({purpose})")]
    Missing { name: &'static str, purpose: &'static str },
    #[error("environment variable {name} has an invalid value {value:?}: {reason}")]
    Invalid { name: &'static str, value: String, reason: String },
}

/// Where configuration values come from: the process environment in Lambda, a map in tests
/// and on the local stack (where several stacks can live in one process).
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    pub fn from_process() -> Self {
        Self { vars: std::env::vars().collect() }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    pub fn optional(&self, name: &str) -> Option<String> {
        self.vars.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &'static str, purpose: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing { name, purpose })
    }

    pub fn parsed_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(value) => {
                value.parse().map_err(|e: T::Err| ConfigError::Invalid { name, reason: e.to_string(), value })
            }
        }
    }
}

/// The DynamoDB table holding every entity (single-table design, keyed by workspace first).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub table_name: String,
}

impl StoreConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self { table_name: env.required("TABLE_NAME", "the DynamoDB table name")? })
    }
}

/// The SQS queues that connect the functions.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub flow_queue_url: String,
    pub send_queue_url: String,
    pub retry_queue_url: String,
}

impl QueueConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            flow_queue_url: env.required("FLOW_QUEUE_URL", "the SQS queue of flow events")?,
            send_queue_url: env.required("SEND_QUEUE_URL", "the SQS queue of send jobs")?,
            retry_queue_url: env.required("RETRY_QUEUE_URL", "the SQS queue of failed sends for Smart Retry")?,
        })
    }
}

/// How we reach Meta's Graph API. (How Meta proves it is Meta — the app secret and verify
/// token — lives in Secrets Manager: [`crate::secrets`].)
#[derive(Debug, Clone)]
pub struct MetaConfig {
    /// Base URL of the Graph API: Meta's, the local sandbox, or anything speaking the same HTTP.
    pub graph_url: String,
    pub api_version: String,
    /// The Meta app's id, for exchanging an Embedded Signup code (`META_APP_ID`; absent: the
    /// API onboards with pasted tokens only).
    pub app_id: Option<String>,
}

pub const DEFAULT_GRAPH_URL: &str = "https://graph.facebook.com";
pub const DEFAULT_GRAPH_API_VERSION: &str = "v23.0";

impl MetaConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let api_version = env.optional("META_API_VERSION").unwrap_or_else(|| DEFAULT_GRAPH_API_VERSION.into());
        if !api_version.starts_with('v') {
            return Err(ConfigError::Invalid {
                name: "META_API_VERSION",
                value: api_version,
                reason: "expected a Graph API version such as v23.0".into(),
            });
        }
        Ok(Self {
            graph_url: env
                .optional("META_GRAPH_URL")
                .unwrap_or_else(|| DEFAULT_GRAPH_URL.into())
                .trim_end_matches('/')
                .to_owned(),
            api_version,
            app_id: env.optional("META_APP_ID").filter(|id| !id.is_empty()),
        })
    }
}

/// Token vault: the KMS key that wraps the per-token data keys.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    pub kms_key_id: String,
}

impl VaultConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self { kms_key_id: env.required("KMS_KEY_ID", "the KMS key that wraps token data keys")? })
    }
}

/// EventBridge Scheduler: where Smart Retry puts its one-time schedules.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub group_name: String,
    pub role_arn: String,
    pub send_queue_arn: String,
    /// Where Scheduler parks a firing it could not deliver.
    pub dead_letter_arn: Option<String>,
}

impl SchedulerConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            group_name: env.required("SCHEDULE_GROUP", "the EventBridge Scheduler group for retries")?,
            role_arn: env.required("SCHEDULER_ROLE_ARN", "the IAM role Scheduler assumes to reach the send queue")?,
            send_queue_arn: env.required("SEND_QUEUE_ARN", "the ARN of the send queue, the retry schedules' target")?,
            dead_letter_arn: env.optional("SCHEDULE_DLQ_ARN"),
        })
    }
}

/// Where the flow engine parks its wake-ups (a wait's timeout, a delay's end): the standard
/// timer queue for up to 15 minutes (FIFO queues have no per-message delay), a one-time
/// Scheduler schedule into that queue beyond.
#[derive(Debug, Clone)]
pub struct FlowTimerConfig {
    pub timer_queue_url: String,
    pub timer_queue_arn: String,
    pub group_name: String,
    pub role_arn: String,
    pub dead_letter_arn: Option<String>,
}

impl FlowTimerConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            timer_queue_url: env.required("FLOW_TIMER_QUEUE_URL", "the SQS queue of delayed flow wake-ups")?,
            timer_queue_arn: env
                .required("FLOW_TIMER_QUEUE_ARN", "the ARN of the flow timer queue, long waits' target")?,
            group_name: env.required("SCHEDULE_GROUP", "the EventBridge Scheduler group for long waits")?,
            role_arn: env.required("SCHEDULER_ROLE_ARN", "the IAM role Scheduler assumes to reach the timer queue")?,
            dead_letter_arn: env.optional("SCHEDULE_DLQ_ARN"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_required_variable_is_named() {
        let err = StoreConfig::from_env(&Env::from_pairs::<&str, &str>([])).unwrap_err();
        assert_eq!(err.to_string(), "missing required environment variable TABLE_NAME (the DynamoDB table name)");
    }

    #[test]
    fn blank_counts_as_missing() {
        let err = StoreConfig::from_env(&Env::from_pairs([("TABLE_NAME", "  ")])).unwrap_err();
        assert!(matches!(err, ConfigError::Missing { name: "TABLE_NAME", .. }));
    }

    #[test]
    fn meta_defaults_to_the_real_graph_api() {
        let meta = MetaConfig::from_env(&Env::from_pairs::<&str, &str>([])).unwrap();
        assert_eq!(meta.graph_url, DEFAULT_GRAPH_URL);
        assert_eq!(meta.api_version, DEFAULT_GRAPH_API_VERSION);
    }

    #[test]
    fn the_graph_url_loses_its_trailing_slash() {
        let meta = MetaConfig::from_env(&Env::from_pairs([("META_GRAPH_URL", "http://127.0.0.1:3001/")])).unwrap();
        assert_eq!(meta.graph_url, "http://127.0.0.1:3001");
    }

    #[test]
    fn an_unparseable_number_says_which_variable() {
        let env = Env::from_pairs([("WEBHOOK_MAX_BODY_BYTES", "lots")]);
        let err = env.parsed_or("WEBHOOK_MAX_BODY_BYTES", 1usize).unwrap_err();
        assert!(err.to_string().contains("WEBHOOK_MAX_BODY_BYTES"));
    }
}
