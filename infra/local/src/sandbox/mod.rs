//! The Meta sandbox: a local server that speaks the Graph API's HTTP for every endpoint
//! wapisnap calls, records every request, fails the way Meta fails when told to (and answers
//! 130429 past a number's throughput, when one is set), and posts signed webhooks back like
//! Meta does. Tests drive it through this type; `make dev` users through its control API under
//! `/_sandbox/`.

mod control;
pub mod errors;
mod graph;
pub mod webhooks;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use webhooks::{InboundText, StatusUpdate, WebhookTarget};

/// One request as the sandbox received it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: String,
    /// The `Authorization` header as received (the sandbox plays Meta, who sees the token).
    pub authorization: Option<String>,
    pub body: Value,
    pub answered_status: u16,
    /// The id Meta gave the message when it accepted it (even if the answer was then lost).
    pub accepted_id: Option<String>,
    /// Meta's error code in the answer (`error.code`), when it refused the request.
    #[serde(default)]
    pub answered_error_code: Option<i64>,
    /// When the sandbox received it (wall clock, microseconds since the epoch); for a send to
    /// `/messages`, the instant it was counted against the number's throughput.
    #[serde(default)]
    pub received_at_micros: i64,
}

/// A way Meta fails, applied to the next `times` matching requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    /// Only requests whose path contains this (e.g. `/messages`, `/register`); all when absent.
    #[serde(default)]
    pub path_contains: Option<String>,
    /// Only sends to this recipient (`to` in the body).
    #[serde(default)]
    pub recipient: Option<String>,
    #[serde(default = "one")]
    pub times: u32,
    pub effect: FaultEffect,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultEffect {
    /// Meta refuses the request with its JSON error body (status from Meta's catalogue unless given).
    MetaError {
        code: i64,
        #[serde(default)]
        subcode: Option<i64>,
        #[serde(default)]
        http_status: Option<u16>,
        #[serde(default)]
        message: Option<String>,
    },
    /// A bare HTTP error without Meta's body (a load balancer's 502/503/504).
    HttpStatus { status: u16 },
    /// The answer is held back this long before the normal response.
    Delay { millis: u64 },
    /// Meta accepts and processes the request (a message will be delivered and reported),
    /// but the answer is lost: replaced by `status`, and/or held back `delay_millis`.
    AcceptThenFail {
        #[serde(default)]
        status: Option<u16>,
        #[serde(default)]
        delay_millis: Option<u64>,
    },
    /// Meta accepts the send (a wamid comes back), then reports it `failed` with this error
    /// code in a status webhook: how 131049 and 131026 usually arrive.
    FailedStatus { code: i64 },
}

/// Meta's view of one business phone number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxNumber {
    pub id: String,
    pub display_phone_number: String,
    pub waba_id: String,
    pub verified_name: String,
    /// CONNECTED, DISCONNECTED, ...
    pub status: String,
    pub quality_rating: String,
    pub messaging_limit_tier: String,
    pub code_verification_status: String,
    /// The two-step verification PIN, once one was set by a register call.
    pub pin: Option<String>,
    pub failed_pin_attempts: u32,
    /// The SMS/voice code Meta "sent" after request_code (what the customer would forward).
    pub pending_code: Option<String>,
}

impl SandboxNumber {
    fn new(id: &str) -> Self {
        let tail: String = id.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        Self {
            id: id.to_owned(),
            display_phone_number: format!("1555000{tail:0>4}"),
            waba_id: format!("9{id}"),
            verified_name: "Sandbox Business".into(),
            status: "CONNECTED".into(),
            quality_rating: "GREEN".into(),
            messaging_limit_tier: "TIER_250".into(),
            code_verification_status: "VERIFIED".into(),
            pin: None,
            failed_pin_attempts: 0,
            pending_code: None,
        }
    }

    fn reference(&self) -> webhooks::NumberRef {
        webhooks::NumberRef {
            phone_number_id: self.id.clone(),
            display_phone_number: self.display_phone_number.clone(),
            waba_id: self.waba_id.clone(),
        }
    }
}

