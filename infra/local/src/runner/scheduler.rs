//! Local EventBridge Scheduler: the emulator stores schedules but never fires them, so this
//! fires each due one-time `at(...)` schedule of our groups into its target (an SQS queue or a
//! function) according to the injected clock, then deletes it when its
//! `ActionAfterCompletion` is `DELETE`, as Scheduler does. Rate schedules from the template
//! (the sweeper's) fire on the same clock.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use aws_sdk_scheduler::types::{ActionAfterCompletion, FlexibleTimeWindowMode, ScheduleState};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use tokio::sync::watch;
use wapisnap::clock::SharedClock;

use super::InvokeHandler;

/// A schedule that fired during a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub group: String,
    pub name: String,
    pub target_arn: String,
    pub deleted: bool,
}

pub struct RateSchedule {
    pub function: String,
    pub every: Duration,
    pub handler: InvokeHandler,
    last_fired: Mutex<Option<DateTime<Utc>>>,
}

impl RateSchedule {
    pub fn new(function: String, every: Duration, handler: InvokeHandler) -> Self {
        Self { function, every, handler, last_fired: Mutex::new(None) }
    }
}

pub struct SchedulerEmulator {
    pub scheduler: aws_sdk_scheduler::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub clock: SharedClock,
    pub groups: Vec<String>,
    /// Functions that schedules may target, by ARN.
    pub functions: HashMap<String, InvokeHandler>,
    pub rates: Vec<RateSchedule>,
    /// One-time schedules kept after firing (`ActionAfterCompletion: NONE`) fire only once.
    fired_and_kept: Mutex<HashSet<(String, String)>>,
}

impl SchedulerEmulator {
    pub fn new(
        scheduler: aws_sdk_scheduler::Client,
        sqs: aws_sdk_sqs::Client,
        clock: SharedClock,
        groups: Vec<String>,
        functions: HashMap<String, InvokeHandler>,
        rates: Vec<RateSchedule>,
    ) -> Self {
        Self { scheduler, sqs, clock, groups, functions, rates, fired_and_kept: Mutex::new(HashSet::new()) }
    }

    /// Fires everything that is due now. A target that cannot be reached keeps its schedule,
    /// which is retried on the next tick (Scheduler retries too).
    pub async fn tick(&self) -> Result<Vec<Fired>, String> {
        let fired = self.fire_due_schedules().await?;
        let now = self.clock.now();
        for rate in &self.rates {
            let due = {
                let mut last = rate.last_fired.lock().expect("rate lock");
                let due = last.is_none_or(|l| now - l >= rate.every);
                if due {
                    *last = Some(now);
                }
                due
            };
            if due && let Err(error) = (rate.handler)(serde_json::json!({ "source": "local.rate" })).await {
                tracing::warn!(function = %rate.function, %error, "rate schedule invocation failed");
            }
        }
        Ok(fired)
    }

    /// Fires the one-time schedules that are due now, and nothing else (no rate schedule):
    /// what `make bench-cost` uses to play one retry without a sweeper run in its figures.
    pub async fn fire_due_schedules(&self) -> Result<Vec<Fired>, String> {
        let now = self.clock.now();
        let mut fired = Vec::new();
        for group in &self.groups {
            for name in self.schedule_names(group).await? {
                if let Some(f) = self.fire_if_due(group, &name, now).await? {
                    fired.push(f);
                }
            }
        }
        Ok(fired)
    }

