//! Wake-ups for parked runs. FIFO queues have no per-message delay, so a wake-up goes to the
//! standard timer queue — with an SQS delay when it is due within 15 minutes, through a
//! one-time EventBridge Scheduler schedule (`at(...)`, deleted after it fires) beyond — and the
//! flows function moves it onto the conversation's FIFO group when it arrives. Either way the
//! wake-up names the run and step it was made for, so a late one is a no-op.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::config::FlowTimerConfig;
use crate::queues::FlowTick;
use crate::schedules::{OneTime, create_once};

/// SQS's longest message delay.
pub const MAX_SQS_DELAY: i64 = 15 * 60;

#[derive(Debug, thiserror::Error)]
pub enum TimerError {
    #[error("SQS SendMessage to the flow timer queue failed: {0}")]
    Queue(String),
    #[error("creating the flow schedule {name} failed: {reason}")]
    Schedule { name: String, reason: String },
}

#[derive(Debug, Clone)]
pub struct FlowTimers {
    sqs: aws_sdk_sqs::Client,
    scheduler: aws_sdk_scheduler::Client,
    config: FlowTimerConfig,
}

/// How a wake-up is parked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parked {
    Delayed { seconds: i32 },
    Scheduled { name: String },
}

/// `flow-<hash of the tick>`: Scheduler names allow 64 characters, and the same tick always
/// gets the same name, so arming it twice finds the first schedule.
pub fn schedule_name(tick: &FlowTick) -> String {
    format!("flow-{}", &hex::encode(Sha256::digest(tick.deduplication_id()))[..40])
}

impl FlowTimers {
    pub fn new(sqs: aws_sdk_sqs::Client, scheduler: aws_sdk_scheduler::Client, config: FlowTimerConfig) -> Self {
        Self { sqs, scheduler, config }
    }

    pub async fn wake_at(&self, tick: &FlowTick, at: DateTime<Utc>, now: DateTime<Utc>) -> Result<Parked, TimerError> {
        let wait = at - now;
        let body = crate::correlation::body(tick);
        if wait <= Duration::seconds(MAX_SQS_DELAY) {
            // Rounded up: a wake-up never arrives before its time.
            let seconds = (wait.num_milliseconds().max(0) + 999) / 1000;
            let seconds = seconds.clamp(0, MAX_SQS_DELAY) as i32;
            self.sqs
                .send_message()
                .queue_url(&self.config.timer_queue_url)
                .message_body(body)
                .delay_seconds(seconds)
                .send()
                .await
                .map_err(|e| TimerError::Queue(format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e))))?;
            return Ok(Parked::Delayed { seconds });
        }
        let name = schedule_name(tick);
        let schedule = OneTime {
            name: &name,
            group: &self.config.group_name,
            // Rounded up to the second, like the SQS delay.
            at: at + Duration::milliseconds(999),
            target_arn: &self.config.timer_queue_arn,
            role_arn: &self.config.role_arn,
            input: body,
            dead_letter_arn: self.config.dead_letter_arn.as_deref(),
            spread_minutes: None,
        };
        match create_once(&self.scheduler, schedule).await {
            Ok(()) => Ok(Parked::Scheduled { name }),
            Err(reason) => Err(TimerError::Schedule { name, reason }),
        }
    }

    /// Whether an SQS record came from the timer queue (and must be moved to the FIFO queue).
    pub fn is_timer_queue(&self, event_source_arn: Option<&str>) -> bool {
        let name = |s: &str| s.rsplit([':', '/']).next().map(str::to_owned);
        event_source_arn.and_then(name) == name(&self.config.timer_queue_url)
    }
}
