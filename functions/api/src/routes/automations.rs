//! `/v1/automations`: a workspace's bots — a trigger and a graph of nodes (see
//! `wapisnap::flows`) — and `/v1/conversations/{id}/automation-runs`, what they did in one
//! conversation. A definition is checked whole on every save (`wapisnap::flows::validate`) and
//! every problem is answered at once, each at the path of its field (`nodes[2].next`); a saved
//! definition is a new version, and a run keeps following the version it started on.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use wapisnap::domain::AutomationId;
use wapisnap::flows::definition::Definition;
use wapisnap::flows::validate::validate;
use wapisnap::store::automations::{Automation, Saved};
use wapisnap::store::conversation_flows::HistoryEntry;

use crate::error::{ApiError, ErrorBody, FieldProblem};
use crate::extract::{Caller, JsonBody, QueryParams};
use crate::routes::conversations::PageQuery;
use crate::state::Shared;

resource_routes!([list, create], [show, replace, remove], [enable], [disable], [runs]);

/// Far above any real automation (200 nodes of short texts), far below DynamoDB's 400 KB item,
/// which holds the definition twice over its versions' life (head and version item).
const MAX_DEFINITION_BYTES: usize = 256 * 1024;

/// An automation as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AutomationView {
    /// `auto_` and 16 hex digits.
    pub id: String,
    pub name: String,
    /// Only enabled automations start runs; disabling one stops its runs at their next tick.
    pub enabled: bool,
    /// When several enabled automations match one event, the highest priority starts (then the oldest).
    pub priority: i32,
    /// 1 on creation, one more on every save of the definition.
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The definition as stored: `{name, priority, trigger, start, nodes}`, tags normalised.
    #[schema(value_type = Object)]
    pub definition: Value,
}

