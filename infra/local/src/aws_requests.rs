//! The local stack's AWS requests, counted by service and operation: every client the stack
//! builds (the functions', the runner's, the tests') carries an SDK interceptor that counts each
//! HTTP attempt it makes to the emulator, retries included. `make bench-broadcast` reads the
//! counts to say what a recipient costs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use wapisnap::aws::AwsClients;

/// `(service, operation)`, e.g. `("DynamoDB", "UpdateItem")`.
pub type Operation = (String, String);

/// Counts of AWS requests by service and operation, shared by every client it was given to.
#[derive(Debug, Clone, Default)]
pub struct AwsRequestCounter {
    counts: Arc<Mutex<BTreeMap<Operation, u64>>>,
}

impl AwsRequestCounter {
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
        let credentials = aws_credential_types::Credentials::from_keys("local", "local", None);
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new(wapisnap::aws::LOCAL_REGION))
            .credentials_provider(credentials)
            .load()
            .await;
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
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        match cfg.load::<Metadata>() {
            Some(metadata) => self.counter.count(metadata.service(), metadata.name()),
            None => self.counter.count("unknown", "unknown"),
        }
        Ok(())
    }
}
