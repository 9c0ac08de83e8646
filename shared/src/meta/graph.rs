//! The Graph API client: one `reqwest` client per cold start (connections reused), base URL
//! and version from configuration (Meta, the local sandbox, or anything speaking the same
//! HTTP), timeouts on every call, and Meta's error body parsed into a typed error.
//!
//! The access token travels only in the `Authorization` header, never in a URL, and is never
//! logged. Errors say whether the request may have reached Meta: `NotSent` is safe to repeat,
//! `NoAnswer` is not — Meta may have accepted the message, so the send is UNCERTAIN.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use crate::config::MetaConfig;

/// Meta's error, as its JSON body describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaError {
    pub http_status: u16,
    pub code: i64,
    pub subcode: Option<i64>,
    pub message: String,
    pub details: Option<String>,
    pub fbtrace_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("Meta refused the call (HTTP {}, code {}): {}", .0.http_status, .0.code, .0.message)]
    Meta(MetaError),
    #[error("HTTP {status} from the Graph API without Meta's error body")]
    Http { status: u16 },
    #[error("the request never reached Meta: {0}")]
    NotSent(String),
    #[error("no answer from Meta after the request was sent: {0}")]
    NoAnswer(String),
    #[error("Meta answered {status} but the answer is not understood: {reason}")]
    UnreadableAnswer { status: u16, reason: String },
}

impl GraphError {
    /// Whether Meta may have processed the request although we have no answer that says so:
    /// no answer at all, an answer we cannot read, or a 5xx without Meta's error body (a
    /// gateway's 502/504 says nothing about what happened behind it). Such a send is
    /// "maybe sent", never "not sent": `/messages` has no idempotency key, so a resend could
    /// deliver the message twice.
    pub fn maybe_processed(&self) -> bool {
        match self {
            Self::NoAnswer(_) | Self::UnreadableAnswer { .. } => true,
            Self::Http { status } => *status >= 500,
            Self::Meta(_) | Self::NotSent(_) => false,
        }
    }