impl From<Automation> for AutomationView {
    fn from(a: Automation) -> Self {
        Self {
            id: a.automation_id.to_string(),
            name: a.definition.name.clone(),
            enabled: a.enabled,
            priority: a.definition.priority,
            version: a.version,
            created_at: a.created_at,
            updated_at: a.updated_at,
            definition: serde_json::to_value(&a.definition).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AutomationPage {
    pub items: Vec<AutomationView>,
    /// Pass as `cursor` for the next page; absent on the last one. A page may hold fewer items than `limit`, even none, and still have a next one.
    pub next: Option<String>,
}

/// An automation's definition as its author writes it, and whether it runs. The body is checked
/// whole: a 422 names every problem at once, each at its path (`trigger.pattern`,
/// `nodes[2].next`, `nodes[4].timeout_seconds`, `nodes[1]` for an unreachable node or a loop
/// without a wait, `nodes[3].type` for an unknown type or a WhatsApp-only node in an
/// Instagram-only automation).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!(example_definition()))]
pub struct AutomationInput {
    /// 1 to 100 characters.
    pub name: String,
    /// Default 0; the highest priority wins when several automations match one event.
    pub priority: Option<i32>,
    /// `{"type": "message" | "keyword" (keywords) | "regex" (pattern) | "reply" (payloads) |
    /// "templateButton" (payloads) | "waFlowCompleted" | "tagAdded" (tag), "channel":
    /// "whatsapp" (default) | "instagram" | "both"}`.
    #[schema(value_type = Object)]
    pub trigger: Value,
    /// The id of the node a run starts at.
    pub start: String,
    /// `{"id", "type", ...}` with type one of sendMessage, sendInteractive, sendTemplate,
    /// sendWaFlow, waitForReply, delay, condition, addTag, removeTag, setField, handoff, end;
    /// edges (`next`, `on_timeout`, `otherwise`, a rule's `next`) name node ids.
    #[schema(value_type = Vec<Object>)]
    pub nodes: Vec<Value>,
    /// Default `true` on creation; on a replace, absent keeps the automation as it is.
    pub enabled: Option<bool>,
}

/// The example of the documentation (a unit test keeps it valid).
fn example_definition() -> Value {
    serde_json::json!({
        "name": "Pricing question",
        "priority": 10,
        "trigger": { "type": "keyword", "keywords": ["price", "pricing"] },
        "start": "ask",
        "nodes": [
            { "id": "ask", "type": "sendInteractive", "body": "Hi {{name}}! Which plan?",
              "buttons": [{ "id": "basic", "title": "Basic" }, { "id": "pro", "title": "Pro" }], "next": "wait" },
            { "id": "wait", "type": "waitForReply", "timeout_seconds": 3600, "next": "route", "on_timeout": "bye" },
            { "id": "route", "type": "condition",
              "rules": [{ "when": { "reply": { "equals": "pro" } }, "next": "tag" }], "otherwise": "bye" },
            { "id": "tag", "type": "addTag", "tag": "pro-lead", "next": "bye" },
            { "id": "bye", "type": "sendMessage", "text": "Thanks! Someone will be in touch." }
        ],
        "enabled": true
    })
}

/// The body checked: a runnable definition and the `enabled` it asks for, or every problem.
fn definition_of(mut body: Value) -> Result<(Definition, Option<bool>), ApiError> {
    let mut problems = Vec::new();
    let enabled = match body.as_object_mut().and_then(|o| o.remove("enabled")) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(on)) => Some(on),
        Some(_) => {
            problems.push(FieldProblem { field: "enabled".into(), problem: "must be true or false".into() });
            None
        }
    };
    let definition = validate(&body).map_err(|found| {
        problems.extend(found.into_iter().map(|p| FieldProblem {
            field: if p.path.is_empty() { "body".into() } else { p.path },
            problem: p.problem,
        }))
    });
    match definition {
        Ok(definition) if problems.is_empty() => {
            if serde_json::to_vec(&definition).map_or(0, |bytes| bytes.len()) > MAX_DEFINITION_BYTES {
                return Err(ApiError::field("nodes", "the definition is larger than 256 KB"));
            }
            Ok((definition, enabled))
        }
        _ => Err(ApiError::invalid(problems)),
    }
}

/// `auto_` and 64 random bits: unique without a counter to coordinate.
fn new_id() -> AutomationId {
    AutomationId::parse(format!("auto_{:016x}", rand::random::<u64>())).expect("hex is a valid id")
}

fn missing(id: &str) -> ApiError {
    ApiError::not_found(format!("no automation {id} in this workspace"))
}

/// A malformed id names no automation: 404, like an unknown or another workspace's id.
fn automation_id(raw: &str) -> Result<AutomationId, ApiError> {
    AutomationId::parse(raw).map_err(|_| missing(raw))
}

async fn existing(state: &Shared, caller: &Caller, id: &AutomationId) -> Result<Automation, ApiError> {
    state.store.automation(&caller.workspace, id).await?.ok_or_else(|| missing(id))
}

#[utoipa::path(get, operation_id = "list_automations", path = "/v1/automations", tag = "automations", security(("api_key" = [])), params(PageQuery),
    responses((status = 200, description = "oldest first", body = AutomationPage), (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<Shared>,
    caller: Caller,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<axum::Json<AutomationPage>, ApiError> {
    let found = state
        .store
        .automations_page(&caller.workspace, page.limit.unwrap_or(25), page.cursor.as_deref())
        .await?
        .map_err(|_| ApiError::field("cursor", "is not a cursor this list gave out"))?;
    Ok(axum::Json(AutomationPage {
        items: found.items.into_iter().map(AutomationView::from).collect(),
        next: found.next,
    }))
}

#[utoipa::path(post, operation_id = "create_automation", path = "/v1/automations", tag = "automations", request_body = AutomationInput,
    security(("api_key" = [])),
    responses((status = 201, body = AutomationView), (status = 400, description = "the body is not JSON", body = ErrorBody),
        (status = 422, description = "every problem of the definition, each at its path", body = ErrorBody)))]
async fn create(
    State(state): State<Shared>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, axum::Json<AutomationView>), ApiError> {
    let (definition, enabled) = definition_of(body)?;
    let now = state.clock.now();
    let automation =
        Automation::first_version(new_id(), caller.workspace.clone(), definition, enabled.unwrap_or(true), now);
    state.store.create_automation(&automation).await?;
    Ok((StatusCode::CREATED, axum::Json(AutomationView::from(automation))))
}

#[utoipa::path(get, operation_id = "show_automation", path = "/v1/automations/{id}", tag = "automations", security(("api_key" = [])),
    params(("id" = String, Path, description = "automation id (`auto_…`)")),
    responses((status = 200, body = AutomationView), (status = 404, body = ErrorBody)))]
