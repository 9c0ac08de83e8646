//! The flows function: one automation step ("tick") per flow event; stops when the conversation is handed to a human, respects the channel filter and WhatsApp-only nodes.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use wapisnap::lambda::sqs::{MessageFailure, UnreportableRecord, each_message};

pub struct Flows;

impl Flows {
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, UnreportableRecord> {
        each_message(event, |message| self.process(message)).await
    }

    /// Not built yet: every message is reported as failed, so SQS keeps it (and after
    /// `maxReceiveCount` parks it in the dead-letter queue) instead of it being lost.
    async fn process(&self, _message: SqsMessage) -> Result<(), MessageFailure<&'static str>> {
        Err(MessageFailure::Handler("flows is not built yet; the message is kept for redelivery"))
    }
}
