//! Request extractors whose rejections are our [`ApiError`], so a bad body, path or missing key
//! answers in the API's one error shape.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use wapisnap::domain::WorkspaceId;

use crate::error::ApiError;
use crate::state::Shared;

/// A JSON body; a body that does not read is 400, a field that does not fit is 422.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<T>::from_request(request, state).await?;
        Ok(Self(value))
    }
}

/// Query parameters; ones that do not read are 422 in the API's error shape.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::field("query", rejection.body_text()))?;
        Ok(Self(value))
    }
}

/// The workspace the request's API key belongs to. Every `/v1/` route but health takes one:
/// a missing, malformed, unknown or revoked key is 401, and the key alone decides the
/// workspace — no id in a path or body can point elsewhere.
#[derive(Debug, Clone)]
pub struct Caller {
    pub workspace: WorkspaceId,
}

impl FromRequestParts<Shared> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("send the workspace's API key as `Authorization: Bearer <key>`"))?;
        let presented = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <key>`"))?;
        let Some(workspace) = state.store.authenticate(presented).await? else {
            return Err(ApiError::unauthorized("the API key is unknown or revoked"));
        };
        if let Err(wait) = state.limiter.admit(&workspace, std::time::Instant::now()) {
            let mut limited = ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "this workspace is over its request rate; retry after the time in Retry-After",
            );
            limited.retry_after = Some(u32::try_from(wait.as_secs()).unwrap_or(1).max(1));
            return Err(limited);
        }
        Ok(Self { workspace })
    }
}
