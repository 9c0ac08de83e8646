//! One-time EventBridge Scheduler schedules: `at(...)` in UTC, deleted after they fire, named
//! deterministically by their caller so that creating one twice (a redelivered hand-over)
//! finds the first instead of making a second. Smart Retry's resends and the flow engine's
//! long waits are both made here.

use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, Target,
};
use chrono::{DateTime, Utc};

/// A schedule that delivers `input` to `target_arn` once, at `at`.
pub struct OneTime<'a> {
    pub name: &'a str,
    pub group: &'a str,
    pub at: DateTime<Utc>,
    pub target_arn: &'a str,
    pub role_arn: &'a str,
    pub input: String,
    /// Where Scheduler parks a firing it could not deliver.
    pub dead_letter_arn: Option<&'a str>,
    /// Lets Scheduler fire anywhere in this many minutes after `at` (spreads a crowd).
    pub spread_minutes: Option<i32>,
}

/// Whether a schedule of that name is there (not fired yet, or kept after firing).
pub async fn exists(scheduler: &aws_sdk_scheduler::Client, group: &str, name: &str) -> Result<bool, String> {
    match scheduler.get_schedule().group_name(group).name(name).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(false),
        Err(e) => Err(format!("{}", aws_sdk_scheduler::error::DisplayErrorContext(&e))),
    }
}

/// Creates the schedule; one of that name already there counts as created.
pub async fn create_once(scheduler: &aws_sdk_scheduler::Client, schedule: OneTime<'_>) -> Result<(), String> {
    let mut target = Target::builder().arn(schedule.target_arn).role_arn(schedule.role_arn).input(schedule.input);
    if let Some(dlq) = schedule.dead_letter_arn {
        target = target.dead_letter_config(DeadLetterConfig::builder().arn(dlq).build());
    }
    let window = match schedule.spread_minutes {
        Some(minutes) => {
            FlexibleTimeWindow::builder().mode(FlexibleTimeWindowMode::Flexible).maximum_window_in_minutes(minutes)
        }
        None => FlexibleTimeWindow::builder().mode(FlexibleTimeWindowMode::Off),
    }
    .build()
    .map_err(|e| e.to_string())?;
    let result = scheduler
        .create_schedule()
        .name(schedule.name)
        .group_name(schedule.group)
        .schedule_expression(format!("at({})", schedule.at.format("%Y-%m-%dT%H:%M:%S")))
        .schedule_expression_timezone("UTC")
        .flexible_time_window(window)
        .target(target.build().map_err(|e| e.to_string())?)
        .action_after_completion(ActionAfterCompletion::Delete)
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_conflict_exception()) => Ok(()),
        Err(e) => Err(format!("{}", aws_sdk_scheduler::error::DisplayErrorContext(&e))),
    }
}
