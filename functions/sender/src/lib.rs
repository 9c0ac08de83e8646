//! The sender function: one send job at a time from the send queue: policy gates, token decryption, the Graph API call, the result recorded; failures classified and passed to Smart Retry.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use wapisnap::lambda::sqs::{MessageFailure, UnreportableRecord, each_message};

pub struct Sender;

impl Sender {
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, UnreportableRecord> {
        each_message(event, |message| self.process(message)).await
    }

    /// Not built yet: every message is reported as failed, so SQS keeps it (and after
    /// `maxReceiveCount` parks it in the dead-letter queue) instead of it being lost.
    async fn process(&self, _message: SqsMessage) -> Result<(), MessageFailure<&'static str>> {
        Err(MessageFailure::Handler("sender is not built yet; the message is kept for redelivery"))
    }
}
