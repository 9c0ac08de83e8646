//! The 131026 rule (FAQ: "I keep hitting 131026 on the same contacts"): 131026 means the
//! recipient is not on WhatsApp — a landline, wrong digits, someone who left. Retrying does
//! not help. After two 131026 failures in a row for a contact, the contact is tagged
//! `do-not-send`, which keeps it out of broadcasts (the send policy refuses it). A delivery in
//! between proves the number is on WhatsApp and starts the count over. Distinct from `dnd`,
//! which is the customer's own opt-out of automation.
//!
//! This module is the rule's one home: the pure decision, and the two moments it is fed — a
//! 131026 handled by Smart Retry, a delivery reported by the webhook. Every write is idempotent
//! per job, so a redelivered hand-over never counts twice.

use crate::domain::Channel;
use crate::domain::{ContactId, SendJobId, WorkspaceId};
use crate::store::{Store, StoreError};

pub use crate::policy::send::DO_NOT_SEND_TAG;

/// How many 131026 in a row make a contact `do-not-send`.
pub const STREAK_LIMIT: u32 = 2;

/// Whether a streak of 131026 failures makes the contact `do-not-send`.
pub fn tags_do_not_send(streak: u32) -> bool {
    streak >= STREAK_LIMIT
}

/// A 131026 for `job`: counts it (once per job) and tags the contact when the streak is long
/// enough. `true` when this call added the tag.
pub async fn not_on_whatsapp(
    store: &Store,
    workspace: &WorkspaceId,
    channel: Channel,
    contact: &ContactId,
    job: &SendJobId,
) -> Result<bool, StoreError> {
    let streak = store.record_undeliverable(workspace, channel, contact.as_str(), job.as_str()).await?;
    let tagged = tags_do_not_send(streak)
        && store.add_contact_tag(workspace, channel, contact.as_str(), DO_NOT_SEND_TAG).await?;
    if tagged {
        tracing::info!(streak, contact = %contact.masked(), "131026 twice in a row: contact tagged do-not-send");
    }
    Ok(tagged)
}

/// A message reached the contact: the streak starts over. WhatsApp only — Instagram has no
/// undeliverable-number refusal.
pub async fn reached(
    store: &Store,
    workspace: &WorkspaceId,
    channel: Channel,
    contact_id: &str,
) -> Result<(), StoreError> {
    if channel != Channel::WhatsApp {
        return Ok(());
    }
    store.reset_undeliverable(workspace, channel, contact_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_131026_is_not_a_streak_two_in_a_row_are() {
        assert!(!tags_do_not_send(1));
        assert!(tags_do_not_send(2));
        assert!(tags_do_not_send(3), "a contact tagged once stays tagged");
    }
}
