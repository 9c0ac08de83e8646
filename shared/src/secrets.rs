//! The Meta app secret and webhook verify token, kept in AWS Secrets Manager rather than in
//! the functions' environment.
//!
//! One secret holds both, as JSON: `{"appSecret": "…", "verifyToken": "…"}`. A rotation is a
//! new secret value (`put-secret-value`): Secrets Manager then labels the old value
//! `AWSPREVIOUS`, and both verify until the next rotation, so the operator can change the
//! secret in Meta's App Dashboard after (or before) the new value is stored without a refused
//! delivery. Values are read on first use after a cold start, re-read every
//! `META_SECRET_REFRESH_SECONDS` (5 minutes by default), and re-read early when a signature
//! matches neither (at most every 30 seconds, so a flood of forged deliveries cannot turn into
//! a flood of Secrets Manager calls). When a refresh fails the last values keep working.

use std::sync::Arc;

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::clock::SharedClock;
use crate::config::{ConfigError, Env};

pub const DEFAULT_REFRESH_SECONDS: i64 = 300;
/// The earliest a signature mismatch may cause another read.
pub const MISMATCH_REFRESH_SECONDS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("the Meta secrets could not be read from Secrets Manager: {0}")]
    Unavailable(String),
    #[error("the Meta secret {stage} is not the expected JSON ({{\"appSecret\": …, \"verifyToken\": …}}): {reason}")]
    Malformed { stage: &'static str, reason: String },
}

/// The values in force: the current ones first, then the previous ones during a rotation.
#[derive(Clone)]
pub struct MetaSecrets {
    pub app_secrets: Vec<SecretString>,
    pub verify_tokens: Vec<SecretString>,
}

impl MetaSecrets {
    /// The current app secret (Embedded Signup's code exchange signs with it).
    pub fn app_secret(&self) -> &SecretString {
        &self.app_secrets[0]
    }

    fn same_as(&self, other: &MetaSecrets) -> bool {
        let exposed = |values: &[SecretString]| values.iter().map(|s| s.expose_secret().to_owned()).collect::<Vec<_>>();
        exposed(&self.app_secrets) == exposed(&other.app_secrets)
            && exposed(&self.verify_tokens) == exposed(&other.verify_tokens)
    }
}

impl std::fmt::Debug for MetaSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetaSecrets({} app secrets, {} verify tokens)", self.app_secrets.len(), self.verify_tokens.len())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SecretValue {
    app_secret: String,
    verify_token: String,
}

/// The secret's JSON value, checked: both fields present and not empty.
pub fn parse_secret_value(stage: &'static str, json: &str) -> Result<(SecretString, SecretString), SecretsError> {
    let value: SecretValue = serde_json::from_str(json)
        .map_err(|e| SecretsError::Malformed { stage, reason: e.to_string().replace(json, "…") })?;
    for (field, text) in [("appSecret", &value.app_secret), ("verifyToken", &value.verify_token)] {
        if text.trim().is_empty() {
            return Err(SecretsError::Malformed { stage, reason: format!("{field} is empty") });
        }
    }
    Ok((SecretString::from(value.app_secret), SecretString::from(value.verify_token)))
}

/// Joins the current and (during a rotation) previous values; a previous value equal to the
/// current one is not listed twice.
pub fn combine(current: (SecretString, SecretString), previous: Option<(SecretString, SecretString)>) -> MetaSecrets {
    let mut secrets = MetaSecrets { app_secrets: vec![current.0], verify_tokens: vec![current.1] };
    if let Some((app_secret, verify_token)) = previous {
        if app_secret.expose_secret() != secrets.app_secrets[0].expose_secret() {
            secrets.app_secrets.push(app_secret);
        }
        if verify_token.expose_secret() != secrets.verify_tokens[0].expose_secret() {
            secrets.verify_tokens.push(verify_token);
        }
    }
    secrets
}

/// Whether values read at `fetched_at` are due for a re-read at `now`.
pub fn is_due(fetched_at: DateTime<Utc>, now: DateTime<Utc>, every: Duration) -> bool {
    now - fetched_at >= every
}

/// Where the secret is and how often it is re-read.
#[derive(Debug, Clone)]
pub struct MetaSecretsConfig {
    /// `META_SECRET_ARN`: the Secrets Manager secret (its ARN or name).
    pub secret_id: String,
    pub refresh_every: Duration,
}

impl MetaSecretsConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            secret_id: env.required("META_SECRET_ARN", "the Secrets Manager secret with the Meta app secret")?,
            refresh_every: Duration::seconds(env.parsed_or("META_SECRET_REFRESH_SECONDS", DEFAULT_REFRESH_SECONDS)?),
        })
    }
}

struct Loaded {
    secrets: Arc<MetaSecrets>,
    fetched_at: DateTime<Utc>,
}

/// The Meta secrets of one container: read once, shared by every invocation, refreshed on a
/// schedule.
pub struct MetaSecretsSource {
    client: aws_sdk_secretsmanager::Client,
    config: MetaSecretsConfig,
    clock: SharedClock,
    // One reader at a time: concurrent invocations of a cold container wait for one read.
    loaded: Mutex<Option<Loaded>>,
}

impl MetaSecretsSource {
    pub fn new(client: aws_sdk_secretsmanager::Client, config: MetaSecretsConfig, clock: SharedClock) -> Self {
        Self { client, config, clock, loaded: Mutex::new(None) }
    }

