//! `/v1/numbers`: onboarding a WhatsApp number, its registration with Meta (PIN rules), and
//! releasing it. The logic is `wapisnap::numbers`; this maps it to HTTP.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wapisnap::domain::{Channel, PhoneNumberId, WabaId};
use wapisnap::numbers::ConnectError;
use wapisnap::numbers::onboarding::{OnboardError, Onboarding};
use wapisnap::numbers::registration::{CodeMethod, RECOVER_AFTER_DEREGISTER, Registrar, RegistrationError, SixDigits};
use wapisnap::outbound::pacing::{DEFAULT_MPS, MAX_MPS};
use wapisnap::store::numbers::{NumberRecord, Release};
use wapisnap::vault::VaultError;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, JsonBody, QueryParams};
use crate::routes::conversations::PageQuery;
use crate::state::Shared;

resource_routes!(
    [onboard, list],
    [embedded_signup],
    [show, release],
    [register],
    [deregister],
    [request_code],
    [verify_code],
    [diagnostics],
    [throughput]
);

/// A number as the workspace sees it. The access token is shown by its last 4 characters only.
#[derive(Debug, Serialize, ToSchema)]
pub struct NumberView {
    pub phone_number_id: String,
    pub channel: String,
    pub waba_id: Option<String>,
    pub display_phone_number: Option<String>,
    pub verified_name: Option<String>,
    /// ACTIVE, DRAFT, ERROR or DISCONNECTED.
    pub state: String,
    pub state_reason: Option<String>,
    /// Meta's own status of the number (CONNECTED, DISCONNECTED, ...).
    pub meta_status: Option<String>,
    pub quality_rating: Option<String>,
    /// Meta's last quality event (FLAGGED, UNFLAGGED, UPGRADE, DOWNGRADE).
    pub quality_event: Option<String>,
    /// The messaging limit Meta last reported, shared by the business portfolio's numbers.
    pub messaging_limit: Option<String>,
    /// The business portfolio that owns the number's WABA.
    pub business_id: Option<String>,
    /// Register is refused until a code is requested and verified (Meta's PIN lock).
    pub needs_reverification: bool,
    pub token_last4: String,
    /// Messages a second the number's sends are paced at: Meta's default 80 unless set with
    /// `PUT /v1/numbers/{id}/throughput` (up to 1,000 once Meta raised the number's throughput).
    pub throughput_mps: u32,
}

