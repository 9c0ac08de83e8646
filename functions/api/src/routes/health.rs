//! `/v1/health`: answers without a key and without revealing configuration.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::Shared;

resource_routes!([health]);

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub now: DateTime<Utc>,
}

#[utoipa::path(get, operation_id = "health", path = "/v1/health", tag = "health", responses((status = 200, body = Health)))]
async fn health(State(state): State<Shared>) -> axum::Json<Health> {
    axum::Json(Health { status: "ok".into(), now: state.clock.now() })
}
