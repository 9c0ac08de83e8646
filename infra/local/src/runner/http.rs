//! Local HTTP front doors: HTTP on localhost, turned into the event Lambda hands the function
//! (payload format 2.0, read by `lambda_http` exactly as in Lambda), in the flavour the template
//! gives the function: Meta's webhook at `/webhook` is a Lambda function URL (`FunctionUrlConfig`:
//! `routeKey` `$default`, a `<url-id>.lambda-url.<region>.on.aws` domain), the workspace API under
//! `/v1/` sits behind API Gateway's HTTP API (`routeKey` the route matched, path parameters).
//! `/_local/` controls the local stack itself (the clock, schedules, the sweeper).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use futures_util::future::BoxFuture;
use http::StatusCode;
use lambda_http::Body;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use wapisnap::clock::{Clock, ControlledClock};

use crate::template::HttpApiRoute;

/// API Gateway's HTTP API refuses payloads above 10 MB before any function runs.
pub const API_GATEWAY_MAX_PAYLOAD: usize = 10 * 1024 * 1024;

/// A function URL invokes synchronously: Lambda's 6 MB request payload limit applies.
pub const FUNCTION_URL_MAX_PAYLOAD: usize = 6 * 1024 * 1024;

pub type HttpHandler =
    Arc<dyn Fn(lambda_http::Request) -> BoxFuture<'static, lambda_http::Response<Body>> + Send + Sync>;
pub type LocalAction = Arc<dyn Fn() -> BoxFuture<'static, Result<serde_json::Value, String>> + Send + Sync>;

/// What puts a request in front of a function, and so the shape of its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSource {
    /// API Gateway's HTTP API `api_id` with the function's routes (a request no route matches
    /// is answered 404 by API Gateway, without invoking anything).
    HttpApi { api_id: String, routes: Vec<HttpApiRoute> },
    /// The function's own URL, `https://<url-id>.lambda-url.<region>.on.aws/`: any method, any path.
    FunctionUrl { url: String },
}

impl EventSource {
    fn max_payload(&self) -> usize {
        match self {
            Self::HttpApi { .. } => API_GATEWAY_MAX_PAYLOAD,
            Self::FunctionUrl { .. } => FUNCTION_URL_MAX_PAYLOAD,
        }
    }
}

/// A function reached over HTTP: its logical id, what it is reached through and its handler.
#[derive(Clone)]
pub struct HttpTarget {
    pub function: String,
    pub source: EventSource,
    pub handler: HttpHandler,
}

/// The latest events the runner handed to HTTP-invoked functions, as (function logical id,
/// the event's JSON) — what the function would find in its invocation's payload in Lambda.
#[derive(Debug, Clone, Default)]
pub struct HttpEvents {
    latest: Arc<Mutex<VecDeque<(String, Value)>>>,
}

impl HttpEvents {
    /// Only the latest are kept (bodies can be megabytes, benches send thousands).
    const KEPT: usize = 256;

    fn record(&self, function: &str, event: &Value) {
        let mut latest = self.latest.lock().expect("http events");
        if latest.len() == Self::KEPT {
            latest.pop_front();
        }
        latest.push_back((function.to_owned(), event.clone()));
    }

    /// The kept events handed to `function` (a logical id), oldest first.
    pub fn of(&self, function: &str) -> Vec<Value> {
        let latest = self.latest.lock().expect("http events");
        latest.iter().filter(|(f, _)| f == function).map(|(_, e)| e.clone()).collect()
    }
}

#[derive(Clone)]
pub struct Routes {
    pub webhook: HttpTarget,
    pub api: HttpTarget,
    pub events: HttpEvents,
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
    invoke(&routes.webhook, &routes, request).await
}

async fn api(State(routes): State<Routes>, request: Request) -> Response {
    invoke(&routes.api, &routes, request).await
}