impl From<&NumberRecord> for NumberView {
    fn from(n: &NumberRecord) -> Self {
        Self {
            phone_number_id: n.account_id.clone(),
            channel: n.channel.as_str().into(),
            waba_id: n.waba_id.clone(),
            display_phone_number: n.display_phone_number.clone(),
            verified_name: n.verified_name.clone(),
            state: serde_json::to_value(n.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            state_reason: n.state_reason.clone(),
            meta_status: n.meta_status.clone(),
            quality_rating: n.quality_rating.clone(),
            quality_event: n.quality_event.clone(),
            messaging_limit: n.messaging_limit.clone(),
            business_id: n.business_id.clone(),
            needs_reverification: n.needs_reverification,
            token_last4: n.token.last4.clone(),
            throughput_mps: n.throughput_mps.unwrap_or(DEFAULT_MPS),
        }
    }
}

/// Onboarding with an access token (pasted by an operator, or from Embedded Signup).
// No Debug: it carries a secret.
#[derive(Deserialize, ToSchema)]
pub struct OnboardNumber {
    pub phone_number_id: String,
    pub waba_id: String,
    /// Stored only sealed; never returned.
    pub access_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NumberList {
    pub items: Vec<NumberView>,
    /// Pass as `cursor` for the next page; absent on the last one. A page may hold fewer items than `limit`, even none, and still have a next one.
    pub next: Option<String>,
}

fn onboard_error(error: OnboardError) -> ApiError {
    match error {
        OnboardError::OwnedElsewhere(_) => ApiError::conflict(error.to_string()),
        OnboardError::MetaRefused(_) => ApiError::unprocessable("meta_refused", error.to_string()),
        OnboardError::MetaUnreachable(_) => ApiError::bad_gateway(error.to_string()),
        OnboardError::SignupNotConfigured => {
            ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_configured", error.to_string())
        }
        OnboardError::NoNumbers => ApiError::unprocessable("no_numbers", error.to_string()),
        OnboardError::Connect(ConnectError::Vault(VaultError::Empty)) => {
            ApiError::field("access_token", "the access token is empty")
        }
        OnboardError::Connect(other) => {
            tracing::error!(error = %other, "number not connected");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the number could not be connected, or Meta's details of it not all recorded (storage or the key service is unavailable); connecting again is safe",
            )
        }
    }
}

fn registration_error(error: RegistrationError) -> ApiError {
    match error {
        RegistrationError::NoSuchNumber(_) => ApiError::not_found(error.to_string()),
        RegistrationError::ReverificationNeeded | RegistrationError::MovedToAnotherWorkspace(_) => {
            ApiError::conflict(error.to_string())
        }
        RegistrationError::WrongPin { .. } => ApiError::unprocessable("wrong_pin", error.to_string()),
        RegistrationError::NotConfirmed { .. } => ApiError::field("confirm", error.to_string()),
        RegistrationError::MetaRefused(_) => ApiError::unprocessable("meta_refused", error.to_string()),
        RegistrationError::MetaUnreachable(_) => ApiError::bad_gateway(error.to_string()),
        RegistrationError::Vault(_) => {
            ApiError::internal("the number's access token cannot be opened; onboard it again")
        }
        RegistrationError::Store(e) => e.into(),
    }
}

#[utoipa::path(post, operation_id = "onboard_number", path = "/v1/numbers", tag = "numbers", request_body = OnboardNumber, security(("api_key" = [])),
    responses((status = 201, body = NumberView), (status = 409, description = "another workspace holds the number", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 503, description = "storage or the key service is unavailable; connecting again is safe", body = ErrorBody)))]
async fn onboard(
    State(state): State<Shared>,
    caller: Caller,
    JsonBody(body): JsonBody<OnboardNumber>,
) -> Result<(StatusCode, axum::Json<NumberView>), ApiError> {
    let mut problems = Vec::new();
    let number = PhoneNumberId::parse(body.phone_number_id.as_str())
        .map_err(|e| {
            problems.push(crate::error::FieldProblem { field: "phone_number_id".into(), problem: e.reason.into() })
        })
        .ok();
    let waba = WabaId::parse(body.waba_id.as_str())
        .map_err(|e| problems.push(crate::error::FieldProblem { field: "waba_id".into(), problem: e.reason.into() }))
        .ok();
    if body.access_token.trim().is_empty() {
        problems.push(crate::error::FieldProblem { field: "access_token".into(), problem: "must not be empty".into() });
    }
    let (Some(number), Some(waba), true) = (number, waba, problems.is_empty()) else {
        return Err(ApiError::invalid(problems));
    };
    let token = SecretString::from(body.access_token);
    let onboarding = Onboarding { store: &state.store, vault: &state.vault, graph: &state.graph };
    let record = onboarding
        .with_token(&caller.workspace, &number, &waba, &token, state.clock.now())
        .await
        .map_err(onboard_error)?;
    Ok((StatusCode::CREATED, axum::Json(NumberView::from(&record))))
}

