//! `/v1/conversations`: the shared inbox — conversations, their messages, the composer and the
//! human-takeover switch. The rules live in `wapisnap::inbox` and `wapisnap::policy`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wapisnap::inbox::{ComposeError, Reply, reply};
use wapisnap::outbound::accept::AcceptError;
use wapisnap::outbound::content::OutboundContent;
use wapisnap::policy::window::is_window_open;
use wapisnap::store::conversations::{Conversation, HandoffBy};
use wapisnap::store::jobs::JobRecord;
use wapisnap::store::messages::{ConversationEntry, OutboundEntry, StoredMessage};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, JsonBody, QueryParams};
use crate::state::Shared;

resource_routes!([list], [messages, send], [handoff]);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page (1–100, default 25).
    pub limit: Option<i32>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    pub id: String,
    /// `wa` or `ig`.
    pub channel: String,
    pub account_id: String,
    pub contact_id: String,
    pub last_inbound_at: DateTime<Utc>,
    pub last_message_id: String,
    /// The customer's newest message in one line.
    pub last_message: Option<String>,
    /// Free-form messages may be sent until this time; after it, only an approved template.
    pub window_closes_at: DateTime<Utc>,
    pub window_open: bool,
    /// A human took over: automations stay silent until this is turned off.
    pub human_handoff: bool,
}