pub struct SandboxState {
    requests: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<Vec<Fault>>,
    numbers: Mutex<BTreeMap<String, SandboxNumber>>,
    templates: Mutex<BTreeMap<String, Vec<Value>>>,
    subscribed_wabas: Mutex<Vec<String>>,
    /// WABAs holding more than their one number (`9{number}` holds `{number}` otherwise).
    waba_numbers: Mutex<HashMap<String, Vec<String>>>,
    /// The app's WhatsApp webhook subscription as someone changed it in the App Dashboard (a
    /// callback URL and its fields); `None`: ours, with `messages`.
    app_subscription: Mutex<Option<(String, Vec<String>)>>,
    webhook: Mutex<Option<WebhookTarget>>,
    /// Statuses reported after every accepted send, in order (`sent`, `delivered`, `read`).
    auto_statuses: Mutex<Vec<String>>,
    /// Per phone number: its throughput limit and the sends it admitted in the last second.
    throughput: Mutex<HashMap<String, ThroughputWindow>>,
    sequence: AtomicU64,
    http: reqwest::Client,
}

/// Meta's "Rate limit hit": the number's throughput was exceeded.
pub const THROUGHPUT_REACHED: i64 = 130429;

/// A number's throughput at Meta: at most `mps` sends in any 1-second window.
#[derive(Debug, Default)]
struct ThroughputWindow {
    mps: Option<u32>,
    /// When the sends of the last second were admitted (microseconds, oldest first).
    admitted: VecDeque<i64>,
}

/// What the throughput limit made of a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Within the limit (or no limit): counted at this instant.
    Admitted(i64),
    /// Over the limit: Meta answers 130429 (at this instant; it is not counted).
    OverLimit(i64),
}

