//! `make bench-broadcast`: one broadcast of 10,000 recipients through the local stack, against
//! a Meta sandbox that holds the number to its throughput (more than the limit in any second is
//! answered 130429), at 80 and at 1,000 messages a second. For each rate it prints the total
//! time against the floor (recipients / limit), the achieved rate, the peak in any 1-second
//! window, the sandbox requests per recipient (1.0 when nothing was sent twice or refused) and
//! the AWS requests per recipient by operation.
//!
//! Goal: within 5 % of the floor, never above the limit, 1.0 requests per recipient.
//!
//! ```text
//! bench-broadcast [--recipients 10000] [--mps 80,1000] [--pollers 4] [--statuses none]
//!                 [--tier TIER_UNLIMITED] [--timeout-secs S]
//! ```
//!
//! `--pollers`: SQS pollers per event source mapping (Lambda scales them; locally fixed).
//! `--statuses`: the status webhooks the sandbox posts after each accepted send (`none`, or e.g.
//! `sent,delivered,read` as Meta does); off by default, because on the emulator they cost more
//! than the sends themselves, and the pacing is what is measured.
//! `--timeout-secs`: stop waiting after this long (default: wait while sends keep arriving; a run
//! stops when none arrived for 3 minutes).
//! `--fanout-first`: the fan-out runs alone (the SQS pollers start once it is done), so its cost
//! and the senders' are measured apart; the total time is then the sending alone.
//! `--tier`: the portfolio's messaging limit (unique customers in 24 h); unlimited by default,
//! so the whole audience is sent at once (`TIER_10K`, `TIER_100K` also count each recipient).

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use wapisnap::broadcasts::fanout::{FanoutOutcome, Fired};
use wapisnap::clock::Clock;
use wapisnap::domain::{BroadcastId, Channel, WorkspaceId};
use wapisnap::store::Store;
use wapisnap_local::environment::{EnvironmentOptions, LocalEnvironment};
use wapisnap_local::sandbox::{RecordedRequest, THROUGHPUT_REACHED};

use wapisnap_local::bench::{Failure, NUMBER, audience_broadcast, connect_number_with_template, tag_audience};
/// A run stops waiting when no send arrived for this long.
const STALLED: Duration = Duration::from_secs(180);

const USAGE: &str = "usage: bench-broadcast [--recipients N] [--mps 80,1000] [--pollers P] \
                     [--statuses none|sent,delivered,read] [--tier TIER_UNLIMITED] [--fanout-first] \
                     [--timeout-secs S]";

