//! The workspace REST API under `/v1/`: numbers, contacts, conversations and the inbox
//! composer, automations, templates and broadcasts.

use std::sync::Arc;

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use wapisnap::clock::Clock;
use wapisnap::config::{ConfigError, Env, StoreConfig};
use wapisnap::lambda::http::{HttpError, json, respond};

#[derive(Debug, Clone)]
pub struct Config {
    pub store: StoreConfig,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self { store: StoreConfig::from_env(env)? })
    }
}

pub struct Api {
    config: Config,
    clock: Arc<dyn Clock>,
}

impl Api {
    pub fn new(config: Config, clock: Arc<dyn Clock>) -> Self {
        Self { config, clock }
    }

    pub async fn handle(&self, request: Request) -> Response<Body> {
        respond(self.route(&request))
    }

    fn route(&self, request: &Request) -> Result<Response<Body>, HttpError> {
        let path = request.uri().path().trim_end_matches('/');
        match (request.method(), path) {
            (&Method::GET, "/v1/health") => Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "status": "ok", "table": self.config.store.table_name, "now": self.clock.now() }),
            )),
            (_, p) if p.starts_with("/v1/") => {
                Err(HttpError::not_implemented(format!("{} {p} is not built yet", request.method())))
            }
            _ => Err(HttpError::not_found(format!("no route {path}: the workspace API lives under /v1/"))),
        }
    }
}
