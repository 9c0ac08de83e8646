//! The Graph API endpoints wapisnap calls, answered the way Meta answers them.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Value, json};

use super::webhooks::StatusUpdate;
use super::{Admission, FaultEffect, RecordedRequest, SandboxState, errors, wall_micros};

pub fn router() -> Router<Arc<SandboxState>> {
    Router::new().route("/{version}/{id}", get(node).post(node)).route("/{version}/{id}/{edge}", get(edge).post(edge))
}

async fn node(
    State(state): State<Arc<SandboxState>>,
    method: Method,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    handle(&state, method, &version, &id, "", &headers, &uri, &body).await
}

async fn edge(
    State(state): State<Arc<SandboxState>>,
    method: Method,
    Path((version, id, edge)): Path<(String, String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    handle(&state, method, &version, &id, &edge, &headers, &uri, &body).await
}

type Answer = (StatusCode, Value);

fn meta_error(
    state: &SandboxState,
    code: i64,
    subcode: Option<i64>,
    status: Option<u16>,
    message: Option<&str>,
) -> Answer {
    let status = status.unwrap_or(errors::describe(code).0);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, errors::error_body(code, subcode, message, None, state.next()))
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    state: &Arc<SandboxState>,
    method: Method,
    version: &str,
    id: &str,
    edge: &str,
    headers: &HeaderMap,
    uri: &Uri,
    raw: &Bytes,
) -> Response {
    let body: Value = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(raw).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(raw).into_owned()))
    };
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let path = uri.path().to_owned();
    let mut received_at = wall_micros();

    let fault = state.take_fault(&path, &body);
    // The code exchange is authenticated by the app's id and secret in the query, not a token.
    let precheck = if (id, edge) == ("oauth", "access_token") {
        Some(exchange_code(state, uri.query().unwrap_or_default()))
    } else {
        answer_precheck(state, version, authorization.as_deref())
    };
    let (status, answer, after) = match (&fault, precheck) {
        (_, Some(refusal)) => (refusal.0, refusal.1, None),
        (Some(FaultEffect::MetaError { code, subcode, http_status, message }), None) => {
            let (s, v) = meta_error(state, *code, *subcode, *http_status, message.as_deref());
            (s, v, None)
        }
        (Some(FaultEffect::HttpStatus { status }), None) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
            (status, json!(status.canonical_reason().unwrap_or("error")), None)
        }
        _ => {
            if let Some(FaultEffect::Delay { millis }) = &fault {
                tokio::time::sleep(Duration::from_millis(*millis)).await;
            }
            // A send counts against the number's throughput; past it Meta answers 130429.
            let admission = if (method.as_str(), edge) == ("POST", "messages") {
                state.admit_send(id)
            } else {
                Admission::Admitted(received_at)
            };
            match admission {
                Admission::Admitted(at) => {
                    received_at = at;
                    route(state, &method, id, edge, &body)
                }
                Admission::OverLimit(at) => {
                    received_at = at;
                    let (s, v) = meta_error(state, super::THROUGHPUT_REACHED, None, None, None);
                    (s, v, None)
                }
            }
        }
    };
    let answered_error_code = answer["error"]["code"].as_i64();
    state.record(RecordedRequest {
        seq: state.next(),
        method: method.to_string(),
        path,
        query: uri.query().unwrap_or_default().to_owned(),
        authorization,
        body,
        answered_status: status.as_u16(),
        accepted_id: after.as_ref().map(|a| a.wamid.clone()),
        answered_error_code,
        received_at_micros: received_at,
    });

    // What Meta does after answering: report the message's progress to the webhook.
    if let Some(statuses) = after {
        let state = state.clone();
        let failed_with = match &fault {
            Some(FaultEffect::FailedStatus { code }) => Some(*code),
            _ => None,
        };
        let phone_number_id = id.to_owned();
        tokio::spawn(async move { report_progress(&state, &phone_number_id, statuses, failed_with).await });
    }

    match fault {
        Some(FaultEffect::AcceptThenFail { status: lost_status, delay_millis }) if status.is_success() => {
            if let Some(millis) = delay_millis {
                tokio::time::sleep(Duration::from_millis(millis)).await;
            }
            let status = StatusCode::from_u16(lost_status.unwrap_or(500)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, axum::Json(errors::error_body(131000, None, None, None, state.next()))).into_response()
        }
        _ => (status, axum::Json(answer)).into_response(),
    }
}

/// Embedded Signup's code exchange: a code the sandbox "issued" (`sandbox-code-…`) becomes a
/// business token; anything else is refused the way Meta refuses it.
fn exchange_code(state: &SandboxState, query: &str) -> Answer {
    let params: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let secret_ok = state.app_secret().is_none_or(|secret| params.get("client_secret") == Some(&secret));
    match params.get("code").and_then(|c| c.strip_prefix("sandbox-code-")) {
        Some(rest) if secret_ok && params.contains_key("client_id") => {
            (StatusCode::OK, json!({ "access_token": format!("EAAGsignup{rest}TOKEN"), "token_type": "bearer" }))
        }
        _ => meta_error(state, 100, Some(36007), None, Some("Invalid verification code format.")),
    }
}

