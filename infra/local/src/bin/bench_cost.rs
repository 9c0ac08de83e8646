//! `make bench-cost`: what each unit of work costs in AWS, counted and priced. Each unit is
//! played on the local stack (the real functions, the AWS emulator, the Meta sandbox), and the
//! AWS requests it makes are counted by operation by the interceptor on the stack's SDK clients
//! (`aws_requests.rs`), not estimated; DynamoDB requests are priced by the sizes of the items
//! they touched, SQS requests by their 64 KB chunks; each Lambda invocation is timed where the
//! local runner makes it (`functions.rs`) and priced at its template memory size on arm64.
//!
//! Units: one inbound text that triggers a one-node flow reply; one status webhook (sent,
//! delivered and read, each played); one broadcast recipient (an average over `--recipients`);
//! one 131049 retry cycle (Meta's failed status, Smart Retry's schedule, its firing after a
//! clock advance, the resend delivered); one inbox reply (the API's composer send); one sweeper
//! run over 1,000 open jobs. Then the totals per 1M inbound messages handled end to end (each
//! with its flow reply and that reply's status webhooks) and per 100,000-recipient broadcast.
//!
//! ```text
//! bench-cost [--recipients 200] [--open-jobs 1000]
//! ```
//!
//! Not counted as a unit's: the SQS receives that came back empty (the event source mappings'
//! idle long polls, a fixed cost per queue whatever the traffic), and the local Scheduler's
//! own calls to find due schedules (Scheduler does that inside AWS; one invocation is billed
//! per schedule fired, plus the SQS `SendMessage` it makes to a queue target).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::watch;
use wapisnap::clock::Clock;
use wapisnap::contacts::Tag;
use wapisnap::domain::{AutomationId, BroadcastId, Channel, ContactId, WorkspaceId};
use wapisnap::store::Store;
use wapisnap_local::aws_requests::{AwsRequestCounter, EMPTY_RECEIVE, Operation, RecordedCall};
use wapisnap_local::environment::{EnvironmentOptions, LocalEnvironment};
use wapisnap_local::index_writes::{Projected, SecondaryIndex, index_writes, refused_by_condition};
use wapisnap_local::sandbox::{InboundText, StatusUpdate};
use wapisnap_local::stack::LocalStack;
use wapisnap_local::template::HttpEntry;

use wapisnap_local::bench::{Failure, NUMBER, TAG, TEMPLATE, audience_broadcast, connect_number_with_template};

const CUSTOMER: &str = "16505551234";

/// List prices, us-east-1, as of 2026-11-28 (aws.amazon.com/{lambda,api-gateway,dynamodb,sqs,
/// kms,eventbridge}/pricing), without free tiers.
mod price {
    pub const AS_OF: &str = "2026-11-28";
    /// Lambda on arm64, per GB-second.
    pub const LAMBDA_ARM64_GB_SECOND: f64 = 0.000_013_333_4;
    /// Lambda, per request (invocation).
    pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    /// API Gateway HTTP API, per request (first 300M a month): the workspace API's requests. The
    /// webhook is a Lambda function URL, which costs nothing beyond the invocation.
    pub const HTTP_API_REQUEST: f64 = 1.00 / 1e6;
    /// DynamoDB on-demand, per write request unit (1 KB written; 2 in a transaction).
    pub const DYNAMODB_WRU: f64 = 0.625 / 1e6;
    /// DynamoDB on-demand, per read request unit (4 KB strongly consistent, 8 KB eventually
    /// consistent; 2 in a transaction).
    pub const DYNAMODB_RRU: f64 = 0.125 / 1e6;
    /// SQS standard queue, per request (each 64 KB chunk of a payload is one request).
    pub const SQS_REQUEST: f64 = 0.40 / 1e6;
    /// KMS, per API request.
    pub const KMS_REQUEST: f64 = 0.03 / 1e4;
    /// EventBridge Scheduler, per invocation (the schedule API itself is not billed).
    pub const SCHEDULER_INVOCATION: f64 = 1.00 / 1e6;
}

/// Status webhooks Meta posts for one message we send: sent, delivered, read.
const STATUSES_PER_SEND: f64 = 3.0;
/// Quiet time after which a unit's work is taken as finished.
const QUIET: Duration = Duration::from_millis(1_500);

const USAGE: &str = "usage: bench-cost [--recipients 200] [--open-jobs 1000]";

