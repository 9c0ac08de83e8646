//! Registering a number with Meta, and the FAQ's rules around it.
//!
//! - Register needs the number's 6-digit two-step verification PIN. WapiSnap never stores it:
//!   it goes to Meta in the request and nowhere else (not the log, not the table).
//! - After three wrong PINs Meta locks register until the phone is verified again by SMS or
//!   voice code, and every further attempt extends the lockout (FAQ: "I tried a few PINs and now
//!   Meta says 'phone number re-verification needed'"). So register is never retried
//!   automatically; each wrong PIN's answer says how many attempts are left; and once Meta's
//!   lock is reached (or Meta says 133006) register is refused here, without calling Meta,
//!   until a code is requested and verified.
//! - Deregister fully removes the number from the Cloud API and re-adding does not undo it
//!   (FAQ: "What actually happens when I click Deregister"): it needs the number itself as
//!   explicit confirmation, and its answer says how to recover.
//! - A deregistered number may move (FAQ: "Can I have the same number in two WapiSnap
//!   workspaces?": "deregister ... then re-onboard it in the other workspace"): its claim is
//!   freed for another workspace to onboard it. Registering it again first takes the claim
//!   back, and is refused once another workspace has it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::{Channel, NumberState, WorkspaceId};
use crate::meta::errors::{PIN_MISMATCH, REVERIFICATION_NEEDED};
use crate::meta::graph::{GraphClient, GraphError, MetaError};
use crate::store::numbers::{NumberRecord, RegistrationRecord};
use crate::store::routes::ClaimError;
use crate::store::{Store, StoreError};
use crate::vault::{Vault, VaultError};

/// Wrong PINs Meta accepts before it locks register.
pub const PIN_ATTEMPTS_BEFORE_LOCK: u32 = 3;

/// How to get out of Meta's PIN lock (the FAQ's recovery steps).
pub const REVERIFY_STEPS: &str = "turn off two-step verification for the number in WhatsApp Manager, \
request a code (SMS or voice) for the number, verify the code, then register with a new 6-digit PIN";

/// What to do after a deregistration, should it have been a mistake.
pub const RECOVER_AFTER_DEREGISTER: &str = "the number is removed from the WhatsApp Cloud API; re-adding it does \
not undo this. To use it again: turn off two-step verification in WhatsApp Manager, request a code (SMS or \
voice), verify it, then register with a new 6-digit PIN";

/// Exactly six digits: a two-step verification PIN or a verification code. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SixDigits(String);

impl SixDigits {
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        if value.len() == 6 && value.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(value.to_owned()))
        } else {
            Err("must be exactly 6 digits")
        }
    }

    fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SixDigits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SixDigits(******)")
    }
}

/// How Meta delivers the verification code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeMethod {
    Sms,
    Voice,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("no number {0} in this workspace")]
    NoSuchNumber(String),
    #[error(
        "Meta locked registration for this number after wrong PINs; register is refused until the number is verified again: {REVERIFY_STEPS}"
    )]
    ReverificationNeeded,
    #[error(
        "Meta says the PIN is wrong; {attempts_left} attempt(s) left before Meta locks registration (nothing is retried automatically)"
    )]
    WrongPin { attempts_left: u32 },
    #[error(
        "deregistering removes the number from the Cloud API; confirm by sending the number itself ({expected}) as `confirm`"
    )]
    NotConfirmed { expected: String },
    #[error(
        "number {0} was deregistered here and another workspace has onboarded it since: it belongs to that workspace now"
    )]
    MovedToAnotherWorkspace(String),
    #[error("Meta refused: {} (code {})", .0.message, .0.code)]
    MetaRefused(MetaError),
    #[error("Meta did not answer ({0}); nothing is retried automatically: check the number before trying again")]
    MetaUnreachable(String),
    #[error("the number's access token cannot be used: {0}")]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Register, deregister and codes for one workspace's numbers.
