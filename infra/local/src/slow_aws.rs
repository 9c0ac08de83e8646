//! AWS answering slowly: an HTTP pass-through in front of the emulator that holds each request
//! for a set time before forwarding it, as DynamoDB, SQS and KMS do on a loaded day (throttles
//! retried by the SDK) or moto does on a loaded machine. The stack's clients speak their own
//! protocols to it unchanged; only the pace differs. A test sets the pace with
//! [`SlowAws::answer_after`] and plays what a function does when its reads take longer than
//! its invocation allows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Headers that belong to one hop of HTTP, not to the request or the answer.
const HOP_BY_HOP: [HeaderName; 4] = [
    axum::http::header::HOST,
    axum::http::header::CONTENT_LENGTH,
    axum::http::header::TRANSFER_ENCODING,
    axum::http::header::CONNECTION,
];

struct Relay {
    upstream: String,
    delay_millis: AtomicU64,
    http: reqwest::Client,
}

/// A running pass-through; stopped when dropped.
pub struct SlowAws {
    /// Where the stack's clients reach AWS through it.
    pub endpoint: String,
    relay: Arc<Relay>,
    shutdown: watch::Sender<bool>,
}

impl SlowAws {
    /// In front of `upstream` (the emulator's endpoint), answering at its own pace until told
    /// otherwise.
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let relay = Arc::new(Relay {
            upstream: upstream.trim_end_matches('/').to_owned(),
            delay_millis: AtomicU64::new(0),
            http: reqwest::Client::new(),
        });
        let router = axum::Router::new().fallback(forward).with_state(relay.clone());
        let shutdown = crate::serve::in_background(listener, router, "slow AWS pass-through");
        Ok(Self { endpoint, relay, shutdown })
    }

    /// Every request from now on is held this long before it reaches AWS.
    pub fn answer_after(&self, delay: Duration) {
        self.relay.delay_millis.store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Drop for SlowAws {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

async fn forward(State(relay): State<Arc<Relay>>, request: Request) -> Response {
    let delay = Duration::from_millis(relay.delay_millis.load(Ordering::SeqCst));
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match relay_once(&relay, request).await {
        Ok(response) => response,
        Err(error) => (StatusCode::BAD_GATEWAY, format!("slow AWS pass-through: {error}")).into_response(),
    }
}

async fn relay_once(relay: &Relay, request: Request) -> Result<Response, String> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.map_err(|e| format!("reading the request: {e}"))?;
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outgoing = relay.http.request(parts.method, format!("{}{path}", relay.upstream)).body(body);
    for (name, value) in parts.headers.iter().filter(|(name, _)| !HOP_BY_HOP.contains(name)) {
        outgoing = outgoing.header(name, value);
    }
    let answer = outgoing.send().await.map_err(|e| format!("reaching {}: {e}", relay.upstream))?;
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers().iter().filter(|(name, _)| !HOP_BY_HOP.contains(name)) {
        response = response.header(name, value);
    }
    let bytes = answer.bytes().await.map_err(|e| format!("reading the answer: {e}"))?;
    response.body(Body::from(bytes)).map_err(|e| e.to_string())
}
