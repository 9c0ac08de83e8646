//! AWS SDK clients, built once per cold start and shared by every invocation.
//!
//! The SDK reads the standard `AWS_ENDPOINT_URL` variable itself, which is how the same code
//! talks to the local emulator.

use aws_config::{BehaviorVersion, SdkConfig};

#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub kms: aws_sdk_kms::Client,
    pub scheduler: aws_sdk_scheduler::Client,
}

impl AwsClients {
    /// The clients for the current environment (Lambda's role, or whatever the standard
    /// AWS variables say).
    pub async fn from_env() -> Self {
        Self::from_sdk_config(&aws_config::defaults(BehaviorVersion::latest()).load().await)
    }

    pub fn from_sdk_config(config: &SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            kms: aws_sdk_kms::Client::new(config),
            scheduler: aws_sdk_scheduler::Client::new(config),
        }
    }

    /// Clients for an AWS emulator at `endpoint` (the local stack), with fixed dummy credentials
    /// so nothing on the developer's machine is picked up by accident.
    pub async fn for_emulator(endpoint: &str) -> Self {
        let credentials = aws_credential_types::Credentials::from_keys("local", "local", None);
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new(crate::aws::LOCAL_REGION))
            .credentials_provider(credentials)
            .load()
            .await;
        Self::from_sdk_config(&config)
    }
}

/// The region the local stack pretends to be in.
pub const LOCAL_REGION: &str = "us-east-1";

/// Error text for any SDK error, including the service's own code and message, which the
/// SDK's `Display` leaves out.
pub fn describe_sdk_error<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> String
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug + 'static,
{
    match err.as_service_error() {
        Some(service) => {
            format!("{}: {}", service.code().unwrap_or("UnknownError"), service.message().unwrap_or("no message"))
        }
        None => format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(err)),
    }
}