impl ConversationView {
    fn of(c: Conversation, now: DateTime<Utc>) -> Self {
        Self {
            window_open: is_window_open(Some(c.last_inbound_at), now),
            id: c.conversation_id,
            channel: c.channel.as_str().into(),
            account_id: c.account_id,
            contact_id: c.contact_id,
            last_inbound_at: c.last_inbound_at,
            last_message_id: c.last_message_id,
            last_message: c.last_message_preview,
            window_closes_at: c.window_closes_at,
            human_handoff: c.human_handoff,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationPage {
    pub items: Vec<ConversationView>,
    /// Pass as `cursor` for the next page; absent on the last one. A page may hold fewer items than `limit`, even none, and still have a next one.
    pub next: Option<String>,
}

fn bad_cursor(_: wapisnap::store::pages::BadCursor) -> ApiError {
    ApiError::field("cursor", "is not a cursor this list gave out")
}

#[utoipa::path(get, operation_id = "list_conversations", path = "/v1/conversations", tag = "inbox", security(("api_key" = [])), params(PageQuery),
    responses((status = 200, body = ConversationPage), (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<Shared>,
    caller: Caller,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<axum::Json<ConversationPage>, ApiError> {
    let limit = page.limit.unwrap_or(25);
    let found =
        state.store.conversations_page(&caller.workspace, limit, page.cursor.as_deref()).await?.map_err(bad_cursor)?;
    let now = state.clock.now();
    Ok(axum::Json(ConversationPage {
        items: found.items.into_iter().map(|c| ConversationView::of(c, now)).collect(),
        next: found.next,
    }))
}

/// One message of a conversation, from the customer (`in`) or from us (`out`).
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    /// Meta's id for an inbound message; our send job id for an outbound one.
    pub id: String,
    /// `in` (the customer) or `out` (an agent, a flow, a broadcast).
    pub direction: String,
    pub at: DateTime<Utc>,
    pub profile_name: Option<String>,
    pub reply_to: Option<String>,
    /// What was sent, by type (text, image, interactive reply, template, ...).
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
    /// For `out`: who sent it (`{"type": "human", "agent_id"}`, a flow, a broadcast).
    #[schema(value_type = Object)]
    pub origin: Option<serde_json::Value>,
    /// For `out`: where the send stands (QUEUED … DELIVERED, FAILED, REFUSED).
    pub state: Option<String>,
    /// For `out`: Meta's id, once accepted.
    pub wamid: Option<String>,
    pub error_code: Option<i64>,
    /// For `out`: why it failed or was refused (FAILED without one: Meta never reported it).
    pub error: Option<String>,
}

impl MessageView {
    fn inbound(m: StoredMessage) -> Self {
        Self {
            id: m.message.message_id.to_string(),
            direction: "in".into(),
            at: m.message.sent_at,
            profile_name: m.message.profile_name,
            reply_to: m.message.reply_to,
            content: serde_json::to_value(&m.message.content).unwrap_or_default(),
            origin: None,
            state: None,
            wamid: None,
            error_code: None,
            error: None,
        }
    }

    fn outbound(entry: OutboundEntry, job: Option<JobRecord>) -> Self {
        let state =
            job.as_ref().and_then(|j| serde_json::to_value(j.state).ok()).and_then(|v| v.as_str().map(str::to_owned));
        Self {
            id: entry.job_id.to_string(),
            direction: "out".into(),
            at: entry.queued_at,
            profile_name: None,
            reply_to: None,
            content: serde_json::to_value(&entry.content).unwrap_or_default(),
            origin: serde_json::to_value(&entry.origin).ok(),
            state,
            wamid: job.as_ref().and_then(|j| j.wamid.as_ref().map(ToString::to_string)),
            error_code: job.as_ref().and_then(|j| j.error_code),
            error: job.and_then(|j| j.reason),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub items: Vec<MessageView>,
    /// Pass as `cursor` for the next page; absent on the last one. A page may hold fewer items than `limit`, even none, and still have a next one.
    pub next: Option<String>,
}

async fn existing(state: &Shared, caller: &Caller, id: &str) -> Result<Conversation, ApiError> {
    state
        .store
        .conversation(&caller.workspace, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no conversation {id} in this workspace")))
}

#[utoipa::path(get, operation_id = "list_conversation_messages", path = "/v1/conversations/{id}/messages", tag = "inbox", security(("api_key" = [])),
    params(("id" = String, Path, description = "conversation id, e.g. wa:106540352242922:16505551234"), PageQuery),
    responses((status = 200, body = MessagePage), (status = 404, body = ErrorBody)))]
async fn messages(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<axum::Json<MessagePage>, ApiError> {
    existing(&state, &caller, &id).await?;
    let limit = page.limit.unwrap_or(25);
    let found = state
        .store
        .conversation_messages_page(&caller.workspace, &id, limit, page.cursor.as_deref())
        .await?
        .map_err(bad_cursor)?;
    // Our sends' states, for the whole page in one read.
    let sent: Vec<_> = found
        .items
        .iter()
        .filter_map(|entry| match entry {
            ConversationEntry::Outbound(sent) => Some(sent.job_id.clone()),
            ConversationEntry::Inbound(_) => None,
        })
        .collect();
    let mut jobs = state.store.jobs(&caller.workspace, &sent).await?;
    let items = found
        .items
        .into_iter()
        .map(|entry| match entry {
            ConversationEntry::Inbound(message) => MessageView::inbound(*message),
            ConversationEntry::Outbound(sent) => {
                let job = jobs.remove(&sent.job_id);
                MessageView::outbound(*sent, job)
            }
        })
        .collect();
    Ok(axum::Json(MessagePage { items, next: found.next }))
}

/// A human's message from the inbox.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ComposeMessage {
    /// Who is sending (shown in the inbox; a human send takes the conversation over).
    pub agent_id: String,
    /// `{"type": "text", "body": ...}`, `{"type": "media", "kind": "image", "link": ...}`,
    /// `{"type": "buttons", ...}`, `{"type": "list", ...}`, `{"type": "template", "name", "language"}`.
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    pub job_id: String,
    /// Where the send job stands (QUEUED right away; see `GET /v1/jobs/{id}`).
    pub state: String,
    /// This message handed the conversation to the human.
    pub human_handoff: bool,
}

/// WhatsApp's limit on a text message.
const MAX_TEXT_CHARS: usize = 4096;
/// Far above any message Meta accepts, far below DynamoDB's item limit.
const MAX_CONTENT_BYTES: usize = 16 * 1024;

fn compose_error(error: ComposeError) -> ApiError {
    match error {
        ComposeError::NoConversation(_) => ApiError::not_found(error.to_string()),
        ComposeError::Refused(_) => ApiError::unprocessable("not_sendable", error.to_string()),
        ComposeError::BadIdempotencyKey(_) => ApiError::bad_request(error.to_string()),
        ComposeError::Accept(AcceptError::Conflict(_)) => {
            ApiError::conflict("this Idempotency-Key was used for another message; use a new key for a new message")
        }
        ComposeError::Accept(AcceptError::Store(e)) | ComposeError::Store(e) => e.into(),
        ComposeError::Accept(AcceptError::Queue(_)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the message is stored and will be sent; the queue answered late",
        ),
        ComposeError::Corrupt(_) => ApiError::internal("the conversation's record is unreadable"),
    }
}

#[utoipa::path(post, operation_id = "send_from_inbox", path = "/v1/conversations/{id}/messages", tag = "inbox", request_body = ComposeMessage, security(("api_key" = [])),
    params(("id" = String, Path, description = "conversation id"),
        ("Idempotency-Key" = String, Header, description = "the same key sends once; the same key with another body is 409")),
    responses((status = 202, body = Queued), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, description = "outside the 24-hour window (use a template), or a template on Instagram", body = ErrorBody)))]
async fn send(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ComposeMessage>,
) -> Result<(StatusCode, axum::Json<Queued>), ApiError> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::bad_request("send an Idempotency-Key header: a retried POST with the same key sends once")
        })?
        .to_owned();
    let content: OutboundContent =
        serde_json::from_value(body.content).map_err(|e| ApiError::field("content", e.to_string()))?;
    if body.agent_id.trim().is_empty() || body.agent_id.len() > 128 {
        return Err(ApiError::field("agent_id", "must be 1 to 128 characters"));
    }
    if let OutboundContent::Text { body, .. } = &content
        && body.chars().count() > MAX_TEXT_CHARS
    {
        return Err(ApiError::field("content.body", format!("is longer than WhatsApp's {MAX_TEXT_CHARS} characters")));
    }
    if serde_json::to_vec(&content).map_or(0, |bytes| bytes.len()) > MAX_CONTENT_BYTES {
        return Err(ApiError::field("content", "is larger than 16 KB"));
    }
    let message = Reply { agent_id: body.agent_id, content, idempotency_key: key };
    let queued = reply(&state.store, &state.queues, &caller.workspace, &id, message, state.clock.now())
        .await
        .map_err(compose_error)?;
    let job_state =
        serde_json::to_value(queued.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Queued { job_id: queued.job_id.to_string(), state: job_state, human_handoff: queued.handoff }),
    ))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct Handoff {
    /// `true`: a human has the conversation and automations stay silent.
    pub human_handoff: bool,
}

#[utoipa::path(put, operation_id = "set_handoff", path = "/v1/conversations/{id}/handoff", tag = "inbox", request_body = Handoff, security(("api_key" = [])),
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, body = Handoff), (status = 404, body = ErrorBody)))]
async fn handoff(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Handoff>,
) -> Result<axum::Json<Handoff>, ApiError> {
    if state.store.set_handoff(&caller.workspace, &id, body.human_handoff, HandoffBy::Human).await? {
        Ok(axum::Json(body))
    } else {
        Err(ApiError::not_found(format!("no conversation {id} in this workspace")))
    }
}