async fn invoke(target: &HttpTarget, routes: &Routes, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, target.source.max_payload()).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large").into_response();
    };
    // The function gets a fresh request built from the event, as in Lambda: nothing of this
    // local server's own routing (its extensions, its matched path) reaches it.
    let Some(event) = event(&target.source, &parts, &bytes, routes.clock.now()) else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({ "message": "Not Found" }))).into_response();
    };
    routes.events.record(&target.function, &event);
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(request) => request,
        Err(error) => {
            let message = format!("lambda_http cannot read the event the local runner built: {error}");
            return (StatusCode::INTERNAL_SERVER_ERROR, message).into_response();
        }
    };
    let response = (target.handler)(request).await;
    let (parts, body) = response.into_parts();
    let bytes: Vec<u8> = match body {
        Body::Empty => Vec::new(),
        Body::Text(text) => text.into_bytes(),
        Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// The payload format 2.0 event API Gateway's HTTP API or a function URL hands the function
/// for this request; `None` when an HTTP API has no route for it. Headers keep the local
/// `host` (so what a function builds from it points here); the request context names the
/// domain AWS would.
pub fn event(
    source: &EventSource,
    parts: &http::request::Parts,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Value> {
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or_default();
    let region = wapisnap::aws::LOCAL_REGION;
    let (route_key, api_id, domain, path_parameters) = match source {
        EventSource::HttpApi { api_id, routes } => {
            let (route, parameters) = routes.iter().find_map(|route| {
                let method_matches = route.method == "ANY" || route.method == parts.method.as_str();
                method_matches.then(|| match_route(&route.path, path)).flatten().map(|p| (route, p))
            })?;
            let domain = format!("{api_id}.execute-api.{region}.amazonaws.com");
            (route.route_key(), api_id.clone(), domain, Some(parameters))
        }
        EventSource::FunctionUrl { url } => {
            let domain = url.trim_start_matches("https://").trim_end_matches('/').to_owned();
            let url_id = domain.split('.').next().unwrap_or_default().to_owned();
            ("$default".to_owned(), url_id, domain, None)
        }
    };
    let domain_prefix = domain.split('.').next().unwrap_or_default().to_owned();

    // Payload 2.0: one value per header (repeats joined by commas), cookies on their own.
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == http::header::COOKIE {
            cookies.extend(value.split(';').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()));
            continue;
        }
        match headers.get_mut(name.as_str()) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let mut parameters = Map::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match parameters.get_mut(name.as_ref()) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                parameters.insert(name.into_owned(), Value::String(value.into_owned()));
            }
        }
    }
    let user_agent = parts.headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();

    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": crate::provision::LOCAL_ACCOUNT,
            "apiId": api_id,
            "domainName": domain,
            "domainPrefix": domain_prefix,
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": user_agent,
            },
            "requestId": format!("{:032x}", rand::random::<u128>()),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !parameters.is_empty() {
        event["queryStringParameters"] = Value::Object(parameters);
    }
    if let Some(path_parameters) = path_parameters.filter(|p| !p.is_empty()) {
        event["pathParameters"] = Value::Object(path_parameters);
    }
    // Text as text, anything else base64-encoded (lambda_http makes them `Body::Text` and
    // `Body::Binary`); no body, no `body`.
    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(text) => event["body"] = json!(text),
            Err(_) => {
                let mut encoded = aws_lambda_events::encodings::Base64Data::default();
                encoded.extend_from_slice(body);
                event["body"] = serde_json::to_value(encoded).unwrap_or_default();
                event["isBase64Encoded"] = json!(true);
            }
        }
    }
    Some(event)
}

