//! The local stack's AWS requests, counted by service and operation: every client the stack
//! builds (the functions', the runner's, the tests') carries an SDK interceptor that counts each
//! HTTP attempt it makes to the emulator, retries included. `make bench-broadcast` reads the
//! counts to say what a recipient costs, `make bench-cost` what each unit of work costs (with the
//! bodies of the DynamoDB and SQS calls, to price them by size).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use std::sync::atomic::{AtomicBool, Ordering};

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use wapisnap::aws::AwsClients;

/// `(service, operation)`, e.g. `("DynamoDB", "UpdateItem")`.
pub type Operation = (String, String);

/// What an SQS `ReceiveMessage` that came back empty is counted as: the idle long polls of
/// the event source mappings, a fixed cost of having a queue rather than a cost of the work.
pub const EMPTY_RECEIVE: &str = "ReceiveMessage (empty)";

/// One DynamoDB or SQS request with its answer (bodies as sent and received), for pricing by
/// size: recorded only while [`AwsRequestCounter::record_calls`] is on.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    pub service: String,
    pub operation: String,
    pub request: Vec<u8>,
    pub response: Vec<u8>,
}

/// Counts of AWS requests by service and operation, shared by every client it was given to.
#[derive(Debug, Clone, Default)]
pub struct AwsRequestCounter {
    counts: Arc<Mutex<BTreeMap<Operation, u64>>>,
    recording: Arc<AtomicBool>,
    calls: Arc<Mutex<Vec<RecordedCall>>>,
}

impl AwsRequestCounter {
    /// Starts or stops recording each DynamoDB and SQS request's bodies ([`RecordedCall`]).
    pub fn record_calls(&self, on: bool) {
        self.recording.store(on, Ordering::SeqCst);
    }

    /// How many calls were recorded so far (a mark for [`Self::calls_since`]).
    pub fn calls_mark(&self) -> usize {
        self.calls.lock().expect("recorded calls").len()
    }

    /// The calls recorded after `mark`.
    pub fn calls_since(&self, mark: usize) -> Vec<RecordedCall> {
        self.calls.lock().expect("recorded calls").get(mark..).map(<[_]>::to_vec).unwrap_or_default()
    }

    /// A receive that came back empty: moved from `ReceiveMessage` to [`EMPTY_RECEIVE`].
    fn recount_empty_receive(&self) {
        let mut counts = self.counts.lock().expect("aws request counts");
        if let Some(count) = counts.get_mut(&("SQS".to_owned(), "ReceiveMessage".to_owned()))
            && *count > 0
        {
            *count -= 1;
            *counts.entry(("SQS".to_owned(), EMPTY_RECEIVE.to_owned())).or_default() += 1;
        }
    }

    /// The counts so far.
    pub fn snapshot(&self) -> BTreeMap<Operation, u64> {
        self.counts.lock().expect("aws request counts").clone()
    }

    /// Every request so far.
    pub fn total(&self) -> u64 {
        self.counts.lock().expect("aws request counts").values().sum()
    }

    fn count(&self, service: &str, operation: &str) {
        let mut counts = self.counts.lock().expect("aws request counts");
        match counts.get_mut(&(service.to_owned(), operation.to_owned())) {
            Some(count) => *count += 1,
            None => {
                counts.insert((service.to_owned(), operation.to_owned()), 1);
            }
        }
    }

    /// Clients for an AWS emulator at `endpoint`, as [`AwsClients::for_emulator`] builds them
    /// (fixed dummy credentials, the local region), each counting its requests here.
    pub async fn clients_for_emulator(&self, endpoint: &str) -> AwsClients {
        let config = emulator_config(endpoint).await;
        let interceptor = CountRequests { counter: self.clone() };
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&config).interceptor(interceptor.clone()).build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(&config).interceptor(interceptor.clone()).build(),
            ),
            kms: aws_sdk_kms::Client::from_conf(
                aws_sdk_kms::config::Builder::from(&config).interceptor(interceptor.clone()).build(),
            ),
            scheduler: aws_sdk_scheduler::Client::from_conf(
                aws_sdk_scheduler::config::Builder::from(&config).interceptor(interceptor).build(),
            ),
        }
    }
}

impl AwsRequestCounter {
    /// A Secrets Manager client for the emulator, counting its requests here (only the webhook
    /// and the API are given one).
    pub async fn secrets_manager_for_emulator(&self, endpoint: &str) -> aws_sdk_secretsmanager::Client {
        let config = emulator_config(endpoint).await;
        let interceptor = CountRequests { counter: self.clone() };
        aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(&config).interceptor(interceptor).build(),
        )
    }
}

/// The local region and fixed dummy credentials, so nothing on the developer's machine is
/// picked up by accident.
async fn emulator_config(endpoint: &str) -> aws_config::SdkConfig {
    let credentials = aws_credential_types::Credentials::from_keys("local", "local", None);
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(wapisnap::aws::LOCAL_REGION))
        .credentials_provider(credentials)
        .load()
        .await
}

/// The interceptor: one count per attempt, just before it goes on the wire.
#[derive(Debug, Clone)]
struct CountRequests {
    counter: AwsRequestCounter,
}

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        match cfg.load::<Metadata>() {
            Some(metadata) => {
                self.counter.count(metadata.service(), metadata.name());
                if self.counter.recording.load(Ordering::SeqCst) && ["DynamoDB", "SQS"].contains(&metadata.service()) {
                    let body = context.request().body().bytes().map(<[u8]>::to_vec).unwrap_or_default();
                    cfg.interceptor_state().store_put(SentBody(body));
                }
            }
            None => self.counter.count("unknown", "unknown"),
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let Some(metadata) = cfg.load::<Metadata>() else { return Ok(()) };
        let (service, operation) = (metadata.service().to_owned(), metadata.name().to_owned());
        if operation == "ReceiveMessage"
            && let Ok(output) = context.output_or_error()
            && let Some(received) =
                output.downcast_ref::<aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput>()
            && received.messages().is_empty()
        {
            self.counter.recount_empty_receive();
            return Ok(());
        }
        if let Some(SentBody(request)) = cfg.load::<SentBody>() {
            let response = context.response().body().bytes().map(<[u8]>::to_vec).unwrap_or_default();
            let call = RecordedCall { service, operation, request: request.clone(), response };
            self.counter.calls.lock().expect("recorded calls").push(call);
        }
        Ok(())
    }
}

/// The body of the request being made, kept for [`RecordedCall`] until its answer is read.
#[derive(Debug, Clone)]
struct SentBody(Vec<u8>);

impl Storable for SentBody {
    type Storer = StoreReplace<Self>;
}
