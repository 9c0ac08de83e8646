//! `/v1/jobs/{id}`: where a send stands — the composer's answer names the job.

use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use wapisnap::domain::SendJobId;

use crate::error::{ApiError, ErrorBody};
use crate::extract::Caller;
use crate::state::Shared;

resource_routes!([show]);

#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    /// QUEUED, SENDING, ACCEPTED, DELIVERED, UNCERTAIN, FAILED_ATTEMPT, RETRY_SCHEDULED, FAILED, REFUSED.
    pub state: String,
    pub attempt: u32,
    /// Meta's id of the message, once accepted.
    pub wamid: Option<String>,
    pub error_code: Option<i64>,
    /// Why it was refused or failed (FAILED with none: Meta never reported a delivery).
    pub reason: Option<String>,
    pub retry_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[utoipa::path(get, operation_id = "show_job", path = "/v1/jobs/{id}", tag = "inbox", security(("api_key" = [])),
    params(("id" = String, Path, description = "send job id")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)))]
async fn show(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<JobView>, ApiError> {
    let missing = || ApiError::not_found(format!("no send job {id} in this workspace"));
    let job_id = SendJobId::parse(id.as_str()).map_err(|_| missing())?;
    let record = state.store.job(&caller.workspace, &job_id).await?.ok_or_else(missing)?;
    Ok(axum::Json(JobView {
        id: record.job.job_id.to_string(),
        state: serde_json::to_value(record.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        attempt: record.attempt,
        wamid: record.wamid.map(String::from),
        error_code: record.error_code,
        reason: record.reason,
        retry_at: record.retry_at,
        updated_at: record.updated_at,
    }))
}