#[utoipa::path(get, operation_id = "list_numbers", path = "/v1/numbers", tag = "numbers", security(("api_key" = [])),
    params(PageQuery), responses((status = 200, body = NumberList), (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<Shared>,
    caller: Caller,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<axum::Json<NumberList>, ApiError> {
    let found = state
        .store
        .numbers_page(&caller.workspace, page.limit.unwrap_or(25), page.cursor.as_deref())
        .await?
        .map_err(|_| ApiError::field("cursor", "is not a cursor this list gave out"))?;
    Ok(axum::Json(NumberList { items: found.items.iter().map(NumberView::from).collect(), next: found.next }))
}

async fn find(state: &Shared, caller: &Caller, id: &str) -> Result<NumberRecord, ApiError> {
    state
        .store
        .number(&caller.workspace, Channel::WhatsApp, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no number {id} in this workspace")))
}

#[utoipa::path(get, operation_id = "show_number", path = "/v1/numbers/{id}", tag = "numbers", security(("api_key" = [])),
    params(("id" = String, Path, description = "Meta's phone number id")),
    responses((status = 200, body = NumberView), (status = 404, body = ErrorBody)))]
async fn show(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<NumberView>, ApiError> {
    Ok(axum::Json(NumberView::from(&find(&state, &caller, &id).await?)))
}

/// Releases the number from this workspace (it is not deregistered at Meta): the webhook stops
/// routing it here, and another workspace may onboard it.
#[utoipa::path(delete, operation_id = "release_number", path = "/v1/numbers/{id}", tag = "numbers", security(("api_key" = [])),
    params(("id" = String, Path, description = "Meta's phone number id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn release(State(state): State<Shared>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    match state.store.release_number(&caller.workspace, Channel::WhatsApp, &id).await? {
        Release::Released => Ok(StatusCode::NO_CONTENT),
        Release::NotFound => Err(ApiError::not_found(format!("no number {id} in this workspace"))),
        Release::Locked => Err(ApiError::conflict(format!(
            "Meta locked registration for this number; verify a code first ({}), then release it",
            wapisnap::numbers::registration::REVERIFY_STEPS
        ))),
    }
}

// No Debug: it carries a secret.
#[derive(Deserialize, ToSchema)]
pub struct RegisterNumber {
    /// The number's two-step verification PIN: exactly 6 digits. Never stored.
    pub pin: String,
}

#[utoipa::path(post, operation_id = "register_number", path = "/v1/numbers/{id}/register", tag = "numbers", request_body = RegisterNumber, security(("api_key" = [])),
    params(("id" = String, Path, description = "Meta's phone number id")),
    responses((status = 200, body = NumberView), (status = 409, description = "Meta's PIN lock: verify a code first; or the number was deregistered here and another workspace onboarded it", body = ErrorBody),
        (status = 422, description = "not 6 digits, or a wrong PIN (with the attempts left)", body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn register(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RegisterNumber>,
) -> Result<axum::Json<NumberView>, ApiError> {
    let pin = SixDigits::parse(&body.pin).map_err(|problem| ApiError::field("pin", problem))?;
    let registrar = Registrar { store: &state.store, vault: &state.vault, graph: &state.graph };
    let number =
        registrar.register(&caller.workspace, &id, &pin, state.clock.now()).await.map_err(registration_error)?;
    Ok(axum::Json(NumberView::from(&number)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DeregisterNumber {
    /// The number itself (its display number or phone number id): deregistering is destructive.
    pub confirm: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deregistered {
    pub number: NumberView,
    /// How to bring the number back, should this have been a mistake.
    pub recover: String,
}

#[utoipa::path(post, operation_id = "deregister_number", path = "/v1/numbers/{id}/deregister", tag = "numbers", request_body = DeregisterNumber, security(("api_key" = [])),
    params(("id" = String, Path, description = "Meta's phone number id")),
    responses((status = 200, body = Deregistered), (status = 422, description = "no or wrong confirmation", body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn deregister(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DeregisterNumber>,
) -> Result<axum::Json<Deregistered>, ApiError> {
    let registrar = Registrar { store: &state.store, vault: &state.vault, graph: &state.graph };
    let confirm = body.confirm.unwrap_or_default();
    let number =
        registrar.deregister(&caller.workspace, &id, &confirm, state.clock.now()).await.map_err(registration_error)?;
    Ok(axum::Json(Deregistered { number: NumberView::from(&number), recover: RECOVER_AFTER_DEREGISTER.into() }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RequestCode {
    /// `sms` or `voice`.
    #[schema(value_type = String)]
    pub method: CodeMethod,
    /// The code message's language (default `en_US`).
    pub language: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    pub ok: bool,
}

#[utoipa::path(post, operation_id = "request_verification_code", path = "/v1/numbers/{id}/request_code", tag = "numbers", request_body = RequestCode, security(("api_key" = [])),
    params(("id" = String, Path, description = "Meta's phone number id")),
    responses((status = 200, body = Done), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn request_code(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RequestCode>,
) -> Result<axum::Json<Done>, ApiError> {
    let registrar = Registrar { store: &state.store, vault: &state.vault, graph: &state.graph };
    let language = body.language.unwrap_or_else(|| "en_US".into());
    registrar.request_code(&caller.workspace, &id, body.method, &language).await.map_err(registration_error)?;
    Ok(axum::Json(Done { ok: true }))
}

// No Debug: it carries a secret.
#[derive(Deserialize, ToSchema)]
pub struct VerifyCode {
    /// The 6-digit code Meta sent by SMS or voice.
    pub code: String,
}

#[utoipa::path(post, operation_id = "verify_code", path = "/v1/numbers/{id}/verify_code", tag = "numbers", request_body = VerifyCode, security(("api_key" = [])),
    params(("id" = String, Path, description = "Meta's phone number id")),
    responses((status = 200, body = NumberView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn verify_code(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<VerifyCode>,
) -> Result<axum::Json<NumberView>, ApiError> {
    let code = SixDigits::parse(&body.code).map_err(|problem| ApiError::field("code", problem))?;
    let registrar = Registrar { store: &state.store, vault: &state.vault, graph: &state.graph };
    let number =
        registrar.verify_code(&caller.workspace, &id, &code, state.clock.now()).await.map_err(registration_error)?;
    Ok(axum::Json(NumberView::from(&number)))
}

/// One of the FAQ's checks for "inbound messages stopped arriving".
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckView {
    pub name: String,
    /// `pass`, `fail`, or `unknown` (not checkable from here; `fix` says where to look).
    pub verdict: String,
    pub detail: String,
    pub fix: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Diagnosis {
    /// Every check passed (unknown ones aside).
    pub healthy: bool,
    pub checks: Vec<CheckView>,
}

#[utoipa::path(get, operation_id = "diagnose_number", path = "/v1/numbers/{id}/diagnostics", tag = "numbers", security(("api_key" = [])),
    params(("id" = String, Path, description = "Meta's phone number id")),
    responses((status = 200, body = Diagnosis), (status = 404, body = ErrorBody)))]
async fn diagnostics(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<axum::Json<Diagnosis>, ApiError> {
    let number = find(&state, &caller, &id).await?;
    // Our webhook lives beside the API, behind the same host (and scheme).
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
    let local = host.is_some_and(|h| h.starts_with("127.0.0.1") || h.starts_with("localhost"));
    let scheme =
        headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or(if local { "http" } else { "https" });
    let callback = host.map(|host| format!("{scheme}://{host}/webhook"));
    let credentials = state.app_credentials().await?;
    let app = credentials.as_ref().map(|(id, secret)| (id.as_str(), secret));
    let checks = wapisnap::numbers::diagnostics::diagnose(
        &state.vault,
        &state.graph,
        &caller.workspace,
        &number,
        wapisnap::numbers::diagnostics::Expected { callback_url: callback.as_deref(), app },
        state.clock.now(),
    )
    .await;
    let verdict = |v: wapisnap::numbers::diagnostics::Verdict| {
        serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    };
    let healthy = checks.iter().all(|c| c.verdict != wapisnap::numbers::diagnostics::Verdict::Fail);
    Ok(axum::Json(Diagnosis {
        healthy,
        checks: checks
            .into_iter()
            .map(|c| CheckView { name: c.name.into(), verdict: verdict(c.verdict), detail: c.detail, fix: c.fix })
            .collect(),
    }))
}

/// What the business's browser got from Meta's Embedded Signup.
// No Debug: it carries a secret.
#[derive(Deserialize, ToSchema)]
pub struct SignupCode {
    /// The code from `FB.login` (valid for a few minutes, usable once).
    pub code: String,
    /// The WhatsApp Business Account the business chose or created.
    pub waba_id: String,
}

/// The numbers an Embedded Signup onboarded.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedUp {
    pub items: Vec<NumberView>,
    /// The WABA's numbers another workspace holds, not onboarded here (to move one, deregister
    /// it there first, then sign up again).
    pub held_elsewhere: Vec<String>,
}

#[utoipa::path(post, operation_id = "onboard_by_embedded_signup", path = "/v1/numbers/embedded-signup", tag = "numbers",
    request_body = SignupCode, security(("api_key" = [])),
    responses((status = 201, body = SignedUp), (status = 409, description = "another workspace holds every number of the WABA", body = ErrorBody), (status = 422, description = "Meta refused the code", body = ErrorBody),
        (status = 501, description = "META_APP_ID is not set", body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 503, description = "storage or the key service is unavailable; connecting again is safe", body = ErrorBody)))]
async fn embedded_signup(
    State(state): State<Shared>,
    caller: Caller,
    JsonBody(body): JsonBody<SignupCode>,
) -> Result<(StatusCode, axum::Json<SignedUp>), ApiError> {
    let waba = WabaId::parse(body.waba_id.as_str()).map_err(|e| ApiError::field("waba_id", e.reason))?;
    if body.code.trim().is_empty() {
        return Err(ApiError::field("code", "must not be empty"));
    }
    let credentials = state.app_credentials().await?;
    let unset = secrecy::SecretString::from("");
    let app = wapisnap::numbers::onboarding::AppCredentials {
        app_id: credentials.as_ref().map(|(id, _)| id.as_str()),
        app_secret: credentials.as_ref().map_or(&unset, |(_, secret)| secret),
    };
    let onboarding = Onboarding { store: &state.store, vault: &state.vault, graph: &state.graph };
    let signed_up = onboarding
        .with_signup_code(&caller.workspace, app, body.code.trim(), &waba, state.clock.now())
        .await
        .map_err(onboard_error)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(SignedUp {
            items: signed_up.onboarded.iter().map(NumberView::from).collect(),
            held_elsewhere: signed_up.held_elsewhere,
        }),
    ))
}

/// The number's throughput, as Meta set it for the number.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Throughput {
    /// Messages a second, 1 to 1,000: Meta's default is 80, and Meta raises a number to 1,000
    /// (automatically, once it qualifies); set it to what Meta allows the number. Every send of
    /// the number — broadcasts, automations, the inbox — is paced at it.
    pub mps: i64,
}

#[utoipa::path(put, operation_id = "set_number_throughput", path = "/v1/numbers/{id}/throughput", tag = "numbers", request_body = Throughput,
    security(("api_key" = [])), params(("id" = String, Path, description = "Meta's phone number id")),
    responses((status = 200, body = NumberView), (status = 404, body = ErrorBody),
        (status = 422, description = "not 1 to 1,000", body = ErrorBody)))]
async fn throughput(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Throughput>,
) -> Result<axum::Json<NumberView>, ApiError> {
    let mps = u32::try_from(body.mps)
        .ok()
        .filter(|mps| (1..=MAX_MPS).contains(mps))
        .ok_or_else(|| ApiError::field("mps", format!("must be 1 to {MAX_MPS} messages a second (Meta's most)")))?;
    let mut number = find(&state, &caller, &id).await?;
    let now = state.clock.now();
    if !state.store.set_number_throughput(&caller.workspace, number.channel, &number.account_id, mps, now).await? {
        return Err(ApiError::not_found(format!("no number {id} in this workspace")));
    }
    number.throughput_mps = Some(mps);
    number.updated_at = now;
    tracing::info!(workspace = %caller.workspace, number = %id, mps, "number throughput set");
    Ok(axum::Json(NumberView::from(&number)))
}
