//! Message templates: synced from Meta for every WABA the workspace's numbers belong to (name,
//! language, category, status, quality, components). The send policy refuses a template that
//! is not APPROVED, and the list says why in the user's terms
//! ([`TemplateStatus::why_not_sendable`]).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::{TemplateStatus, WorkspaceId};
use crate::meta::graph::{GraphClient, GraphError};
use crate::store::numbers::TemplateRecord;
use crate::store::{Store, StoreError};
use crate::vault::{Vault, VaultError};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the workspace has no WhatsApp number with a WhatsApp Business Account to sync from")]
    NoWaba,
    #[error("Meta answered the template list of WABA {waba} with: {error}")]
    Meta { waba: String, error: GraphError },
    #[error("a number's access token cannot be used: {0}")]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub wabas: usize,
    pub templates: usize,
}

/// Pages Meta follows for one WABA's templates, at most (a WABA holds at most a few hundred).
const MAX_PAGES: usize = 20;

pub async fn sync(
    store: &Store,
    vault: &Vault,
    graph: &GraphClient,
    workspace: &WorkspaceId,
    _now: DateTime<Utc>,
) -> Result<SyncReport, SyncError> {
    let numbers = store.numbers(workspace).await?;
    let mut seen = BTreeSet::new();
    let mut report = SyncReport { wabas: 0, templates: 0 };
    for number in numbers.iter().filter(|n| n.waba_id.is_some()) {
        let waba = number.waba_id.clone().unwrap_or_default();
        if !seen.insert(waba.clone()) {
            continue;
        }
        let token = vault.open(workspace.as_str(), &number.account_id, &number.token).await?;
        let first = graph.endpoint(&format!("{waba}/message_templates?limit=100"));
        let mut url = Some(first.clone());
        for _ in 0..MAX_PAGES {
            let Some(page_url) = url.take() else { break };
            let page =
                graph.get(&page_url, &token).await.map_err(|error| SyncError::Meta { waba: waba.clone(), error })?;
            for template in page["data"].as_array().into_iter().flatten() {
                if let Some(record) = record(workspace, &waba, template) {
                    store.put_template_record(&record).await?;
                    report.templates += 1;
                }
            }
            // Meta's `next` URL carries the access token in its query: follow the cursor on our
            // own URL instead, so the token stays in the header and goes to Meta's host only.
            let after = page["paging"]["cursors"]["after"].as_str().filter(|_| page["paging"]["next"].is_string());
            url = after.map(|after| {
                format!("{first}&after={}", url::form_urlencoded::byte_serialize(after.as_bytes()).collect::<String>())
            });
        }
        report.wabas += 1;
    }
    if report.wabas == 0 {
        return Err(SyncError::NoWaba);
    }
    Ok(report)
}

/// One template of Meta's list; one without a name or language is not a template we can send.
fn record(workspace: &WorkspaceId, waba: &str, template: &Value) -> Option<TemplateRecord> {
    let text = |field: &str| template[field].as_str().map(str::to_owned);
    let status = serde_json::from_value(template["status"].clone()).unwrap_or(TemplateStatus::Other);
    Some(TemplateRecord {
        workspace_id: workspace.clone(),
        waba_id: waba.to_owned(),
        name: text("name")?,
        language: text("language")?,
        status,
        category: text("category"),
        quality_score: template["quality_score"]["score"].as_str().map(str::to_owned),
        components: template.get("components").cloned(),
        meta_id: text("id"),
        status_reason: text("rejected_reason").filter(|r| r != "NONE"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metas_template_list_entries_become_records_and_unknown_statuses_are_not_sendable() {
        let ws = WorkspaceId::parse("acme").unwrap();
        let approved = serde_json::json!({ "name": "spring_sale", "language": "en_US", "status": "APPROVED", "category": "MARKETING" });
        let record = record(&ws, "9", &approved).unwrap();
        assert_eq!(record.status, TemplateStatus::Approved);
        assert_eq!(record.status.why_not_sendable(), None);
        let appeal = serde_json::json!({ "name": "x", "language": "en", "status": "IN_APPEAL" });
        let record = super::record(&ws, "9", &appeal).unwrap();
        assert_eq!(record.status, TemplateStatus::Other);
        assert!(record.status.why_not_sendable().is_some());
        assert!(TemplateStatus::Paused.why_not_sendable().unwrap().contains("132015"));
        assert!(super::record(&ws, "9", &serde_json::json!({ "status": "APPROVED" })).is_none());
    }
}

/// Meta's messaging limit as it stands for one business portfolio of the workspace (FAQ: "Why
/// does a flow's sendTemplate work but the inbox template picker doesn't?": "Templates page
/// shows both").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagingLimit {
    /// The business portfolio (or, without one known, the WABA) the limit is counted for.
    pub portfolio: String,
    /// Meta's tier as last reported; `None` when none was (counted as the lowest).
    pub tier: Option<String>,
    /// Unique customers allowed in 24 hours; `None` is unlimited.
    pub limit: Option<u64>,
    /// New customers reached with templates outside their window in the last 24 hours.
    pub reached: u64,
    /// How many more may be reached now; `None` is unlimited.
    pub left: Option<u64>,
    /// The workspace's numbers that share it.
    pub numbers: Vec<String>,
}

/// The messaging limit of each portfolio the workspace's WhatsApp numbers belong to.
pub async fn messaging_limits(
    store: &Store,
    workspace: &WorkspaceId,
    now: DateTime<Utc>,
) -> Result<Vec<MessagingLimit>, StoreError> {
    use crate::policy::messaging_limit::{customers_per_window, room_left};
    let mut limits: Vec<MessagingLimit> = Vec::new();
    for number in store.numbers(workspace).await? {
        if number.channel != crate::domain::Channel::WhatsApp {
            continue;
        }
        match limits.iter_mut().find(|l| l.portfolio == number.portfolio()) {
            Some(limit) => limit.numbers.push(number.account_id.clone()),
            None => limits.push(MessagingLimit {
                portfolio: number.portfolio().to_owned(),
                tier: number.messaging_limit.clone(),
                limit: customers_per_window(number.messaging_limit.as_deref()),
                reached: 0,
                left: None,
                numbers: vec![number.account_id.clone()],
            }),
        }
    }
    for limit in &mut limits {
        limit.reached = store.reached_in_window(workspace, &limit.portfolio, now).await?;
        limit.left = room_left(limit.limit, limit.reached);
    }
    Ok(limits)
}
