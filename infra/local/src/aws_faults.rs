//! AWS as the stack reaches it: an HTTP pass-through in front of the emulator that every
//! stack's clients reach AWS through. It keeps what DynamoDB guarantees and moto's threaded
//! server does not: one write at a time to an item, so that a conditional write is atomic
//! (two claims of one job can never both pass their condition). And it fails AWS in its own
//! ways, on demand. It can
//! - hold every request for a while before forwarding it ([`AwsFaults::answer_after`]): AWS on
//!   a loaded day (throttles the SDK retries), or moto on a loaded machine;
//! - answer the next requests of one operation with AWS's own error, in AWS's JSON protocol
//!   ([`AwsFaults::fail_next`]): a 500, a throttle, any code;
//! - answer a `BatchGetItem` having read nothing, every key sent back as unprocessed, as
//!   DynamoDB does when throttled or past 16 MB.
//!
//! The clients speak their own protocols to it unchanged. moto cannot fail one request, so
//! without this the answer "what if this call fails here?" could only be argued, not played.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Headers that belong to one hop of HTTP, not to the request or the answer.
const HOP_BY_HOP: [HeaderName; 4] = [
    axum::http::header::HOST,
    axum::http::header::CONTENT_LENGTH,
    axum::http::header::TRANSFER_ENCODING,
    axum::http::header::CONNECTION,
];

/// What AWS does to a request a fault matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsFaultEffect {
    /// An error answer: HTTP status and AWS's error code (`__type`).
    Error { status: u16, code: String },
    /// The request done by AWS, and its answer lost on the way back: the client gets a 500
    /// (`InternalServerError`) for a request that took effect, and the SDK sends it again.
    AnswerLost,
    /// A `TransactWriteItems` cancelled because another transaction was writing one of its
    /// items (its last, here) at the same moment: 400 `TransactionCanceledException` with a
    /// `TransactionConflict` among its `CancellationReasons`.
    Conflict,
    /// A batch request that did nothing: a `BatchGetItem` answered with no items and every key
    /// in `UnprocessedKeys`, a `BatchWriteItem` with every request in `UnprocessedItems`.
    NothingProcessed,
}

/// The next `times` requests of `operation` (the `X-Amz-Target` action, e.g. `BatchGetItem`,
/// `SendMessage`, `Decrypt`) meet `effect`, once `skip` of them have passed; only those whose
/// body holds `body_contains`, when set (one write among several of the same operation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsFault {
    pub operation: String,
    pub times: u32,
    pub effect: AwsFaultEffect,
    pub body_contains: Option<String>,
    pub skip: u32,
}

impl AwsFault {
    /// AWS failing on its side (500): the SDK retries it, then gives up.
    pub fn internal_error(operation: &str, times: u32) -> Self {
        Self::of(operation, times, AwsFaultEffect::Error { status: 500, code: "InternalServerError".into() })
    }

    /// DynamoDB throttling the table (400 `ProvisionedThroughputExceededException`).
    pub fn throttled(operation: &str, times: u32) -> Self {
        let code = "ProvisionedThroughputExceededException".into();
        Self::of(operation, times, AwsFaultEffect::Error { status: 400, code })
    }

    /// `BatchGetItem` reading none of the keys it was asked for.
    pub fn nothing_processed(times: u32) -> Self {
        Self::of("BatchGetItem", times, AwsFaultEffect::NothingProcessed)
    }

    /// `BatchWriteItem` writing none of the items it was given.
    pub fn nothing_written(times: u32) -> Self {
        Self::of("BatchWriteItem", times, AwsFaultEffect::NothingProcessed)
    }

    /// The next `times` requests of `operation` done, but answered with a 500 as if they were
    /// not: "maybe done", the answer a conditional write must read correctly when it comes
    /// back refused by its own first attempt.
    pub fn answer_lost(operation: &str, times: u32) -> Self {
        Self::of(operation, times, AwsFaultEffect::AnswerLost)
    }

    /// `TransactWriteItems` meeting another transaction on one of its items.
    pub fn transaction_conflict(times: u32) -> Self {
        Self::of("TransactWriteItems", times, AwsFaultEffect::Conflict)
    }

    fn of(operation: &str, times: u32, effect: AwsFaultEffect) -> Self {
        Self { operation: operation.into(), times, effect, body_contains: None, skip: 0 }
    }

    /// Only after `requests` matching requests have passed (a failure part-way through).
    pub fn after(self, requests: u32) -> Self {
        Self { skip: requests, ..self }
    }

