//! The webhook function: Meta's deliveries (WhatsApp and Instagram) arrive here through its
//! Lambda function URL (payload format 2.0; no API Gateway in front, and no AWS authentication:
//! Meta cannot sign AWS requests). `GET` is the subscription handshake, checked against the
//! verify token; `POST` carries messages and statuses, which are authenticated by their
//! `X-Hub-Signature-256`, then stored exactly once before Meta gets its 200. Any path is
//! answered alike (a function URL passes every path; Meta is given `/webhook`).

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use wapisnap::aws::AwsClients;
use wapisnap::clock::SharedClock;
use wapisnap::config::{ConfigError, Env, QueueConfig, StoreConfig};
use wapisnap::inbound::receiver::Receiver;
use wapisnap::lambda::http::{HttpError, query_pairs, respond, text};
use wapisnap::meta::handshake::{HandshakeError, verify_subscription};
use wapisnap::meta::signature::verify_signature;
use wapisnap::queues::Queues;
use wapisnap::secrets::{MetaSecretsConfig, MetaSecretsSource};
use wapisnap::store::Store;

/// Parsing a delivery is allocation-heavy: mimalloc serves it several times faster than the
/// system allocator (see `make bench-peers`). Declared here, the binary links it.
#[global_allocator]
static ALLOCATOR: wapisnap::inbound::Allocator = wapisnap::inbound::Allocator;

/// Meta's own maximum is 3 MB; anything much larger is not from Meta.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Config {
    pub secrets: MetaSecretsConfig,
    pub store: StoreConfig,
    pub queues: QueueConfig,
    pub max_body_bytes: usize,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            secrets: MetaSecretsConfig::from_env(env)?,
            store: StoreConfig::from_env(env)?,
            queues: QueueConfig::from_env(env)?,
            max_body_bytes: env.parsed_or("WEBHOOK_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?,
        })
    }
}

pub struct Webhook {
    config: Config,
    secrets: MetaSecretsSource,
    receiver: Receiver,
}

impl Webhook {
    /// `secrets_manager` is the only client that reads the Meta app secret; no other function
    /// is given one.
    pub fn new(
        config: Config,
        aws: &AwsClients,
        secrets_manager: aws_sdk_secretsmanager::Client,
        clock: SharedClock,
    ) -> Self {
        Self::with_clients(config, aws.dynamodb.clone(), aws.sqs.clone(), secrets_manager, clock)
    }

    /// With only the AWS clients the webhook uses (its Lambda builds, and so links, no other).
    pub fn with_clients(
        config: Config,
        dynamodb: wapisnap::aws::aws_sdk_dynamodb::Client,
        sqs: wapisnap::aws::aws_sdk_sqs::Client,
        secrets_manager: aws_sdk_secretsmanager::Client,
        clock: SharedClock,
    ) -> Self {
        let store = Store::new(dynamodb, &config.store.table_name);
        let queues = Queues::new(sqs, config.queues.clone());
        let secrets = MetaSecretsSource::new(secrets_manager, config.secrets.clone(), clock.clone());
        Self { receiver: Receiver::new(store, queues, clock), secrets, config }
    }

    pub async fn handle(&self, request: Request) -> Response<Body> {
        respond(match *request.method() {
            Method::GET => self.handshake(&request).await,
            Method::POST => self.delivery(&request).await,
            _ => Err(HttpError::method_not_allowed("the webhook accepts GET (handshake) and POST (deliveries)")),
        })
    }

    async fn handshake(&self, request: &Request) -> Result<Response<Body>, HttpError> {
        let secrets = self.secrets.current().await.map_err(secrets_unavailable)?;
        let challenge =
            verify_subscription(&query_pairs(request.uri()), &secrets.verify_tokens).map_err(|e| match e {
                HandshakeError::WrongToken => HttpError::new(StatusCode::FORBIDDEN, "forbidden", e.to_string()),
                HandshakeError::Missing(_) | HandshakeError::WrongMode(_) => HttpError::bad_request(e.to_string()),
            })?;
        tracing::info!("webhook subscription verified");
        Ok(text(StatusCode::OK, challenge))
    }

    async fn delivery(&self, request: &Request) -> Result<Response<Body>, HttpError> {
        let body: &[u8] = request.body().as_ref();
        // Size first: never spend an HMAC on a body Meta would not send.
        if body.len() > self.config.max_body_bytes {
            wapisnap::metrics::webhook_delivery("too_large");
            return Err(HttpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is {} bytes; the limit is {}", body.len(), self.config.max_body_bytes),
            ));
        }
        let signature = request.headers().get("x-hub-signature-256").and_then(|v| v.to_str().ok());
        let secrets = self.secrets.current().await.map_err(secrets_unavailable)?;
        if let Err(mismatch) = verify_signature(signature, body, &secrets.app_secrets) {
            // A rotation may have landed since the last read: look once more before refusing.
            let rotated = self.secrets.refreshed_after_mismatch().await;
            if rotated.is_none_or(|rotated| verify_signature(signature, body, &rotated.app_secrets).is_err()) {
                // A spike is a wrong app secret (every delivery refused) or an attack: it alarms.
                wapisnap::metrics::webhook_delivery("bad_signature");
                return Err(HttpError::new(StatusCode::UNAUTHORIZED, "invalid_signature", mismatch.to_string()));
            }
        }
        let receipt = self.receiver.receive(body).await.map_err(|e| {
            // 5xx: Meta redelivers, and the redelivery completes what this attempt could not.
            HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "not_stored", format!("delivery not fully stored: {e}"))
        })?;
        wapisnap::metrics::webhook_delivery("accepted");
        tracing::info!(
            stored = receipt.messages_stored,
            duplicates = receipt.duplicates,
            statuses = receipt.statuses_applied,
            retries = receipt.failures_handed_to_retry,
            unrouted = receipt.unrouted,
            "webhook delivery stored"
        );
        Ok(text(StatusCode::OK, "EVENT_RECEIVED"))
    }
}

/// 503: Meta redelivers later, by when Secrets Manager may answer again.
fn secrets_unavailable(error: wapisnap::secrets::SecretsError) -> HttpError {
    tracing::error!(%error, "webhook cannot verify deliveries");
    HttpError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "secrets_unavailable",
        "the webhook's secrets cannot be read; retry later",
    )
}
