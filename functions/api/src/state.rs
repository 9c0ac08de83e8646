//! What the API's handlers share, built once per cold start.

use std::sync::Arc;

use wapisnap::clock::SharedClock;
use wapisnap::meta::graph::GraphClient;
use wapisnap::queues::Queues;
use wapisnap::store::Store;
use wapisnap::vault::Vault;

pub struct ApiState {
    pub store: Store,
    pub queues: Queues,
    pub vault: Vault,
    pub graph: GraphClient,
    pub clock: SharedClock,
    pub limiter: crate::limits::WorkspaceLimiter,
    /// Embedded Signup's code exchange.
    pub app_id: Option<String>,
    pub app_secret: secrecy::SecretString,
}

pub type Shared = Arc<ApiState>;