async fn show(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<AutomationView>, ApiError> {
    let id = automation_id(&id)?;
    Ok(axum::Json(AutomationView::from(existing(&state, &caller, &id).await?)))
}

#[utoipa::path(put, operation_id = "replace_automation", path = "/v1/automations/{id}", tag = "automations", request_body = AutomationInput,
    security(("api_key" = [])), params(("id" = String, Path, description = "automation id (`auto_…`)")),
    responses((status = 200, description = "saved as the next version; runs already going keep the version they started on", body = AutomationView),
        (status = 400, description = "the body is not JSON", body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "every problem of the definition, each at its path", body = ErrorBody)))]
async fn replace(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<axum::Json<AutomationView>, ApiError> {
    let id = automation_id(&id)?;
    let (definition, enabled) = definition_of(body)?;
    match state.store.save_automation(&caller.workspace, &id, definition, enabled, state.clock.now()).await? {
        Saved::Saved(automation) => Ok(axum::Json(AutomationView::from(automation))),
        Saved::NotFound => Err(missing(&id)),
    }
}

#[utoipa::path(delete, operation_id = "delete_automation", path = "/v1/automations/{id}", tag = "automations", security(("api_key" = [])),
    params(("id" = String, Path, description = "automation id (`auto_…`)")),
    responses((status = 204, description = "deleted with its versions; runs still on it stop at their next step"), (status = 404, body = ErrorBody)))]
async fn remove(State(state): State<Shared>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = automation_id(&id)?;
    if state.store.delete_automation(&caller.workspace, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(missing(&id))
    }
}

async fn set_enabled(state: &Shared, caller: &Caller, raw: &str, on: bool) -> Result<AutomationView, ApiError> {
    let id = automation_id(raw)?;
    if !state.store.set_automation_enabled(&caller.workspace, &id, on, state.clock.now()).await? {
        return Err(missing(&id));
    }
    Ok(AutomationView::from(existing(state, caller, &id).await?))
}

#[utoipa::path(post, operation_id = "enable_automation", path = "/v1/automations/{id}/enable", tag = "automations", security(("api_key" = [])),
    params(("id" = String, Path, description = "automation id (`auto_…`)")),
    responses((status = 200, description = "it starts runs from the next matching event", body = AutomationView), (status = 404, body = ErrorBody)))]
async fn enable(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<AutomationView>, ApiError> {
    Ok(axum::Json(set_enabled(&state, &caller, &id, true).await?))
}

#[utoipa::path(post, operation_id = "disable_automation", path = "/v1/automations/{id}/disable", tag = "automations", security(("api_key" = [])),
    params(("id" = String, Path, description = "automation id (`auto_…`)")),
    responses((status = 200, description = "it starts no new runs", body = AutomationView), (status = 404, body = ErrorBody)))]
async fn disable(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<AutomationView>, ApiError> {
    Ok(axum::Json(set_enabled(&state, &caller, &id, false).await?))
}

/// One step of one run in a conversation: which node ran and how it ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunStepView {
    pub run_id: String,
    pub automation_id: String,
    /// The automation's name when the step ran.
    pub automation_name: String,
    pub run_started_at: DateTime<Utc>,
    /// When the step ran.
    pub at: DateTime<Utc>,
    /// On a run's first step: what started it (the matching message, `tag vip added`, ...).
    pub started_by: Option<String>,
    /// 0 for the run's first step, then one more per step.
    pub step: u32,
    /// The node's id in the automation's graph.
    pub node: String,
    /// sendMessage, waitForReply, condition, ...
    pub node_type: String,
    /// sent, skipped, waiting, replied, timed_out, delayed, resumed, branched, tagged,
    /// untagged, field_set, handed_off, ended or stopped.
    pub outcome: String,
    /// The outcome's own fields, beside the others: `job_id` and `kind` (sent), `reason`
    /// (skipped, stopped), `until` (waiting, delayed), `reply` (replied), `rule` and `to`
    /// (branched), `tag` (tagged, untagged), `name` and `value` (field_set).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub details: Map<String, Value>,
}

