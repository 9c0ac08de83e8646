//! `/v1/contacts`: contacts and tags (`dnd` and `do-not-send` are reserved system tags, see
//! `wapisnap::contacts`), and the CSV import. A contact is addressed by channel and id
//! (`/v1/contacts/wa/16505551234`); a WhatsApp number may be written any way people write it.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wapisnap::contacts::{ImportError, Tag, import_csv};
use wapisnap::domain::{AccountId, Channel, ContactId};
use wapisnap::queues::{FlowConversation, FlowTick};
use wapisnap::store::contacts::ContactRecord;

use crate::error::{ApiError, ErrorBody, FieldProblem};
use crate::extract::{Caller, JsonBody, QueryParams};
use crate::routes::conversations::PageQuery;
use crate::state::Shared;

resource_routes!([list, create], [show, update, remove], [add_tag, remove_tag], [import]);

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactView {
    /// `wa` or `ig`.
    pub channel: String,
    /// The WhatsApp id (digits of the number in international format) or Instagram-scoped id.
    pub id: String,
    pub name: Option<String>,
    pub tags: Vec<String>,
}

impl From<ContactRecord> for ContactView {
    fn from(c: ContactRecord) -> Self {
        Self {
            channel: c.channel.as_str().into(),
            id: c.contact_id,
            name: c.profile_name,
            tags: c.tags.into_iter().collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactPage {
    pub items: Vec<ContactView>,
    /// Pass as `cursor` for the next page; absent on the last one. A page may hold fewer items than `limit`, even none, and still have a next one.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewContact {
    /// A WhatsApp number in international format, written any way (`+1 650-555-1234`).
    pub phone: String,
    pub name: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ContactChange {
    pub name: String,
}

fn channel(raw: &str) -> Result<Channel, ApiError> {
    match raw {
        "wa" => Ok(Channel::WhatsApp),
        "ig" => Ok(Channel::Instagram),
        _ => Err(ApiError::not_found(format!("no channel {raw:?}: use wa or ig"))),
    }
}

fn contact_id(channel: Channel, raw: &str) -> Result<ContactId, ApiError> {
    ContactId::for_channel(channel, raw).map_err(|e| ApiError::not_found(format!("no contact {raw:?} ({})", e.reason)))
}

fn tag(raw: &str) -> Result<Tag, ApiError> {
    Tag::parse(raw).map_err(|problem| ApiError::field("tag", problem))
}

async fn found(state: &Shared, caller: &Caller, channel: Channel, id: &ContactId) -> Result<ContactRecord, ApiError> {
    state
        .store
        .contact_record(&caller.workspace, channel, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no contact {id} in this workspace")))
}

/// Hands each tag that `before` lacked to the automations (a `tagAdded` trigger), in the
/// conversation with the business account the customer last wrote to; a contact who never
/// wrote has no conversation, and nothing starts. Each addition gets its own event id, so a
/// tag removed and added again starts again, while a redelivered tick is still handled once.
///
/// The tag is stored before this runs, and it stays: a flow queue that does not answer is
/// logged and the request still succeeds, because the tag is what the caller asked for, and
/// failing the request would make the caller retry an addition that already happened (which,
/// the tag then being present, would start nothing either). The automation for that one
/// addition is lost; the warning says which.
async fn start_tag_automations(
    state: &Shared,
    caller: &Caller,
    contact: &ContactId,
    before: Option<&ContactRecord>,
    after: &ContactRecord,
    tags: &BTreeSet<Tag>,
) {
    let Some(account) = after.last_account_id.as_deref() else { return };
    let Ok(account_id) = AccountId::parse(account) else {
        tracing::warn!(%account, "the contact's last account id is unreadable; no tag automation started");
        return;
    };
    let conversation = FlowConversation {
        workspace_id: caller.workspace.clone(),
        channel: after.channel,
        account_id,
        contact_id: contact.clone(),
    };
    for tag in tags.iter().filter(|t| !before.is_some_and(|b| b.tags.contains(t.as_str()))) {
        let tick = FlowTick::TagAdded {
            conversation: conversation.clone(),
            tag: tag.as_str().to_owned(),
            event_id: format!("{:032x}", rand::random::<u128>()),
        };
        if let Err(error) = state.queues.emit_flow_tick(&tick).await {
            tracing::warn!(%error, contact = %conversation.contact_id.masked(), tag = tag.as_str(),
                "the tag is stored but its automations were not started: the flow queue did not take the tick");
        }
    }
}

#[utoipa::path(get, operation_id = "list_contacts", path = "/v1/contacts", tag = "contacts", security(("api_key" = [])), params(PageQuery),
    responses((status = 200, body = ContactPage), (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<Shared>,
    caller: Caller,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<axum::Json<ContactPage>, ApiError> {
    let found = state
        .store
        .contacts_page(&caller.workspace, page.limit.unwrap_or(25), page.cursor.as_deref())
        .await?
        .map_err(|_| ApiError::field("cursor", "is not a cursor this list gave out"))?;
    Ok(axum::Json(ContactPage { items: found.items.into_iter().map(ContactView::from).collect(), next: found.next }))
}

#[utoipa::path(post, operation_id = "create_contact", path = "/v1/contacts", tag = "contacts", request_body = NewContact, security(("api_key" = [])),
    responses((status = 201, body = ContactView), (status = 200, description = "merged into the existing contact", body = ContactView),
        (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<Shared>,
    caller: Caller,
    JsonBody(body): JsonBody<NewContact>,
) -> Result<(StatusCode, axum::Json<ContactView>), ApiError> {
    let mut problems = Vec::new();
    let id = ContactId::for_channel(Channel::WhatsApp, &body.phone)
        .map_err(|e| problems.push(FieldProblem { field: "phone".into(), problem: e.reason.into() }))
        .ok();
    let mut tags = BTreeSet::new();
    for (i, raw) in body.tags.iter().enumerate() {
        match Tag::parse(raw) {
            Ok(tag) => {
                tags.insert(tag);
            }
            Err(problem) => problems.push(FieldProblem { field: format!("tags[{i}]"), problem: problem.into() }),
        }
    }
    let Some(id) = id.filter(|_| problems.is_empty()) else { return Err(ApiError::invalid(problems)) };
    let name = body.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.chars().count() > 256) {
        return Err(ApiError::field("name", "must be at most 256 characters"));
    }
    // Only tags the contact did not have yet start automations; a brand-new contact has never
    // written to us, so it has no conversation for one to run in.
    let before = if tags.is_empty() {
        None
    } else {
        state.store.contact_record(&caller.workspace, Channel::WhatsApp, &id).await?
    };
    let created =
        state.store.save_contact(&caller.workspace, Channel::WhatsApp, &id, name, &tags, state.clock.now()).await?;
    let after = found(&state, &caller, Channel::WhatsApp, &id).await?;
    if !tags.is_empty() {
        start_tag_automations(&state, &caller, &id, before.as_ref(), &after, &tags).await;
    }
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, axum::Json(ContactView::from(after))))
}

#[utoipa::path(get, operation_id = "show_contact", path = "/v1/contacts/{channel}/{id}", tag = "contacts", security(("api_key" = [])),
    params(("channel" = String, Path, description = "wa or ig"), ("id" = String, Path, description = "the contact's number or id")),
    responses((status = 200, body = ContactView), (status = 404, body = ErrorBody)))]
async fn show(
    State(state): State<Shared>,
    caller: Caller,
    Path((ch, id)): Path<(String, String)>,
) -> Result<axum::Json<ContactView>, ApiError> {
    let channel = channel(&ch)?;
    let id = contact_id(channel, &id)?;
    Ok(axum::Json(ContactView::from(found(&state, &caller, channel, &id).await?)))
}

#[utoipa::path(patch, operation_id = "update_contact", path = "/v1/contacts/{channel}/{id}", tag = "contacts", request_body = ContactChange,
    security(("api_key" = [])), params(("channel" = String, Path, description = "wa or ig"), ("id" = String, Path, description = "the contact's number or id")),
    responses((status = 200, body = ContactView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update(
    State(state): State<Shared>,
    caller: Caller,
    Path((ch, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<ContactChange>,
) -> Result<axum::Json<ContactView>, ApiError> {
    let channel = channel(&ch)?;
    let id = contact_id(channel, &id)?;
    found(&state, &caller, channel, &id).await?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 256 {
        return Err(ApiError::field("name", "must be 1 to 256 characters"));
    }
    state.store.save_contact(&caller.workspace, channel, &id, Some(name), &BTreeSet::new(), state.clock.now()).await?;
    Ok(axum::Json(ContactView::from(found(&state, &caller, channel, &id).await?)))
}

#[utoipa::path(delete, operation_id = "delete_contact", path = "/v1/contacts/{channel}/{id}", tag = "contacts", security(("api_key" = [])),
    params(("channel" = String, Path, description = "wa or ig"), ("id" = String, Path, description = "the contact's number or id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn remove(
    State(state): State<Shared>,
    caller: Caller,
    Path((ch, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let channel = channel(&ch)?;
    let id = contact_id(channel, &id)?;
    if state.store.delete_contact(&caller.workspace, channel, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no contact {id} in this workspace")))
    }
}

#[utoipa::path(put, operation_id = "tag_contact", path = "/v1/contacts/{channel}/{id}/tags/{tag}", tag = "contacts", security(("api_key" = [])),
    params(("channel" = String, Path, description = "wa or ig"), ("id" = String, Path, description = "the contact's number or id"),
        ("tag" = String, Path, description = "`dnd` blocks automation (not human replies); `do-not-send` keeps the contact out of broadcasts")),
    responses((status = 200, description = "tagged; a tag the contact did not have yet starts the automations triggered by it (tagAdded) in the conversation the customer last wrote to", body = ContactView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_tag(
    State(state): State<Shared>,
    caller: Caller,
    Path((ch, id, raw)): Path<(String, String, String)>,
) -> Result<axum::Json<ContactView>, ApiError> {
    let channel = channel(&ch)?;
    let id = contact_id(channel, &id)?;
    let tag = tag(&raw)?;
    let before = found(&state, &caller, channel, &id).await?;
    let added = BTreeSet::from([tag]);
    state.store.save_contact(&caller.workspace, channel, &id, None, &added, state.clock.now()).await?;
    let after = found(&state, &caller, channel, &id).await?;
    start_tag_automations(&state, &caller, &id, Some(&before), &after, &added).await;
    Ok(axum::Json(ContactView::from(after)))
}

#[utoipa::path(delete, operation_id = "untag_contact", path = "/v1/contacts/{channel}/{id}/tags/{tag}", tag = "contacts", security(("api_key" = [])),
    params(("channel" = String, Path, description = "wa or ig"), ("id" = String, Path, description = "the contact's number or id"), ("tag" = String, Path)),
    responses((status = 200, body = ContactView), (status = 404, body = ErrorBody)))]
async fn remove_tag(
    State(state): State<Shared>,
    caller: Caller,
    Path((ch, id, raw)): Path<(String, String, String)>,
) -> Result<axum::Json<ContactView>, ApiError> {
    let channel = channel(&ch)?;
    let id = contact_id(channel, &id)?;
    let tag = tag(&raw)?;
    if !state.store.remove_contact_tag(&caller.workspace, channel, &id, &tag).await? {
        return Err(ApiError::not_found(format!("no contact {id} in this workspace")));
    }
    Ok(axum::Json(ContactView::from(found(&state, &caller, channel, &id).await?)))
}

/// The import's outcome, row by row.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportReportView {
    pub created: usize,
    pub updated: usize,
    pub skipped: usize,
    /// `{row, outcome: created|updated|skipped, contact_id | reason}` per data row.
    #[schema(value_type = Vec<Object>)]
    pub rows: serde_json::Value,
}

#[utoipa::path(post, operation_id = "import_contacts", path = "/v1/contacts/import", tag = "contacts", security(("api_key" = [])),
    request_body(content = String, content_type = "text/csv", description = "header `phone,name,tags`; tags separated by `;`"),
    responses((status = 200, body = ImportReportView), (status = 422, body = ErrorBody)))]
async fn import(
    State(state): State<Shared>,
    caller: Caller,
    body: Bytes,
) -> Result<axum::Json<ImportReportView>, ApiError> {
    let report = import_csv(&state.store, &caller.workspace, &body, state.clock.now()).await.map_err(|e| match e {
        ImportError::Store(e) => e.into(),
        other => ApiError::unprocessable("invalid_csv", other.to_string()),
    })?;
    Ok(axum::Json(ImportReportView {
        created: report.created,
        updated: report.updated,
        skipped: report.skipped,
        rows: serde_json::to_value(&report.rows).unwrap_or_default(),
    }))
}
