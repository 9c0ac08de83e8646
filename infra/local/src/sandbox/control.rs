//! The sandbox's own control API, for people and scripts (`make dev`, `make demo`): read what
//! was received, inject failures, set a number's throughput, point webhooks at our stack, play
//! customers and statuses.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http::StatusCode;
use serde_json::json;

use super::{Fault, InboundText, SandboxState, StatusUpdate, WebhookTarget};

pub fn router() -> Router<Arc<SandboxState>> {
    Router::new()
        .route("/_sandbox/requests", get(requests).delete(clear_requests))
        .route("/_sandbox/faults", post(add_fault).delete(clear_faults))
        .route("/_sandbox/webhook", put(set_webhook))
        .route("/_sandbox/inbound", post(inbound))
        .route("/_sandbox/statuses", post(status))
        .route("/_sandbox/numbers/{id}", get(number))
        .route("/_sandbox/throughput", post(set_throughput))
}

async fn requests(State(state): State<Arc<SandboxState>>) -> Response {
    Json(state.requests.lock().expect("requests").clone()).into_response()
}

async fn clear_requests(State(state): State<Arc<SandboxState>>) -> StatusCode {
    state.requests.lock().expect("requests").clear();
    StatusCode::NO_CONTENT
}

async fn add_fault(State(state): State<Arc<SandboxState>>, Json(fault): Json<Fault>) -> StatusCode {
    state.faults.lock().expect("faults").push(fault);
    StatusCode::CREATED
}

async fn clear_faults(State(state): State<Arc<SandboxState>>) -> StatusCode {
    state.faults.lock().expect("faults").clear();
    StatusCode::NO_CONTENT
}

async fn set_webhook(State(state): State<Arc<SandboxState>>, Json(target): Json<WebhookTarget>) -> StatusCode {
    *state.webhook.lock().expect("webhook") = Some(target);
    StatusCode::NO_CONTENT
}

async fn inbound(State(state): State<Arc<SandboxState>>, Json(message): Json<InboundText>) -> Response {
    match state.post_inbound_text(&message).await {
        Ok((wamid, answered)) => Json(json!({ "wamid": wamid, "webhook_answered": answered })).into_response(),
        Err(error) => (StatusCode::BAD_GATEWAY, error).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct StatusRequest {
    phone_number_id: String,
    #[serde(flatten)]
    update: StatusUpdate,
}

async fn status(State(state): State<Arc<SandboxState>>, Json(request): Json<StatusRequest>) -> Response {
    match state.post_status(&request.phone_number_id, &request.update).await {
        Ok(answered) => Json(json!({ "webhook_answered": answered })).into_response(),
        Err(error) => (StatusCode::BAD_GATEWAY, error).into_response(),
    }
}

async fn number(State(state): State<Arc<SandboxState>>, Path(id): Path<String>) -> Response {
    Json(state.number(&id)).into_response()
}

#[derive(serde::Deserialize)]
struct ThroughputRequest {
    phone_number_id: String,
    /// Messages per second; absent or `null` lifts the limit.
    #[serde(default)]
    mps: Option<u32>,
}

/// `{"phone_number_id": "...", "mps": 80}`: more than 80 sends of the number in any second are
/// answered 130429, as Meta does; `"mps": null` lifts the limit.
async fn set_throughput(State(state): State<Arc<SandboxState>>, Json(request): Json<ThroughputRequest>) -> StatusCode {
    state.set_throughput(&request.phone_number_id, request.mps);
    StatusCode::NO_CONTENT
}