/// Refusals that come before anything else: an unknown version, no access token.
fn answer_precheck(state: &SandboxState, version: &str, authorization: Option<&str>) -> Option<Answer> {
    let known_version = version.strip_prefix('v').is_some_and(|v| v.split('.').all(|p| p.parse::<u32>().is_ok()));
    if !known_version {
        return Some((
            StatusCode::BAD_REQUEST,
            errors::error_body(2635, None, Some("Unknown Graph API version"), None, state.next()),
        ));
    }
    match authorization.and_then(|a| a.strip_prefix("Bearer ")) {
        Some(token) if !token.trim().is_empty() => None,
        _ => Some(meta_error(state, 190, None, None, None)),
    }
}

/// The webhook statuses that follow a send: (wamid, recipient, biz_opaque_callback_data).
struct AfterSend {
    wamid: String,
    recipient: String,
    callback_data: Option<String>,
}

fn route(
    state: &SandboxState,
    method: &Method,
    id: &str,
    edge: &str,
    body: &Value,
) -> (StatusCode, Value, Option<AfterSend>) {
    let ok = |v: Value| (StatusCode::OK, v, None);
    match (method.as_str(), edge) {
        ("POST", "messages") => send_message(state, body),
        ("GET", "") => {
            let n = state.number(id);
            ok(json!({
                "id": n.id,
                "display_phone_number": n.display_phone_number,
                "verified_name": n.verified_name,
                "status": n.status,
                "quality_rating": n.quality_rating,
                "code_verification_status": n.code_verification_status,
                "messaging_limit_tier": n.messaging_limit_tier,
                "platform_type": "CLOUD_API",
                "throughput": { "level": "STANDARD" },
                // Every sandbox WABA belongs to one business portfolio.
                "owner_business_info": { "id": "1000000000000001", "name": "Sandbox Business Portfolio" },
            }))
        }
        // The app's webhook subscription, as Meta keeps it (`GET /{app-id}/subscriptions`).
        ("GET", "subscriptions") => {
            let changed = state.app_subscription.lock().expect("subscription").clone();
            let (callback, fields) =
                changed.unwrap_or_else(|| (state.webhook_url().unwrap_or_default(), vec!["messages".to_owned()]));
            let fields: Vec<Value> = fields.iter().map(|name| json!({ "name": name, "version": "v23.0" })).collect();
            ok(json!({ "data": [{ "object": "whatsapp_business_account", "callback_url": callback, "active": true,
                                   "fields": fields }] }))
        }
        ("POST", "register") => register(state, id, body),
        ("POST", "deregister") => {
            state.update_number(id, |n| n.status = "DISCONNECTED".into());
            ok(json!({ "success": true }))
        }
        ("POST", "request_code") => {
            let code = format!("{:06}", state.next() * 7919 % 1_000_000);
            state.update_number(id, |n| n.pending_code = Some(code));
            ok(json!({ "success": true }))
        }
        ("POST", "verify_code") => {
            let number = state.number(id);
            let given = body["code"].as_str().unwrap_or_default();
            if number.pending_code.as_deref() == Some(given) {
                state.update_number(id, |n| {
                    n.pending_code = None;
                    n.failed_pin_attempts = 0;
                    n.code_verification_status = "VERIFIED".into();
                });
                ok(json!({ "success": true }))
            } else {
                let (s, v) = meta_error(state, 136025, None, None, None);
                (s, v, None)
            }
        }
        ("GET", "message_templates") => {
            let data = state.templates.lock().expect("templates").get(id).cloned().unwrap_or_default();
            ok(json!({ "data": data, "paging": { "cursors": {} } }))
        }
        ("POST", "message_templates") => {
            let Some(name) = body["name"].as_str() else {
                let (s, v) = meta_error(state, 100, None, None, Some("Invalid parameter: name is required"));
                return (s, v, None);
            };
            let template = json!({
                "id": format!("{}", 1_000_000 + state.next()),
                "name": name,
                "language": body["language"],
                "category": body["category"],
                "components": body["components"],
                "status": "APPROVED",
            });
            state.templates.lock().expect("templates").entry(id.to_owned()).or_default().push(template.clone());
            ok(json!({ "id": template["id"], "status": "APPROVED", "category": body["category"] }))
        }
        // A sandbox WABA `9{number}` holds that one number, unless told otherwise (`waba_holds`).
        ("GET", "phone_numbers") => {
            let held = state.waba_numbers.lock().expect("WABA numbers").get(id).cloned();
            let numbers = held.unwrap_or_else(|| id.strip_prefix('9').map(str::to_owned).into_iter().collect());
            let data: Vec<Value> = numbers
                .iter()
                .map(|number| state.number(number))
                .map(|n| {
                    json!({ "id": n.id, "display_phone_number": n.display_phone_number, "verified_name": n.verified_name,
                            "quality_rating": n.quality_rating, "code_verification_status": n.code_verification_status })
                })
                .collect();
            ok(json!({ "data": data }))
        }
        ("POST", "subscribed_apps") => {
            state.subscribed_wabas.lock().expect("subscriptions").push(id.to_owned());
            ok(json!({ "success": true }))
        }
        ("GET", "subscribed_apps") => {
            let subscribed = state.subscribed_wabas.lock().expect("subscriptions").iter().any(|w| w == id);
            let data = if subscribed {
                json!([{ "whatsapp_business_api_data": { "id": "1", "name": "wapisnap" } }])
            } else {
                json!([])
            };
            ok(json!({ "data": data }))
        }
        _ => {
            let message = format!("Unsupported {method} request to edge '{edge}' (sandbox)");
            let (s, v) = meta_error(state, 100, Some(33), None, Some(&message));
            (s, v, None)
        }
    }
}

