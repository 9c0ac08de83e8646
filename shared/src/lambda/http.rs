//! One mapping from our errors to HTTP responses, so handlers never repeat the
//! match-log-respond block: every error body has the same shape, `{"error":{"code","message"}}`.

use http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use lambda_http::{Body, Response};
use serde::Serialize;

/// An error answered to an HTTP caller: a status, a stable machine-readable code and a
/// message that says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct HttpError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl HttpError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message)
    }

    /// For routes whose feature has not been built yet: an honest 501, never a fake success.
    pub fn not_implemented(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, "not_implemented", what)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn into_response(self) -> Response<Body> {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, code = self.code, message = %self.message, "request failed");
        } else {
            tracing::info!(status = %self.status, code = self.code, message = %self.message, "request refused");
        }
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        json(self.status, &body)
    }
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Body::Binary(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub fn text(status: StatusCode, value: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(Body::Text(value.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// Turns a handler result into the response, whatever the outcome.
pub fn respond(result: Result<Response<Body>, HttpError>) -> Response<Body> {
    result.unwrap_or_else(HttpError::into_response)
}

/// The decoded query string of a request. lambda_http keeps API Gateway's raw query string in
/// the URI, so reading it from there works the same in Lambda and on the local stack.
pub fn query_pairs(uri: &http::Uri) -> Vec<(String, String)> {
    uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_one_shape() {
        let response = HttpError::bad_request("hub.challenge is missing").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let Body::Binary(bytes) = response.body() else { panic!("expected a JSON body") };
        let body: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(body["error"]["code"], "bad_request");
        assert_eq!(body["error"]["message"], "hub.challenge is missing");
    }

    #[test]
    fn query_pairs_are_decoded() {
        let uri: http::Uri = "/webhook?hub.mode=subscribe&hub.verify_token=a%20b".parse().unwrap();
        assert_eq!(query_pairs(&uri)[1], ("hub.verify_token".into(), "a b".into()));
    }
}
