//! What the benchmarks (`src/bin/bench_*.rs`) set up alike on the local stack: a workspace's
//! number with its access token and an APPROVED template, an audience of tagged contacts, and
//! a broadcast of the template to that audience.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream};
use wapisnap::broadcasts::spec::{Audience, BroadcastRecord, BroadcastSpec, OverLimit};
use wapisnap::contacts::Tag;
use wapisnap::domain::{AccountId, BroadcastId, Channel, ContactId, TemplateStatus, WorkspaceId};
use wapisnap::store::Store;
use wapisnap::store::numbers::NumberRecord;

use crate::environment::LocalEnvironment;

/// The benchmarks' WhatsApp number (phone number id).
pub const NUMBER: &str = "106540352242922";
/// Its access token, sealed by the vault when the number is connected.
pub const TOKEN: &str = "EAAGbenchACCESStokenNEVERshown1234";
pub const TEMPLATE: &str = "spring_sale";
/// The tag of the benchmarks' audience.
pub const TAG: &str = "bench";

pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The number's WhatsApp Business Account id.
pub fn waba() -> String {
    format!("9{NUMBER}")
}

/// Connects [`NUMBER`] to `workspace` (its token sealed) with [`TEMPLATE`] APPROVED.
pub async fn connect_number_with_template(
    environment: &LocalEnvironment,
    store: &Store,
    workspace: &WorkspaceId,
) -> Result<NumberRecord, Failure> {
    let number = environment.connect_number(workspace, NUMBER, &waba(), TOKEN).await?;
    store.put_template(workspace, &waba(), TEMPLATE, "en_US", TemplateStatus::Approved).await?;
    Ok(number)
}

/// `count` WhatsApp contacts tagged [`TAG`], numbered from `prefix` (e.g. `1650` + 7 digits).
pub async fn tag_audience(
    store: &Store,
    workspace: &WorkspaceId,
    prefix: &str,
    count: usize,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let tags = BTreeSet::from([Tag::parse(TAG)?]);
    let width = 11usize.saturating_sub(prefix.len()).max(count.to_string().len());
    let saved: Vec<Result<(), Failure>> = stream::iter(0..count)
        .map(|i| {
            let tags = &tags;
            async move {
                let contact = ContactId::for_channel(Channel::WhatsApp, &format!("{prefix}{i:0width$}"))?;
                store.save_contact(workspace, Channel::WhatsApp, &contact, Some("Sam"), tags, now).await?;
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    saved.into_iter().collect()
}

/// A broadcast of [`TEMPLATE`] to the [`TAG`] audience, as the API stores it (scheduled).
pub fn audience_broadcast(
    id: BroadcastId,
    workspace: &WorkspaceId,
    name: &str,
    now: DateTime<Utc>,
) -> Result<BroadcastRecord, Failure> {
    let spec = BroadcastSpec {
        name: name.into(),
        account_id: AccountId::parse(NUMBER)?,
        template: TEMPLATE.into(),
        language: "en_US".into(),
        body_parameters: vec![wapisnap::flows::text::TextTemplate::parse("{{name|there}}")?],
        audience: Audience::Tags { tags: vec![TAG.into()] },
        send_at: None,
        over_limit: OverLimit::Defer,
    };
    Ok(BroadcastRecord::scheduled(id, workspace.clone(), spec, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benchmark_broadcast_is_scheduled_for_the_tagged_audience() {
        let workspace = WorkspaceId::parse("bench").unwrap();
        let record = audience_broadcast(BroadcastId::parse("bc-1").unwrap(), &workspace, "bench", Utc::now()).unwrap();
        assert_eq!(record.state, wapisnap::broadcasts::spec::BroadcastState::Scheduled);
        assert_eq!(record.spec.audience, Audience::Tags { tags: vec![TAG.into()] });
        assert_eq!(record.spec.account_id.as_str(), NUMBER);
    }
}
