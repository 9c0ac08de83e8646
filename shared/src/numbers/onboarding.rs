//! Onboarding a WhatsApp number with an access token (pasted by an operator; Embedded Signup
//! hands over the same kind of token). The token is checked against Meta before anything is
//! stored — a number we cannot read with it is refused — then the app is subscribed to the
//! WABA (without it, no webhook arrives: the FAQ's "Inbound messages stopped arriving", step 3),
//! and the number is connected: claimed for this workspace (409 when another one holds it),
//! its token sealed, Meta's view of it recorded.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::Value;

use super::{ConnectError, Connection, connect};
use crate::domain::{Channel, NumberState, PhoneNumberId, WabaId, WorkspaceId};
use crate::meta::graph::{GraphClient, GraphError, MetaError};
use crate::store::Store;
use crate::store::numbers::NumberRecord;
use crate::store::routes::ClaimError;
use crate::vault::Vault;

#[derive(Debug, thiserror::Error)]
pub enum OnboardError {
    #[error("Meta refused the token or the ids: {} (code {})", .0.message, .0.code)]
    MetaRefused(MetaError),
    #[error("Meta did not answer ({0}); nothing was stored, try again")]
    MetaUnreachable(String),
    #[error("WhatsApp number {0} already belongs to another workspace")]
    OwnedElsewhere(String),
    #[error(transparent)]
    Connect(ConnectError),
}

impl From<ConnectError> for OnboardError {
    fn from(error: ConnectError) -> Self {
        match error {
            ConnectError::Claim(ClaimError::OwnedByAnotherWorkspace { account_id, .. }) => {
                Self::OwnedElsewhere(account_id)
            }
            other => Self::Connect(other),
        }
    }
}

fn from_graph(error: GraphError) -> OnboardError {
    match error {
        GraphError::Meta(refusal) => OnboardError::MetaRefused(refusal),
        other => OnboardError::MetaUnreachable(other.to_string()),
    }
}

pub struct Onboarding<'a> {
    pub store: &'a Store,
    pub vault: &'a Vault,
    pub graph: &'a GraphClient,
}

impl Onboarding<'_> {
    pub async fn with_token(
        &self,
        workspace: &WorkspaceId,
        number: &PhoneNumberId,
        waba: &WabaId,
        token: &SecretString,
        now: DateTime<Utc>,
    ) -> Result<NumberRecord, OnboardError> {
        let meta: Value = self.graph.get(&self.graph.endpoint(number), token).await.map_err(from_graph)?;
        self.graph
            .post(&self.graph.endpoint(&format!("{waba}/subscribed_apps")), token, &Value::Object(Default::default()))
            .await
            .map_err(from_graph)?;
        let connected = meta["status"].as_str() == Some("CONNECTED");
        let connection = Connection {
            workspace,
            channel: Channel::WhatsApp,
            account_id: number,
            waba_id: Some(waba),
            token,
            state: if connected { NumberState::Active } else { NumberState::Draft },
        };
        let mut record = connect(self.store, self.vault, connection, now).await?;
        if !self.store.claim_waba(workspace, waba, now).await.map_err(|e| OnboardError::Connect(e.into()))? {
            tracing::warn!(%waba, "another workspace onboarded this WABA first: its template and quality news go there");
        }
        let text = |field: &str| meta[field].as_str().map(str::to_owned);
        record.display_phone_number = text("display_phone_number").or(record.display_phone_number);
        record.verified_name = text("verified_name").or(record.verified_name);
        record.meta_status = text("status").or(record.meta_status);
        record.quality_rating = text("quality_rating").or(record.quality_rating);
        self.store.put_number(&record).await.map_err(|e| OnboardError::Connect(e.into()))?;
        Ok(record)
    }
}
