//! The workspace REST API under `/v1/`: an `axum` Router (the same one in Lambda, through
//! `lambda_http`, and on the local stack), its OpenAPI 3.1 document generated from the
//! handlers' own types (served at `/v1/openapi.json`, checked in at `docs/openapi.json`), one
//! error shape, one API key per request deciding the workspace.

pub mod error;
pub mod extract;
pub mod limits;
pub mod routes;
pub mod state;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use lambda_http::{Body, Request, Response};
use tower::ServiceExt;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use wapisnap::aws::AwsClients;
use wapisnap::clock::SharedClock;
use wapisnap::config::{ConfigError, Env, MetaConfig, QueueConfig, StoreConfig, VaultConfig};
use wapisnap::meta::graph::GraphClient;
use wapisnap::queues::Queues;
use wapisnap::secrets::{MetaSecretsConfig, MetaSecretsSource};
use wapisnap::store::Store;
use wapisnap::vault::Vault;

use crate::error::ApiError;
use crate::state::{ApiState, BroadcastScheduling, Shared};

#[derive(Debug, Clone)]
pub struct Config {
    pub store: StoreConfig,
    pub queues: QueueConfig,
    pub vault: VaultConfig,
    pub meta: MetaConfig,
    /// The Meta app secret's secret (`META_SECRET_ARN`): Embedded Signup's code exchange and
    /// the diagnostics' subscription check sign with it. Absent: neither is available.
    pub secrets: Option<MetaSecretsConfig>,
    /// Requests per second one workspace may make (per container), `API_WORKSPACE_RATE`.
    pub workspace_rate: u32,
    /// Where a broadcast's start is scheduled.
    pub broadcasts: BroadcastScheduling,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            store: StoreConfig::from_env(env)?,
            queues: QueueConfig::from_env(env)?,
            vault: VaultConfig::from_env(env)?,
            meta: MetaConfig::from_env(env)?,
            secrets: match env.optional("META_SECRET_ARN") {
                Some(_) => Some(MetaSecretsConfig::from_env(env)?),
                None => None,
            },
            workspace_rate: env.parsed_or("API_WORKSPACE_RATE", 50)?,
            broadcasts: BroadcastScheduling::from_env(env)?,
        })
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "wapisnap workspace API", version = "1", description = "Numbers, the shared inbox, contacts, templates, automations, broadcasts and send jobs of one workspace. Every route but /v1/health takes `Authorization: Bearer <API key>`; the key decides the workspace."),
    tags((name = "numbers"), (name = "inbox"), (name = "contacts"), (name = "templates"), (name = "automations"), (name = "broadcasts"), (name = "health"))
)]
struct ApiDoc;

/// The API's OpenAPI document, built from the handlers' own declarations; checked in as
/// `docs/openapi.json`, which is what the function serves.
pub fn openapi() -> OpenApi {
    use utoipa::OpenApi as _;
    let (_, mut doc) =
        routes::every_resource!(OpenApiRouter::<Shared>::with_openapi(ApiDoc::openapi()), documented).split_for_parts();
    doc.components.get_or_insert_with(Default::default).add_security_scheme(
        "api_key",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("wsk_…").build()),
    );
    doc
}

/// `openapi()` as checked in: a test keeps the two equal.
const OPENAPI_DOCUMENT: &str = include_str!("../../../docs/openapi.json");

pub fn router(state: ApiState) -> Router {
    routes::every_resource!(Router::<Shared>::new(), served)
        .route(
            "/v1/openapi.json",
            axum::routing::get(|| async {
                ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI_DOCUMENT)
            }),
        )
        .fallback(|| async {
            ApiError::not_found("no such route; the workspace API lives under /v1/ (see /v1/openapi.json)")
        })
        .with_state(Arc::new(state))
        .layer(axum::middleware::from_fn(correlated))
}

/// Each request starts a chain of work (its sends carry the id to the sender and Smart Retry);
/// the id comes back in `x-correlation-id`, for a support request to quote.
async fn correlated(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let id = wapisnap::correlation::fresh();
    let header = axum::http::HeaderValue::from_str(id.as_str()).ok();
    let mut response = wapisnap::correlation::scope(Some(id), next.run(request)).await;
    if let Some(header) = header {
        response.headers_mut().insert("x-correlation-id", header);
    }
    response
}

/// The API as one value: built once per cold start, handed requests by Lambda or the local stack.
pub struct Api {
    router: Router,
}

impl Api {
    pub fn new(
        config: Config,
        aws: &AwsClients,
        secrets_manager: aws_sdk_secretsmanager::Client,
        graph: GraphClient,
        clock: SharedClock,
    ) -> Self {
        let state = ApiState {
            store: Store::new(aws.dynamodb.clone(), &config.store.table_name),
            queues: Queues::new(aws.sqs.clone(), config.queues.clone()),
            vault: Vault::new(aws.kms.clone(), &config.vault.kms_key_id),
            graph,
            clock: clock.clone(),
            limiter: limits::WorkspaceLimiter::new(config.workspace_rate),
            app_id: config.meta.app_id.clone(),
            meta_secrets: config.secrets.map(|secrets| MetaSecretsSource::new(secrets_manager, secrets, clock.clone())),
            scheduler: aws.scheduler.clone(),
            broadcasts: config.broadcasts,
        };
        Self { router: router(state) }
    }

    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// One request, as the local stack's API Gateway hands it over.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        match axum::body::to_bytes(body, 16 * 1024 * 1024).await {
            Ok(bytes) => Response::from_parts(parts, Body::Binary(bytes.to_vec())),
            Err(_) => {
                let mut failed = Response::new(Body::Empty);
                *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                failed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in document is the code's: regenerate with
    /// `UPDATE_OPENAPI=1 cargo test -p wapisnap-api openapi`.
    #[test]
    fn the_checked_in_openapi_document_matches_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let generated = openapi().to_pretty_json().expect("the document serializes") + "\n";
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).expect("docs/openapi.json written");
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "docs/openapi.json differs from the code: run `UPDATE_OPENAPI=1 cargo test -p wapisnap-api openapi`"
        );
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_route() {
        let doc = serde_json::to_value(openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        for path in [
            "/v1/health",
            "/v1/numbers",
            "/v1/numbers/{id}/register",
            "/v1/conversations/{id}/messages",
            "/v1/automations",
            "/v1/automations/{id}/enable",
            "/v1/conversations/{id}/automation-runs",
            "/v1/broadcasts",
            "/v1/broadcasts/{id}",
            "/v1/broadcasts/{id}/cancel",
            "/v1/broadcasts/{id}/report.csv",
            "/v1/numbers/{id}/throughput",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path}");
        }
    }
}
