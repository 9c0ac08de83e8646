//! `/v1/templates`: the workspace's message templates as Meta last described them, each with
//! whether it can be sent and, if not, why; and a sync from Meta.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use wapisnap::store::numbers::TemplateRecord;
use wapisnap::templates::{MessagingLimit, SyncError, messaging_limits, sync};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, QueryParams};
use crate::routes::conversations::PageQuery;
use crate::state::Shared;

resource_routes!([list], [synchronise]);

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    pub name: String,
    pub language: String,
    pub waba_id: String,
    /// APPROVED, PENDING, REJECTED, PAUSED, DISABLED (or OTHER).
    pub status: String,
    pub category: Option<String>,
    pub quality_score: Option<String>,
    /// Only an APPROVED template can be sent.
    pub sendable: bool,
    /// Why a send of it would be refused.
    pub why_not: Option<String>,
    /// Meta's reason for a rejection, pause or disabling, when it gave one.
    pub status_reason: Option<String>,
    #[schema(value_type = Object)]
    pub components: Option<serde_json::Value>,
}

impl From<TemplateRecord> for TemplateView {
    fn from(t: TemplateRecord) -> Self {
        let why_not = t.status.why_not_sendable().map(str::to_owned);
        Self {
            status: serde_json::to_value(t.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            sendable: why_not.is_none(),
            why_not,
            name: t.name,
            language: t.language,
            waba_id: t.waba_id,
            category: t.category,
            quality_score: t.quality_score,
            status_reason: t.status_reason,
            components: t.components,
        }
    }
}

/// Meta's messaging limit for one business portfolio: templates sent outside a customer's
/// 24-hour window may reach this many unique customers in 24 hours, shared by the portfolio's
/// numbers. A new customer over it is refused (an inbox or flow template when it is sent, a
/// broadcast's recipient skipped or deferred as the broadcast says).
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagingLimitView {
    /// The business portfolio (or, without one known, the WABA) it is counted for.
    pub portfolio: String,
    /// Meta's tier as last reported (`TIER_250` … `TIER_UNLIMITED`); absent when none was, which counts as the lowest.
    pub tier: Option<String>,
    /// Unique customers allowed in 24 hours; absent when unlimited.
    pub limit: Option<u64>,
    /// New customers reached in the last 24 hours.
    pub reached: u64,
    /// How many more may be reached now; absent when unlimited.
    pub left: Option<u64>,
    /// The workspace's numbers that share it.
    pub numbers: Vec<String>,
}

impl From<MessagingLimit> for MessagingLimitView {
    fn from(m: MessagingLimit) -> Self {
        Self {
            portfolio: m.portfolio,
            tier: m.tier,
            limit: m.limit,
            reached: m.reached,
            left: m.left,
            numbers: m.numbers,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateList {
    pub items: Vec<TemplateView>,
    /// The messaging limit of each business portfolio the workspace's numbers belong to: with a
    /// template's status, the other reason a template cannot reach a customer.
    pub messaging_limits: Vec<MessagingLimitView>,
    /// Pass as `cursor` for the next page; absent on the last one. A page may hold fewer items than `limit`, even none, and still have a next one.
    pub next: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Synced {
    pub wabas: usize,
    pub templates: usize,
}

#[utoipa::path(get, operation_id = "list_templates", path = "/v1/templates", tag = "templates", security(("api_key" = [])),
    params(PageQuery), responses((status = 200, body = TemplateList), (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<Shared>,
    caller: Caller,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<axum::Json<TemplateList>, ApiError> {
    let found = state
        .store
        .templates_page(&caller.workspace, page.limit.unwrap_or(25), page.cursor.as_deref())
        .await?
        .map_err(|_| ApiError::field("cursor", "is not a cursor this list gave out"))?;
    let limits = messaging_limits(&state.store, &caller.workspace, state.clock.now()).await?;
    Ok(axum::Json(TemplateList {
        items: found.items.into_iter().map(TemplateView::from).collect(),
        messaging_limits: limits.into_iter().map(MessagingLimitView::from).collect(),
        next: found.next,
    }))
}

#[utoipa::path(post, operation_id = "sync_templates", path = "/v1/templates/sync", tag = "templates", security(("api_key" = [])),
    responses((status = 200, body = Synced), (status = 422, description = "no number with a WABA", body = ErrorBody),
        (status = 502, body = ErrorBody)))]
async fn synchronise(State(state): State<Shared>, caller: Caller) -> Result<axum::Json<Synced>, ApiError> {
    let report = sync(&state.store, &state.vault, &state.graph, &caller.workspace, state.clock.now()).await.map_err(
        |e| match e {
            SyncError::NoWaba => ApiError::unprocessable("no_waba", e.to_string()),
            SyncError::Meta { .. } => ApiError::bad_gateway(e.to_string()),
            SyncError::Vault(_) => ApiError::internal("a number's access token cannot be opened; onboard it again"),
            SyncError::Store(e) => e.into(),
        },
    )?;
    Ok(axum::Json(Synced { wabas: report.wabas, templates: report.templates }))
}
