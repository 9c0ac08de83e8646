//! What every integration test starts from: one AWS emulator per test binary (started on
//! first use; tests never share resources because every stack has its own name prefix), and a
//! `TestApp` with the real functions wired into a fresh local stack and Meta sandbox.

use std::time::{Duration, Instant};

use tokio::sync::OnceCell;
use wapisnap_local::environment::{EnvironmentOptions, LocalEnvironment};
use wapisnap_local::moto::Moto;

pub mod broadcasts;
pub mod flows;

static MOTO: OnceCell<Moto> = OnceCell::const_new();

/// The emulator's endpoint. Fails the test with instructions when moto is not installed.
pub async fn aws_endpoint() -> String {
    let moto = MOTO
        .get_or_init(|| async {
            Moto::start().await.unwrap_or_else(|e| panic!("the integration tests need the AWS emulator: {e}"))
        })
        .await;
    moto.endpoint.clone()
}

pub struct TestApp {
    pub env: LocalEnvironment,
    pub http: reqwest::Client,
}

impl TestApp {
    /// A fresh stack with its SQS pollers and Scheduler loop running, like `make dev`.
    pub async fn spawn() -> Self {
        let app = Self::spawn_idle().await;
        app.env.stack.start_background();
        app
    }

    /// A fresh stack whose queues and schedules are driven by the test itself.
    pub async fn spawn_idle() -> Self {
        Self::spawn_with(EnvironmentOptions::default()).await
    }

    /// A fresh idle stack with some options changed (on the shared emulator).
    pub async fn spawn_with(options: EnvironmentOptions) -> Self {
        let options = EnvironmentOptions { aws_endpoint: Some(aws_endpoint().await), ..options };
        let env = LocalEnvironment::start(options).await.expect("local stack starts");
        Self { env, http: reqwest::Client::new() }
    }

    pub fn webhook_url(&self) -> String {
        self.env.stack.webhook_url()
    }

    pub fn api_url(&self) -> String {
        self.env.stack.api_url()
    }
}

/// Polls `check` until it returns `Some`, or panics after `within` saying what was awaited.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Bodies of the messages waiting on a queue (received and left in flight).
pub async fn drain_bodies(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let received = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("receive");
    received.messages().iter().filter_map(|m| m.body.clone()).collect()
}