    /// Only requests whose body holds `text`.
    pub fn when_body_contains(self, text: &str) -> Self {
        Self { body_contains: Some(text.into()), ..self }
    }
}

struct Relay {
    upstream: String,
    /// The items a DynamoDB write is being made to, by table and key. DynamoDB applies each
    /// write to an item atomically (two claims of one job cannot both pass their condition);
    /// moto's threaded server does not (two requests can both check, then both write). A write
    /// waits here until no other write holds any of its items (a transaction holds its tables
    /// whole: see [`items_written`]).
    items_written: Mutex<Holds>,
    items_released: tokio::sync::Notify,
    delay_millis: AtomicU64,
    faults: Mutex<Vec<AwsFault>>,
    /// Requests a fault answered, by operation, for a test to see its fault was met.
    met: Mutex<Vec<String>>,
    http: reqwest::Client,
}

/// A running pass-through; stopped when dropped.
pub struct AwsFaults {
    /// Where the stack's clients reach AWS through it.
    pub endpoint: String,
    relay: Arc<Relay>,
    _shutdown: watch::Sender<bool>,
}

impl AwsFaults {
    /// In front of `upstream` (the emulator's endpoint), passing everything through until told
    /// otherwise.
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let relay = Arc::new(Relay::new(upstream));
        let router = axum::Router::new().fallback(forward).with_state(relay.clone());
        let shutdown = crate::serve::in_background(listener, router, "AWS fault pass-through");
        Ok(Self { endpoint, relay, _shutdown: shutdown })
    }

    /// Every request from now on is held this long before it reaches AWS.
    pub fn answer_after(&self, delay: Duration) {
        self.relay.delay_millis.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Faults are met in the order they were asked for: a request meets the first one still
    /// pending for its operation (and body), even one still letting requests pass (`after`).
    pub fn fail_next(&self, fault: AwsFault) {
        self.relay.faults.lock().expect("faults").push(fault);
    }

    /// AWS as it was: no fault left to meet, no delay.
    pub fn heal(&self) {
        self.relay.faults.lock().expect("faults").clear();
        self.answer_after(Duration::ZERO);
    }

    /// How many requests of `operation` a fault has answered so far.
    pub fn faults_met(&self, operation: &str) -> usize {
        self.relay.met.lock().expect("met").iter().filter(|o| *o == operation).count()
    }
}

/// The action a request of AWS's JSON protocols names: `DynamoDB_20120810.BatchGetItem` →
/// `BatchGetItem`.
fn operation(headers: &HeaderMap) -> Option<&str> {
    let target = headers.get("x-amz-target")?.to_str().ok()?;
    target.rsplit_once('.').map(|(_, action)| action)
}

impl Relay {
    fn new(upstream: &str) -> Self {
        Self {
            upstream: upstream.trim_end_matches('/').to_owned(),
            delay_millis: AtomicU64::new(0),
            faults: Mutex::default(),
            met: Mutex::default(),
            http: reqwest::Client::new(),
            items_written: Mutex::default(),
            items_released: tokio::sync::Notify::new(),
        }
    }

    /// The effect of the first fault for this request still to be met, counting it met.
    fn take_fault(&self, operation: &str, body: &[u8]) -> Option<AwsFaultEffect> {
        let mut faults = self.faults.lock().expect("faults");
        let holds = |text: &str| body.windows(text.len().max(1)).any(|w| w == text.as_bytes());
        let index = faults
            .iter()
            .position(|f| f.operation == operation && f.times > 0 && f.body_contains.as_deref().is_none_or(holds))?;
        if faults[index].skip > 0 {
            faults[index].skip -= 1;
            return None;
        }
        faults[index].times -= 1;
        let effect = faults[index].effect.clone();
        faults.retain(|f| f.times > 0);
        self.met.lock().expect("met").push(operation.to_owned());
        Some(effect)
    }
}

async fn forward(State(relay): State<Arc<Relay>>, request: Request) -> Response {
    let delay = Duration::from_millis(relay.delay_millis.load(Ordering::SeqCst));
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(error) => return (StatusCode::BAD_REQUEST, format!("reading the request: {error}")).into_response(),
    };
    let action = operation(&parts.headers).map(str::to_owned);
    let answer_lost = match action.as_deref().and_then(|op| relay.take_fault(op, &body)) {
        Some(AwsFaultEffect::Error { status, code }) => return aws_error(status, &code),
        Some(AwsFaultEffect::NothingProcessed) => return nothing_processed(action.as_deref(), &body),
        Some(AwsFaultEffect::Conflict) => return transaction_conflict(&body),
        Some(AwsFaultEffect::AnswerLost) => true,
        None => false,
    };
    let items = action.as_deref().map(|action| items_written(action, &body)).unwrap_or_default();
    match relay_in_turn(relay.clone(), items, parts, body).await {
        Ok(_done) if answer_lost => aws_error(500, "InternalServerError"),
        Ok(response) => response,
        Err(error) => (StatusCode::BAD_GATEWAY, format!("AWS fault pass-through: {error}")).into_response(),
    }
}