#[derive(Debug, Clone)]
struct Args {
    recipients: usize,
    rates: Vec<u32>,
    pollers: usize,
    statuses: Vec<String>,
    tier: String,
    fanout_first: bool,
    timeout: Option<Duration>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        recipients: 10_000,
        rates: vec![80, 1_000],
        pollers: wapisnap_local::stack::DEFAULT_SQS_POLLERS,
        statuses: Vec::new(),
        tier: "TIER_UNLIMITED".into(),
        fanout_first: false,
        timeout: None,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || given.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        let bad = |what: &str| format!("{flag}: {what}\n{USAGE}");
        match flag.as_str() {
            "--recipients" => {
                args.recipients =
                    value()?.parse().ok().filter(|n| *n > 0).ok_or_else(|| bad("a number of recipients"))?;
            }
            "--mps" => {
                args.rates = value()?
                    .split(',')
                    .map(|r| r.trim().parse::<u32>().ok().filter(|r| (1..=1_000).contains(r)))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad("rates between 1 and 1000, comma-separated"))?;
            }
            "--pollers" => {
                args.pollers = value()?.parse().ok().filter(|n| *n > 0).ok_or_else(|| bad("1 or more"))?;
            }
            "--statuses" => {
                let statuses = value()?;
                args.statuses = match statuses.as_str() {
                    "none" | "" => Vec::new(),
                    list => list.split(',').map(|s| s.trim().to_owned()).collect(),
                };
                if let Some(unknown) =
                    args.statuses.iter().find(|s| !["sent", "delivered", "read"].contains(&s.as_str()))
                {
                    return Err(bad(&format!("unknown status {unknown:?}")));
                }
            }
            "--tier" => args.tier = value()?,
            "--fanout-first" => args.fanout_first = true,
            "--timeout-secs" => {
                args.timeout = Some(Duration::from_secs(value()?.parse().map_err(|_| bad("seconds"))?));
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
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
    println!(
        "bench-broadcast: {} recipients at {} mps; {} SQS pollers per mapping; messaging limit {}; status webhooks: {}",
        args.recipients,
        args.rates.iter().map(u32::to_string).collect::<Vec<_>>().join(" and "),
        args.pollers,
        args.tier,
        if args.statuses.is_empty() {
            "off (--statuses sent,delivered,read to have the sandbox post them as Meta does)".to_owned()
        } else {
            args.statuses.join(",")
        }
    );
    let mut summaries = Vec::new();
    for &mps in &args.rates {
        match run(&args, mps).await {
            Ok(figures) => summaries.push(figures),
            Err(error) => {
                eprintln!("the run at {mps} mps failed: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("\n== Summary");
    println!(
        "{:>6}  {:>9}  {:>9}  {:>8}  {:>10}  {:>9}  {:>7}  {:>8}  {:>8}",
        "limit", "floor s", "total s", "vs floor", "achieved", "peak 1 s", "130429", "req/rcpt", "AWS/rcpt"
    );
    for f in &summaries {
        println!(
            "{:>6}  {:>9.1}  {:>9.1}  {:>7.1}%  {:>6.1} mps  {:>9}  {:>7}  {:>8.3}  {:>8.1}",
            f.mps,
            f.floor,
            f.total,
            (f.total / f.floor - 1.0) * 100.0,
            f.achieved,
            f.peak,
            f.throttled,
            f.requests_per_recipient,
            f.aws_per_recipient
        );
    }
    let met = summaries.iter().all(|f| f.goal_met());
    println!(
        "goal (within 5 % of the floor, never above the limit, 1.0 requests per recipient): {}",
        if met { "met at every rate" } else { "NOT met (see above)" }
    );
    ExitCode::SUCCESS
}

/// The figures of one run.
struct Figures {
    mps: u32,
    floor: f64,
    total: f64,
    achieved: f64,
    peak: usize,
    throttled: usize,
    requests_per_recipient: f64,
    aws_per_recipient: f64,
    complete: bool,
}

impl Figures {
    fn goal_met(&self) -> bool {
        self.complete
            && self.total <= self.floor * 1.05
            && self.peak <= self.mps as usize
            && (self.requests_per_recipient - 1.0).abs() < 1e-9
    }
}

/// The AWS requests between two snapshots, by operation, most first.
fn print_operations(
    before: &BTreeMap<(String, String), u64>,
    after: &BTreeMap<(String, String), u64>,
    recipients: usize,
) {
    let mut operations: Vec<(&(String, String), u64)> = after
        .iter()
        .map(|(op, count)| (op, count - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    operations.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    for ((service, operation), count) in operations {
        println!(
            "    {:<10} {:<28} {:>9}  {:>7.3} per recipient",
            service,
            operation,
            count,
            count as f64 / recipients as f64
        );
    }
}

/// CPU seconds a process used so far (user + system), from `/proc`.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ: 100 on every Linux ABI.
    Some(ticks / 100.0)
}

/// The most sends in any half-open 1-second window `(t - 1 s, t]`.
fn peak_in_one_second(times: &[i64]) -> usize {
    let mut peak = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[start] <= times[end] - 1_000_000 {
            start += 1;
        }
        peak = peak.max(end - start + 1);
    }
    peak
}

fn is_template_send(request: &RecordedRequest) -> bool {
    request.method == "POST" && request.path.ends_with(&format!("/{NUMBER}/messages"))
}

async fn run(args: &Args, mps: u32) -> Result<Figures, Failure> {
    let recipients = args.recipients;
    let floor = recipients as f64 / f64::from(mps);
    println!("\n== {recipients} recipients at {mps} mps (floor {floor:.1} s)");
    let started = Instant::now();
    let options = EnvironmentOptions {
        aws_endpoint: std::env::var("AWS_ENDPOINT_URL").ok().filter(|e| !e.is_empty()),
        sqs_pollers: Some(args.pollers),
        ..EnvironmentOptions::default()
    };
    let environment = LocalEnvironment::start(options).await?;
    if !args.fanout_first {
        environment.stack.start_background();
    }
    let stack = &environment.stack;
    let sandbox = &environment.sandbox;
    let store = Store::new(stack.aws.dynamodb.clone(), stack.resources.table_name());
    let watcher = Store::new(
        wapisnap::aws::AwsClients::for_emulator(&environment.aws_endpoint).await.dynamodb,
        stack.resources.table_name(),
    );
    let moto_pid = environment.moto.as_ref().map(|m| m.pid().to_string());

    // The workspace, its number paced at `mps`, the template, the audience.
    let workspace = WorkspaceId::parse("bench")?;
    let mut number = connect_number_with_template(&environment, &store, &workspace).await?;
    number.business_id = Some("bench-portfolio".into());
    number.messaging_limit = Some(args.tier.clone());
    store.put_number(&number).await?;
    let now = stack.clock.now();
    if !store.set_number_throughput(&workspace, Channel::WhatsApp, NUMBER, mps, now).await? {
        return Err("the number's throughput was not set".into());
    }
    sandbox.set_throughput(NUMBER, Some(mps));
    let statuses: Vec<&str> = args.statuses.iter().map(String::as_str).collect();
    sandbox.set_auto_statuses(&statuses);

    tag_audience(&store, &workspace, "1650", recipients, now).await?;
    let record = audience_broadcast(BroadcastId::parse("bench-broadcast")?, &workspace, "bench", now)?;
    let id = record.broadcast_id.clone();
    if !store.create_broadcast(&record).await? {
        return Err("the broadcast already exists".into());
    }
    println!(
        "[{:>6.1}s] stack up, number paced at {mps} mps (and held to it by the sandbox), {recipients} contacts tagged",
        started.elapsed().as_secs_f64()
    );

    // Fire it, as its schedule would, with the Lambda's deadline (a continuation fires itself).
    let aws_before = stack.aws_requests.snapshot();
    let moto_cpu_before = moto_pid.as_deref().and_then(cpu_seconds);
    let own_cpu_before = cpu_seconds("self");
    let fired_at_micros = chrono::Utc::now().timestamp_micros();
    let fired_at = Instant::now();
    let fanout = {
        let functions = stack.functions.clone();
        let deadline = Instant::now() + stack.template.function_timeout("BroadcastFunction");
        let fired = Fired { workspace_id: workspace.clone(), broadcast_id: id.clone() };
        tokio::spawn(async move {
            let outcome = functions.broadcast.handle(fired, &functions.broadcast_arn, Some(deadline)).await;
            (outcome.map_err(|e| e.to_string()), fired_at.elapsed())
        })
    };
    let mut fanout = Some(fanout);
    let (fired_at_micros, fired_at, aws_before, moto_cpu_before, own_cpu_before) = if args.fanout_first {
        let (outcome, took) = fanout.take().expect("spawned").await?;
        let outcome = outcome.map_err(|e| format!("the fan-out failed: {e}"))?;
        let aws_fanout = stack.aws_requests.snapshot();
        println!(
            "[{:>6.1}s] fan-out alone: {outcome:?} in {:.1} s = {:.0} recipients/s",
            took.as_secs_f64(),
            took.as_secs_f64(),
            recipients as f64 / took.as_secs_f64()
        );
        print_operations(&aws_before, &aws_fanout, recipients);
        stack.start_background();
        println!("[{:>6.1}s] SQS pollers started: sending alone from here", fired_at.elapsed().as_secs_f64());
        (
            chrono::Utc::now().timestamp_micros(),
            Instant::now(),
            aws_fanout,
            moto_pid.as_deref().and_then(cpu_seconds),
            cpu_seconds("self"),
        )
    } else {
        (fired_at_micros, fired_at, aws_before, moto_cpu_before, own_cpu_before)
    };
    let started_what = if args.fanout_first { "the pollers started" } else { "firing" };
    let mut last_report = Instant::now();
    let mut accepted_at_report = 0;
    let mut last_progress = (0, Instant::now());
    let mut fanout_took = None;
    let complete = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(task) = fanout.take_if(|task| task.is_finished()) {
            let (outcome, took) = task.await?;
            match outcome {
                Ok(FanoutOutcome::Sent { total }) => {
                    println!(
                        "[{:>6.1}s] fan-out done: {total} jobs written and queued ({:.1} recipients/s)",
                        took.as_secs_f64(),
                        total as f64 / took.as_secs_f64()
                    );
                    fanout_took = Some(took);
                }
                Ok(other) => println!("[{:>6.1}s] fan-out run ended: {other:?}", took.as_secs_f64()),
                Err(error) => return Err(format!("the fan-out failed: {error}").into()),
            }
        }
        let sends: Vec<RecordedRequest> = sandbox.requests().into_iter().filter(is_template_send).collect();
        let accepted = sends.iter().filter(|r| r.accepted_id.is_some()).count();
        if last_report.elapsed() >= Duration::from_secs(5) || accepted >= recipients {
            let throttled = sends.iter().filter(|r| r.answered_error_code == Some(THROUGHPUT_REACHED)).count();
            let rate = (accepted - accepted_at_report) as f64 / last_report.elapsed().as_secs_f64();
            // Read with the bench's own (uncounted) client, so watching costs the figures nothing.
            let written = watcher.broadcast(&workspace, &id).await.ok().flatten().map_or(0, |b| b.enumerated);
            println!(
                "[{:>6.1}s] fan-out wrote {written}, Meta accepted {accepted}/{recipients} ({rate:.1} mps over the last {:.1} s), 130429 answered: {throttled}, AWS requests: {}",
                fired_at.elapsed().as_secs_f64(),
                last_report.elapsed().as_secs_f64(),
                stack.aws_requests.total() - aws_before.values().sum::<u64>(),
            );
            last_report = Instant::now();
            accepted_at_report = accepted;
        }
        if accepted >= recipients {
            break true;
        }
        if accepted > last_progress.0 {
            last_progress = (accepted, Instant::now());
        }
        if args.timeout.is_some_and(|timeout| fired_at.elapsed() > timeout) {
            println!("[{:>6.1}s] timed out waiting for every send", fired_at.elapsed().as_secs_f64());
            break false;
        }
        if last_progress.1.elapsed() > STALLED {
            println!("[{:>6.1}s] no send arrived for {STALLED:?}: stopped waiting", fired_at.elapsed().as_secs_f64());
            break false;
        }
    };
    let waited = fired_at.elapsed();
    // The last sends' answers are recorded a moment after Meta has them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let aws_after = stack.aws_requests.snapshot();
    let moto_cpu = moto_pid.as_deref().and_then(cpu_seconds).zip(moto_cpu_before).map(|(after, before)| after - before);
    let own_cpu = cpu_seconds("self").zip(own_cpu_before).map(|(after, before)| after - before);
    let measured = fired_at.elapsed();

    let sends: Vec<RecordedRequest> = sandbox.requests().into_iter().filter(is_template_send).collect();
    let mut accepted_times: Vec<i64> =
        sends.iter().filter(|r| r.accepted_id.is_some()).map(|r| r.received_at_micros).collect();
    accepted_times.sort_unstable();
    let throttled = sends.iter().filter(|r| r.answered_error_code == Some(THROUGHPUT_REACHED)).count();
    let other_refusals = sends.iter().filter(|r| r.accepted_id.is_none()).count() - throttled;
    let mut per_recipient: HashMap<&str, usize> = HashMap::new();
    for send in sends.iter().filter(|r| r.accepted_id.is_some()) {
        *per_recipient.entry(send.body["to"].as_str().unwrap_or_default()).or_default() += 1;
    }
    let twice = per_recipient.values().filter(|n| **n > 1).count();
    let first = accepted_times.first().copied().unwrap_or(fired_at_micros);
    let last = accepted_times.last().copied().unwrap_or(fired_at_micros);
    let total = if complete { (last - fired_at_micros) as f64 / 1e6 } else { waited.as_secs_f64() };
    let sending = (last - first) as f64 / 1e6;
    let achieved = accepted_times.len() as f64 / total.max(1e-6);
    let peak = peak_in_one_second(&accepted_times);
    let requests_per_recipient = sends.len() as f64 / recipients as f64;

    println!("-- {recipients} recipients at {mps} mps");
    println!(
        "total time          {total:.1} s from {started_what} to the last send Meta accepted, against a floor of {floor:.1} s: {:+.1} %{}",
        (total / floor - 1.0) * 100.0,
        if complete {
            String::new()
        } else {
            format!(" (INCOMPLETE: {} of {recipients} accepted)", accepted_times.len())
        }
    );
    println!(
        "first send          {:.2} s after {started_what}; first to last send: {sending:.1} s",
        (first - fired_at_micros) as f64 / 1e6
    );
    println!(
        "achieved            {achieved:.1} mps ({:.1} % of the limit; {:.1} mps from the first send to the last)",
        achieved / f64::from(mps) * 100.0,
        accepted_times.len().saturating_sub(1) as f64 / sending.max(1e-6)
    );
    println!(
        "peak 1-s window     {peak} sends ({})",
        if peak <= mps as usize { "never above the limit".to_owned() } else { format!("ABOVE the limit of {mps}") }
    );
    println!(
        "sandbox requests    {} for {recipients} recipients = {requests_per_recipient:.4} per recipient; 130429 answered: {throttled}; other refusals: {other_refusals}; recipients sent twice: {twice}; recipients reached: {}",
        sends.len(),
        per_recipient.len()
    );

    let aws_total: u64 = aws_after.iter().map(|(op, after)| after - aws_before.get(op).copied().unwrap_or(0)).sum();
    // Per recipient reached: an incomplete run's requests went to the recipients it reached.
    let reached = if complete { recipients } else { accepted_times.len().max(1) };
    let aws_per_recipient = aws_total as f64 / reached as f64;
    println!(
        "AWS requests        {aws_total} from {started_what} until the last send was recorded ({:.1} s): {aws_per_recipient:.2} per recipient, {:.0} per second",
        measured.as_secs_f64(),
        aws_total as f64 / measured.as_secs_f64()
    );
    print_operations(&aws_before, &aws_after, reached);
    println!(
        "    (ReceiveMessage includes the idle long polls of {} pollers on each of the stack's queues)",
        args.pollers
    );
    let busy = |cpu: Option<f64>| {
        cpu.map_or_else(|| "unknown".to_owned(), |c| format!("{c:.1} CPU s = {:.2} cores", c / measured.as_secs_f64()))
    };
    println!(
        "CPU                 the AWS emulator (moto, one Python process): {}; this process (stack, functions, sandbox): {}; {} cores on this machine",
        busy(moto_cpu),
        busy(own_cpu),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );

    // Our side of the story: the broadcast's report, tallied from its jobs.
    if let Some(task) = fanout.take() {
        task.abort();
    }
    let lines = watcher.broadcast_jobs(&workspace, id.as_str()).await?;
    let report =
        wapisnap::broadcasts::report::tally(&watcher.broadcast(&workspace, &id).await?.unwrap_or(record), &lines);
    println!(
        "broadcast report    total {}, accepted {}, pending {}, in Smart Retry {}, failed {}, skipped {}",
        report.total, report.accepted, report.pending, report.in_smart_retry, report.failed, report.skipped
    );
    let figures =
        Figures { mps, floor, total, achieved, peak, throttled, requests_per_recipient, aws_per_recipient, complete };
    let verdicts: BTreeMap<&str, bool> = BTreeMap::from([
        ("within 5 % of the floor", complete && total <= floor * 1.05),
        ("never above the limit", peak <= mps as usize),
        ("1.0 sandbox requests per recipient", (requests_per_recipient - 1.0).abs() < 1e-9 && complete),
    ]);
    for (goal, met) in &verdicts {
        println!("goal: {goal:<36} {}", if *met { "met" } else { "MISSED" });
    }
    if !(complete && total <= floor * 1.05) {
        let aws_rate = aws_total as f64 / measured.as_secs_f64();
        let moto_cores = moto_cpu.map(|c| c / measured.as_secs_f64());
        if throttled > 0 {
            println!(
                "what limits it: Meta answered 130429 {throttled} times (more than {mps} reached it in some second); each such send waits out Smart Retry's throttle backoff"
            );
        }
        if let Some(took) = fanout_took.filter(|took| took.as_secs_f64() > floor) {
            println!(
                "what limits it: the fan-out wrote the jobs at {:.1} recipients/s ({:.1} s for all, one recipient after another), slower than the limit",
                recipients as f64 / took.as_secs_f64(),
                took.as_secs_f64()
            );
        }
        match moto_cores {
            Some(cores) if cores >= 0.7 => println!(
                "what limits it: the AWS emulator is saturated: moto (one Python process, so one core at most) was busy {cores:.2} cores serving {aws_rate:.0} AWS requests/s; at {aws_per_recipient:.1} AWS requests per recipient that caps the stack near {:.0} sends/s, whatever the limit",
                aws_rate / aws_per_recipient.max(1e-9)
            ),
            _ => println!(
                "what limits it: the emulator was not saturated ({}; {aws_rate:.0} AWS requests/s): the senders waited (the pace, requeues with SQS delays) or the fan-out fed them too slowly",
                busy(moto_cpu)
            ),
        }
    }
    println!("[{:>6.1}s] run done", started.elapsed().as_secs_f64());
    Ok(figures)
}