fn send_message(state: &SandboxState, body: &Value) -> (StatusCode, Value, Option<AfterSend>) {
    let invalid = |what: &str| {
        let (s, v) = meta_error(state, 100, None, None, Some(&format!("Invalid parameter: {what}")));
        (s, v, None)
    };
    // Instagram Messaging API shape: {recipient: {id}, message: {...}}.
    if let Some(recipient) = body["recipient"]["id"].as_str() {
        let mid = format!("mid.SANDBOX{:012}", state.next());
        return (StatusCode::OK, json!({ "recipient_id": recipient, "message_id": mid }), None);
    }
    if body["messaging_product"] != "whatsapp" {
        return invalid("messaging_product must be \"whatsapp\"");
    }
    let Some(to) = body["to"].as_str() else { return invalid("to is required") };
    let Some(kind) = body["type"].as_str().or(Some("text")) else { return invalid("type") };
    if body.get(kind).is_none() {
        return invalid(&format!("the message has no '{kind}' object"));
    }
    let wamid = format!("wamid.SANDBOX{:012}", state.next());
    let mut message = json!({ "id": wamid });
    if kind == "template" {
        message["message_status"] = json!("accepted");
    }
    let answer = json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": to, "wa_id": to.trim_start_matches('+') }],
        "messages": [message],
    });
    let after = AfterSend {
        wamid,
        recipient: to.trim_start_matches('+').to_owned(),
        callback_data: body["biz_opaque_callback_data"].as_str().map(str::to_owned),
    };
    (StatusCode::OK, answer, Some(after))
}

/// Registration with the two-step verification PIN. Meta locks registration after repeated
/// wrong PINs until the number is re-verified by SMS or voice code.
fn register(state: &SandboxState, id: &str, body: &Value) -> (StatusCode, Value, Option<AfterSend>) {
    let pin = body["pin"].as_str().unwrap_or_default();
    if pin.len() != 6 || !pin.bytes().all(|b| b.is_ascii_digit()) {
        let (s, v) = meta_error(state, 100, None, None, Some("Invalid parameter: pin must be 6 digits"));
        return (s, v, None);
    }
    let number = state.number(id);
    if number.failed_pin_attempts >= 3 {
        let (s, v) = meta_error(state, 133006, None, None, None);
        return (s, v, None);
    }
    if number.pin.as_deref().is_some_and(|p| p != pin) {
        state.update_number(id, |n| n.failed_pin_attempts += 1);
        let (s, v) = meta_error(state, 133005, None, None, None);
        return (s, v, None);
    }
    state.update_number(id, |n| {
        n.pin = Some(pin.to_owned());
        n.failed_pin_attempts = 0;
        n.status = "CONNECTED".into();
    });
    (StatusCode::OK, json!({ "success": true }), None)
}

async fn report_progress(state: &SandboxState, phone_number_id: &str, after: AfterSend, failed_with: Option<i64>) {
    let statuses: Vec<String> = match failed_with {
        Some(_) => vec!["failed".into()],
        None => state.auto_statuses.lock().expect("statuses").clone(),
    };
    for status in statuses {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let update = StatusUpdate {
            wamid: after.wamid.clone(),
            status,
            recipient_id: after.recipient.clone(),
            biz_opaque_callback_data: after.callback_data.clone(),
            error_code: failed_with,
            timestamp: None,
        };
        match state.post_status(phone_number_id, &update).await {
            Ok(code) if code < 300 => {}
            Ok(code) => tracing::warn!(code, wamid = %after.wamid, "webhook refused a status delivery"),
            Err(error) => tracing::debug!(%error, "status webhook not delivered"),
        }
    }
}