/// Relays a request; a DynamoDB write only once no other write holds any of its `items`. The
/// relay runs on its own task that owns the hold: a client that stops waiting (a deadline)
/// does not release its items while the emulator is still writing them.
async fn relay_in_turn(
    relay: Arc<Relay>,
    items: Vec<String>,
    parts: axum::http::request::Parts,
    body: Bytes,
) -> Result<Response, String> {
    if items.is_empty() {
        return relay_once(&relay, parts, body).await;
    }
    let relayed = tokio::spawn(async move {
        let _turn = relay.hold(items).await;
        relay_once(&relay, parts, body).await
    });
    relayed.await.map_err(|e| format!("the relay stopped: {e}"))?
}

/// What a transaction holds of each of its tables: all of it (`table|*`).
const WHOLE_TABLE: &str = "|*";

fn is_whole_table(hold: &str) -> bool {
    hold.ends_with(WHOLE_TABLE)
}

/// Whether two holds cannot be had at once: the same item, or an item of a table held whole.
fn clash(held: &str, wanted: &str) -> bool {
    held == wanted || ((is_whole_table(held) || is_whole_table(wanted)) && table_of(held) == table_of(wanted))
}

fn table_of(hold: &str) -> &str {
    hold.split_once('|').map_or("", |(table, _)| table)
}

