//! AWS SDK clients, built once per cold start and shared by every invocation.
//!
//! A function's cold start builds only the clients it uses, each from [`lambda_config`] with its
//! own constructor ([`dynamodb`], [`sqs`], [`kms`], [`scheduler`]): a client that is never built
//! is not linked (its endpoint rules, its runtime plugins), and the default provider chain of
//! `aws_config` (profile files, IMDS, ECS, SSO, STS web identity) is not linked either, because
//! Lambda gives everything in the environment. [`AwsClients`] builds all four at once, for the
//! local stack, the tests and the operator CLI.
//!
//! Both read the standard `AWS_ENDPOINT_URL` variable, which is how the same code talks to the
//! local emulator.
//!
//! The HTTPS client trusts Amazon Trust Services' roots, compiled in ([`amazon_trust_https_client`]):
//! the SDK's default reads and parses the whole system certificate store (some 150 roots, from
//! both the bundle file and the directory) while the first client is built, about 7 ms of every
//! cold start, to reach endpoints that all present Amazon Trust Services certificates.

use aws_config::{BehaviorVersion, SdkConfig};

pub use {aws_sdk_dynamodb, aws_sdk_kms, aws_sdk_scheduler, aws_sdk_sqs};

/// The SDK configuration of a Lambda cold start, from what Lambda puts in the environment: the
/// region (`AWS_REGION`, else `AWS_DEFAULT_REGION`), the execution role's credentials
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, read when a request is
/// signed) and `AWS_ENDPOINT_URL` when set (locally). Nothing is read from disk or the network,
/// nothing waits: `aws_config::load_defaults` took a few milliseconds of every cold start and
/// linked a provider chain a Lambda never gets past the environment of. The clients' own
/// defaults supply the rest (HTTP client, retries, timeouts, identity cache), as with `load`.
pub fn lambda_config() -> SdkConfig {
    let variable = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let region = variable("AWS_REGION").or_else(|| variable("AWS_DEFAULT_REGION"));
    let credentials = aws_config::environment::EnvironmentVariableCredentialsProvider::new();
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region.map(aws_config::Region::new))
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(credentials))
        .http_client(amazon_trust_https_client(system_roots_requested(variable("AWS_TLS_SYSTEM_ROOTS"))));
    if let Some(endpoint) = variable("AWS_ENDPOINT_URL") {
        config = config.endpoint_url(endpoint);
    }
    config.build()
}

/// Amazon Trust Services' root certificates (Amazon Root CA 1–4, and the Starfield Services root
/// that cross-signs them): every AWS service endpoint a function calls (DynamoDB, SQS, KMS,
/// Scheduler, Secrets Manager) presents a certificate that chains to one of them.
/// <https://www.amazontrust.com/repository/>
const AMAZON_TRUST_SERVICES_ROOTS: &str = include_str!("amazon-trust-services-roots.pem");

/// `AWS_TLS_SYSTEM_ROOTS=true` (or `1`): trust the system's certificate store instead, for
/// networks whose proxy re-signs TLS or partitions whose endpoints use other roots.
fn system_roots_requested(value: Option<String>) -> bool {
    value.is_some_and(|value| matches!(value.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// The SDK's HTTPS client (rustls with aws-lc, as its default), trusting only Amazon Trust
/// Services' roots unless the system's are asked for. Plain `http://` endpoints (the local
/// emulator) are reached as with the default client.
pub fn amazon_trust_https_client(system_roots: bool) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
    let trust_store = if system_roots {
        TrustStore::default()
    } else {
        TrustStore::empty().with_native_roots(false).with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS.as_bytes())
    };
    let context = TlsContext::builder().with_trust_store(trust_store).build().expect("a trust store of valid roots");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .tls_context(context)
        .build_https()
}

/// The DynamoDB client (every function).
pub fn dynamodb(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// The SQS client (every function).
pub fn sqs(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

/// The KMS client (the sender and the API, which seal and open access tokens).
pub fn kms(config: &SdkConfig) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(config)
}

/// The EventBridge Scheduler client (the functions that schedule: api, retry, flows,
/// broadcast, sweeper).
pub fn scheduler(config: &SdkConfig) -> aws_sdk_scheduler::Client {
    aws_sdk_scheduler::Client::new(config)
}

/// The clients of the functions that store, queue and schedule (flows, retry, broadcast,
/// sweeper): a Lambda of theirs builds, and so links, no other.
#[derive(Debug, Clone)]
pub struct SchedulingClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub scheduler: aws_sdk_scheduler::Client,
}

impl SchedulingClients {
    pub fn from_sdk_config(config: &SdkConfig) -> Self {
        Self { dynamodb: dynamodb(config), sqs: sqs(config), scheduler: scheduler(config) }
    }
}

impl From<&AwsClients> for SchedulingClients {
    fn from(aws: &AwsClients) -> Self {
        Self { dynamodb: aws.dynamodb.clone(), sqs: aws.sqs.clone(), scheduler: aws.scheduler.clone() }
    }
}

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
        Self { dynamodb: dynamodb(config), sqs: sqs(config), kms: kms(config), scheduler: scheduler(config) }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    #[test]
    fn the_compiled_in_roots_are_amazon_trust_services_five_certificates() {
        let roots: Vec<_> = CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_ROOTS.as_bytes())
            .collect::<Result<_, _>>()
            .expect("every root parses");
        assert_eq!(roots.len(), 5);
    }

    #[test]
    fn a_client_is_built_with_amazon_roots_or_the_systems() {
        for system_roots in [false, true] {
            let config = SdkConfig::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(aws_config::Region::new(LOCAL_REGION))
                .http_client(amazon_trust_https_client(system_roots))
                .build();
            let _ = dynamodb(&config);
        }
    }

    #[test]
    fn the_system_store_is_used_only_when_asked_for() {
        for yes in ["1", "true", "TRUE", " yes "] {
            assert!(system_roots_requested(Some(yes.into())), "{yes}");
        }
        for no in [None, Some(""), Some("0"), Some("false"), Some("amazon")] {
            assert!(!system_roots_requested(no.map(str::to_owned)), "{no:?}");
        }
    }
}