/// Wall-clock microseconds since the epoch.
pub(crate) fn wall_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl SandboxState {
    /// Sets (or with `None` lifts) a number's throughput limit, in messages per second.
    pub fn set_throughput(&self, phone_number_id: &str, mps: Option<u32>) {
        let mut limits = self.throughput.lock().expect("throughput");
        limits.entry(phone_number_id.to_owned()).or_default().mps = mps;
    }

    /// Counts a send of the number, unless it would make more than its `mps` sends in the
    /// last second (the half-open window `(t - 1 s, t]`). Meta's throughput is per number.
    pub(crate) fn admit_send(&self, phone_number_id: &str) -> Admission {
        let mut limits = self.throughput.lock().expect("throughput");
        let now = wall_micros();
        let window = limits.entry(phone_number_id.to_owned()).or_default();
        while window.admitted.front().is_some_and(|&at| at <= now - 1_000_000) {
            window.admitted.pop_front();
        }
        if window.mps.is_some_and(|mps| window.admitted.len() >= mps as usize) {
            return Admission::OverLimit(now);
        }
        window.admitted.push_back(now);
        Admission::Admitted(now)
    }

    fn next(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn number(&self, id: &str) -> SandboxNumber {
        self.numbers.lock().expect("numbers").entry(id.to_owned()).or_insert_with(|| SandboxNumber::new(id)).clone()
    }

    /// Where the sandbox posts webhooks: the app's callback URL at Meta.
    pub fn webhook_url(&self) -> Option<String> {
        self.webhook.lock().expect("webhook").as_ref().map(|target| target.url.clone())
    }

    /// The app secret the sandbox shares with the stack (it signs webhooks with it).
    fn app_secret(&self) -> Option<String> {
        self.webhook.lock().expect("webhook").as_ref().map(|target| target.app_secret.clone())
    }

    fn update_number(&self, id: &str, change: impl FnOnce(&mut SandboxNumber)) -> SandboxNumber {
        let mut numbers = self.numbers.lock().expect("numbers");
        let number = numbers.entry(id.to_owned()).or_insert_with(|| SandboxNumber::new(id));
        change(number);
        number.clone()
    }

    /// Takes one use of the first fault matching this request.
    fn take_fault(&self, path: &str, body: &Value) -> Option<FaultEffect> {
        let mut faults = self.faults.lock().expect("faults");
        let recipient = body["to"].as_str().or_else(|| body["recipient"]["id"].as_str());
        let index = faults.iter().position(|f| {
            f.times > 0
                && f.path_contains.as_deref().is_none_or(|p| path.contains(p))
                && f.recipient.as_deref().is_none_or(|r| Some(r) == recipient)
        })?;
        faults[index].times -= 1;
        let effect = faults[index].effect.clone();
        if faults[index].times == 0 {
            faults.remove(index);
        }
        Some(effect)
    }

    fn record(&self, request: RecordedRequest) {
        self.requests.lock().expect("requests").push(request);
    }

    /// Posts a status webhook for a message, if a webhook target is configured.
    pub async fn post_status(&self, phone_number_id: &str, update: &StatusUpdate) -> Result<u16, String> {
        let target = self.webhook.lock().expect("webhook").clone().ok_or("no webhook target configured")?;
        let payload = webhooks::status_payload(&self.number(phone_number_id).reference(), update);
        webhooks::deliver(&self.http, &target, &payload).await
    }

    /// Posts a customer's text message to the webhook; returns its wamid and our answer.
    pub async fn post_inbound_text(&self, message: &InboundText) -> Result<(String, u16), String> {
        let target = self.webhook.lock().expect("webhook").clone().ok_or("no webhook target configured")?;
        let wamid = message.wamid.clone().unwrap_or_else(|| format!("wamid.SANDBOX_IN_{:08}", self.next()));
        let payload =
            webhooks::inbound_text_payload(&self.number(&message.phone_number_id).reference(), message, &wamid);
        let status = webhooks::deliver(&self.http, &target, &payload).await?;
        Ok((wamid, status))
    }
}

/// A running sandbox.
pub struct Sandbox {
    pub url: String,
    pub state: Arc<SandboxState>,
    shutdown: watch::Sender<bool>,
}

impl Sandbox {
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(SandboxState {
            requests: Mutex::default(),
            faults: Mutex::default(),
            numbers: Mutex::default(),
            templates: Mutex::default(),
            subscribed_wabas: Mutex::default(),
            waba_numbers: Mutex::default(),
            app_subscription: Mutex::default(),
            webhook: Mutex::default(),
            auto_statuses: Mutex::new(vec!["sent".into(), "delivered".into(), "read".into()]),
            throughput: Mutex::default(),
            sequence: AtomicU64::new(0),
            http: reqwest::Client::new(),
        });
        let router = graph::router().merge(control::router()).with_state(state.clone());
        let shutdown = crate::serve::in_background(listener, router, "Meta sandbox");
        Ok(Self { url, state, shutdown })
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().expect("requests").clone()
    }

    /// Requests whose path contains `fragment`, e.g. `/messages`.
    pub fn requests_to(&self, fragment: &str) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.path.contains(fragment)).collect()
    }

    pub fn inject(&self, fault: Fault) {
        self.state.faults.lock().expect("faults").push(fault);
    }

    pub fn set_webhook(&self, target: WebhookTarget) {
        *self.state.webhook.lock().expect("webhook") = Some(target);
    }

    pub fn set_auto_statuses(&self, statuses: &[&str]) {
        *self.state.auto_statuses.lock().expect("statuses") = statuses.iter().map(|s| (*s).to_owned()).collect();
    }

    pub fn number(&self, id: &str) -> SandboxNumber {
        self.state.number(id)
    }

    /// Meta's throughput for a number: more than `mps` sends in any 1-second window are
    /// answered 130429 ("Rate limit hit"). `None` (the default) lifts the limit.
    pub fn set_throughput(&self, phone_number_id: &str, mps: Option<u32>) {
        self.state.set_throughput(phone_number_id, mps);
    }

    /// The WABA holds these phone numbers (as its `phone_numbers` edge lists them).
    pub fn waba_holds(&self, waba: &str, numbers: &[&str]) {
        let numbers = numbers.iter().map(|n| (*n).to_owned()).collect();
        self.state.waba_numbers.lock().expect("WABA numbers").insert(waba.to_owned(), numbers);
    }

    /// Someone removed the app from the WABA in Business Settings: Meta sends it no webhooks.
    pub fn app_removed_from_waba(&self, waba: &str) {
        self.state.subscribed_wabas.lock().expect("subscriptions").retain(|w| w != waba);
    }

    /// Someone changed the app's WhatsApp webhook in the App Dashboard: its callback URL and
    /// the fields it subscribes.
    pub fn app_webhook_changed(&self, callback_url: &str, fields: &[&str]) {
        let fields = fields.iter().map(|f| (*f).to_owned()).collect();
        *self.state.app_subscription.lock().expect("subscription") = Some((callback_url.to_owned(), fields));
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