/// The items a DynamoDB write makes or changes, as `table|pk|sk` (`table|*` for a transaction's
/// tables, held whole); none for a read.
fn items_written(action: &str, body: &[u8]) -> Vec<String> {
    const WRITES: [&str; 5] = ["PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"];
    if !WRITES.contains(&action) {
        return Vec::new();
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else { return Vec::new() };
    let (pk, sk) = (wapisnap::store::keys::PK, wapisnap::store::keys::SK);
    let item = |table: Option<&Value>, key: Option<&Value>| -> Option<String> {
        let (table, key) = (table?.as_str()?, key?);
        Some(format!("{table}|{}|{}", key.get(pk)?, key.get(sk)?))
    };
    let one = |write: &Value| {
        let key = write.get("Key").or_else(|| write.get("Item"));
        item(write.get("TableName"), key)
    };
    match action {
        "PutItem" | "UpdateItem" | "DeleteItem" => one(&request).into_iter().collect(),
        // moto copies a transaction's whole tables (to undo it if it is cancelled), and a write
        // to any item of them meanwhile fails that copy ("dictionary changed size during
        // iteration", a 500): a transaction holds its tables whole.
        "TransactWriteItems" => {
            let tables: HashSet<String> = request["TransactItems"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|entry| entry.as_object()?.values().next()?.get("TableName")?.as_str())
                .map(|table| format!("{table}{WHOLE_TABLE}"))
                .collect();
            tables.into_iter().collect()
        }
        "BatchWriteItem" => request["RequestItems"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(table, writes)| {
                let table = Value::String(table.clone());
                writes.as_array().into_iter().flatten().filter_map(move |write| {
                    let put = write.pointer("/PutRequest/Item");
                    item(Some(&table), put.or_else(|| write.pointer("/DeleteRequest/Key")))
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Items held by writes with the emulator, and the tables a transaction waits to hold whole.
#[derive(Default)]
struct Holds {
    held: Vec<String>,
    /// Transactions waiting for a table: new writes to it wait behind them, so that a stream
    /// of single-item writes cannot keep a transaction waiting.
    wanted_whole: Vec<String>,
}

impl Holds {
    fn free(&self, items: &[String]) -> bool {
        items.iter().all(|item| {
            self.held.iter().all(|held| !clash(held, item))
                && (is_whole_table(item) || self.wanted_whole.iter().all(|w| !clash(w, item)))
        })
    }
}

/// The items a write holds while it is with the emulator; released when dropped.
struct ItemsHeld<'a> {
    relay: &'a Relay,
    items: Vec<String>,
}

impl Relay {
    /// Waits until none of `items` is held by another write, then holds them all (all at once,
    /// so two transactions over the same items cannot each hold one and wait for the other).
    async fn hold(&self, items: Vec<String>) -> ItemsHeld<'_> {
        let tables = items.iter().filter(|i| is_whole_table(i)).cloned().collect();
        let _wanted = WantedWhole::register(self, tables);
        loop {
            let released = self.items_released.notified();
            {
                let mut holds = self.items_written.lock().expect("holds");
                if holds.free(&items) {
                    holds.held.extend(items.iter().cloned());
                    return ItemsHeld { relay: self, items };
                }
            }
            released.await;
        }
    }
}

/// A transaction's tables, wanted whole until it holds them (or stops waiting).
struct WantedWhole<'a> {
    relay: &'a Relay,
    tables: Vec<String>,
}

impl<'a> WantedWhole<'a> {
    fn register(relay: &'a Relay, tables: Vec<String>) -> Self {
        relay.items_written.lock().expect("holds").wanted_whole.extend(tables.iter().cloned());
        Self { relay, tables }
    }
}

impl Drop for WantedWhole<'_> {
    fn drop(&mut self) {
        self.relay.release(&self.tables, |holds| &mut holds.wanted_whole);
    }
}

impl Drop for ItemsHeld<'_> {
    fn drop(&mut self) {
        self.relay.release(&self.items, |holds| &mut holds.held);
    }
}

impl Relay {
    /// Takes `entries` out of one list of holds, and wakes the writes waiting for them.
    fn release(&self, entries: &[String], list: fn(&mut Holds) -> &mut Vec<String>) {
        if entries.is_empty() {
            return;
        }
        let mut holds = self.items_written.lock().expect("holds");
        let list = list(&mut holds);
        for entry in entries {
            if let Some(at) = list.iter().position(|e| e == entry) {
                list.swap_remove(at);
            }
        }
        drop(holds);
        self.items_released.notify_waiters();
    }
}

/// An error as AWS's JSON protocols answer it.
fn aws_error(status: u16, code: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    aws_error_answer(
        status,
        code,
        json!({ "__type": code, "message": format!("{code} (injected by the local stack)") }),
    )
}

fn aws_error_answer(status: StatusCode, code: &str, body: Value) -> Response {
    (status, [("content-type", "application/x-amz-json-1.0"), ("x-amzn-errortype", code)], body.to_string())
        .into_response()
}

/// A transaction cancelled by a conflict on its last item, as DynamoDB answers it.
fn transaction_conflict(request: &Bytes) -> Response {
    aws_error_answer(StatusCode::BAD_REQUEST, "TransactionCanceledException", transaction_conflict_body(request))
}

fn transaction_conflict_body(request: &[u8]) -> Value {
    let asked: Value = serde_json::from_slice(request).unwrap_or_default();
    let items = asked.get("TransactItems").and_then(Value::as_array).map_or(1, Vec::len).max(1);
    let codes: Vec<&str> = (0..items).map(|i| if i + 1 == items { "TransactionConflict" } else { "None" }).collect();
    let reasons: Vec<Value> = codes
        .iter()
        .map(|code| match *code {
            "None" => json!({ "Code": "None" }),
            code => json!({ "Code": code, "Message": "Transaction is ongoing for the item" }),
        })
        .collect();
    json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{}] (injected by the local stack)", codes.join(", ")),
        "CancellationReasons": reasons,
    })
}

/// A batch answer that did nothing: everything asked for, unprocessed.
fn nothing_processed(operation: Option<&str>, request: &Bytes) -> Response {
    let body = nothing_processed_body(operation, request);
    ([("content-type", "application/x-amz-json-1.0")], body.to_string()).into_response()
}

fn nothing_processed_body(operation: Option<&str>, request: &[u8]) -> Value {
    let asked: Value = serde_json::from_slice(request).unwrap_or_default();
    let requests = asked.get("RequestItems").cloned().unwrap_or_else(|| json!({}));
    if operation == Some("BatchWriteItem") {
        return json!({ "UnprocessedItems": requests });
    }
    let responses: serde_json::Map<String, Value> =
        requests.as_object().into_iter().flatten().map(|(table, _)| (table.clone(), json!([]))).collect();
    json!({ "Responses": responses, "UnprocessedKeys": requests })
}