pub struct Registrar<'a> {
    pub store: &'a Store,
    pub vault: &'a Vault,
    pub graph: &'a GraphClient,
}

impl Registrar<'_> {
    async fn number(&self, workspace: &WorkspaceId, account_id: &str) -> Result<NumberRecord, RegistrationError> {
        self.store
            .number(workspace, Channel::WhatsApp, account_id)
            .await?
            .ok_or_else(|| RegistrationError::NoSuchNumber(account_id.to_owned()))
    }

    async fn call(
        &self,
        number: &NumberRecord,
        edge: &str,
        body: serde_json::Value,
    ) -> Result<Result<serde_json::Value, MetaError>, RegistrationError> {
        let token = self.vault.open(number.workspace_id.as_str(), &number.account_id, &number.token).await?;
        let url = self.graph.endpoint(&format!("{}/{edge}", number.account_id));
        match self.graph.post(&url, &token, &body).await {
            Ok(answer) => Ok(Ok(answer)),
            Err(GraphError::Meta(refusal)) => Ok(Err(refusal)),
            Err(other) => Err(RegistrationError::MetaUnreachable(other.to_string())),
        }
    }

    pub async fn register(
        &self,
        workspace: &WorkspaceId,
        account_id: &str,
        pin: &SixDigits,
        now: DateTime<Utc>,
    ) -> Result<NumberRecord, RegistrationError> {
        let number = self.number(workspace, account_id).await?;
        // A deregistered number another workspace onboarded since is that workspace's, unless
        // it freed it too: Meta is not asked. The claim is taken (back) only once Meta has
        // registered the number (below), so a wrong PIN leaves a number being moved free to move.
        let claim = self.store.claim(Channel::WhatsApp, account_id).await?;
        if let Some(held) = &claim
            && &held.workspace != workspace
            && !held.freed
        {
            return Err(RegistrationError::MovedToAnotherWorkspace(account_id.to_owned()));
        }
        // The attempt is counted before Meta sees it, so parallel registers cannot get more
        // wrong PINs to Meta than its lock allows.
        let Some(used) = self.store.reserve_pin_attempt(workspace, account_id, PIN_ATTEMPTS_BEFORE_LOCK).await? else {
            self.number(workspace, account_id).await?;
            return Err(RegistrationError::ReverificationNeeded);
        };
        let record = |outcome| self.store.record_registration(workspace, account_id, outcome, now);
        let body = json!({ "messaging_product": "whatsapp", "pin": pin.reveal() });
        let answer = match self.call(&number, "register", body).await {
            Ok(answer) => answer,
            Err(error @ RegistrationError::Vault(_)) => {
                record(RegistrationRecord::AttemptNotCounted).await?;
                return Err(error);
            }
            // No answer: Meta may have counted it, and so do we.
            Err(error) => return Err(error),
        };
        match answer {
            Ok(_) => {
                let ours = match claim {
                    Some(held) if &held.workspace == workspace => {
                        self.store.take_back_route(workspace, Channel::WhatsApp, account_id).await?
                    }
                    _ => match self.store.claim_route(workspace, Channel::WhatsApp, account_id, now).await {
                        Ok(()) => true,
                        Err(ClaimError::OwnedByAnotherWorkspace { .. }) => false,
                        Err(ClaimError::Store(e)) => return Err(e.into()),
                    },
                };
                if !ours {
                    // Another workspace onboarded it while Meta registered it here: it is theirs.
                    return Err(RegistrationError::MovedToAnotherWorkspace(account_id.to_owned()));
                }
                record(RegistrationRecord::Registered).await?;
                if let Some(waba) = &number.waba_id
                    && !self.store.claim_waba(workspace, waba, now).await?
                {
                    tracing::warn!(%waba, "another workspace holds this WABA's news: template and quality news go there");
                }
            }
            Err(refusal) if refusal.code == PIN_MISMATCH => {
                let attempts_left = PIN_ATTEMPTS_BEFORE_LOCK.saturating_sub(used);
                if attempts_left == 0 {
                    record(RegistrationRecord::Locked).await?;
                }
                return Err(RegistrationError::WrongPin { attempts_left });
            }
            Err(refusal) if refusal.code == REVERIFICATION_NEEDED => {
                record(RegistrationRecord::Locked).await?;
                return Err(RegistrationError::ReverificationNeeded);
            }
            Err(refusal) => {
                record(RegistrationRecord::AttemptNotCounted).await?;
                return Err(RegistrationError::MetaRefused(refusal));
            }
        }
        self.number(workspace, account_id).await
    }

    pub async fn deregister(
        &self,
        workspace: &WorkspaceId,
        account_id: &str,
        confirm: &str,
        now: DateTime<Utc>,
    ) -> Result<NumberRecord, RegistrationError> {
        let number = self.number(workspace, account_id).await?;
        let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
        let confirmed = confirm == number.account_id
            || number.display_phone_number.as_deref().is_some_and(|n| !n.is_empty() && digits(n) == digits(confirm));
        if !confirmed {
            let expected = number.display_phone_number.clone().unwrap_or_else(|| number.account_id.clone());
            return Err(RegistrationError::NotConfirmed { expected });
        }
        // Deregistered already (a deregistration whose claim was not freed yet, asked again):
        // Meta is not asked twice.
        if number.state != NumberState::Disconnected {
            self.call(&number, "deregister", json!({})).await?.map_err(RegistrationError::MetaRefused)?;
        }
        let reason = format!("deregistered: {RECOVER_AFTER_DEREGISTER}");
        let outcome = RegistrationRecord::Deregistered { reason: &reason };
        self.store.record_registration(workspace, account_id, outcome, now).await?;
        // Recorded first: a failure from here leaves the number DISCONNECTED and still held
        // here, and deregistering again finishes freeing it.
        self.store.free_route(workspace, Channel::WhatsApp, account_id, now).await?;
        if let Some(waba) = &number.waba_id {
            let numbers = self.store.numbers(workspace).await?;
            let in_use = |n: &NumberRecord| {
                n.account_id != number.account_id
                    && n.waba_id.as_ref() == Some(waba)
                    && n.state != NumberState::Disconnected
            };
            if !numbers.iter().any(in_use) {
                self.store.free_waba(workspace, waba, now).await?;
            }
        }
        self.number(workspace, account_id).await
    }

    pub async fn request_code(
        &self,
        workspace: &WorkspaceId,
        account_id: &str,
        method: CodeMethod,
        language: &str,
    ) -> Result<(), RegistrationError> {
        let number = self.number(workspace, account_id).await?;
        let method = match method {
            CodeMethod::Sms => "SMS",
            CodeMethod::Voice => "VOICE",
        };
        self.call(&number, "request_code", json!({ "code_method": method, "language": language }))
            .await?
            .map_err(RegistrationError::MetaRefused)?;
        Ok(())
    }

    /// A verified code ends Meta's PIN lock: register may be tried again.
    pub async fn verify_code(
        &self,
        workspace: &WorkspaceId,
        account_id: &str,
        code: &SixDigits,
        now: DateTime<Utc>,
    ) -> Result<NumberRecord, RegistrationError> {
        let number = self.number(workspace, account_id).await?;
        self.call(&number, "verify_code", json!({ "code": code.reveal() }))
            .await?
            .map_err(RegistrationError::MetaRefused)?;
        self.store.record_registration(workspace, account_id, RegistrationRecord::Verified, now).await?;
        self.number(workspace, account_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_exactly_six_digits_and_never_printed() {
        assert!(SixDigits::parse("123456").is_ok());
        for wrong in ["12345", "1234567", "12345a", " 123456", ""] {
            assert!(SixDigits::parse(wrong).is_err(), "{wrong:?}");
        }
        assert!(!format!("{:?}", SixDigits::parse("123456").unwrap()).contains("123456"));
    }
}