struct Args {
    recipients: usize,
    open_jobs: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { recipients: 200, open_jobs: 1_000 };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut number = || {
            given
                .next()
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag} needs a number above 0\n{USAGE}"))
        };
        match flag.as_str() {
            "--recipients" => args.recipients = number()?,
            "--open-jobs" => args.open_jobs = number()?,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// What one unit of work did, measured.
struct Measured {
    name: &'static str,
    /// How many units the measurement covered (the figures are divided by it).
    units: f64,
    operations: BTreeMap<Operation, u64>,
    calls: Vec<RecordedCall>,
    invocations: Vec<(&'static str, Duration)>,
    /// Schedules Scheduler fired, and how many of them delivered to an SQS queue.
    schedules_fired: u64,
    schedule_sqs_deliveries: u64,
    /// Sends Meta accepted during the unit.
    sends: usize,
}

/// A measurement in progress.
struct Meter {
    operations: BTreeMap<Operation, u64>,
    calls: usize,
    invocations: usize,
    sends: usize,
    schedules_fired: u64,
    schedule_sqs_deliveries: u64,
}

struct Bench {
    environment: LocalEnvironment,
    /// Items read back to price writes by size, through a client nothing counts.
    reader: aws_sdk_dynamodb::Client,
    table: String,
    memory_mb: HashMap<&'static str, u64>,
    /// The functions the template puts behind API Gateway's HTTP API (priced per request); a
    /// function reached through its function URL (the webhook) is not.
    behind_http_api: BTreeSet<&'static str>,
    /// The table's global secondary indexes: each write to them is billed too.
    indexes: Vec<SecondaryIndex>,
}

impl Bench {
    fn stack(&self) -> &LocalStack {
        &self.environment.stack
    }

    fn accepted_sends(&self) -> Vec<wapisnap_local::sandbox::RecordedRequest> {
        self.environment
            .sandbox
            .requests_to("/messages")
            .into_iter()
            .filter(|r| r.method == "POST" && r.accepted_id.is_some())
            .collect()
    }

    fn start(&self) -> Meter {
        let stack = self.stack();
        Meter {
            operations: stack.aws_requests.snapshot(),
            calls: stack.aws_requests.calls_mark(),
            invocations: stack.functions.timings.mark(),
            sends: self.accepted_sends().len(),
            schedules_fired: 0,
            schedule_sqs_deliveries: 0,
        }
    }

    /// Waits until nothing has happened for [`QUIET`]: no counted request, no invocation ended.
    async fn settle(&self) {
        let stack = self.stack();
        let busy = || {
            let mut ops = stack.aws_requests.snapshot();
            ops.retain(|(_, op), _| op != EMPTY_RECEIVE);
            (ops, stack.functions.timings.mark(), self.environment.sandbox.requests().len())
        };
        let mut last = busy();
        loop {
            tokio::time::sleep(QUIET).await;
            let now = busy();
            if now == last {
                return;
            }
            last = now;
        }
    }

    /// Waits until Meta has accepted `count` more sends than at `meter`'s start, then settles.
    async fn sends_accepted(&self, meter: &Meter, count: usize, within: Duration) -> Result<(), Failure> {
        let deadline = Instant::now() + within;
        while self.accepted_sends().len() < meter.sends + count {
            if Instant::now() > deadline {
                return Err(format!(
                    "waited {within:?} for {count} sends; Meta accepted {}",
                    self.accepted_sends().len() - meter.sends
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.settle().await;
        Ok(())
    }

    /// Fires the one-time schedules that are due, as Scheduler would, counting what it bills.
    async fn fire_schedules(&self, meter: &mut Meter) -> Result<(), Failure> {
        let fired = self.stack().scheduler.fire_due_schedules().await?;
        meter.schedules_fired += fired.len() as u64;
        meter.schedule_sqs_deliveries +=
            fired.iter().filter(|f| f.target_arn.starts_with("arn:aws:sqs:")).count() as u64;
        Ok(())
    }

    fn finish(&self, name: &'static str, units: f64, meter: Meter) -> Measured {
        let stack = self.stack();
        let after = stack.aws_requests.snapshot();
        let mut operations: BTreeMap<Operation, u64> = after
            .iter()
            .map(|(op, n)| (op.clone(), n - meter.operations.get(op).copied().unwrap_or(0)))
            .filter(|((_, op), n)| *n > 0 && op != EMPTY_RECEIVE)
            .collect();
        if meter.schedule_sqs_deliveries > 0 {
            // Scheduler's delivery to the queue is an SQS request of ours.
            *operations.entry(("SQS".into(), "SendMessage (Scheduler target)".into())).or_default() +=
                meter.schedule_sqs_deliveries;
        }
        Measured {
            name,
            units,
            operations,
            calls: stack.aws_requests.calls_since(meter.calls),
            invocations: stack.functions.timings.since(meter.invocations),
            schedules_fired: meter.schedules_fired,
            schedule_sqs_deliveries: meter.schedule_sqs_deliveries,
            sends: self.accepted_sends().len() - meter.sends,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::var_os("RUST_LOG").is_some() {
        wapisnap::telemetry::init(wapisnap::telemetry::LogFormat::Pretty);
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-cost failed: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), Failure> {
    let started = Instant::now();
    let options = EnvironmentOptions {
        aws_endpoint: std::env::var("AWS_ENDPOINT_URL").ok().filter(|e| !e.is_empty()),
        ..EnvironmentOptions::default()
    };
    let environment = LocalEnvironment::start(options).await?;
    let reader = AwsRequestCounter::default().clients_for_emulator(&environment.aws_endpoint).await.dynamodb;
    let table = environment.stack.resources.table_name();
    let memory_mb = [
        "WebhookFunction",
        "ApiFunction",
        "SenderFunction",
        "FlowsFunction",
        "RetryFunction",
        "BroadcastFunction",
        "SweeperFunction",
    ]
    .into_iter()
    .map(|f| (f, environment.stack.template.function_memory_mb(f)))
    .collect::<HashMap<_, _>>();
    let behind_http_api = memory_mb
        .keys()
        .copied()
        .filter(|f| matches!(environment.stack.template.http_entry(f), Some(HttpEntry::HttpApi { .. })))
        .collect();
    let indexes = table_indexes(&reader, &table).await?;
    let bench = Bench { environment, reader, table, memory_mb, behind_http_api, indexes };
    let stack = bench.stack();
    let sandbox = &bench.environment.sandbox;
    // Statuses are played as their own unit; the sends' automatic ones would blur the others.
    sandbox.set_auto_statuses(&[]);
    let (_stop, stopped) = watch::channel(false);
    // One poller per event source mapping: each receive is one SQS request, as in Lambda.
    for mapping in &stack.mappings {
        mapping.clone().spawn_pollers(1, stopped.clone());
    }

    // Setup, not measured: the workspace, its number, an API key, the template, the automation.
    let store = Store::new(stack.aws.dynamodb.clone(), &bench.table);
    let workspace = WorkspaceId::parse("bench")?;
    let now = stack.clock.now();
    store.create_workspace(&workspace, "bench", now).await?;
    let key = {
        use secrecy::ExposeSecret;
        store.issue_api_key(&workspace, "bench", now).await?.key.expose_secret().to_owned()
    };
    connect_number_with_template(&bench.environment, &store, &workspace).await?;
    let definition = wapisnap::flows::validate::validate(&json!({
        "name": "Prices",
        "trigger": { "type": "keyword", "keywords": ["price"] },
        "start": "reply",
        "nodes": [{ "id": "reply", "type": "sendMessage", "text": "Hi {{name|there}}, our prices are on the site." }]
    }))
    .map_err(|e| format!("{e:?}"))?;
    let automation = wapisnap::store::automations::Automation::first_version(
        AutomationId::parse("auto_prices")?,
        workspace.clone(),
        definition,
        true,
        now,
    );
    store.create_automation(&automation).await?;
    stack.aws_requests.record_calls(true);
    println!(
        "bench-cost: the local stack is up ({:.1} s); 256 MB means the template's MemorySize; prices: us-east-1 list prices as of {}",
        started.elapsed().as_secs_f64(),
        price::AS_OF
    );

    let mut units = Vec::new();
    let http = reqwest::Client::new();
    let conversation = format!("wa:{NUMBER}:{CUSTOMER}");

    // A warm-up, not measured: the first inbound and reply open the containers' caches (the
    // data key, the connections), as a warm container has them.
    let say = |text: &str| InboundText {
        phone_number_id: NUMBER.into(),
        from: CUSTOMER.into(),
        name: Some("Ana".into()),
        text: text.into(),
        wamid: None,
        timestamp: Some(stack.clock.now().timestamp()),
        button_id: None,
    };
    let meter = bench.start();
    sandbox.state.post_inbound_text(&say("price?")).await?;
    bench.sends_accepted(&meter, 1, Duration::from_secs(60)).await?;

    // 1. One inbound text that triggers the one-node flow reply.
    let meter = bench.start();
    let (_, answered) = sandbox.state.post_inbound_text(&say("what is the price")).await?;
    if answered != 200 {
        return Err(format!("the webhook answered {answered}").into());
    }
    bench.sends_accepted(&meter, 1, Duration::from_secs(60)).await?;
    units.push(bench.finish("inbound text + one-node flow reply", 1.0, meter));

    // 2. Status webhooks for that reply: sent, delivered, read.
    let reply = bench.accepted_sends().pop().ok_or("no reply was sent")?;
    for status in ["sent", "delivered", "read"] {
        let meter = bench.start();
        let update = StatusUpdate {
            wamid: reply.accepted_id.clone().unwrap_or_default(),
            status: status.into(),
            recipient_id: CUSTOMER.into(),
            biz_opaque_callback_data: reply.body["biz_opaque_callback_data"].as_str().map(str::to_owned),
            ..Default::default()
        };
        let answered = sandbox.state.post_status(NUMBER, &update).await?;
        if answered != 200 {
            return Err(format!("the webhook answered {answered} to a status").into());
        }
        bench.settle().await;
        units.push(bench.finish(
            match status {
                "sent" => "status webhook (sent)",
                "delivered" => "status webhook (delivered)",
                _ => "status webhook (read)",
            },
            1.0,
            meter,
        ));
    }

    // 3. An inbox reply: the composer's send through the API.
    let meter = bench.start();
    let response = http
        .post(format!("{}/conversations/{conversation}/messages", stack.api_url()))
        .bearer_auth(&key)
        .header("idempotency-key", "bench-reply-1")
        .json(&json!({ "agent_id": "dana", "content": { "type": "text", "body": "Dana here, happy to help." } }))
        .send()
        .await?;
    if response.status().as_u16() != 202 {
        return Err(format!("the composer send answered {}: {}", response.status(), response.text().await?).into());
    }
    bench.sends_accepted(&meter, 1, Duration::from_secs(60)).await?;
    units.push(bench.finish("inbox reply (API composer send)", 1.0, meter));

    // 4. One 131049 retry cycle: a template accepted, then reported failed with 131049; Smart
    // Retry schedules the resend; the clock moves past it; Scheduler fires; the resend is sent.
    let first = {
        let meter = bench.start();
        let response = http
            .post(format!("{}/conversations/{conversation}/messages", stack.api_url()))
            .bearer_auth(&key)
            .header("idempotency-key", "bench-template-1")
            .json(&json!({ "agent_id": "dana", "content": { "type": "template", "name": TEMPLATE, "language": "en_US" } }))
            .send()
            .await?;
        if response.status().as_u16() != 202 {
            return Err(format!("the template send answered {}", response.status()).into());
        }
        bench.sends_accepted(&meter, 1, Duration::from_secs(60)).await?;
        units.push(bench.finish("template send (composer; for comparison)", 1.0, meter));
        bench.accepted_sends().pop().ok_or("no template was sent")?
    };
    let mut meter = bench.start();
    let failed = StatusUpdate {
        wamid: first.accepted_id.clone().unwrap_or_default(),
        status: "failed".into(),
        recipient_id: CUSTOMER.into(),
        biz_opaque_callback_data: first.body["biz_opaque_callback_data"].as_str().map(str::to_owned),
        error_code: Some(131_049),
        ..Default::default()
    };
    let answered = sandbox.state.post_status(NUMBER, &failed).await?;
    if answered != 200 {
        return Err(format!("the webhook answered {answered} to the failed status").into());
    }
    bench.settle().await;
    stack.clock.advance(chrono::Duration::days(7) + chrono::Duration::minutes(61));
    bench.fire_schedules(&mut meter).await?;
    if meter.schedules_fired == 0 {
        return Err("no retry schedule was due a week and an hour after the 131049".into());
    }
    bench.sends_accepted(&meter, 1, Duration::from_secs(60)).await?;
    units.push(bench.finish("131049 retry cycle (failed status -> schedule -> resend)", 1.0, meter));

    // 5. A broadcast to `recipients` contacts, from its schedule firing to the last send.
    let recipients = args.recipients;
    let tags = BTreeSet::from([Tag::parse(TAG)?]);
    let now = stack.clock.now();
    let saved = stream::iter(0..recipients)
        .map(|i| {
            let (store, workspace, tags) = (&store, &workspace, &tags);
            async move {
                let contact = ContactId::for_channel(Channel::WhatsApp, &format!("1650{i:07}"))?;
                store.save_contact(workspace, Channel::WhatsApp, &contact, Some("Sam"), tags, now).await?;
                Ok::<(), Failure>(())
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    if let Some(Err(error)) = saved.into_iter().find(Result::is_err) {
        return Err(error);
    }
    let broadcast_id = BroadcastId::parse("bench-broadcast")?;
    create_broadcast(&store, &workspace, &broadcast_id, now).await?;
    bench.settle().await;
    let meter = bench.start();
    let fire = stack.functions.invoke_handler("BroadcastFunction").ok_or("no broadcast function")?;
    fire(json!({ "workspace_id": workspace, "broadcast_id": broadcast_id })).await?;
    bench.sends_accepted(&meter, recipients, Duration::from_secs(600)).await?;
    units.push(bench.finish("broadcast recipient", recipients as f64, meter));

    // 6. A sweeper run over `open_jobs` open jobs (accepted by Meta, waiting for their
    // delivery), none of them due: what every 5-minute run costs.
    open_jobs(&bench, &workspace, args.open_jobs).await?;
    bench.settle().await;
    let meter = bench.start();
    let sweep = stack.functions.invoke_handler("SweeperFunction").ok_or("no sweeper function")?;
    let report = sweep(json!({ "source": "bench" })).await?;
    bench.settle().await;
    units.push(bench.finish("sweeper run (1,000 open jobs)", args.open_jobs as f64 / 1_000.0, meter));
    println!("sweeper report: {report}");

    stack.aws_requests.record_calls(false);
    report_all(&bench, &units).await;
    println!("[{:.1} s] done", started.elapsed().as_secs_f64());
    Ok(())
}

async fn create_broadcast(
    store: &Store,
    workspace: &WorkspaceId,
    id: &BroadcastId,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Failure> {
    let record = audience_broadcast(id.clone(), workspace, "bench", now)?;
    if !store.create_broadcast(&record).await? {
        return Err("the broadcast already exists".into());
    }
    Ok(())
}

/// The table's global secondary indexes, as provisioned from the template.
async fn table_indexes(reader: &aws_sdk_dynamodb::Client, table: &str) -> Result<Vec<SecondaryIndex>, Failure> {
    use aws_sdk_dynamodb::types::ProjectionType;
    let described = reader.describe_table().table_name(table).send().await?;
    let indexes = described.table().map(|t| t.global_secondary_indexes()).unwrap_or_default();
    Ok(indexes
        .iter()
        .map(|index| {
            let projection = index.projection();
            SecondaryIndex {
                name: index.index_name().unwrap_or_default().to_owned(),
                keys: index.key_schema().iter().map(|key| key.attribute_name().to_owned()).collect(),
                projected: match projection.and_then(|p| p.projection_type()) {
                    Some(ProjectionType::KeysOnly) => Projected::KeysOnly,
                    Some(ProjectionType::Include) => {
                        Projected::Include(projection.map(|p| p.non_key_attributes().to_vec()).unwrap_or_default())
                    }
                    _ => Projected::All,
                },
            }
        })
        .collect())
}

/// `count` jobs accepted by Meta and waiting for their statuses, written through a client that
/// nothing counts (setup).
async fn open_jobs(bench: &Bench, workspace: &WorkspaceId, count: usize) -> Result<(), Failure> {
    let store = Store::new(bench.reader.clone(), &bench.table);
    let now = bench.stack().clock.now();
    let done = stream::iter(0..count)
        .map(|i| {
            let store = &store;
            async move {
                let request: wapisnap::domain::SendRequest = serde_json::from_value(json!({
                    "kind": "new",
                    "job": {
                        "job_id": format!("open-{i:05}"),
                        "workspace_id": workspace,
                        "channel": "wa",
                        "account_id": NUMBER,
                        "to": format!("1651{i:07}"),
                        "origin": { "type": "broadcast", "broadcast_id": "open" },
                        "content": { "type": "template", "name": TEMPLATE, "language": "en_US", "components": [] }
                    }
                }))?;
                let wapisnap::domain::SendRequest::New { job } = request else { unreachable!() };
                store.accept_job(&job, now).await?;
                let record = store.job(workspace, &job.job_id).await?.ok_or("the job vanished")?;
                let current = wapisnap::store::jobs::AttemptRef::of(&record);
                let wapisnap::store::jobs::Claim::Claimed { token } =
                    store.claim_job(current, now, wapisnap::outbound::sender::send_lease()).await?
                else {
                    return Err::<(), Failure>("not claimed".into());
                };
                let accepted = wapisnap::store::jobs::AttemptOutcome::Accepted {
                    wamid: wapisnap::domain::MessageId::parse(format!("wamid.OPEN{i:05}"))?,
                    wa_id: None,
                };
                store.finish_attempt(workspace, &job.job_id, &token, accepted, now).await?;
                Ok(())
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    done.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(())
}

// ---- Pricing ------------------------------------------------------------------------------

/// The DynamoDB size of an attribute value in its wire form (`{"S": "..."}`), in bytes, by
/// DynamoDB's rules: strings and binaries by length, numbers ~1 byte per 2 digits + 1, lists
/// and maps 3 bytes + 1 per element.
fn wire_value_size(value: &Value) -> usize {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else { return 0 };
    let number = |n: &str| n.trim_start_matches(['-', '0']).replace('.', "").len().div_ceil(2) + 1;
    match (kind.as_str(), inner) {
        ("S", Value::String(s)) => s.len(),
        ("N", Value::String(n)) => number(n),
        ("B", Value::String(b)) => b.len() * 3 / 4,
        ("BOOL" | "NULL", _) => 1,
        ("SS", Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::len).sum(),
        ("NS", Value::Array(a)) => a.iter().filter_map(Value::as_str).map(number).sum(),
        ("BS", Value::Array(a)) => a.iter().filter_map(Value::as_str).map(|b| b.len() * 3 / 4).sum(),
        ("L", Value::Array(a)) => 3 + a.iter().map(|v| 1 + wire_value_size(v)).sum::<usize>(),
        ("M", Value::Object(m)) => 3 + m.iter().map(|(k, v)| 1 + k.len() + wire_value_size(v)).sum::<usize>(),
        _ => 0,
    }
}

fn wire_item_size(item: &Value) -> usize {
    item.as_object().map_or(0, |o| o.iter().map(|(k, v)| k.len() + wire_value_size(v)).sum())
}

fn typed_value_size(value: &AttributeValue) -> usize {
    let number = |n: &str| n.trim_start_matches(['-', '0']).replace('.', "").len().div_ceil(2) + 1;
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(a) => a.iter().map(String::len).sum(),
        AttributeValue::Ns(a) => a.iter().map(|n| number(n)).sum(),
        AttributeValue::Bs(a) => a.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(a) => 3 + a.iter().map(|v| 1 + typed_value_size(v)).sum::<usize>(),
        AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| 1 + k.len() + typed_value_size(v)).sum::<usize>(),
        _ => 0,
    }
}

/// Request units of DynamoDB for a unit's calls, with the largest item written.
#[derive(Debug, Default, Clone, Copy)]
struct DynamoUnits {
    /// Write units, the indexes' included.
    wru: f64,
    /// Of `wru`, the writes to global secondary indexes.
    index_wru: f64,
    rru: f64,
    largest_written: usize,
    largest_read: usize,
}

impl Bench {
    /// The item at `key` now (its size, and its attribute names as a JSON object), `None` when
    /// it is gone; read without being counted.
    async fn stored_item(
        &self,
        cache: &mut HashMap<String, Option<(usize, Value)>>,
        table: &str,
        key: &Value,
    ) -> Option<(usize, Value)> {
        let id = format!("{table}/{key}");
        if let Some(item) = cache.get(&id) {
            return item.clone();
        }
        let mut get = self.reader.get_item().table_name(table).consistent_read(true);
        for (name, value) in key.as_object().into_iter().flatten() {
            let typed = match (value.get("S"), value.get("N")) {
                (Some(Value::String(s)), _) => AttributeValue::S(s.clone()),
                (_, Some(Value::String(n))) => AttributeValue::N(n.clone()),
                _ => continue,
            };
            get = get.key(name, typed);
        }
        let item = get.send().await.ok().and_then(|found| {
            let item = found.item()?;
            let size = item.iter().map(|(k, v)| k.len() + typed_value_size(v)).sum();
            Some((size, Value::Object(item.keys().map(|k| (k.clone(), Value::Bool(true))).collect())))
        });
        cache.insert(id, item.clone());
        item
    }

    /// The index writes of one write (`operation` with `request`) that was not refused, each
    /// priced at the size of the index's copy of the item (the whole item for an index that
    /// projects all of it, under 1 KB otherwise).
    fn index_units(&self, operation: &str, request: &Value, after: Option<&(usize, Value)>, size: usize) -> f64 {
        self.indexes
            .iter()
            .map(|index| {
                let writes = index_writes(index, operation, request, after.map(|(_, names)| names));
                let size = if index.projected == Projected::All { size } else { 1 };
                f64::from(writes) * size.div_ceil(1024).max(1) as f64
            })
            .sum()
    }

    async fn dynamo_units(&self, calls: &[RecordedCall]) -> DynamoUnits {
        let wru_of = |size: usize| size.div_ceil(1024).max(1) as f64;
        let rru_of = |size: usize, consistent: bool| {
            let units = size.div_ceil(4096).max(1) as f64;
            if consistent { units } else { units / 2.0 }
        };
        let mut cache = HashMap::new();
        let mut units = DynamoUnits::default();
        for call in calls.iter().filter(|c| c.service == "DynamoDB") {
            let request: Value = serde_json::from_slice(&call.request).unwrap_or(Value::Null);
            let response: Value = serde_json::from_slice(&call.response).unwrap_or(Value::Null);
            let table = request["TableName"].as_str().unwrap_or(&self.table).to_owned();
            let consistent = request["ConsistentRead"].as_bool().unwrap_or(false);
            match call.operation.as_str() {
                "GetItem" => {
                    let size = wire_item_size(&response["Item"]);
                    units.largest_read = units.largest_read.max(size);
                    units.rru += rru_of(size, consistent);
                }
                "Query" | "Scan" => {
                    let sizes: Vec<usize> =
                        response["Items"].as_array().into_iter().flatten().map(wire_item_size).collect();
                    units.largest_read = units.largest_read.max(sizes.iter().copied().max().unwrap_or(0));
                    units.rru += rru_of(sizes.iter().sum(), consistent);
                }
                "BatchGetItem" => {
                    for items in response["Responses"].as_object().into_iter().flat_map(|o| o.values()) {
                        for item in items.as_array().into_iter().flatten() {
                            let size = wire_item_size(item);
                            units.largest_read = units.largest_read.max(size);
                            units.rru += rru_of(size, false);
                        }
                    }
                }
                "PutItem" => {
                    let size = wire_item_size(&request["Item"]);
                    units.largest_written = units.largest_written.max(size);
                    units.wru += wru_of(size);
                    if !refused_by_condition(&response) {
                        units.index_wru += self.index_units("PutItem", &request, None, size);
                    }
                }
                "UpdateItem" | "DeleteItem" => {
                    let after = self.stored_item(&mut cache, &table, &request["Key"]).await;
                    let size = after.as_ref().map_or(0, |(size, _)| *size);
                    units.largest_written = units.largest_written.max(size);
                    units.wru += wru_of(size);
                    if !refused_by_condition(&response) {
                        units.index_wru += self.index_units(&call.operation, &request, after.as_ref(), size);
                    }
                }
                "BatchWriteItem" => {
                    for writes in request["RequestItems"].as_object().into_iter().flat_map(|o| o.values()) {
                        for write in writes.as_array().into_iter().flatten() {
                            let size = wire_item_size(&write["PutRequest"]["Item"]);
                            units.largest_written = units.largest_written.max(size);
                            units.wru += wru_of(size);
                        }
                    }
                }
                "TransactWriteItems" => {
                    let refused = refused_by_condition(&response);
                    for item in request["TransactItems"].as_array().into_iter().flatten() {
                        let Some((kind, action)) = item.as_object().and_then(|o| o.iter().next()) else { continue };
                        let (size, after) = if kind == "Put" {
                            (wire_item_size(&action["Item"]), None)
                        } else {
                            let table = action["TableName"].as_str().unwrap_or(&self.table).to_owned();
                            let after = self.stored_item(&mut cache, &table, &action["Key"]).await;
                            (after.as_ref().map_or(0, |(size, _)| *size), after)
                        };
                        units.largest_written = units.largest_written.max(size);
                        units.wru += 2.0 * wru_of(size);
                        // The index entries are written once, when the transaction commits.
                        let operation = match kind.as_str() {
                            "Put" => "PutItem",
                            "Update" => "UpdateItem",
                            _ => "ConditionCheck",
                        };
                        if !refused {
                            units.index_wru += self.index_units(operation, action, after.as_ref(), size);
                        }
                    }
                }
                "TransactGetItems" => {
                    for item in response["Responses"].as_array().into_iter().flatten() {
                        units.rru += 2.0 * rru_of(wire_item_size(&item["Item"]), true);
                    }
                }
                _ => units.wru += 1.0,
            }
        }
        units.wru += units.index_wru;
        units
    }
}

/// What a recorded call touched, shortly: its keys (DynamoDB) or queue (SQS), for
/// `BENCH_COST_CALLS=1`, which lists every call of every unit.
fn call_summary(call: &RecordedCall) -> String {
    let request: Value = serde_json::from_slice(&call.request).unwrap_or(Value::Null);
    let key = |k: &Value| format!("{}|{}", k["pk"]["S"].as_str().unwrap_or("?"), k["sk"]["S"].as_str().unwrap_or("?"));
    let mut parts = Vec::new();
    if !request["Key"].is_null() {
        parts.push(key(&request["Key"]));
    }
    if !request["Item"].is_null() {
        parts.push(key(&request["Item"]));
    }
    for item in request["TransactItems"].as_array().into_iter().flatten() {
        if let Some((action, body)) = item.as_object().and_then(|o| o.iter().next()) {
            let k = if body["Key"].is_null() { &body["Item"] } else { &body["Key"] };
            parts.push(format!("{action}:{}", key(k)));
        }
    }
    for field in ["IndexName", "KeyConditionExpression", "UpdateExpression", "ConditionExpression", "QueueUrl"] {
        if let Some(v) = request[field].as_str() {
            parts.push(format!("{field}={v}"));
        }
    }
    if let Some(values) = request["ExpressionAttributeValues"].as_object()
        && let Some(pk) = values.values().find_map(|v| v["S"].as_str().filter(|s| s.contains('#')))
    {
        parts.push(format!("value={pk}"));
    }
    parts.join(" ")
}

/// SQS requests as billed: each 64 KB chunk of a payload is one request.
fn sqs_billed_requests(measured: &Measured) -> f64 {
    let chunks = |bytes: usize| bytes.div_ceil(64 * 1024).max(1) as f64;
    let recorded: f64 = measured
        .calls
        .iter()
        .filter(|c| c.service == "SQS")
        .map(|c| match c.operation.as_str() {
            "ReceiveMessage" => chunks(c.response.len()),
            _ => chunks(c.request.len()),
        })
        .sum();
    recorded + measured.schedule_sqs_deliveries as f64
}

/// One unit's costs, in dollars per unit.
#[derive(Debug, Default, Clone, Copy)]
struct Cost {
    lambda_compute: f64,
    lambda_requests: f64,
    api_gateway: f64,
    dynamodb: f64,
    sqs: f64,
    kms: f64,
    scheduler: f64,
}

impl Cost {
    fn total(&self) -> f64 {
        self.lambda_compute
            + self.lambda_requests
            + self.api_gateway
            + self.dynamodb
            + self.sqs
            + self.kms
            + self.scheduler
    }

    fn plus(self, other: Cost, times: f64) -> Cost {
        Cost {
            lambda_compute: self.lambda_compute + other.lambda_compute * times,
            lambda_requests: self.lambda_requests + other.lambda_requests * times,
            api_gateway: self.api_gateway + other.api_gateway * times,
            dynamodb: self.dynamodb + other.dynamodb * times,
            sqs: self.sqs + other.sqs * times,
            kms: self.kms + other.kms * times,
            scheduler: self.scheduler + other.scheduler * times,
        }
    }

    /// The parts, per 1M of what this costs.
    fn line(&self) -> String {
        format!(
            "per 1M: Lambda GB-s ${:.2}, Lambda requests ${:.2}, API Gateway ${:.2}, DynamoDB ${:.2}, SQS ${:.2}, KMS ${:.3}, Scheduler ${:.2}",
            self.lambda_compute * 1e6,
            self.lambda_requests * 1e6,
            self.api_gateway * 1e6,
            self.dynamodb * 1e6,
            self.sqs * 1e6,
            self.kms * 1e6,
            self.scheduler * 1e6
        )
    }
}

async fn report_all(bench: &Bench, units: &[Measured]) {
    let mut costs: BTreeMap<&str, Cost> = BTreeMap::new();
    let mut kms_sends = (0u64, 0usize);
    for unit in units {
        let n = unit.units;
        println!("\n== {} (figures per unit; measured over {} unit{})", unit.name, n, if n == 1.0 { "" } else { "s" });
        let total: u64 = unit.operations.values().sum();
        println!("  AWS requests {:.2} per unit:", total as f64 / n);
        let mut ops: Vec<_> = unit.operations.iter().collect();
        ops.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        for ((service, operation), count) in ops {
            println!("    {service:<10} {operation:<32} {:>9.3}", *count as f64 / n);
        }
        if unit.schedules_fired > 0 {
            println!(
                "    {:<10} {:<32} {:>9.3}",
                "Scheduler",
                "invocation (schedule fired)",
                unit.schedules_fired as f64 / n
            );
        }
        // Lambda: each invocation billed by the millisecond at the function's memory.
        let mut by_function: BTreeMap<&str, (u64, Duration)> = BTreeMap::new();
        let mut gb_seconds = 0.0;
        for (function, took) in &unit.invocations {
            let entry = by_function.entry(function).or_default();
            entry.0 += 1;
            entry.1 += *took;
            let billed_ms = (took.as_secs_f64() * 1000.0).ceil();
            let memory_gb = bench.memory_mb.get(function).copied().unwrap_or(128) as f64 / 1024.0;
            gb_seconds += memory_gb * billed_ms / 1000.0;
        }
        println!("  Lambda (measured on the local stack):");
        for (function, (count, took)) in &by_function {
            println!(
                "    {function:<18} {:>7.3} invocations, {:>8.2} ms per unit ({:.2} ms per invocation, {} MB)",
                *count as f64 / n,
                took.as_secs_f64() * 1000.0 / n,
                took.as_secs_f64() * 1000.0 / *count as f64,
                bench.memory_mb.get(function).copied().unwrap_or(128)
            );
        }
        // API Gateway bills the requests it passes on: the API's, not the webhook's (its
        // deliveries reach its function URL, billed as the invocation only).
        let api_requests = unit.invocations.iter().filter(|(f, _)| bench.behind_http_api.contains(f)).count() as f64;
        if std::env::var_os("BENCH_COST_CALLS").is_some() {
            for call in &unit.calls {
                println!("    call {} {} {}", call.service, call.operation, call_summary(call));
            }
        }
        let dynamo = bench.dynamo_units(&unit.calls).await;
        let kms = unit.operations.iter().filter(|((s, _), _)| s == "KMS").map(|(_, c)| *c).sum::<u64>() as f64;
        let cost = Cost {
            lambda_compute: gb_seconds * price::LAMBDA_ARM64_GB_SECOND / n,
            lambda_requests: unit.invocations.len() as f64 * price::LAMBDA_REQUEST / n,
            api_gateway: api_requests * price::HTTP_API_REQUEST / n,
            dynamodb: (dynamo.wru * price::DYNAMODB_WRU + dynamo.rru * price::DYNAMODB_RRU) / n,
            sqs: sqs_billed_requests(unit) * price::SQS_REQUEST / n,
            kms: kms * price::KMS_REQUEST / n,
            scheduler: unit.schedules_fired as f64 * price::SCHEDULER_INVOCATION / n,
        };
        println!(
            "  DynamoDB units per unit: {:.2} WRU ({:.2} of them to indexes), {:.2} RRU (largest item written {} B, read {} B); SQS billed requests per unit {:.2}; API Gateway requests {:.2}; Lambda {:.6} GB-s",
            dynamo.wru / n,
            dynamo.index_wru / n,
            dynamo.rru / n,
            dynamo.largest_written,
            dynamo.largest_read,
            sqs_billed_requests(unit) / n,
            api_requests / n,
            gb_seconds / n
        );
        println!("  cost per unit ${:.8} = ${:.2} per 1M ({})", cost.total(), cost.total() * 1e6, cost.line());
        for line in justifications(unit) {
            println!("  why: {line}");
        }
        if unit.sends > 0 {
            kms_sends.0 += kms as u64;
            kms_sends.1 += unit.sends;
        }
        costs.insert(unit.name, cost);
    }

    println!("\n== Totals");
    let get = |name: &str| costs.get(name).copied().unwrap_or_default();
    let status = ["status webhook (sent)", "status webhook (delivered)", "status webhook (read)"]
        .iter()
        .fold(Cost::default(), |sum, name| sum.plus(get(name), 1.0 / 3.0));
    let inbound = Cost::default().plus(get("inbound text + one-node flow reply"), 1.0).plus(status, STATUSES_PER_SEND);
    println!(
        "per 1M inbound messages (each: the inbound, its one-node flow reply and the reply's {STATUSES_PER_SEND} status webhooks): ${:.2}  ({})",
        inbound.total() * 1e6,
        inbound.line()
    );
    let recipient = get("broadcast recipient");
    let with_statuses = recipient.plus(status, STATUSES_PER_SEND);
    println!(
        "per 100,000-recipient broadcast: ${:.2} for the fan-out and sends; ${:.2} with each send's {STATUSES_PER_SEND} status webhooks",
        recipient.total() * 1e5,
        with_statuses.total() * 1e5
    );
    println!(
        "KMS on a warm container: {} requests for {} sends accepted = {:.2} per 1,000 sends (goal: at most 1)",
        kms_sends.0,
        kms_sends.1,
        kms_sends.0 as f64 / kms_sends.1.max(1) as f64 * 1000.0
    );
    let kms_total: u64 = bench
        .stack()
        .aws_requests
        .snapshot()
        .iter()
        .filter(|((service, op), _)| service == "KMS" && op == "Decrypt")
        .map(|(_, n)| n)
        .sum();
    println!(
        "KMS Decrypt over the whole run, warm-up included: {kms_total} (a sender container's first send opens the data key, then keeps it 5 minutes)"
    );
    println!("goal under $5 per 1M inbound messages: {}", if inbound.total() * 1e6 < 5.0 { "met" } else { "NOT met" });
    // The webhook's deliveries (the inbound and its reply's statuses) are API Gateway requests
    // only if the template puts the webhook behind the HTTP API; as a function URL, none.
    let webhook_requests =
        if bench.behind_http_api.contains("WebhookFunction") { 1.0 + STATUSES_PER_SEND } else { 0.0 };
    let floor = price::HTTP_API_REQUEST * webhook_requests + price::LAMBDA_REQUEST * (3.0 + STATUSES_PER_SEND);
    println!(
        "  the floor of this design before any storage: {} API Gateway requests and {} Lambda invocations per inbound = ${:.2} per 1M",
        webhook_requests,
        3.0 + STATUSES_PER_SEND,
        floor * 1e6
    );
    println!(
        "fixed costs not in the units: the event source mappings' idle long polls (empty receives), the sweeper's runs (288 a day) and the stalled-broadcast check"
    );
}

/// Why each request of a unit is needed: one line per operation.
fn justifications(unit: &Measured) -> Vec<String> {
    unit.operations
        .keys()
        .map(|(service, operation)| format!("{service} {operation}: {}", justify(unit.name, service, operation)))
        .collect()
}

fn justify(unit: &str, service: &str, operation: &str) -> &'static str {
    let status = unit.starts_with("status webhook");
    let sweeper = unit.starts_with("sweeper");
    let broadcast = unit.starts_with("broadcast");
    let retry = unit.starts_with("131049");
    match (service, operation) {
        ("SQS", "ReceiveMessage") => {
            "the event source mapping's receive that hands the message to the function (one per batch)"
        }
        ("SQS", "DeleteMessageBatch") => "the event source mapping deletes what the function handled (one per batch)",
        ("SQS", "SendMessage") if broadcast => {
            "a send the number's pace could not take yet goes back on the queue with a delay (the pace, 80 mps, is held across every sender)"
        }
        ("SQS", "SendMessage") if retry => "the failed send handed to Smart Retry's queue",
        ("SQS", "SendMessage") => {
            "the hand-off to the next function's queue (the webhook answers Meta before the flow runs; sends are paced and retried apart)"
        }
        ("SQS", "SendMessageBatch") => "the fan-out queues its sends ten to a request",
        ("SQS", "SendMessage (Scheduler target)") => "Scheduler delivers the due resend to the send queue",
        ("KMS", _) => "the number's data key, opened once per container and kept 5 minutes",
        ("Scheduler", "CreateSchedule") => {
            "the resend's one-time schedule, deleted by Scheduler after it fires (API calls are not billed)"
        }
        ("Scheduler", _) => "schedule housekeeping (not billed)",
        ("DynamoDB", "PutItem") if broadcast => {
            "the recipient's job (its id is the broadcast's and the contact's, so a fan-out that runs again never sends twice) and its line in the conversation"
        }
        ("DynamoDB", "PutItem") => {
            "written only if new: the inbound message once per wamid (Meta redelivers), the reply's job and its line in the conversation's messages"
        }
        ("DynamoDB", "TransactWriteItems") if broadcast => {
            "the contact marked reached in the portfolio's 24-hour messaging limit, with the window's count, in one transaction"
        }
        ("DynamoDB", "TransactWriteItems") => {
            "the conversation's flow state and the run-history line of the step, together (a tick dying between them would repeat or lose the step)"
        }
        ("DynamoDB", "UpdateItem") if status => {
            "the message's status item (idempotent per wamid) and the job's state; on `sent`, the number's statuses_seen_at (at most once a minute per container: the sweeper's proof that statuses flow); a `read` marks an already delivered job in one write (was two)"
        }
        ("DynamoDB", "UpdateItem") if sweeper => "the jobs the sweep found due, settled",
        ("DynamoDB", "UpdateItem") if broadcast => {
            "per send: the number's pacing slot (one write when the item is idle, was two), the job claimed (a lease: no second sender) and finished (Meta's wamid); per page: the broadcast's progress"
        }
        ("DynamoDB", "UpdateItem") if retry => {
            "the failed status recorded, the job FAILED_ATTEMPT then RETRY_SCHEDULED (conditional: once), the hand-over marked done; the resend's pacing slot, claim and finish"
        }
        ("DynamoDB", "UpdateItem") => {
            "contact and conversation upserts (profile name, the 24-hour window, the inbox), the inbound marked handled by its tick, the pacing slot (one write when idle, was two), the job claimed (a lease) and finished"
        }
        ("DynamoDB", "GetItem") if status => {
            "the contact's 131026 streak, read (1 RRU) rather than reset by a conditional write (1 WRU, billed even when refused); the number's route to its workspace when the container's copy expired"
        }
        ("DynamoDB", "GetItem") if broadcast => {
            "per send: the job (its state: exactly once), the contact (dnd / do-not-send), the broadcast, read consistently so no send starts after an answered cancel; the number and the template are reused 5 s per container and the conversation is not read for a template (was 3 more reads)"
        }
        ("DynamoDB", "GetItem") => {
            "the flow tick: the conversation (human takeover), its flow state, the inbound message, the contact; the sender: the job (its state), the conversation (24-hour window; not for templates), the contact (dnd; not for an agent's reply); the number and the template are reused 5 s per container; the API: the key and the idempotency record"
        }
        ("DynamoDB", "BatchGetItem") if sweeper => {
            "the due jobs the sweeper's index named, read by key (the index holds only keys)"
        }
        ("DynamoDB", "BatchGetItem") => {
            "the items a list query named, read by key: the lists' index holds only keys, so that writes that do not move an item in its list cost no index write (the workspace's automations for the flow tick, the audience's contacts a page at a time); reads are billed by size, not by request"
        }
        ("DynamoDB", "Query") if sweeper => {
            "the sweeper's index: one query per state and shard (6 x 16) that returns only due jobs, so its cost does not grow with the open jobs; plus the stalled-broadcast check"
        }
        ("DynamoDB", "Query") if retry => {
            "the resend looks for a status Meta may have sent for the job (a later attempt must not send what Meta has)"
        }
        ("DynamoDB", "Query") => {
            "the workspace's automations to match the trigger (flows), or the audience's page (broadcast)"
        }
        _ => "needed by the unit (see the README's Performance section)",
    }
}