    async fn schedule_names(&self, group: &str) -> Result<Vec<String>, String> {
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .scheduler
                .list_schedules()
                .group_name(group)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| format!("list schedules of {group}: {e:?}"))?;
            names.extend(page.schedules().iter().filter_map(|s| s.name().map(str::to_owned)));
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(names);
            }
        }
    }

    async fn fire_if_due(&self, group: &str, name: &str, now: DateTime<Utc>) -> Result<Option<Fired>, String> {
        let key = (group.to_owned(), name.to_owned());
        if self.fired_and_kept.lock().expect("fired lock").contains(&key) {
            return Ok(None);
        }
        let schedule = match self.scheduler.get_schedule().group_name(group).name(name).send().await {
            Ok(s) => s,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => return Ok(None),
            Err(e) => return Err(format!("get schedule {group}/{name}: {e:?}")),
        };
        if schedule.state() == Some(&ScheduleState::Disabled) {
            return Ok(None);
        }
        let Some(at) = schedule.schedule_expression().and_then(parse_at) else {
            return Ok(None); // rate()/cron() schedules in our groups are not ours to fire
        };
        let spread = match schedule.flexible_time_window() {
            Some(w) if *w.mode() == FlexibleTimeWindowMode::Flexible => {
                flexible_offset(name, w.maximum_window_in_minutes().unwrap_or(0))
            }
            _ => Duration::zero(),
        };
        if now < at + spread {
            return Ok(None);
        }
        let target = schedule.target().ok_or_else(|| format!("schedule {name} has no target"))?;
        self.deliver(target.arn(), target.input().unwrap_or("{}")).await?;

        let deleted = schedule.action_after_completion() == Some(&ActionAfterCompletion::Delete);
        if deleted {
            self.scheduler
                .delete_schedule()
                .group_name(group)
                .name(name)
                .send()
                .await
                .map_err(|e| format!("delete schedule {name}: {e:?}"))?;
        } else {
            self.fired_and_kept.lock().expect("fired lock").insert(key);
        }
        tracing::info!(group, name, target = target.arn(), deleted, "schedule fired");
        Ok(Some(Fired { group: group.into(), name: name.into(), target_arn: target.arn().into(), deleted }))
    }

    async fn deliver(&self, arn: &str, input: &str) -> Result<(), String> {
        if let Some(queue_name) = arn.strip_prefix("arn:aws:sqs:").and_then(|rest| rest.rsplit(':').next()) {
            let url = self
                .sqs
                .get_queue_url()
                .queue_name(queue_name)
                .send()
                .await
                .map_err(|e| format!("target queue {queue_name}: {e:?}"))?
                .queue_url
                .unwrap_or_default();
            self.sqs
                .send_message()
                .queue_url(url)
                .message_body(input)
                .send()
                .await
                .map_err(|e| format!("deliver to {queue_name}: {e:?}"))?;
            return Ok(());
        }
        let handler = self.functions.get(arn).ok_or_else(|| format!("no local target for {arn}"))?;
        let payload = serde_json::from_str(input).unwrap_or(serde_json::Value::String(input.into()));
        handler(payload).await.map(|_| ())
    }

    pub fn spawn(
        self: Arc<Self>,
        every: StdDuration,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = interval.tick() => {
                        if let Err(error) = self.tick().await {
                            tracing::warn!(%error, "scheduler tick failed");
                        }
                    }
                }
            }
        })
    }
}

/// `at(2026-12-03T09:00:00)`, in UTC: every schedule we create says UTC, and the emulator
/// fires nothing in other time zones.
pub fn parse_at(expression: &str) -> Option<DateTime<Utc>> {
    let inner = expression.strip_prefix("at(")?.strip_suffix(')')?;
    NaiveDateTime::parse_from_str(inner, "%Y-%m-%dT%H:%M:%S").ok().map(|t| t.and_utc())
}

/// `rate(5 minutes)`, `rate(1 hour)`, ...
pub fn parse_rate(expression: &str) -> Option<Duration> {
    let inner = expression.strip_prefix("rate(")?.strip_suffix(')')?;
    let (amount, unit) = inner.split_once(' ')?;
    let amount: i64 = amount.parse().ok()?;
    match unit.trim_end_matches('s') {
        "minute" => Some(Duration::minutes(amount)),
        "hour" => Some(Duration::hours(amount)),
        "day" => Some(Duration::days(amount)),
        _ => None,
    }
}

/// Scheduler picks a moment inside a flexible window; locally the pick is a stable function
/// of the schedule name, so spreading is visible and runs are repeatable.
fn flexible_offset(name: &str, window_minutes: i32) -> Duration {
    if window_minutes <= 0 {
        return Duration::zero();
    }
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    Duration::seconds((hash % (window_minutes as u64 * 60)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_expressions_are_utc() {
        let at = parse_at("at(2026-12-03T09:00:00)").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-12-03T09:00:00+00:00");
        assert!(parse_at("rate(5 minutes)").is_none());
    }

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("rate(5 minutes)"), Some(Duration::minutes(5)));
        assert_eq!(parse_rate("rate(1 hour)"), Some(Duration::hours(1)));
        assert_eq!(parse_rate("cron(0 * * * ? *)"), None);
    }

    #[test]
    fn flexible_offsets_stay_inside_the_window() {
        for name in ["a", "job-1", "job-2", "broadcast-42"] {
            let offset = flexible_offset(name, 60);
            assert!(offset >= Duration::zero() && offset < Duration::minutes(60));
        }
    }
}