    /// Meta's error code and the HTTP status, for classification.
    pub fn code_and_status(&self) -> (Option<i64>, Option<u16>) {
        match self {
            Self::Meta(e) => (Some(e.code), Some(e.http_status)),
            Self::Http { status } | Self::UnreadableAnswer { status, .. } => (None, Some(*status)),
            Self::NotSent(_) | Self::NoAnswer(_) => (None, None),
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorFields,
}

#[derive(Deserialize)]
struct ErrorFields {
    code: i64,
    #[serde(default)]
    error_subcode: Option<i64>,
    #[serde(default)]
    message: String,
    #[serde(default)]
    error_data: Option<Value>,
    #[serde(default)]
    fbtrace_id: Option<String>,
}

/// A request that got no answer: refused before it left (safe to repeat) or lost after. The
/// URL is cut from the text: a code exchange carries the app secret in its query.
fn unanswered(e: reqwest::Error) -> GraphError {
    let e = e.without_url();
    if e.is_connect() { GraphError::NotSent(e.to_string()) } else { GraphError::NoAnswer(e.to_string()) }
}

/// The timeout of one Graph call. Lambda must still have time to record the outcome.
pub const GRAPH_TIMEOUT: Duration = Duration::from_secs(10);

/// Meta's answer to an accepted send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub wamid: crate::domain::MessageId,
    /// The customer's WhatsApp id as Meta knows it (`contacts[0].wa_id`; WhatsApp only).
    pub wa_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct GraphClient {
    // Built on first use (its TLS set-up is most of a cold start's init otherwise) and shared
    // by every clone, so a container builds it once.
    http: std::sync::Arc<std::sync::OnceLock<reqwest::Client>>,
    base_url: String,
    version: String,
    timeout: Duration,
}

impl GraphClient {
    pub fn new(config: &MetaConfig) -> Self {
        Self::with_timeout(config, GRAPH_TIMEOUT)
    }

    pub fn with_timeout(config: &MetaConfig, timeout: Duration) -> Self {
        Self {
            http: Default::default(),
            base_url: config.graph_url.clone(),
            version: config.api_version.clone(),
            timeout,
        }
    }

    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(3))
                .timeout(self.timeout)
                .user_agent("wapisnap/1")
                .build()
                .expect("the HTTP client builds")
        })
    }

    /// `POST /{version}/{sender}/messages`; returns Meta's id for the message.
    pub async fn send_message(
        &self,
        sender_id: &str,
        token: &SecretString,
        body: &Value,
    ) -> Result<SentMessage, GraphError> {
        let url = format!("{}/{}/{sender_id}/messages", self.base_url, self.version);
        let answer = self.post(&url, token, body).await?;
        let wamid = answer["messages"][0]["id"]
            .as_str()
            .or_else(|| answer["message_id"].as_str())
            .and_then(|id| crate::domain::MessageId::parse(id).ok())
            .ok_or_else(|| GraphError::UnreadableAnswer { status: 200, reason: "no usable message id".into() })?;
        let wa_id = answer["contacts"][0]["wa_id"].as_str().map(str::to_owned);
        Ok(SentMessage { wamid, wa_id })
    }

    /// How long one call may take, at most.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The URL of a Graph API path (`{phone-number-id}/register`, `{waba-id}/subscribed_apps`).
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}/{}/{path}", self.base_url, self.version)
    }

    /// A GET of the Graph API (a number's status, a WABA's templates).
    pub async fn get(&self, url: &str, token: &SecretString) -> Result<Value, GraphError> {
        let response = self.http().get(url).bearer_auth(token.expose_secret()).send().await.map_err(unanswered)?;
        Self::answer(response).await
    }

    /// Embedded Signup: exchanges the code the business's browser got from Meta for a business
    /// integration token (`GET /oauth/access_token`, authenticated by the app id and secret).
    pub async fn exchange_code(
        &self,
        app_id: &str,
        app_secret: &SecretString,
        code: &str,
    ) -> Result<SecretString, GraphError> {
        let url = self.endpoint("oauth/access_token");
        let query = [("client_id", app_id), ("client_secret", app_secret.expose_secret()), ("code", code)];
        let response = self.http().get(&url).query(&query).send().await.map_err(unanswered)?;
        let answer = Self::answer(response).await?;
        answer["access_token"]
            .as_str()
            .map(SecretString::from)
            .ok_or_else(|| GraphError::UnreadableAnswer { status: 200, reason: "no access_token".into() })
    }

    /// The app's webhook subscriptions (`GET /{app-id}/subscriptions`, with the app's own token
    /// `{app-id}|{app-secret}`): the callback URL and fields Meta has for the app.
    pub async fn app_subscriptions(&self, app_id: &str, app_secret: &SecretString) -> Result<Value, GraphError> {
        let app_token = SecretString::from(format!("{app_id}|{}", app_secret.expose_secret()));
        self.get(&self.endpoint(&format!("{app_id}/subscriptions")), &app_token).await
    }

    /// Any other POST to the Graph API (register, deregister, codes, subscriptions, ...).
    pub async fn post(&self, url: &str, token: &SecretString, body: &Value) -> Result<Value, GraphError> {
        let response =
            self.http().post(url).bearer_auth(token.expose_secret()).json(body).send().await.map_err(unanswered)?;
        Self::answer(response).await
    }

    /// Meta's answer: its JSON on 2xx, its typed error otherwise.
    async fn answer(response: reqwest::Response) -> Result<Value, GraphError> {
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| GraphError::NoAnswer(e.without_url().to_string()))?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes)
                .map_err(|e| GraphError::UnreadableAnswer { status, reason: e.to_string() });
        }
        // Meta's error is `{"error": {...}}`; serde would also read `{"error": [code, ...]}`
        // as that struct, and an unexplained 5xx must stay "maybe sent", not become Meta's code.
        let parsed = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(|v| v.get("error").is_some_and(Value::is_object))
            .and_then(|v| serde_json::from_value::<ErrorBody>(v).ok());
        match parsed.ok_or(()) {
            Ok(ErrorBody { error }) => Err(GraphError::Meta(MetaError {
                http_status: status,
                code: error.code,
                subcode: error.error_subcode,
                message: error.message,
                details: error.error_data.as_ref().and_then(|d| d["details"].as_str()).map(str::to_owned),
                fbtrace_id: error.fbtrace_id,
            })),
            Err(_) => Err(GraphError::Http { status }),
        }
    }
}