async fn relay_once(relay: &Relay, parts: axum::http::request::Parts, body: Bytes) -> Result<Response, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operation_is_the_action_of_the_target_header() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-target", "DynamoDB_20120810.BatchGetItem".parse().unwrap());
        assert_eq!(operation(&headers), Some("BatchGetItem"));
        assert_eq!(operation(&HeaderMap::new()), None);
    }

    #[test]
    fn a_fault_is_met_as_many_times_as_asked_then_requests_pass() {
        let relay = Relay::new("");
        relay.faults.lock().unwrap().push(AwsFault::internal_error("PutItem", 2));
        assert_eq!(relay.take_fault("GetItem", b""), None);
        assert!(relay.take_fault("PutItem", b"").is_some());
        assert!(relay.take_fault("PutItem", b"").is_some());
        assert_eq!(relay.take_fault("PutItem", b""), None);
    }

    #[test]
    fn a_fault_after_n_requests_lets_n_pass_first() {
        let relay = Relay::new("");
        relay.faults.lock().unwrap().push(AwsFault::internal_error("PutItem", 1).after(2));
        assert_eq!(relay.take_fault("PutItem", b""), None);
        assert_eq!(relay.take_fault("PutItem", b""), None);
        assert!(relay.take_fault("PutItem", b"").is_some());
        assert_eq!(relay.take_fault("PutItem", b""), None);
    }

    #[test]
    fn a_fault_for_one_write_leaves_the_others_of_its_operation_alone() {
        let relay = Relay::new("");
        relay.faults.lock().unwrap().push(AwsFault::internal_error("UpdateItem", 1).when_body_contains("wamid."));
        assert_eq!(relay.take_fault("UpdateItem", br#"{"claim":"c1"}"#), None);
        assert!(relay.take_fault("UpdateItem", br#"{"wamid":"wamid.X"}"#).is_some());
        assert_eq!(relay.met.lock().unwrap().as_slice(), ["UpdateItem"]);
    }

    #[test]
    fn a_write_holds_the_items_it_makes_or_changes_and_a_read_holds_none() {
        let update =
            json!({"TableName": "t", "Key": {"pk": {"S": "a"}, "sk": {"S": "b"}}, "UpdateExpression": "SET x = :x"});
        let key = r#"t|{"S":"a"}|{"S":"b"}"#;
        assert_eq!(items_written("UpdateItem", update.to_string().as_bytes()), [key]);
        let put = json!({"TableName": "t", "Item": {"pk": {"S": "a"}, "sk": {"S": "b"}, "x": {"N": "1"}}});
        assert_eq!(items_written("PutItem", put.to_string().as_bytes()), [key]);
        let transaction = json!({"TransactItems": [
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "a"}, "sk": {"S": "b"}}}},
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "c"}, "sk": {"S": "d"}}}},
        ]});
        assert_eq!(items_written("TransactWriteItems", transaction.to_string().as_bytes()), ["t|*"]);
        assert!(clash(key, key) && clash("t|*", key) && clash(key, "t|*") && clash("t|*", "t|*"));
        assert!(!clash(key, r#"t|{"S":"a"}|{"S":"c"}"#) && !clash("u|*", key));

        // A transaction waiting for its table goes before new writes to it.
        let holds = Holds { held: vec![], wanted_whole: vec!["t|*".into()] };
        assert!(!holds.free(&[key.to_owned()]) && holds.free(&["t|*".to_owned()]) && holds.free(&["u|x|y".to_owned()]));
        let batch = json!({"RequestItems": {"t": [{"PutRequest": {"Item": {"pk": {"S": "a"}, "sk": {"S": "b"}}}}]}});
        assert_eq!(items_written("BatchWriteItem", batch.to_string().as_bytes()), [key]);
        assert!(items_written("GetItem", update.to_string().as_bytes()).is_empty());
    }

    #[test]
    fn nothing_processed_sends_back_everything_asked_for() {
        let asked =
            json!({"RequestItems": {"t": {"Keys": [{"pk": {"S": "a"}, "sk": {"S": "b"}}], "ConsistentRead": true}}});
        let answer = nothing_processed_body(Some("BatchGetItem"), asked.to_string().as_bytes());
        assert_eq!(answer["Responses"], json!({"t": []}));
        assert_eq!(answer["UnprocessedKeys"], asked["RequestItems"]);

        let two = json!({"TransactItems": [{"Put": {}}, {"Update": {}}]});
        let answer = transaction_conflict_body(two.to_string().as_bytes());
        assert_eq!(
            answer["CancellationReasons"],
            json!([{"Code": "None"}, {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}])
        );

        let given = json!({"RequestItems": {"t": [{"PutRequest": {"Item": {"pk": {"S": "a"}, "sk": {"S": "b"}}}}]}});
        let answer = nothing_processed_body(Some("BatchWriteItem"), given.to_string().as_bytes());
        assert_eq!(answer, json!({"UnprocessedItems": given["RequestItems"]}));
    }
}
