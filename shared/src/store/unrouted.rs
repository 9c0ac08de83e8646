//! Deliveries we cannot put in a workspace: events for numbers or accounts no workspace owns,
//! fields and objects we do not handle, and bodies that are not JSON. Meta offers no way to
//! fetch a missed event later, so they are kept (30 days) for an operator to inspect, keyed by
//! a hash of their content so Meta's redeliveries do not pile up copies.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use super::{Store, StoreError, keys, refused_by_condition};

/// DynamoDB items are limited to 400 KB; a larger raw body is kept truncated, with the size
/// and hash of the whole.
pub const MAX_KEPT_RAW_BYTES: usize = 300 * 1024;

pub fn unrouted_retention() -> Duration {
    Duration::days(30)
}

/// The longest reason or account id kept for an unrouted event (they quote what was sent).
pub const MAX_KEPT_FIELD_CHARS: usize = 1_000;

fn cut(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

impl Store {
    /// Keeps a raw payload; keeping the same payload again is a no-op.
    /// Keeps a delivery (or one element of it) we could not route or store, for operators.
    /// Its raw bytes are cut at [`MAX_KEPT_RAW_BYTES`] and its reason and account at
    /// [`MAX_KEPT_FIELD_CHARS`], so the item always fits DynamoDB's 400 KB whatever Meta (or
    /// someone signing like Meta) sent.
    pub async fn keep_unrouted(
        &self,
        reason: &str,
        account_id: Option<&str>,
        raw: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let hash = hex::encode(Sha256::digest(raw));
        let (pk, sk) = keys::unrouted(&hash);
        let kept = &raw[..raw.len().min(MAX_KEPT_RAW_BYTES)];
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(keys::PK, AttributeValue::S(pk))
            .item(keys::SK, AttributeValue::S(sk))
            .item("reason", AttributeValue::S(cut(reason, MAX_KEPT_FIELD_CHARS)))
            .item("raw", AttributeValue::B(kept.to_vec().into()))
            .item("raw_len", AttributeValue::N(raw.len().to_string()))
            .item("raw_sha256", AttributeValue::S(hash))
            .item("truncated", AttributeValue::Bool(kept.len() < raw.len()))
            .item("received_at", AttributeValue::S(now.to_rfc3339()))
            .item("gsi1pk", AttributeValue::S(format!("UNROUTED#{}", now.format("%Y-%m-%d"))))
            .item("gsi1sk", AttributeValue::S(keys::sortable_millis(now.timestamp_millis())))
            .item("expires_at", AttributeValue::N((now + unrouted_retention()).timestamp().to_string()))
            .condition_expression("attribute_not_exists(pk)");
        if let Some(account) = account_id {
            request = request.item("account_id", AttributeValue::S(cut(account, MAX_KEPT_FIELD_CHARS)));
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if refused_by_condition(&e) => Ok(()),
            Err(e) => Err(StoreError::aws("PutItem unrouted", e)),
        }
    }

    /// Unrouted events received on a day (UTC), oldest first: `(reason, raw bytes)`.
    pub async fn unrouted_on(&self, day: DateTime<Utc>) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let items = self.query_index(format!("UNROUTED#{}", day.format("%Y-%m-%d")), "Query unrouted").await?;
        Ok(items
            .into_iter()
            .map(|item| {
                let reason = item.get("reason").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                let raw = item.get("raw").and_then(|v| v.as_b().ok()).map(|b| b.as_ref().to_vec()).unwrap_or_default();
                (reason, raw)
            })
            .collect())
    }
}
