//! The retry function (Smart Retry): chooses a backoff ladder from Meta's error and schedules the job back onto the send queue with EventBridge Scheduler.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use wapisnap::lambda::sqs::{MessageFailure, UnreportableRecord, each_message};

pub struct Retry;

impl Retry {
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, UnreportableRecord> {
        each_message(event, |message| self.process(message)).await
    }

    /// Not built yet: every message is reported as failed, so SQS keeps it (and after
    /// `maxReceiveCount` parks it in the dead-letter queue) instead of it being lost.
    async fn process(&self, _message: SqsMessage) -> Result<(), MessageFailure<&'static str>> {
        Err(MessageFailure::Handler("retry is not built yet; the message is kept for redelivery"))
    }
}
