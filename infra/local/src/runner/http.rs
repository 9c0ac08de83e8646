//! Local API Gateway: HTTP on localhost, turned into the same `lambda_http::Request` the
//! functions get in Lambda. Meta's webhook is at `/webhook`, the workspace API under `/v1/`,
//! and `/_local/` controls the local stack itself (the clock, schedules, the sweeper).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use futures_util::future::BoxFuture;
use http::StatusCode;
use lambda_http::Body;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use wapisnap::clock::{Clock, ControlledClock};

/// API Gateway's HTTP API refuses payloads above 10 MB before any function runs.
pub const API_GATEWAY_MAX_PAYLOAD: usize = 10 * 1024 * 1024;

pub type HttpHandler =
    Arc<dyn Fn(lambda_http::Request) -> BoxFuture<'static, lambda_http::Response<Body>> + Send + Sync>;
pub type LocalAction = Arc<dyn Fn() -> BoxFuture<'static, Result<serde_json::Value, String>> + Send + Sync>;

#[derive(Clone)]
pub struct Routes {
    pub webhook: HttpHandler,
    pub api: HttpHandler,
    pub clock: Arc<ControlledClock>,
    pub fire_schedules: LocalAction,
    pub sweep: LocalAction,
    /// Puts a send request (JSON) on the send queue, as the API, flows and broadcasts will.
    pub enqueue_send: Arc<dyn Fn(Bytes) -> BoxFuture<'static, Result<serde_json::Value, String>> + Send + Sync>,
}

pub async fn serve(listener: TcpListener, routes: Routes, mut shutdown: watch::Receiver<bool>) {
    let router = Router::new()
        .route("/webhook", any(webhook))
        .route("/v1/{*rest}", any(api))
        .route("/_local/clock", get(clock))
        .route("/_local/clock/advance", post(advance_clock))
        .route("/_local/schedules/fire", post(fire_schedules))
        .route("/_local/sweep", post(sweep))
        .route("/_local/send", post(enqueue_send))
        .with_state(routes);
    let stopped = async move {
        let _ = shutdown.changed().await;
    };
    if let Err(error) = axum::serve(listener, router).with_graceful_shutdown(stopped).await {
        tracing::error!(%error, "local HTTP server stopped");
    }
}

async fn webhook(State(routes): State<Routes>, request: Request) -> Response {
    invoke(&routes.webhook, request).await
}

async fn api(State(routes): State<Routes>, request: Request) -> Response {
    invoke(&routes.api, request).await
}

async fn invoke(handler: &HttpHandler, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    // API Gateway hands the function a fresh request: nothing of this local server's own
    // routing (its matched path parameters) may leak into the function's router.
    parts.extensions = Default::default();
    let Ok(bytes) = axum::body::to_bytes(body, API_GATEWAY_MAX_PAYLOAD).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large").into_response();
    };
    let response = handler(http::Request::from_parts(parts, lambda_body(bytes))).await;
    let (parts, body) = response.into_parts();
    let bytes: Vec<u8> = match body {
        Body::Empty => Vec::new(),
        Body::Text(text) => text.into_bytes(),
        Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// API Gateway hands text bodies over as text and anything else base64-encoded, which
/// lambda_http turns into `Body::Text` and `Body::Binary`.
fn lambda_body(bytes: Bytes) -> Body {
    if bytes.is_empty() {
        return Body::Empty;
    }
    match String::from_utf8(bytes.to_vec()) {
        Ok(text) => Body::Text(text),
        Err(e) => Body::Binary(e.into_bytes()),
    }
}

fn clock_json(clock: &ControlledClock) -> serde_json::Value {
    serde_json::json!({ "now": clock.now(), "offset_seconds": clock.offset().num_seconds() })
}

async fn clock(State(routes): State<Routes>) -> Response {
    axum::Json(clock_json(&routes.clock)).into_response()
}

#[derive(Deserialize)]
struct Advance {
    #[serde(default)]
    days: i64,
    #[serde(default)]
    hours: i64,
    #[serde(default)]
    minutes: i64,
    #[serde(default)]
    seconds: i64,
}

async fn advance_clock(State(routes): State<Routes>, body: Bytes) -> Response {
    let advance: Advance = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            let message = format!("expected {{\"days\"|\"hours\"|\"minutes\"|\"seconds\": n}}: {e}");
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    let by = chrono::Duration::days(advance.days)
        + chrono::Duration::hours(advance.hours)
        + chrono::Duration::minutes(advance.minutes)
        + chrono::Duration::seconds(advance.seconds);
    if by < chrono::Duration::zero() {
        return (StatusCode::BAD_REQUEST, "the clock only moves forward").into_response();
    }
    routes.clock.advance(by);
    axum::Json(clock_json(&routes.clock)).into_response()
}

async fn run_action(action: &LocalAction) -> Response {
    match action().await {
        Ok(value) => axum::Json(value).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error).into_response(),
    }
}

async fn fire_schedules(State(routes): State<Routes>) -> Response {
    run_action(&routes.fire_schedules).await
}

async fn sweep(State(routes): State<Routes>) -> Response {
    run_action(&routes.sweep).await
}

async fn enqueue_send(State(routes): State<Routes>, body: Bytes) -> Response {
    match (routes.enqueue_send)(body).await {
        Ok(value) => (StatusCode::ACCEPTED, axum::Json(value)).into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, error).into_response(),
    }
}