impl From<HistoryEntry> for RunStepView {
    fn from(entry: HistoryEntry) -> Self {
        let mut details = match serde_json::to_value(&entry.record) {
            Ok(Value::Object(fields)) => fields,
            _ => Map::new(),
        };
        let outcome = details.remove("outcome").and_then(|o| o.as_str().map(str::to_owned)).unwrap_or_default();
        for shown in ["step", "node", "node_type"] {
            details.remove(shown);
        }
        Self {
            run_id: entry.run_id.to_string(),
            automation_id: entry.automation_id.to_string(),
            automation_name: entry.automation_name,
            run_started_at: entry.run_started_at,
            at: entry.at,
            started_by: entry.started_by,
            step: entry.record.step,
            node: entry.record.node.to_string(),
            node_type: entry.record.node_type,
            outcome,
            details,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunStepPage {
    pub items: Vec<RunStepView>,
    /// Pass as `cursor` for the next page; absent on the last one. A page may hold fewer items than `limit`, even none, and still have a next one.
    pub next: Option<String>,
}

#[utoipa::path(get, operation_id = "list_conversation_automation_runs", path = "/v1/conversations/{id}/automation-runs", tag = "automations",
    security(("api_key" = [])), params(("id" = String, Path, description = "conversation id, e.g. wa:106540352242922:16505551234"), PageQuery),
    responses((status = 200, description = "the conversation's automation runs, step by step, oldest first", body = RunStepPage),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn runs(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<axum::Json<RunStepPage>, ApiError> {
    if state.store.conversation(&caller.workspace, &id).await?.is_none() {
        return Err(ApiError::not_found(format!("no conversation {id} in this workspace")));
    }
    let (entries, next) = state
        .store
        .run_history(&caller.workspace, &id, page.limit.unwrap_or(25).clamp(1, 100), page.cursor.as_deref())
        .await?
        .map_err(|_| ApiError::field("cursor", "is not a cursor this list gave out"))?;
    Ok(axum::Json(RunStepPage { items: entries.into_iter().map(RunStepView::from).collect(), next }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(error: ApiError) -> Vec<String> {
        error.fields.into_iter().map(|f| f.field).collect()
    }

    #[test]
    fn the_documented_example_is_a_valid_definition() {
        let (definition, enabled) = definition_of(example_definition()).expect("the example validates");
        assert_eq!((definition.name.as_str(), enabled), ("Pricing question", Some(true)));
    }

    #[test]
    fn a_bad_enabled_and_the_definitions_problems_are_answered_together() {
        let mut body = example_definition();
        body["enabled"] = serde_json::json!("yes");
        body["nodes"][0]["next"] = serde_json::json!("nowhere");
        let error = definition_of(body).unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        let found = fields(error);
        assert!(found.contains(&"enabled".to_owned()) && found.contains(&"nodes[0].next".to_owned()), "{found:?}");
    }

    #[test]
    fn a_body_that_is_not_an_object_is_one_problem_about_the_body() {
        assert_eq!(fields(definition_of(serde_json::json!([1, 2])).unwrap_err()), ["body"]);
    }

    #[test]
    fn a_definition_too_large_to_store_is_refused() {
        let mut body = example_definition();
        let long = "x".repeat(4000);
        let mut nodes = Vec::new();
        for i in 0..80 {
            let next = if i < 79 { serde_json::json!(format!("n{}", i + 1)) } else { Value::Null };
            nodes.push(serde_json::json!({ "id": format!("n{i}"), "type": "sendMessage", "text": long, "next": next }));
        }
        body["start"] = serde_json::json!("n0");
        body["nodes"] = Value::Array(nodes);
        assert_eq!(fields(definition_of(body).unwrap_err()), ["nodes"]);
    }

    #[test]
    fn a_history_line_shows_its_outcome_beside_the_run() {
        let entry: HistoryEntry = serde_json::from_value(serde_json::json!({
            "run_id": "run_1", "automation_id": "auto_1", "automation_name": "Pricing", "run_started_at": "2025-01-01T00:00:00Z",
            "at": "2025-01-01T00:00:01Z", "started_by": "keyword price",
            "record": r#"{"step":0,"node":"ask","node_type":"sendMessage","outcome":"sent","job_id":"flow-run_1-0","kind":"text"}"#
        }))
        .expect("a stored history line reads");
        let view = serde_json::to_value(RunStepView::from(entry)).unwrap();
        assert_eq!(view["outcome"], "sent");
        assert_eq!((view["node"].as_str(), view["step"].as_u64()), (Some("ask"), Some(0)));
        assert_eq!((view["job_id"].as_str(), view["kind"].as_str()), (Some("flow-run_1-0"), Some("text")));
        assert_eq!(view["started_by"], "keyword price");
    }
}