/// The sample webhook bodies in `events/meta/`.
pub fn sample(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/meta").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub const NUMBER_A: &str = "106540352242922";
pub const NUMBER_B: &str = "106540352242923";
pub const INSTAGRAM_ACCOUNT: &str = "17841405309211844";

impl TestApp {
    pub fn store(&self) -> wapisnap::store::Store {
        wapisnap::store::Store::new(self.env.stack.aws.dynamodb.clone(), self.env.stack.resources.table_name())
    }

    /// A workspace that owns `account_id`, named uniquely for this test.
    pub async fn workspace_owning(&self, channel: Channel, account_id: &str) -> WorkspaceId {
        let workspace = WorkspaceId::parse(format!("ws-{}", self.env.stack.resources.prefix)).unwrap();
        self.claim(&workspace, channel, account_id).await;
        workspace
    }

    pub async fn claim(&self, workspace: &WorkspaceId, channel: Channel, account_id: &str) {
        self.store().claim_route(workspace, channel, account_id, chrono::Utc::now()).await.expect("claim route");
    }

    /// Posts a body to the webhook signed like Meta signs it.
    pub async fn deliver(&self, body: &[u8]) -> (u16, String) {
        let signature = wapisnap_local::sandbox::webhooks::signature("local-app-secret", body);
        self.post_webhook(body, Some(&signature)).await
    }

    pub async fn post_webhook(&self, body: &[u8], signature: Option<&str>) -> (u16, String) {
        let mut request =
            self.http.post(self.webhook_url()).header("content-type", "application/json").body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        let response = request.send().await.expect("webhook answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    pub fn queue_url(&self, logical_id: &str) -> String {
        self.env.stack.resources.queue(logical_id).unwrap_or_else(|| panic!("no queue {logical_id}")).url
    }

    /// Receives and deletes everything on a queue (FIFO included) until it is empty.
    pub async fn drain(&self, logical_id: &str) -> Vec<serde_json::Value> {
        self.drain_waiting(logical_id, 1).await
    }

    /// Receives and deletes until a receive that waited `wait_seconds` comes back empty.
    async fn drain_waiting(&self, logical_id: &str, wait_seconds: i32) -> Vec<serde_json::Value> {
        let sqs = &self.env.stack.aws.sqs;
        let url = self.queue_url(logical_id);
        let mut bodies = Vec::new();
        loop {
            let received = sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .wait_time_seconds(wait_seconds)
                .send()
                .await
                .expect("receive");
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return bodies;
            }
            for message in messages {
                bodies.push(serde_json::from_str(message.body().unwrap_or("null")).unwrap_or(serde_json::Value::Null));
                sqs.delete_message()
                    .queue_url(&url)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

use wapisnap::domain::Channel;
use wapisnap::domain::WorkspaceId;

/// A fault on the next `times` sends to Meta.
pub fn fault(effect: FaultEffect, times: u32) -> Fault {
    Fault { path_contains: Some("/messages".into()), recipient: None, times, effect }
}

/// Meta's refusal with its JSON error body, as its error reference gives it for `code`.
pub fn meta_error(code: i64) -> FaultEffect {
    FaultEffect::MetaError { code, subcode: None, http_status: None, message: None }
}

/// A WhatsApp send job to a customer of `NUMBER_A`.
pub fn job(ws: &WorkspaceId, id: &str, to: &str, origin: Origin, content: OutboundContent) -> SendJob {
    SendJob {
        job_id: SendJobId::parse(id).unwrap(),
        workspace_id: ws.clone(),
        channel: Channel::WhatsApp,
        account_id: wapisnap::domain::AccountId::parse(NUMBER_A).unwrap(),
        to: wapisnap::domain::ContactId::for_channel(Channel::WhatsApp, to).unwrap(),
        origin,
        content,
    }
}

pub fn text(body: &str) -> OutboundContent {
    OutboundContent::Text { body: body.into(), preview_url: false }
}

pub fn template(name: &str) -> OutboundContent {
    OutboundContent::Template { name: name.into(), language: "en_US".into(), components: vec![] }
}

pub fn agent() -> Origin {
    Origin::Human { agent_id: "agent-1".into() }
}

pub fn flow() -> Origin {
    Origin::Flow { run_id: "run-1".into(), step: "s1".into() }
}

pub fn broadcast(id: &str) -> Origin {
    Origin::Broadcast { broadcast_id: id.into() }
}

/// The access token the tests connect numbers with; no log line may ever contain it.
pub const TOKEN: &str = "EAAGsandboxTOKEN0123456789secretXYZ";

impl TestApp {
    pub fn vault(&self) -> Vault {
        let key = self.env.stack.resources.reference("TokenKey").expect("token key");
        Vault::new(self.env.stack.aws.kms.clone(), key)
    }

    /// Connects a number to the workspace: claims it, seals its token, marks it ACTIVE.
    pub async fn connect_number(&self, ws: &WorkspaceId, number_id: &str) -> NumberRecord {
        let waba = format!("9{number_id}");
        let connection = Connection {
            workspace: ws,
            channel: Channel::WhatsApp,
            account_id: number_id,
            waba_id: Some(&waba),
            token: &SecretString::from(TOKEN),
            state: NumberState::Active,
        };
        wapisnap::numbers::connect(&self.store(), &self.vault(), connection, chrono::Utc::now()).await.expect("connect")
    }

    /// Connects the Instagram account to the workspace, as onboarding does.
    pub async fn connect_instagram(&self, ws: &WorkspaceId) {
        let connection = Connection {
            workspace: ws,
            channel: Channel::Instagram,
            account_id: INSTAGRAM_ACCOUNT,
            waba_id: None,
            token: &SecretString::from(TOKEN),
            state: NumberState::Active,
        };
        wapisnap::numbers::connect(&self.store(), &self.vault(), connection, chrono::Utc::now())
            .await
            .expect("connect");
    }

    /// Instagram posts one messaging event (`messaging[]` element) for the account.
    pub async fn instagram_posts(&self, messaging: serde_json::Value) {
        let body = serde_json::json!({
            "object": "instagram",
            "entry": [{ "id": INSTAGRAM_ACCOUNT, "time": self.env.stack.clock.now().timestamp_millis(), "messaging": [messaging] }],
        });
        let (status, answer) = self.deliver(body.to_string().as_bytes()).await;
        assert_eq!(status, 200, "{answer}");
    }

    /// A workspace with `NUMBER_A` connected.
    pub async fn workspace_with_number(&self) -> WorkspaceId {
        let ws = WorkspaceId::parse(format!("ws-{}", self.env.stack.resources.prefix)).unwrap();
        self.connect_number(&ws, NUMBER_A).await;
        ws
    }

    /// The customer writes now, which opens the 24-hour window.
    pub async fn customer_writes(&self, from: &str) {
        let message = wapisnap_local::sandbox::InboundText {
            phone_number_id: NUMBER_A.into(),
            from: from.into(),
            name: Some("Customer".into()),
            text: "hello".into(),
            wamid: None,
            timestamp: Some(self.env.stack.clock.now().timestamp()),
            button_id: None,
        };
        let (_, answered) = self.env.sandbox.state.post_inbound_text(&message).await.unwrap();
        assert_eq!(answered, 200);
    }

    pub fn sender(&self) -> &Sender {
        self.env.stack.functions.sender.sender()
    }

    pub async fn send(&self, job: &SendJob) -> SendOutcome {
        self.sender().send(SendRequest::New { job: Box::new(job.clone()) }).await.expect("send runs")
    }

    /// Puts a new job on the send queue, as the API, flows and broadcasts do.
    pub async fn enqueue(&self, job: &SendJob) {
        let body = serde_json::to_string(&SendRequest::New { job: Box::new(job.clone()) }).unwrap();
        self.env
            .stack
            .aws
            .sqs
            .send_message()
            .queue_url(self.queue_url("SendQueue"))
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    pub async fn job(&self, ws: &WorkspaceId, id: &str) -> JobRecord {
        self.store().job(ws, &SendJobId::parse(id).unwrap()).await.unwrap().expect("job exists")
    }

    /// Waits until the job reaches `state`.
    pub async fn job_reaches(&self, ws: &WorkspaceId, id: &str, state: JobState) -> JobRecord {
        eventually(&format!("job {id} to be {state:?}"), Duration::from_secs(60), || async {
            let record = self.store().job(ws, &SendJobId::parse(id).unwrap()).await.unwrap()?;
            (record.state == state).then_some(record)
        })
        .await
    }

    /// A sender accepts and claims the job, then stops (no Graph call, no outcome recorded):
    /// what a crash or a Lambda timeout right after the claim leaves behind.
    pub async fn claimed_by_a_sender_that_dies(&self, job: &SendJob) {
        let store = self.store();
        let now = self.env.stack.clock.now();
        store.accept_job(job, now).await.expect("accept");
        let record = self.job(&job.workspace_id, job.job_id.as_str()).await;
        let claim = store
            .claim_job(AttemptRef::of(&record), now, wapisnap::outbound::sender::send_lease())
            .await
            .expect("claim");
        assert!(matches!(claim, wapisnap::store::jobs::Claim::Claimed { .. }), "{claim:?}");
    }

    /// Calls the sandbox's Graph API directly, as a sender would; returns Meta's answer.
    pub async fn post_to_graph(&self, body: &serde_json::Value) -> serde_json::Value {
        let url = format!("{}/v23.0/{NUMBER_A}/messages", self.env.sandbox.url);
        let response = self.http.post(url).bearer_auth(TOKEN).json(body).send().await.expect("sandbox answers");
        response.json().await.expect("sandbox answers JSON")
    }

    /// The next send to Meta is refused with this error code (Meta's JSON error body).
    pub fn meta_fails_next(&self, code: i64) {
        self.meta_answers_next(FaultEffect::MetaError { code, subcode: None, http_status: None, message: None });
    }

    /// AWS as the stack reaches it, for a story to slow or fail it (spawned with `aws_faults`).
    pub fn aws(&self) -> &wapisnap_local::aws_faults::AwsFaults {
        &self.env.aws_faults
    }

    /// From now on every AWS request takes this long to be answered.
    pub fn aws_answers_after(&self, delay: std::time::Duration) {
        self.aws().answer_after(delay);
    }

    /// The next `fault.times` requests of its operation meet AWS's error.
    pub fn aws_fails_next(&self, fault: wapisnap_local::aws_faults::AwsFault) {
        self.aws().fail_next(fault);
    }

    /// The next send to Meta meets this fault (a gateway's 502, a delay, a lost answer, ...).
    /// Meta refuses the next register call with `code`.
    pub fn meta_refuses_next_register(&self, code: i64) {
        self.env.sandbox.inject(Fault {
            path_contains: Some("/register".into()),
            recipient: None,
            times: 1,
            effect: meta_error(code),
        });
    }

    pub fn meta_answers_next(&self, effect: FaultEffect) {
        self.env.sandbox.inject(Fault { path_contains: Some("/messages".into()), recipient: None, times: 1, effect });
    }

    /// Meta reports a status for some other message of `NUMBER_A`: proof its statuses flow.
    pub async fn statuses_flow_for_the_number(&self) {
        let status = wapisnap_local::sandbox::StatusUpdate {
            wamid: format!("wamid.OTHER{}", rand_suffix()),
            status: "delivered".into(),
            recipient_id: "16505550000".into(),
            ..Default::default()
        };
        let answered = self.env.sandbox.state.post_status(NUMBER_A, &status).await.expect("status delivered");
        assert_eq!(answered, 200, "the webhook took the status");
    }

    /// Damages the contact's stored item so that it no longer reads (a fault of ours, not Meta's).
    pub async fn corrupt_contact(&self, ws: &WorkspaceId, contact: &str, corrupt: bool) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let (pk, sk) = wapisnap::store::keys::contact(ws, Channel::WhatsApp, contact);
        let streak = if corrupt { AttributeValue::S("unreadable".into()) } else { AttributeValue::N("0".into()) };
        self.env
            .stack
            .aws
            .dynamodb
            .update_item()
            .table_name(self.env.stack.resources.table_name())
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk))
            .update_expression("SET undeliverable_streak = :v")
            .expression_attribute_values(":v", streak)
            .send()
            .await
            .expect("contact updated");
    }

    /// An item filed in the sweeper's index that does not read as a job.
    pub async fn put_unreadable_job_in_the_sweep(&self, ws: &WorkspaceId) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let sweep = wapisnap::store::jobs::sweep_key(JobState::Sending, 0);
        let item = [
            ("pk", AttributeValue::S(format!("WS#{ws}#JOB#garbled"))),
            ("sk", AttributeValue::S("JOB".into())),
            ("gsi1pk", AttributeValue::S(sweep)),
            ("gsi1sk", AttributeValue::S(wapisnap::store::keys::sortable_millis(0))),
            ("state", AttributeValue::N("42".into())),
        ];
        self.env
            .stack
            .aws
            .dynamodb
            .put_item()
            .table_name(self.env.stack.resources.table_name())
            .set_item(Some(item.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
            .send()
            .await
            .expect("item written");
    }

    /// The queues as the functions reach them.
    pub fn queues(&self) -> wapisnap::queues::Queues {
        wapisnap::queues::Queues::new(
            self.env.stack.aws.sqs.clone(),
            wapisnap::config::QueueConfig {
                flow_queue_url: self.queue_url("FlowQueue"),
                send_queue_url: self.queue_url("SendQueue"),
                retry_queue_url: self.queue_url("RetryQueue"),
            },
        )
    }

    /// The template is APPROVED at Meta for `NUMBER_A`'s WhatsApp Business Account (en_US).
    pub async fn approve_template(&self, ws: &WorkspaceId, name: &str) {
        let waba = format!("9{NUMBER_A}");
        self.store().put_template(ws, &waba, name, "en_US", NumberTemplateStatus::Approved).await.expect("template");
    }

    /// Meta posts a status webhook (`sent`, `delivered`, `read`, `failed` ...) for one of our
    /// messages to `NUMBER_A`, naming our job as Meta echoes `biz_opaque_callback_data`.
    pub async fn meta_reports(&self, status: &str, wamid: &str, recipient: &str, job: Option<&str>) {
        self.meta_posts_status(status, wamid, recipient, job, None).await;
    }

    /// Meta reports one of our messages `failed` with this error code.
    pub async fn meta_reports_failure(&self, code: i64, wamid: &str, recipient: &str, job: Option<&str>) {
        self.meta_posts_status("failed", wamid, recipient, job, Some(code)).await;
    }

    /// Meta posts this status webhook; the webhook's answer (a 5xx asks Meta to deliver it again).
    pub async fn meta_posts(&self, update: &wapisnap_local::sandbox::StatusUpdate) -> u16 {
        self.env.sandbox.state.post_status(NUMBER_A, update).await.expect("the webhook answers")
    }

    async fn meta_posts_status(
        &self,
        status: &str,
        wamid: &str,
        recipient: &str,
        job: Option<&str>,
        code: Option<i64>,
    ) {
        let update = wapisnap_local::sandbox::StatusUpdate {
            wamid: wamid.into(),
            status: status.into(),
            recipient_id: recipient.into(),
            biz_opaque_callback_data: job.map(str::to_owned),
            error_code: code,
            ..Default::default()
        };
        self.env.sandbox.state.post_status(NUMBER_A, &update).await.expect("status delivered");
    }

    /// Runs the sweeper once, as its rate schedule would.
    pub async fn sweep(&self) -> wapisnap::outbound::sweeper::SweepReport {
        self.env.stack.functions.sweeper.handle().await.expect("sweep runs")
    }

    pub fn sends_received(&self) -> usize {
        self.env.sandbox.requests_to("/messages").len()
    }

    pub async fn advance(&self, by: chrono::Duration) {
        self.env.stack.clock.advance(by);
    }

    /// Schedules in the stack's group.
    pub async fn schedules(&self) -> Vec<String> {
        let stack = &self.env.stack;
        let listed =
            stack.aws.scheduler.list_schedules().group_name(stack.resources.schedule_group()).send().await.unwrap();
        listed.schedules().iter().filter_map(|s| s.name().map(str::to_owned)).collect()
    }
}

use secrecy::SecretString;
use wapisnap::clock::Clock;
use wapisnap::domain::NumberState;
use wapisnap::domain::SendJobId;
use wapisnap::domain::TemplateStatus as NumberTemplateStatus;
use wapisnap::domain::{JobState, Origin, SendJob, SendRequest};
use wapisnap::numbers::Connection;
use wapisnap::outbound::content::OutboundContent;
use wapisnap::outbound::sender::{SendOutcome, Sender};
use wapisnap::store::jobs::{AttemptRef, JobRecord};
use wapisnap::store::numbers::NumberRecord;
use wapisnap::vault::Vault;
use wapisnap_local::sandbox::{Fault, FaultEffect};
use wapisnap_local::template::Resolver;

fn rand_suffix() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

impl TestApp {
    /// Receives and deletes what is on a queue right now, without waiting for more (what a
    /// poller would be handed): for tests that take many turns and cannot spend a second each.
    pub async fn drain_now(&self, logical_id: &str) -> Vec<serde_json::Value> {
        self.drain_waiting(logical_id, 0).await
    }
}

impl TestApp {
    /// The stack's workspace (the one [`Self::workspace_with_number`] uses), created if needed,
    /// and a fresh API key for it.
    pub async fn workspace_with_key(&self) -> (WorkspaceId, String) {
        let ws = WorkspaceId::parse(format!("ws-{}", self.env.stack.resources.prefix)).unwrap();
        let key = self.key_for(&ws).await;
        (ws, key)
    }

    /// A fresh API key for `ws`, creating the workspace first when it does not exist yet.
    pub async fn key_for(&self, ws: &WorkspaceId) -> String {
        use secrecy::ExposeSecret;
        let store = self.store();
        let now = self.env.stack.clock.now();
        store.create_workspace(ws, ws.as_str(), now).await.expect("workspace created or already there");
        let issued = store.issue_api_key(ws, "test", now).await.expect("key issued");
        issued.key.expose_secret().to_owned()
    }
}
