//! One error type for the whole API, one JSON shape for every error:
//! `{"error": {"code", "message", "fields"?}}`, with the status that fits. Handlers return
//! `Result<_, ApiError>` and never build an error response by hand.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use wapisnap::store::StoreError;

/// Which field of a request was wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldProblem {
    pub field: String,
    pub problem: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable (`not_found`, `invalid`, `conflict`, ...).
    pub code: String,
    /// What was wrong, for a person.
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldProblem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: Vec<FieldProblem>,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), fields: Vec::new(), retry_after: None }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// Also what another workspace's id gets: its existence is not revealed.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// A well-formed request that breaks a rule (the window, a PIN, a confirmation).
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// Field-level validation failures.
    pub fn invalid(fields: Vec<FieldProblem>) -> Self {
        let summary = fields.iter().map(|f| format!("{}: {}", f.field, f.problem)).collect::<Vec<_>>().join("; ");
        Self { fields, ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", summary) }
    }

    pub fn field(field: &str, problem: impl Into<String>) -> Self {
        Self::invalid(vec![FieldProblem { field: field.to_owned(), problem: problem.into() }])
    }

    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "meta_unavailable", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, code = self.code, message = %self.message, "request failed");
        } else {
            tracing::info!(status = %self.status, code = self.code, "request refused");
        }
        let body =
            ErrorBody { error: ErrorDetail { code: self.code.into(), message: self.message, fields: self.fields } };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Our storage failing is ours to say, without its internals (table names, keys).
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "storage failed");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "storage is unavailable; try again shortly")
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => {
                Self::invalid(vec![FieldProblem { field: data_error_path(&e.body_text()), problem: e.body_text() }])
            }
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send JSON with content-type: application/json",
            ),
            other => Self::bad_request(format!("the body is not valid JSON: {}", other.body_text())),
        }
    }
}

/// serde's message starts with the path of the field it failed on (`to: invalid ...`).
fn data_error_path(text: &str) -> String {
    let detail = text.split_once(": ").map_or(text, |(_, rest)| rest);
    detail
        .split_once(": ")
        .map(|(path, _)| path.to_owned())
        .filter(|p| !p.contains(' '))
        .unwrap_or_else(|| "body".into())
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}
