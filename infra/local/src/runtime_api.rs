//! A stand-in for the Lambda runtime API, for running a function's real `bootstrap` binary as
//! Lambda runs it (`make bench-cold`): the process is given `AWS_LAMBDA_RUNTIME_API` pointing
//! here, long-polls `GET /2018-06-01/runtime/invocation/next` for an event (answered with the
//! headers Lambda sends: request id, deadline, function ARN, trace id) and answers on
//! `POST .../invocation/{id}/response` or `.../invocation/{id}/error`; a failed cold start posts
//! `.../init/error`. What the stand-in records is what Lambda reports: when the process first
//! asked for work (the end of its init) and how long each invocation took from the event handed
//! out to the answer received.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{mpsc, oneshot, watch};

/// How an invocation ended.
#[derive(Debug, Clone)]
pub enum Answer {
    /// `POST .../response`: the function's result.
    Response(Vec<u8>),
    /// `POST .../error`: the error type header and the error body.
    Error { error_type: Option<String>, body: String },
}

/// One invocation as the runtime API saw it.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub answer: Answer,
    /// From the event handed out on `/next` to the answer posted: Lambda's billed duration.
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the function failed its init: {0}")]
    InitError(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the runtime API stopped")]
    Stopped,
}

struct Pending {
    request_id: String,
    payload: Vec<u8>,
    deadline: Duration,
    answered: oneshot::Sender<Answered>,
}

/// The answer, with when the event was handed out and when the answer came.
type Answered = (Answer, Instant, Instant);

struct InFlight {
    handed_out: Instant,
    answered: oneshot::Sender<Answered>,
}

struct Shared {
    function_arn: String,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    in_flight: Mutex<HashMap<String, InFlight>>,
    first_next: Mutex<Option<Instant>>,
    init_error: watch::Sender<Option<String>>,
}

/// The runtime API of one function's execution environment, on a free local port.
pub struct RuntimeApi {
    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    shared: Arc<Shared>,
    invocations: mpsc::UnboundedSender<Pending>,
    next_id: std::sync::atomic::AtomicU64,
    stop: Option<oneshot::Sender<()>>,
}

impl RuntimeApi {
    /// Starts serving; `function_arn` is what `/next` reports as the invoked function's ARN.
    pub async fn start(function_arn: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let address = listener.local_addr()?.to_string();
        let (invocations, queue) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: function_arn.to_owned(),
            queue: tokio::sync::Mutex::new(queue),
            in_flight: Mutex::new(HashMap::new()),
            first_next: Mutex::new(None),
            init_error: watch::channel(None).0,
        });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self { address, shared, invocations, next_id: Default::default(), stop: Some(stop) })
    }

    /// When the process first asked for an event (its init is over then), if it did.
    pub fn first_next(&self) -> Option<Instant> {
        *self.shared.first_next.lock().expect("first next")
    }

    /// The init error the process posted, if it did.
    pub fn init_error(&self) -> Option<String> {
        self.shared.init_error.borrow().clone()
    }

    /// Waits until the process asks for its first event (or reports a failed init).
    pub async fn wait_for_init(&self, within: Duration) -> Result<Instant, InvokeError> {
        let give_up = Instant::now() + within;
        loop {
            if let Some(at) = self.first_next() {
                return Ok(at);
            }
            if let Some(error) = self.init_error() {
                return Err(InvokeError::InitError(error));
            }
            if Instant::now() >= give_up {
                return Err(InvokeError::Timeout(within));
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    /// Hands `payload` to the function (on its next `/next`) with `timeout` as its deadline and
    /// waits for its answer.
    pub async fn invoke(&self, payload: Vec<u8>, timeout: Duration) -> Result<Invocation, InvokeError> {
        let n = self.next_id.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let request_id = format!("{:08x}-{:04x}-4000-8000-{:012x}", rand::random::<u32>(), n & 0xffff, n);
        let (answered, answer) = oneshot::channel();
        let pending = Pending { request_id: request_id.clone(), payload, deadline: timeout, answered };
        self.invocations.send(pending).map_err(|_| InvokeError::Stopped)?;
        let mut init_error = self.shared.init_error.subscribe();
        let waited = tokio::time::timeout(timeout + Duration::from_secs(1), async {
            tokio::select! {
                answer = answer => answer.map_err(|_| InvokeError::Stopped),
                _ = init_error.wait_for(Option::is_some) => {
                    Err(InvokeError::InitError(self.init_error().unwrap_or_default()))
                }
            }
        })
        .await
        .map_err(|_| InvokeError::Timeout(timeout))??;
        let (answer, handed_out, at) = waited;
        Ok(Invocation { request_id, answer, duration: at.saturating_duration_since(handed_out) })
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// `GET /next`: blocks until there is an event, as Lambda's does (the process is frozen then).
async fn next(State(shared): State<Arc<Shared>>) -> Response {
    {
        let mut first = shared.first_next.lock().expect("first next");
        first.get_or_insert_with(Instant::now);
    }
    let Some(pending) = shared.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline = std::time::SystemTime::now() + pending.deadline;
    let deadline_ms = deadline.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    let trace_id = format!(
        "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0;Lineage=1:{:08x}:0",
        chrono::Utc::now().timestamp(),
        rand::random::<u128>() >> 32,
        rand::random::<u64>(),
        rand::random::<u32>()
    );
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("lambda-runtime-aws-request-id", header(&pending.request_id));
    headers.insert("lambda-runtime-deadline-ms", header(&deadline_ms.to_string()));
    headers.insert("lambda-runtime-invoked-function-arn", header(&shared.function_arn));
    headers.insert("lambda-runtime-trace-id", header(&trace_id));
    shared
        .in_flight
        .lock()
        .expect("in flight")
        .insert(pending.request_id.clone(), InFlight { handed_out: Instant::now(), answered: pending.answered });
    (StatusCode::OK, headers, pending.payload).into_response()
}

fn answer(shared: &Shared, id: &str, answer: Answer) -> StatusCode {
    let at = Instant::now();
    match shared.in_flight.lock().expect("in flight").remove(id) {
        Some(flight) => {
            let _ = flight.answered.send((answer, flight.handed_out, at));
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answer(&shared, &id, Answer::Response(body.to_vec()))
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let error_type = headers.get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    answer(&shared, &id, Answer::Error { error_type, body: String::from_utf8_lossy(&body).into_owned() })
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    let _ = shared.init_error.send(Some(String::from_utf8_lossy(&body).into_owned()));
    StatusCode::ACCEPTED
}