/// Matches a request path against an HTTP API route path (`/a/{id}`, `/v1/{proxy+}`), giving
/// its path parameters; `None` when it does not match.
fn match_route(route: &str, path: &str) -> Option<Map<String, Value>> {
    let mut parameters = Map::new();
    let mut wanted = route.trim_start_matches('/').split('/');
    let mut given = path.trim_start_matches('/').split('/');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return Some(parameters),
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with("+}") => {
                let rest: Vec<&str> = std::iter::once(g).chain(given.by_ref()).collect();
                let rest = rest.join("/");
                if rest.is_empty() {
                    return None;
                }
                parameters.insert(w[1..w.len() - 2].to_owned(), Value::String(rest));
                return wanted.next().is_none().then_some(parameters);
            }
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') && !g.is_empty() => {
                parameters.insert(w[1..w.len() - 1].to_owned(), Value::String(g.to_owned()));
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str) -> http::request::Parts {
        let request = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "127.0.0.1:3000")
            .header("x-hub-signature-256", "sha256=00")
            .header("cookie", "a=1; b=2")
            .body(())
            .unwrap();
        request.into_parts().0
    }

    const URL: &str = "https://0123456789abcdef0123456789abcdef.lambda-url.us-east-1.on.aws/";

    #[test]
    fn a_function_url_event_has_the_default_route_and_the_lambda_url_domain() {
        let source = EventSource::FunctionUrl { url: URL.into() };
        let event =
            event(&source, &parts("GET", "/webhook?hub.mode=subscribe&hub.challenge=7"), b"", chrono::Utc::now())
                .unwrap();
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["routeKey"], "$default");
        assert_eq!(event["requestContext"]["routeKey"], "$default");
        assert_eq!(
            event["requestContext"]["domainName"],
            "0123456789abcdef0123456789abcdef.lambda-url.us-east-1.on.aws"
        );
        assert_eq!(event["requestContext"]["apiId"], "0123456789abcdef0123456789abcdef");
        assert_eq!(event["rawPath"], "/webhook");
        assert_eq!(event["queryStringParameters"]["hub.challenge"], "7");
        assert_eq!(event["cookies"], json!(["a=1", "b=2"]));
        assert!(event.get("pathParameters").is_none() && event.get("body").is_none());

        let request = lambda_http::request::from_str(&event.to_string()).expect("lambda_http reads it");
        assert_eq!(request.method(), "GET");
        assert_eq!(request.uri().path(), "/webhook");
        assert_eq!(request.uri().query(), Some("hub.mode=subscribe&hub.challenge=7"));
        assert_eq!(request.headers()["x-hub-signature-256"], "sha256=00");
        assert!(matches!(request.body(), Body::Empty));
    }

    #[test]
    fn bodies_arrive_as_text_or_base64_as_lambda_would_hand_them() {
        let source = EventSource::FunctionUrl { url: URL.into() };
        let text = event(&source, &parts("POST", "/webhook"), b"{\"object\":1}", chrono::Utc::now()).unwrap();
        let request = lambda_http::request::from_str(&text.to_string()).unwrap();
        assert!(matches!(request.body(), Body::Text(t) if t == "{\"object\":1}"));
        let binary = event(&source, &parts("POST", "/webhook"), &[0xff, 0x00, 0x80], chrono::Utc::now()).unwrap();
        assert_eq!(binary["isBase64Encoded"], true);
        let request = lambda_http::request::from_str(&binary.to_string()).unwrap();
        assert!(matches!(request.body(), Body::Binary(b) if b == &[0xff, 0x00, 0x80]));
    }

    #[test]
    fn an_http_api_event_names_the_route_it_matched_and_its_path_parameters() {
        let source = EventSource::HttpApi {
            api_id: "abc123defg".into(),
            routes: vec![HttpApiRoute { method: "ANY".into(), path: "/v1/{proxy+}".into() }],
        };
        let event = event(&source, &parts("DELETE", "/v1/contacts/42"), b"", chrono::Utc::now()).unwrap();
        assert_eq!(event["routeKey"], "ANY /v1/{proxy+}");
        assert_eq!(event["requestContext"]["domainName"], "abc123defg.execute-api.us-east-1.amazonaws.com");
        assert_eq!(event["pathParameters"]["proxy"], "contacts/42");
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        assert_eq!((request.method().as_str(), request.uri().path()), ("DELETE", "/v1/contacts/42"));

        let webhook_routes = EventSource::HttpApi {
            api_id: "abc123defg".into(),
            routes: vec![HttpApiRoute { method: "POST".into(), path: "/webhook".into() }],
        };
        assert!(event_of(&webhook_routes, "POST", "/webhook").is_some());
        assert!(event_of(&webhook_routes, "PUT", "/webhook").is_none(), "no route: API Gateway answers 404");
        assert!(event_of(&source, "GET", "/v1").is_none());
    }

    fn event_of(source: &EventSource, method: &str, path: &str) -> Option<Value> {
        event(source, &parts(method, path), b"", chrono::Utc::now())
    }
}
