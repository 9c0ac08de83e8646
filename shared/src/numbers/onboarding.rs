//! Onboarding WhatsApp numbers: with an access token an operator pastes, or by Embedded Signup
//! (the business's browser gets a code from Meta; we exchange it for a business token, then
//! onboard every number of the WABA with it). The token is checked against Meta before anything is
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
    #[error("WhatsApp number {0} already belongs to another workspace; to move it here, deregister it there first")]
    OwnedElsewhere(String),
    #[error("Embedded Signup is not configured: set META_APP_ID and META_SECRET_ARN for the API")]
    SignupNotConfigured,
    #[error("the WhatsApp Business Account has no phone number to onboard")]
    NoNumbers,
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

/// A number's path with the fields Meta leaves out by default (`status`, `name_status`).
pub fn number_fields(number: &str) -> String {
    format!(
        "{number}?fields=status,name_status,display_phone_number,verified_name,quality_rating,code_verification_status,messaging_limit_tier"
    )
}

/// What an Embedded Signup onboarded.
#[derive(Debug)]
pub struct SignedUp {
    pub onboarded: Vec<NumberRecord>,
    /// The WABA's numbers another workspace holds: not onboarded here.
    pub held_elsewhere: Vec<String>,
}

pub struct Onboarding<'a> {
    pub store: &'a Store,
    pub vault: &'a Vault,
    pub graph: &'a GraphClient,
}

/// The app credentials Embedded Signup's code exchange needs.
pub struct AppCredentials<'a> {
    pub app_id: Option<&'a str>,
    pub app_secret: &'a SecretString,
}

impl Onboarding<'_> {
    /// Embedded Signup: the code becomes a business token, the app is subscribed to the WABA,
    /// and each of the WABA's numbers is onboarded with the token.
    pub async fn with_signup_code(
        &self,
        workspace: &WorkspaceId,
        app: AppCredentials<'_>,
        code: &str,
        waba: &WabaId,
        now: DateTime<Utc>,
    ) -> Result<SignedUp, OnboardError> {
        let app_id = app.app_id.ok_or(OnboardError::SignupNotConfigured)?;
        let token = self.graph.exchange_code(app_id, app.app_secret, code).await.map_err(from_graph)?;
        let listed =
            self.graph.get(&self.graph.endpoint(&format!("{waba}/phone_numbers")), &token).await.map_err(from_graph)?;
        let numbers: Vec<PhoneNumberId> = listed["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["id"].as_str().and_then(|id| PhoneNumberId::parse(id).ok()))
            .collect();
        if numbers.is_empty() {
            return Err(OnboardError::NoNumbers);
        }
        let mut signed_up = SignedUp { onboarded: Vec::with_capacity(numbers.len()), held_elsewhere: Vec::new() };
        for number in &numbers {
            match self.with_token(workspace, number, waba, &token, now).await {
                Ok(record) => signed_up.onboarded.push(record),
                // One number of the WABA another workspace holds does not stop the others (a
                // number moved here out of a WABA whose other numbers stay there).
                Err(OnboardError::OwnedElsewhere(number)) => signed_up.held_elsewhere.push(number),
                Err(other) => return Err(other),
            }
        }
        match signed_up.held_elsewhere.first() {
            Some(held) if signed_up.onboarded.is_empty() => Err(OnboardError::OwnedElsewhere(held.clone())),
            _ => Ok(signed_up),
        }
    }

    pub async fn with_token(
        &self,
        workspace: &WorkspaceId,
        number: &PhoneNumberId,
        waba: &WabaId,
        token: &SecretString,
        now: DateTime<Utc>,
    ) -> Result<NumberRecord, OnboardError> {
        let meta: Value =
            self.graph.get(&self.graph.endpoint(&number_fields(number)), token).await.map_err(from_graph)?;
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
        // Best effort: without the portfolio the limit is shared by the WABA's numbers only.
        let owner = self.graph.get(&self.graph.endpoint(&format!("{waba}?fields=owner_business_info")), token).await;
        if let Some(business) = owner.ok().and_then(|o| o["owner_business_info"]["id"].as_str().map(str::to_owned)) {
            record.business_id = Some(business);
        }
        let text = |field: &str| meta[field].as_str().map(str::to_owned);
        record.display_phone_number = text("display_phone_number").or(record.display_phone_number);
        record.verified_name = text("verified_name").or(record.verified_name);
        record.meta_status = text("status").or(record.meta_status);
        record.quality_rating = text("quality_rating").or(record.quality_rating);
        // Onboarding is the first time we hear the portfolio's messaging limit; Meta's
        // `phone_number_quality_update` webhooks bring its changes.
        record.messaging_limit = text("messaging_limit_tier").or(record.messaging_limit);
        self.store.put_number(&record).await.map_err(|e| OnboardError::Connect(e.into()))?;
        Ok(record)
    }
}
