//! The webhook function: Meta's deliveries (WhatsApp and Instagram) arrive here through API
//! Gateway. `GET` is the subscription handshake; `POST` carries messages and statuses.

use lambda_http::{Body, Request, Response};
use wapisnap::config::{ConfigError, Env, MetaConfig};
use wapisnap::lambda::http::{HttpError, query_pairs, respond, text};
use wapisnap::meta::handshake::{HandshakeError, verify_subscription};

#[derive(Debug, Clone)]
pub struct Config {
    pub meta: MetaConfig,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self { meta: MetaConfig::from_env(env)? })
    }
}

pub struct Webhook {
    config: Config,
}

impl Webhook {
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    pub async fn handle(&self, request: Request) -> Response<Body> {
        respond(match *request.method() {
            http::Method::GET => self.handshake(&request),
            http::Method::POST => Err(HttpError::not_implemented(
                "storing Meta's webhook deliveries is not built yet; the delivery was not stored, so Meta will retry it",
            )),
            _ => Err(HttpError::method_not_allowed("the webhook accepts GET (handshake) and POST (deliveries)")),
        })
    }

    fn handshake(&self, request: &Request) -> Result<Response<Body>, HttpError> {
        let challenge =
            verify_subscription(&query_pairs(request.uri()), &self.config.meta.verify_token).map_err(|e| match e {
                HandshakeError::WrongToken => HttpError::new(http::StatusCode::FORBIDDEN, "forbidden", e.to_string()),
                HandshakeError::Missing(_) | HandshakeError::WrongMode(_) => HttpError::bad_request(e.to_string()),
            })?;
        tracing::info!("webhook subscription verified");
        Ok(text(http::StatusCode::OK, challenge))
    }
}
