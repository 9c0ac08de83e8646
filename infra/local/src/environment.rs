//! Emulator + Meta sandbox + stack, started together and wired to each other: the sandbox
//! posts its webhooks to the stack, the stack's Graph API base URL is the sandbox.

use std::net::SocketAddr;

use crate::aws_faults::AwsFaults;
use crate::moto::{Moto, MotoError};
use crate::sandbox::{Sandbox, WebhookTarget};
use crate::stack::{LocalStack, StackError, StackOptions};

#[derive(Debug, Clone)]
pub struct EnvironmentOptions {
    /// An emulator already running (`AWS_ENDPOINT_URL`); a fresh moto is started when absent.
    pub aws_endpoint: Option<String>,
    pub http_addr: SocketAddr,
    pub sandbox_addr: SocketAddr,
    /// Where the functions reach the Graph API; the bundled sandbox when absent.
    pub meta_graph_url: Option<String>,
    pub meta_app_secret: String,
    pub meta_app_secret_previous: Option<String>,
    pub meta_verify_token: String,
    pub graph_timeout: std::time::Duration,
    /// Function timeouts other than the template's, by logical id.
    pub function_timeouts: std::collections::HashMap<String, std::time::Duration>,
    pub sender_concurrency: Option<usize>,
    pub api_workspace_rate: Option<u32>,
    /// Pollers per SQS event source mapping ([`crate::stack::DEFAULT_SQS_POLLERS`] when absent;
    /// `LOCAL_SQS_POLLERS` for `make dev`).
    pub sqs_pollers: Option<usize>,
}

impl Default for EnvironmentOptions {
    fn default() -> Self {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            aws_endpoint: None,
            http_addr: any_port,
            sandbox_addr: any_port,
            meta_graph_url: None,
            meta_app_secret: "local-app-secret".into(),
            meta_app_secret_previous: None,
            meta_verify_token: "local-verify-token".into(),
            graph_timeout: wapisnap::meta::graph::GRAPH_TIMEOUT,
            function_timeouts: Default::default(),
            sender_concurrency: None,
            api_workspace_rate: None,
            sqs_pollers: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    #[error(transparent)]
    Moto(#[from] MotoError),
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error("cannot start the Meta sandbox on {0}: {1}")]
    Sandbox(SocketAddr, std::io::Error),
    #[error("cannot start the AWS fault pass-through: {0}")]
    AwsFaults(std::io::Error),
}

pub struct LocalEnvironment {
    pub stack: LocalStack,
    pub sandbox: Sandbox,
    /// The emulator this environment started (none when it reuses one).
    pub moto: Option<Moto>,
    /// The emulator's endpoint (started here or reused): `AWS_ENDPOINT_URL` for `wapisnap-admin`.
    pub aws_endpoint: String,
    /// In front of AWS: the stack reaches the emulator through it (one write at a time per
    /// item, as DynamoDB keeps conditional writes atomic), and a story fails AWS with it.
    pub aws_faults: AwsFaults,
    /// The API key issued by [`Self::open_workspace`], for `make dev`'s banner, the demo and tests.
    pub api_key: Option<secrecy::SecretString>,
}

impl LocalEnvironment {
    /// Creates the workspace and issues its first API key with the code `wapisnap-admin
    /// workspace create` runs; the key is also kept in [`Self::api_key`].
    pub async fn open_workspace(
        &mut self,
        workspace: &wapisnap::domain::WorkspaceId,
        name: &str,
    ) -> Result<wapisnap::access::OpenedWorkspace, wapisnap::access::OpenWorkspaceError> {
        use wapisnap::clock::Clock;
        let store = wapisnap::store::Store::new(self.stack.aws.dynamodb.clone(), self.stack.resources.table_name());
        let opened = wapisnap::access::open_workspace(&store, workspace, name, self.stack.clock.now()).await?;
        self.api_key = Some(opened.key.key.clone());
        Ok(opened)
    }

    /// Connects a WhatsApp number to a workspace the way onboarding does (claim, sealed token,
    /// ACTIVE), so the local stack has something to receive for and send from.
    pub async fn connect_number(
        &self,
        workspace: &wapisnap::domain::WorkspaceId,
        number_id: &str,
        waba_id: &str,
        token: &str,
    ) -> Result<wapisnap::store::numbers::NumberRecord, wapisnap::numbers::ConnectError> {
        use crate::template::Resolver;
        use wapisnap::clock::Clock;
        let stack = &self.stack;
        let store = wapisnap::store::Store::new(stack.aws.dynamodb.clone(), stack.resources.table_name());
        let vault = wapisnap::vault::Vault::new(
            stack.aws.kms.clone(),
            stack.resources.reference("TokenKey").unwrap_or_default(),
        );
        let token = secrecy::SecretString::from(token.to_owned());
        let connection = wapisnap::numbers::Connection {
            workspace,
            channel: wapisnap::domain::Channel::WhatsApp,
            account_id: number_id,
            waba_id: Some(waba_id),
            token: &token,
            state: wapisnap::domain::NumberState::Active,
        };
        wapisnap::numbers::connect(&store, &vault, connection, stack.clock.now()).await
    }

    pub async fn start(options: EnvironmentOptions) -> Result<Self, EnvironmentError> {
        let (moto, endpoint) = match options.aws_endpoint {
            Some(endpoint) => (None, endpoint),
            None => {
                let moto = Moto::start().await?;
                let endpoint = moto.endpoint.clone();
                (Some(moto), endpoint)
            }
        };
        let aws_faults = AwsFaults::start(&endpoint).await.map_err(EnvironmentError::AwsFaults)?;
        let sandbox = Sandbox::start(options.sandbox_addr)
            .await
            .map_err(|e| EnvironmentError::Sandbox(options.sandbox_addr, e))?;
        let mut stack_options = StackOptions::new(
            aws_faults.endpoint.clone(),
            options.meta_graph_url.unwrap_or_else(|| sandbox.url.clone()),
        );
        stack_options.http_addr = options.http_addr;
        stack_options.meta_app_secret = options.meta_app_secret.clone();
        stack_options.meta_verify_token = options.meta_verify_token;
        stack_options.meta_app_secret_previous = options.meta_app_secret_previous;
        stack_options.graph_timeout = options.graph_timeout;
        stack_options.function_timeouts = options.function_timeouts.clone();
        stack_options.sender_concurrency = options.sender_concurrency;
        stack_options.api_workspace_rate = options.api_workspace_rate;
        stack_options.sqs_pollers = options.sqs_pollers.unwrap_or(crate::stack::DEFAULT_SQS_POLLERS).max(1);
        let stack = LocalStack::start(stack_options).await?;
        sandbox.set_webhook(WebhookTarget { url: stack.webhook_url(), app_secret: options.meta_app_secret });
        Ok(Self { stack, sandbox, moto, aws_endpoint: endpoint, aws_faults, api_key: None })
    }
}