    /// The values in force, read when none are held or they are due for a refresh. A failed
    /// refresh keeps the values held (logged); a failed first read is an error.
    pub async fn current(&self) -> Result<Arc<MetaSecrets>, SecretsError> {
        self.read_if_older_than(self.config.refresh_every).await
    }

    /// After a signature matched none of the held secrets: re-reads when the values are older
    /// than 30 seconds, and returns the new values only when they differ (a rotation landed).
    pub async fn refreshed_after_mismatch(&self) -> Option<Arc<MetaSecrets>> {
        let before = self.loaded.lock().await.as_ref().map(|loaded| loaded.secrets.clone());
        let after = self.read_if_older_than(Duration::seconds(MISMATCH_REFRESH_SECONDS)).await.ok()?;
        match before {
            Some(before) if before.same_as(&after) => None,
            _ => Some(after),
        }
    }

    async fn read_if_older_than(&self, age: Duration) -> Result<Arc<MetaSecrets>, SecretsError> {
        let mut loaded = self.loaded.lock().await;
        let now = self.clock.now();
        if let Some(held) = loaded.as_ref()
            && !is_due(held.fetched_at, now, age)
        {
            return Ok(held.secrets.clone());
        }
        match self.read().await {
            Ok(secrets) => {
                let secrets = Arc::new(secrets);
                *loaded = Some(Loaded { secrets: secrets.clone(), fetched_at: now });
                Ok(secrets)
            }
            Err(error) => match loaded.as_mut() {
                Some(held) => {
                    tracing::warn!(%error, "Meta secrets not refreshed; the values held keep working");
                    // Not again on every request: the next try is one refresh period away.
                    held.fetched_at = now;
                    Ok(held.secrets.clone())
                }
                None => Err(error),
            },
        }
    }

    async fn read(&self) -> Result<MetaSecrets, SecretsError> {
        let (current, previous) = tokio::join!(self.stage("AWSCURRENT"), self.stage("AWSPREVIOUS"));
        let current = current?.ok_or_else(|| SecretsError::Unavailable("the secret has no current value".into()))?;
        // A broken previous value must not stop the current one from verifying.
        let previous = match previous {
            Ok(previous) => previous,
            Err(error) => {
                tracing::warn!(%error, "the previous Meta secret is ignored");
                None
            }
        };
        crate::metrics::secrets_read();
        Ok(combine(current, previous))
    }

    async fn stage(&self, stage: &'static str) -> Result<Option<(SecretString, SecretString)>, SecretsError> {
        let answer = self.client.get_secret_value().secret_id(&self.config.secret_id).version_stage(stage).send().await;
        match answer {
            Ok(output) => match output.secret_string() {
                Some(json) => parse_secret_value(stage, json).map(Some),
                None => Err(SecretsError::Malformed { stage, reason: "the secret holds binary, not JSON".into() }),
            },
            // No AWSPREVIOUS until the first rotation.
            Err(error)
                if stage != "AWSCURRENT"
                    && error.as_service_error().is_some_and(|e| e.code() == Some("ResourceNotFoundException")) =>
            {
                Ok(None)
            }
            Err(error) => Err(SecretsError::Unavailable(match error.as_service_error() {
                Some(service) => format!(
                    "{}: {}",
                    service.code().unwrap_or("UnknownError"),
                    service.message().unwrap_or("no message")
                ),
                None => aws_sdk_secretsmanager::error::DisplayErrorContext(&error).to_string(),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(app: &str, token: &str) -> (SecretString, SecretString) {
        (SecretString::from(app), SecretString::from(token))
    }

    #[test]
    fn the_secret_is_json_with_the_app_secret_and_the_verify_token() {
        let (app, token) = parse_secret_value("AWSCURRENT", r#"{"appSecret":"s3cret","verifyToken":"tok"}"#).unwrap();
        assert_eq!((app.expose_secret(), token.expose_secret()), ("s3cret", "tok"));
    }

    #[test]
    fn a_malformed_secret_says_what_is_wrong_without_echoing_it() {
        let error = parse_secret_value("AWSCURRENT", r#"{"appSecret":"s3cret"}"#).unwrap_err().to_string();
        assert!(error.contains("verifyToken"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        let error = parse_secret_value("AWSCURRENT", "s3cret-as-plain-text").unwrap_err().to_string();
        assert!(!error.contains("s3cret"), "{error}");
        let error = parse_secret_value("AWSCURRENT", r#"{"appSecret":" ","verifyToken":"t"}"#).unwrap_err();
        assert!(error.to_string().contains("appSecret is empty"));
    }

    #[test]
    fn during_a_rotation_the_current_values_come_first_and_the_previous_still_count() {
        let secrets = combine(pair("new", "token"), Some(pair("old", "token")));
        let apps: Vec<_> = secrets.app_secrets.iter().map(|s| s.expose_secret().to_owned()).collect();
        assert_eq!(apps, ["new", "old"]);
        assert_eq!(secrets.verify_tokens.len(), 1, "an unchanged token is listed once");
        assert_eq!(secrets.app_secret().expose_secret(), "new");
        assert_eq!(combine(pair("only", "t"), None).app_secrets.len(), 1);
    }

    #[test]
    fn values_are_re_read_once_their_refresh_period_has_passed() {
        let read = DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z").unwrap().with_timezone(&Utc);
        assert!(!is_due(read, read + Duration::seconds(299), Duration::seconds(300)));
        assert!(is_due(read, read + Duration::seconds(300), Duration::seconds(300)));
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let shown = format!("{:?}", combine(pair("s3cret", "tok3n"), None));
        assert!(!shown.contains("s3cret") && !shown.contains("tok3n"), "{shown}");
    }
}
