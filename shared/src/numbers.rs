//! Connecting a number (or Instagram account) to a workspace: the ownership claim (one
//! workspace at a time), the sealed token, the number's record. The API's onboarding and the
//! local stack's fixtures both go through here.

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::domain::Channel;
use crate::domain::NumberState;
use crate::domain::WorkspaceId;
use crate::store::numbers::NumberRecord;
use crate::store::routes::ClaimError;
use crate::store::{Store, StoreError};
use crate::vault::{Vault, VaultError};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Claim(#[from] ClaimError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What Meta's Embedded Signup (or an operator) hands us for one number.
pub struct Connection<'a> {
    pub workspace: &'a WorkspaceId,
    pub channel: Channel,
    pub account_id: &'a str,
    pub waba_id: Option<&'a str>,
    pub token: &'a SecretString,
    pub state: NumberState,
}

pub async fn connect(
    store: &Store,
    vault: &Vault,
    connection: Connection<'_>,
    now: DateTime<Utc>,
) -> Result<NumberRecord, ConnectError> {
    store.claim_route(connection.workspace, connection.channel, connection.account_id, now).await?;
    let token = vault.seal(connection.workspace.as_str(), connection.account_id, connection.token).await?;
    let record = NumberRecord {
        workspace_id: connection.workspace.clone(),
        channel: connection.channel,
        account_id: connection.account_id.to_owned(),
        waba_id: connection.waba_id.map(str::to_owned),
        display_phone_number: None,
        state: connection.state,
        state_reason: None,
        token,
        updated_at: now,
        statuses_seen_at: None,
    };
    store.put_number(&record).await?;
    Ok(record)
}
