//! The token vault (FAQ: "What token do you store, and how safe is it?"): Meta access tokens
//! are sealed with envelope encryption and opened only in memory, for an outbound call.
//!
//! Sealing asks KMS for a fresh AES-256 data key under the one infrastructure key, with the
//! workspace and number as encryption context; the token is encrypted with AES-256-GCM, with
//! the workspace and number bound again as associated data; what is stored is the ciphertext,
//! the nonce, the wrapped data key and the token's last 4 characters for display. A sealed
//! token copied to another workspace or number, or altered, does not open. Plaintext lives
//! only in [`SecretString`]s, which redact themselves in `Debug` and are zeroized on drop.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// What is stored for a token. Hex strings keep the item readable in the console.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedToken {
    pub ciphertext: String,
    pub nonce: String,
    pub wrapped_key: String,
    /// Shown in the UI so a rotation can be recognised; the only part ever shown.
    pub last4: String,
}

impl std::fmt::Debug for SealedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedToken(…{})", self.last4)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("KMS {operation} failed: {reason}")]
    Kms { operation: &'static str, reason: String },
    #[error(
        "the sealed token does not open for workspace {workspace} and number {number}: it was altered or belongs elsewhere"
    )]
    DoesNotOpen { workspace: String, number: String },
    #[error("the token is empty")]
    Empty,
}

/// How long a decrypted data key may stay in a warm container's memory, so that not every
/// send calls KMS.
pub const DATA_KEY_CACHE_TTL: Duration = Duration::from_secs(300);

type DataKey = Zeroizing<[u8; 32]>;

pub struct Vault {
    kms: aws_sdk_kms::Client,
    key_id: String,
    cache: Mutex<HashMap<[u8; 32], (DataKey, Instant)>>,
}

fn associated_data(workspace: &str, number: &str) -> Vec<u8> {
    format!("wapisnap/token/v1/{workspace}/{number}").into_bytes()
}

fn does_not_open(workspace: &str, number: &str) -> VaultError {
    VaultError::DoesNotOpen { workspace: workspace.into(), number: number.into() }
}

impl Vault {
    pub fn new(kms: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self { kms, key_id: key_id.into(), cache: Mutex::new(HashMap::new()) }
    }

    pub async fn seal(&self, workspace: &str, number: &str, token: &SecretString) -> Result<SealedToken, VaultError> {
        let plain = token.expose_secret();
        if plain.is_empty() {
            return Err(VaultError::Empty);
        }
        crate::metrics::kms_call("GenerateDataKey");
        let generated = self
            .kms
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context("workspace", workspace)
            .encryption_context("number", number)
            .send()
            .await
            .map_err(|e| VaultError::Kms {
                operation: "GenerateDataKey",
                reason: format!("{}", aws_sdk_kms::error::DisplayErrorContext(&e)),
            })?;
        let key = Zeroizing::new(generated.plaintext.map(|b| b.into_inner()).unwrap_or_default());
        let wrapped = generated.ciphertext_blob.map(|b| b.into_inner()).unwrap_or_default();
        let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| VaultError::Kms {
            operation: "GenerateDataKey",
            reason: "the data key is not 256 bits".into(),
        })?;
        let nonce = Nonce::generate();
        let aad = associated_data(workspace, number);
        let ciphertext = cipher
            .encrypt(&nonce, Payload { msg: plain.as_bytes(), aad: &aad })
            .map_err(|_| does_not_open(workspace, number))?;
        let last4: String = plain.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        Ok(SealedToken {
            ciphertext: hex::encode(ciphertext),
            nonce: hex::encode(nonce.as_slice()),
            wrapped_key: hex::encode(wrapped),
            last4,
        })
    }

    pub async fn open(&self, workspace: &str, number: &str, sealed: &SealedToken) -> Result<SecretString, VaultError> {
        let bad = || does_not_open(workspace, number);
        let wrapped = hex::decode(&sealed.wrapped_key).map_err(|_| bad())?;
        let ciphertext = hex::decode(&sealed.ciphertext).map_err(|_| bad())?;
        let nonce_bytes = hex::decode(&sealed.nonce).map_err(|_| bad())?;
        let nonce = Nonce::try_from(nonce_bytes.as_slice()).map_err(|_| bad())?;
        let key = self.data_key(workspace, number, &wrapped).await?;
        let cipher = Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| bad())?;
        let aad = associated_data(workspace, number);
        let plain = Zeroizing::new(cipher.decrypt(&nonce, Payload { msg: &ciphertext, aad: &aad }).map_err(|_| bad())?);
        let text = std::str::from_utf8(&plain).map_err(|_| bad())?;
        Ok(SecretString::from(text.to_owned()))
    }

    /// The data key, from the warm cache or from KMS (which checks the encryption context).
    async fn data_key(&self, workspace: &str, number: &str, wrapped: &[u8]) -> Result<DataKey, VaultError> {
        let cache_key: [u8; 32] = Sha256::new()
            .chain_update(wrapped)
            .chain_update(workspace.as_bytes())
            .chain_update([0])
            .chain_update(number.as_bytes())
            .finalize()
            .into();
        if let Some((key, at)) = self.cache.lock().expect("vault cache").get(&cache_key)
            && at.elapsed() < DATA_KEY_CACHE_TTL
        {
            return Ok(key.clone());
        }
        crate::metrics::kms_call("Decrypt");
        let decrypted = self
            .kms
            .decrypt()
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .encryption_context("workspace", workspace)
            .encryption_context("number", number)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(s) if s.is_invalid_ciphertext_exception() => does_not_open(workspace, number),
                _ => VaultError::Kms {
                    operation: "Decrypt",
                    reason: format!("{}", aws_sdk_kms::error::DisplayErrorContext(&e)),
                },
            })?;
        let plain = Zeroizing::new(decrypted.plaintext.map(|b| b.into_inner()).unwrap_or_default());
        let key: DataKey = Zeroizing::new(plain.as_slice().try_into().map_err(|_| does_not_open(workspace, number))?);
        let mut cache = self.cache.lock().expect("vault cache");
        cache.retain(|_, (_, at)| at.elapsed() < DATA_KEY_CACHE_TTL);
        cache.insert(cache_key, (key.clone(), Instant::now()));
        Ok(key)
    }
}
