//! A number's (or Instagram account's) life in a workspace (FAQ: "Account lifecycle").
//!
//! - Here: connecting it — the ownership claim (one workspace at a time), the sealed token, the
//!   number's record. The API's onboarding and the local stack's fixtures both go through it.
//! - [`onboarding`]: what Meta says about a number when a token is pasted or Embedded Signup
//!   hands one over.
//! - [`registration`]: register with a PIN, deregister, request and verify a code — with the
//!   FAQ's rules around Meta's PIN lock.

pub mod diagnostics;
pub mod onboarding;
pub mod registration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::domain::Channel;
use crate::domain::NumberState;
use crate::domain::WorkspaceId;
use crate::store::numbers::NumberRecord;
use crate::store::routes::{ClaimError, FirstConnect};
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
    let Connection { workspace, channel, account_id, .. } = connection;
    // Sealed first: KMS failing leaves nothing written.
    let token = vault.seal(workspace.as_str(), account_id, connection.token).await?;
    let mut existing = store.number(workspace, channel, account_id).await?;
    if existing.is_none() {
        // The claim and the first record together: a connect never leaves one without the other.
        let first = first_record(&connection, token.clone(), now);
        match store.connect_first(&first, now).await? {
            FirstConnect::Connected => return Ok(first),
            FirstConnect::AlreadyConnected => existing = store.number(workspace, channel, account_id).await?,
        }
    }
    store.claim_route(workspace, channel, account_id, now).await?;
    // Connecting again (a re-run of Embedded Signup) stores the fresh token and leaves the
    // registration state as it was: re-adding does not undo a deregistration (FAQ).
    let record = match existing {
        Some(existing) => NumberRecord {
            token,
            waba_id: connection.waba_id.map(str::to_owned).or(existing.waba_id.clone()),
            updated_at: now,
            ..existing
        },
        None => first_record(&connection, token, now),
    };
    store.put_number(&record).await?;
    Ok(record)
}

/// A number's record when it is connected for the first time.
fn first_record(connection: &Connection<'_>, token: crate::vault::SealedToken, now: DateTime<Utc>) -> NumberRecord {
    NumberRecord {
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
        failed_pin_attempts: 0,
        needs_reverification: false,
        meta_status: None,
        quality_rating: None,
        verified_name: None,
        quality_event: None,
        messaging_limit: None,
        business_id: None,
        throughput_mps: None,
    }
}
