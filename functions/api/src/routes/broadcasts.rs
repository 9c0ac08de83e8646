//! `/v1/broadcasts`: an approved template sent from one of the workspace's WhatsApp numbers to
//! an audience — contacts with tags, or the recipients of a CSV — now or at a scheduled time,
//! and what became of every recipient. The engine is `wapisnap::broadcasts`; this checks a
//! broadcast whole (every problem answered at once, each at its path), stores it SCHEDULED and
//! schedules its start: a one-time EventBridge Scheduler schedule that fires the broadcast
//! function, which writes the audience as send jobs (paced at the number's throughput, within
//! Meta's messaging limit, `dnd` and `do-not-send` contacts skipped with the reason).
//!
//! A CSV audience is imported as contacts first (created or updated, tags only added, like
//! `POST /v1/contacts/import`) and stored with the broadcast, normalised and de-duplicated:
//! `+1 650-555-1234` and `16505551234` are one recipient. It holds at most 10,000 rows; a
//! larger audience is imported as contacts with a tag first, then broadcast to the tag.
//!
//! A create may carry an `Idempotency-Key`: the key names the broadcast, so a retried POST
//! (a timeout, a double click) creates and sends it once.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use wapisnap::broadcasts::fanout::{Fired, schedule_name};
use wapisnap::broadcasts::report::{self, Report, tally};
use wapisnap::broadcasts::spec::{Audience, BroadcastRecord, BroadcastSpec, BroadcastState, OverLimit};
use wapisnap::contacts::{ImportError, ImportReport, RowOutcome, Tag, import_csv};
use wapisnap::domain::{AccountId, BroadcastId, Channel, ContactId, PhoneNumberId, WorkspaceId};
use wapisnap::flows::text::TextTemplate;
use wapisnap::schedules::{OneTime, create_once};
use wapisnap::store::update::{Update, s};

use crate::error::{ApiError, ErrorBody, FieldProblem};
use crate::extract::{Caller, JsonBody, QueryParams};
use crate::routes::conversations::PageQuery;
use crate::state::Shared;

resource_routes!([list, create], [show], [cancel], [report_csv]);

/// The most rows a CSV audience may hold: its import runs within the request.
pub const MAX_CSV_ROWS: usize = 10_000;
const MAX_NAME_CHARS: usize = 100;
/// How far ahead a broadcast may be scheduled.
const MAX_DAYS_AHEAD: i64 = 365;
/// A CSV's rows are imported in up to this many parts side by side, so 10,000 rows take a
/// fraction of API Gateway's 30 seconds.
const IMPORT_PARTS: usize = 8;
const MIN_PART_ROWS: usize = 250;
/// The states a broadcast can be cancelled in.
const CANCELLABLE: [BroadcastState; 3] = [BroadcastState::Scheduled, BroadcastState::Sending, BroadcastState::Deferred];

/// A broadcast as the business asks for it. The body is checked whole: a 422 names every
/// problem at once, each at its path (`name`, `account_id`, `body_parameters[1]`,
/// `audience.tags[0]`, `audience.csv`, `send_at`, ...); a field that is not one of these is
/// refused too, so a misspelt `send_at` never means "now".
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!(example_broadcast()))]
pub struct NewBroadcast {
    /// 1 to 100 characters.
    pub name: String,
    /// The WhatsApp number it goes out from: Meta's phone number id of a number connected to
    /// this workspace.
    pub account_id: String,
    /// The template's name. It must be APPROVED for the number's WhatsApp Business Account when
    /// sending starts; if it is not, the broadcast FAILS with the reason and nothing is sent.
    pub template: String,
    /// The template's language, e.g. `en_US`.
    pub language: String,
    /// The template body's `{{1}}`, `{{2}}`…, in order: each a text with contact fields and
    /// defaults (`{{name|there}}`, `{{phone}}`, or any field of the contact).
    pub body_parameters: Option<Vec<String>>,
    pub audience: AudienceInput,
    /// RFC 3339, at most a year ahead; absent or past: now. Scheduler starts it within the
    /// minute.
    pub send_at: Option<DateTime<Utc>>,
    /// `defer` (default): at Meta's messaging limit (unique customers in 24 hours, per business
    /// portfolio) sending pauses, and resumes by itself when the window has room; `skip`:
    /// recipients beyond the limit are reported as not sent.
    pub over_limit: Option<String>,
}

/// Exactly one of `tags` and `csv`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AudienceInput {
    /// WhatsApp contacts with any of these tags, as they are when sending starts. `dnd` and
    /// `do-not-send` are not audiences: their contacts never get broadcasts.
    pub tags: Option<Vec<String>>,
    /// CSV text: a header row with a `phone` column (and optionally `name`, `tags` separated by
    /// `;`), then at most 10,000 rows. Each row is imported as a contact (created or updated);
    /// rows that cannot be are skipped and reported; the same number written several ways is
    /// one recipient. For a larger audience import the contacts with a tag first
    /// (`POST /v1/contacts/import`), then broadcast to the tag.
    pub csv: Option<String>,
}

/// The example of the documentation (a unit test keeps it valid).
fn example_broadcast() -> Value {
    serde_json::json!({
        "name": "Spring sale",
        "account_id": "106540352242922",
        "template": "spring_sale",
        "language": "en_US",
        "body_parameters": ["{{name|there}}"],
        "audience": { "tags": ["vip"] },
        "send_at": "2030-03-20T09:00:00Z",
        "over_limit": "defer"
    })
}

/// Who a broadcast goes to, as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct AudienceView {
    /// `tags` or `csv`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `tags`: contacts with any of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// For `csv`: the distinct recipients stored from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients: Option<u64>,
}

/// What became of the recipients, tallied from their send jobs.
/// `accepted + failed + skipped + pending = total`, always.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportView {
    /// Every recipient once the audience is complete; before, the recipients handled so far.
    pub total: u64,
    /// Whether the fan-out went through the whole audience (every recipient has a job or was
    /// skipped).
    pub audience_complete: bool,
    /// Meta took the message (delivered and read included).
    pub accepted: u64,
    pub delivered: u64,
    pub read: u64,
    pub failed: u64,
    /// Failures by Meta's error code; `none` is a silent failure (no error from Meta).
    pub failed_by_code: BTreeMap<String, u64>,
    /// Not sent, with the reason (`dnd`, `do-not-send`, the messaging limit, cancelled ...).
    pub skipped: u64,
    pub skipped_by_reason: BTreeMap<String, u64>,
    /// Not settled yet: queued, being sent, waiting in Smart Retry, or not reached by the
    /// fan-out yet.
    pub pending: u64,
    /// Of the pending: waiting for a Smart Retry resend.
    pub in_smart_retry: u64,
    pub silent_failures: u64,
    /// Silent failures over what Meta accepted; above 5% the broadcast is flagged.
    pub silent_failure_rate: f64,
    pub flagged: bool,
    /// The message ids of the silent failures when flagged: what Meta's support asks for.
    pub silent_message_ids: Vec<String>,
}

impl From<Report> for ReportView {
    fn from(r: Report) -> Self {
        Self {
            total: r.total,
            audience_complete: r.audience_complete,
            accepted: r.accepted,
            delivered: r.delivered,
            read: r.read,
            failed: r.failed,
            failed_by_code: r.failed_by_code,
            skipped: r.skipped,
            skipped_by_reason: r.skipped_by_reason,
            pending: r.pending,
            in_smart_retry: r.in_smart_retry,
            silent_failures: r.silent_failures,
            silent_failure_rate: r.silent_failure_rate,
            flagged: r.flagged,
            silent_message_ids: r.silent_message_ids,
        }
    }
}

/// A broadcast as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BroadcastView {
    /// `bc_` and 16 hex digits.
    pub id: String,
    pub name: String,
    /// `SCHEDULED` (waiting for its time), `SENDING` (its audience is being written as send
    /// jobs), `DEFERRED` (paused at Meta's messaging limit until `resume_at`), `SENT` (every
    /// recipient has a job or was skipped; the report tells what became of them), `CANCELLED`,
    /// or `FAILED` (nothing was sent; `reason` says why).
    pub state: String,
    /// Why it FAILED or is DEFERRED.
    pub reason: Option<String>,
    /// The WhatsApp number it goes out from (Meta's phone number id).
    pub account_id: String,
    pub template: String,
    pub language: String,
    pub body_parameters: Vec<String>,
    pub audience: AudienceView,
    /// When it starts; absent: as soon as it was created.
    pub send_at: Option<DateTime<Utc>>,
    /// `defer` or `skip`.
    pub over_limit: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When sending started.
    pub started_at: Option<DateTime<Utc>>,
    /// When a DEFERRED broadcast resumes.
    pub resume_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Recipients the fan-out has handled so far (a job written, or skipped).
    pub recipients_handled: u64,
    /// Every recipient, once the fan-out went through the whole audience.
    pub audience_total: Option<u64>,
    /// What became of the recipients. Shown by `GET /v1/broadcasts/{id}` (and the create and
    /// cancel answers), not in lists: it is tallied from every recipient's send job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ReportView>,
}

fn word<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

impl BroadcastView {
    fn of(record: BroadcastRecord, report: Option<Report>) -> Self {
        let spec = record.spec;
        let audience = match spec.audience {
            Audience::Tags { tags } => AudienceView { kind: "tags".into(), tags: Some(tags), recipients: None },
            Audience::Csv { recipients } => {
                AudienceView { kind: "csv".into(), tags: None, recipients: Some(recipients) }
            }
        };
        Self {
            id: record.broadcast_id.to_string(),
            name: spec.name,
            state: word(&record.state),
            reason: record.reason,
            account_id: spec.account_id.to_string(),
            template: spec.template,
            language: spec.language,
            body_parameters: spec.body_parameters.iter().map(|p| p.as_str().to_owned()).collect(),
            audience,
            send_at: spec.send_at,
            over_limit: word(&spec.over_limit),
            created_at: record.created_at,
            updated_at: record.updated_at,
            started_at: record.started_at,
            resume_at: record.resume_at,
            cancelled_at: record.cancelled_at,
            recipients_handled: record.enumerated,
            audience_total: record.audience_total,
            report: report.map(ReportView::from),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BroadcastPage {
    /// Newest first, without their reports.
    pub items: Vec<BroadcastView>,
    /// Pass as `cursor` for the next page; absent on the last one. A page may hold fewer items than `limit`, even none, and still have a next one.
    pub next: Option<String>,
}

/// A CSV row left out of the audience.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkippedRow {
    /// 1-based, counting the header as row 1.
    pub row: usize,
    pub reason: String,
}

/// What the import of a CSV audience did.
#[derive(Debug, Serialize, ToSchema)]
pub struct CsvImportView {
    /// Data rows in the CSV.
    pub rows: usize,
    /// Distinct recipients: the broadcast's audience.
    pub recipients: usize,
    /// Rows naming a recipient another row already named (the same number, however written).
    pub duplicates: usize,
    pub contacts_created: usize,
    pub contacts_updated: usize,
    pub skipped: usize,
    /// Every skipped row, and why.
    pub skipped_rows: Vec<SkippedRow>,
}

/// A created broadcast, and for a CSV audience what its import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedBroadcast {
    #[serde(flatten)]
    pub broadcast: BroadcastView,
    /// For a CSV audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import: Option<CsvImportView>,
}

/// A CSV audience as read: its header and rows, untouched.
#[derive(Debug)]
struct CsvRows {
    headers: csv::ByteRecord,
    records: Vec<csv::ByteRecord>,
}

#[derive(Debug)]
enum DraftAudience {
    Tags(Vec<Tag>),
    Csv(CsvRows),
}

/// A broadcast that passed every check that needs no storage.
#[derive(Debug)]
struct Draft {
    name: String,
    account_id: AccountId,
    template: String,
    language: String,
    body_parameters: Vec<TextTemplate>,
    audience: DraftAudience,
    send_at: Option<DateTime<Utc>>,
    over_limit: OverLimit,
}

const FIELDS: [&str; 8] =
    ["name", "account_id", "template", "language", "body_parameters", "audience", "send_at", "over_limit"];

/// Problems found so far, each at its path.
#[derive(Default)]
struct Problems(Vec<FieldProblem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.0.push(FieldProblem { field: field.into(), problem: problem.into() });
    }

    /// A required string, trimmed.
    fn text<'a>(&mut self, body: &'a Value, field: &str) -> Option<&'a str> {
        match body.get(field) {
            None | Some(Value::Null) => {
                self.add(field, "is required");
                None
            }
            Some(Value::String(text)) if text.trim().is_empty() => {
                self.add(field, "must not be empty");
                None
            }
            Some(Value::String(text)) => Some(text.trim()),
            Some(_) => {
                self.add(field, "must be a string");
                None
            }
        }
    }
}

/// The body checked without storage: a draft, or every problem.
fn validate(body: &Value, now: DateTime<Utc>) -> Result<Draft, Vec<FieldProblem>> {
    let mut problems = Problems::default();
    let Some(object) = body.as_object() else {
        problems.add("body", "must be a JSON object");
        return Err(problems.0);
    };
    for unknown in object.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        problems.add(unknown.as_str(), format!("is not a field of a broadcast (they are: {})", FIELDS.join(", ")));
    }
    let name = problems.text(body, "name").filter(|name| {
        let fits = name.chars().count() <= MAX_NAME_CHARS;
        if !fits {
            problems.add("name", format!("must be at most {MAX_NAME_CHARS} characters"));
        }
        fits
    });
    let account_id = problems.text(body, "account_id").and_then(|raw| {
        match PhoneNumberId::parse(raw).ok().and_then(|id| AccountId::parse(id.as_str()).ok()) {
            Some(id) => Some(id),
            None => {
                problems.add("account_id", "must be Meta's phone number id of a WhatsApp number (digits)");
                None
            }
        }
    });
    let template = problems.text(body, "template").filter(|t| {
        let fits = t.chars().count() <= 512;
        if !fits {
            problems.add("template", "must be at most 512 characters");
        }
        fits
    });
    let language = problems.text(body, "language").filter(|l| {
        let fits = l.chars().count() <= 20 && !l.contains(char::is_whitespace);
        if !fits {
            problems.add("language", "must be a language code such as en_US");
        }
        fits
    });
    let body_parameters = body_parameters(body.get("body_parameters"), &mut problems);
    let audience = audience(body.get("audience"), &mut problems);
    let send_at = send_at(body.get("send_at"), now, &mut problems);
    let over_limit = match body.get("over_limit") {
        None | Some(Value::Null) => Some(OverLimit::Defer),
        Some(Value::String(word)) if word == "defer" => Some(OverLimit::Defer),
        Some(Value::String(word)) if word == "skip" => Some(OverLimit::Skip),
        Some(_) => {
            problems.add("over_limit", "must be \"defer\" or \"skip\"");
            None
        }
    };
    match (name, account_id, template, language, body_parameters, audience, send_at, over_limit) {
        (
            Some(name),
            Some(account_id),
            Some(template),
            Some(language),
            Some(body_parameters),
            Some(audience),
            Some(send_at),
            Some(over_limit),
        ) if problems.0.is_empty() => Ok(Draft {
            name: name.to_owned(),
            account_id,
            template: template.to_owned(),
            language: language.to_owned(),
            body_parameters,
            audience,
            send_at,
            over_limit,
        }),
        _ => Err(problems.0),
    }
}

fn body_parameters(value: Option<&Value>, problems: &mut Problems) -> Option<Vec<TextTemplate>> {
    let items = match value {
        None | Some(Value::Null) => return Some(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            problems.add("body_parameters", "must be a list of texts");
            return None;
        }
    };
    let mut parsed = Vec::new();
    let mut fine = true;
    for (i, item) in items.iter().enumerate() {
        let field = format!("body_parameters[{i}]");
        match item.as_str().map(TextTemplate::parse) {
            Some(Ok(parameter)) => parsed.push(parameter),
            Some(Err(problem)) => {
                problems.add(field, problem);
                fine = false;
            }
            None => {
                problems.add(field, "must be a text");
                fine = false;
            }
        }
    }
    fine.then_some(parsed)
}

fn audience(value: Option<&Value>, problems: &mut Problems) -> Option<DraftAudience> {
    let object = match value {
        None | Some(Value::Null) => {
            problems.add("audience", "is required: {\"tags\": [...]} or {\"csv\": \"phone,name,tags\\n...\"}");
            return None;
        }
        Some(Value::Object(object)) => object,
        Some(_) => {
            problems.add("audience", "must be {\"tags\": [...]} or {\"csv\": \"...\"}");
            return None;
        }
    };
    for unknown in object.keys().filter(|k| !matches!(k.as_str(), "tags" | "csv")) {
        problems.add(format!("audience.{unknown}"), "is not a kind of audience (they are: tags, csv)");
    }
    match (object.get("tags"), object.get("csv")) {
        (Some(_), Some(_)) => {
            problems.add("audience", "must have either `tags` or `csv`, not both");
            None
        }
        (Some(tags), None) => audience_tags(tags, problems).map(DraftAudience::Tags),
        (None, Some(Value::String(text))) => match csv_rows(text) {
            Ok(rows) => Some(DraftAudience::Csv(rows)),
            Err(problem) => {
                problems.add("audience.csv", problem);
                None
            }
        },
        (None, Some(_)) => {
            problems.add("audience.csv", "must be the CSV as a text");
            None
        }
        (None, None) => {
            problems.add("audience", "must have `tags` or `csv`");
            None
        }
    }
}

fn audience_tags(value: &Value, problems: &mut Problems) -> Option<Vec<Tag>> {
    let Some(items) = value.as_array() else {
        problems.add("audience.tags", "must be a list of tags");
        return None;
    };
    if items.is_empty() {
        problems.add("audience.tags", "must hold at least one tag");
        return None;
    }
    let mut tags = BTreeSet::new();
    let mut fine = true;
    for (i, item) in items.iter().enumerate() {
        let field = format!("audience.tags[{i}]");
        match item.as_str().map(Tag::parse) {
            Some(Ok(tag)) if tag.is_reserved() => {
                problems.add(field, format!("`{}` contacts never get broadcasts: it is not an audience", tag.as_str()));
                fine = false;
            }
            Some(Ok(tag)) => {
                tags.insert(tag);
            }
            Some(Err(problem)) => {
                problems.add(field, problem);
                fine = false;
            }
            None => {
                problems.add(field, "must be a text");
                fine = false;
            }
        }
    }
    fine.then(|| tags.into_iter().collect())
}

/// The CSV's header and rows, read but not imported: the header must name a `phone` column,
/// and there must be 1 to [`MAX_CSV_ROWS`] rows.
fn csv_rows(text: &str) -> Result<CsvRows, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers = reader.byte_headers().map_err(|e| format!("is not readable CSV: {e}"))?.clone();
    if !headers.iter().any(|h| String::from_utf8_lossy(h).trim().eq_ignore_ascii_case("phone")) {
        return Err("needs a header row with a `phone` column (and optionally `name`, `tags`)".into());
    }
    let mut records = Vec::new();
    for record in reader.byte_records() {
        records.push(record.map_err(|e| format!("is not readable CSV: {e}"))?);
        if records.len() > MAX_CSV_ROWS {
            return Err(format!(
                "has more than {MAX_CSV_ROWS} rows: import a larger audience as contacts with a tag first \
                 (POST /v1/contacts/import), then broadcast to the tag"
            ));
        }
    }
    if records.is_empty() {
        return Err("has no rows after its header".into());
    }
    Ok(CsvRows { headers, records })
}

/// `Some(None)`: now; `Some(Some(at))`: later; `None`: a problem.
fn send_at(value: Option<&Value>, now: DateTime<Utc>, problems: &mut Problems) -> Option<Option<DateTime<Utc>>> {
    let raw = match value {
        None | Some(Value::Null) => return Some(None),
        Some(Value::String(raw)) => raw,
        Some(_) => {
            problems.add("send_at", "must be an RFC 3339 time, e.g. 2030-03-20T09:00:00Z");
            return None;
        }
    };
    let Ok(at) = DateTime::parse_from_rfc3339(raw.trim()) else {
        problems.add("send_at", "must be an RFC 3339 time with its offset, e.g. 2030-03-20T09:00:00Z");
        return None;
    };
    let at = at.with_timezone(&Utc);
    if at > now + Duration::days(MAX_DAYS_AHEAD) {
        problems.add("send_at", format!("must be at most {MAX_DAYS_AHEAD} days ahead"));
        return None;
    }
    Some((at > now).then_some(at))
}

/// The CSV in parts of whole rows (each with the header), with the rows before each part.
fn import_parts(rows: &CsvRows) -> Vec<(usize, Vec<u8>)> {
    let per_part = rows.records.len().div_ceil(IMPORT_PARTS).max(MIN_PART_ROWS);
    rows.records
        .chunks(per_part)
        .enumerate()
        .map(|(i, part)| {
            let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
            writer.write_byte_record(&rows.headers).expect("writes to memory");
            for record in part {
                writer.write_byte_record(record).expect("writes to memory");
            }
            (i * per_part, writer.into_inner().expect("writes to memory"))
        })
        .collect()
}

/// Imports the CSV's rows as contacts (its parts side by side), numbered as in the whole CSV.
async fn import_audience(
    state: &Shared,
    workspace: &WorkspaceId,
    rows: &CsvRows,
    now: DateTime<Utc>,
) -> Result<ImportReport, ApiError> {
    let parts = import_parts(rows);
    let imports = parts.iter().map(|(before, bytes)| async move {
        import_csv(&state.store, workspace, bytes, now).await.map(|report| (*before, report))
    });
    let mut whole = ImportReport::default();
    for imported in futures_util::future::join_all(imports).await {
        let (before, part) = imported.map_err(|e| match e {
            ImportError::Store(e) => ApiError::from(e),
            other => ApiError::field("audience.csv", other.to_string()),
        })?;
        whole.created += part.created;
        whole.updated += part.updated;
        whole.skipped += part.skipped;
        whole.rows.extend(part.rows.into_iter().map(|mut row| {
            row.row += before;
            row
        }));
    }
    Ok(whole)
}

/// Stores a CSV audience, its parts side by side (each write is idempotent).
async fn store_audience(
    state: &Shared,
    workspace: &WorkspaceId,
    id: &BroadcastId,
    recipients: &[ContactId],
) -> Result<(), wapisnap::store::StoreError> {
    let per_part = recipients.len().div_ceil(IMPORT_PARTS).max(MIN_PART_ROWS);
    let writes = recipients.chunks(per_part).map(|part| state.store.put_broadcast_audience(workspace, id, part));
    futures_util::future::try_join_all(writes).await.map(|_| ())
}

/// The distinct recipients of an import (its numbers normalised), and what it did.
fn recipients_of(report: ImportReport) -> (Vec<ContactId>, CsvImportView) {
    let mut recipients = BTreeSet::new();
    let mut skipped_rows = Vec::new();
    for row in &report.rows {
        match &row.outcome {
            RowOutcome::Created { contact_id } | RowOutcome::Updated { contact_id } => {
                if let Ok(id) = ContactId::for_channel(Channel::WhatsApp, contact_id) {
                    recipients.insert(id);
                }
            }
            RowOutcome::Skipped { reason } => skipped_rows.push(SkippedRow { row: row.row, reason: reason.clone() }),
        }
    }
    let view = CsvImportView {
        rows: report.rows.len(),
        recipients: recipients.len(),
        duplicates: report.created + report.updated - recipients.len(),
        contacts_created: report.created,
        contacts_updated: report.updated,
        skipped: report.skipped,
        skipped_rows,
    };
    (recipients.into_iter().collect(), view)
}

/// `bc_` and 64 random bits: unique without a counter to coordinate.
fn new_id() -> BroadcastId {
    BroadcastId::parse(format!("bc_{:016x}", rand::random::<u64>())).expect("hex is a valid id")
}

/// The request's `Idempotency-Key`, if it sent one: 1 to 128 visible characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else { return Ok(None) };
    match raw.to_str().map(str::trim) {
        Ok(key) if !key.is_empty() && key.len() <= 128 => Ok(Some(key.to_owned())),
        _ => Err(ApiError::bad_request("the Idempotency-Key header must be 1 to 128 visible characters")),
    }
}

/// The broadcast a workspace's `Idempotency-Key` names: the same key, the same broadcast.
fn keyed_id(workspace: &WorkspaceId, key: &str) -> BroadcastId {
    let hash = hex::encode(Sha256::digest(format!("{workspace}/{key}")));
    BroadcastId::parse(format!("bc_{}", &hash[..16])).expect("hex is a valid id")
}

/// Whether a stored broadcast is what the request asks for (a CSV's rows are not kept, so two
/// CSV audiences count as the same; a past `send_at` has become "now" and is not compared).
fn same_request(stored: &BroadcastSpec, asked: &BroadcastSpec) -> bool {
    let audience = match (&stored.audience, &asked.audience) {
        (Audience::Tags { tags }, Audience::Tags { tags: asked }) => tags == asked,
        (Audience::Csv { .. }, Audience::Csv { .. }) => true,
        _ => false,
    };
    audience
        && stored.name == asked.name
        && stored.account_id == asked.account_id
        && stored.template == asked.template
        && stored.language == asked.language
        && stored.body_parameters == asked.body_parameters
        && stored.over_limit == asked.over_limit
}

/// A retried create: the broadcast its key made, or 409 when the key made another one.
async fn replay(
    state: &Shared,
    existing: BroadcastRecord,
    asked: &BroadcastSpec,
) -> Result<(StatusCode, axum::Json<CreatedBroadcast>), ApiError> {
    if !same_request(&existing.spec, asked) {
        return Err(ApiError::conflict(format!(
            "this Idempotency-Key created broadcast {} with another body; use a new key for a new broadcast",
            existing.broadcast_id
        )));
    }
    let broadcast = with_report(state, existing).await?;
    Ok((StatusCode::OK, axum::Json(CreatedBroadcast { broadcast, import: None })))
}

fn missing(id: &str) -> ApiError {
    ApiError::not_found(format!("no broadcast {id} in this workspace"))
}

/// A malformed id names no broadcast: 404, like an unknown or another workspace's id.
fn broadcast_id(raw: &str) -> Result<BroadcastId, ApiError> {
    BroadcastId::parse(raw).map_err(|_| missing(raw))
}

async fn existing(state: &Shared, caller: &Caller, id: &BroadcastId) -> Result<BroadcastRecord, ApiError> {
    state.store.broadcast(&caller.workspace, id).await?.ok_or_else(|| missing(id))
}

/// The broadcast with its report, tallied from its recipients' jobs now.
async fn with_report(state: &Shared, record: BroadcastRecord) -> Result<BroadcastView, ApiError> {
    let lines = state.store.broadcast_jobs(&record.workspace_id, record.broadcast_id.as_str()).await?;
    let report = tally(&record, &lines);
    Ok(BroadcastView::of(record, Some(report)))
}

fn unavailable(message: String) -> ApiError {
    let mut error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
    error.retry_after = Some(5);
    error
}

/// A broadcast that cannot go out as stored: FAILED with the reason, so it is never silently
/// waiting for a start that will not come.
async fn fail(state: &Shared, record: &BroadcastRecord, reason: &str) {
    let update = Update::new().set("state", s("FAILED")).set("reason", s(reason));
    let (ws, id) = (&record.workspace_id, &record.broadcast_id);
    match state.store.move_broadcast(ws, id, &[BroadcastState::Scheduled], update, state.clock.now()).await {
        Ok(_) => {}
        Err(error) => tracing::error!(%error, workspace = %ws, broadcast = %id, reason,
            "the broadcast could not be marked FAILED; it stays SCHEDULED without a start"),
    }
}

/// The one-time schedule that fires the broadcast function for the broadcast at `at`.
async fn schedule_start(state: &Shared, record: &BroadcastRecord, at: DateTime<Utc>) -> Result<(), String> {
    schedule_run(state, record, at, "start").await
}

/// A one-time schedule firing the broadcast function at `at`; `purpose` names it.
async fn schedule_run(
    state: &Shared,
    record: &BroadcastRecord,
    at: DateTime<Utc>,
    purpose: &str,
) -> Result<(), String> {
    let config = &state.broadcasts;
    let name = schedule_name(&record.workspace_id, &record.broadcast_id, purpose);
    let fired = Fired { workspace_id: record.workspace_id.clone(), broadcast_id: record.broadcast_id.clone() };
    let schedule = OneTime {
        name: &name,
        group: &config.group_name,
        at,
        target_arn: &config.function_arn,
        role_arn: &config.role_arn,
        input: serde_json::to_string(&fired).expect("ids serialize"),
        dead_letter_arn: config.dead_letter_arn.as_deref(),
        spread_minutes: None,
    };
    create_once(&state.scheduler, schedule).await
}

#[utoipa::path(get, operation_id = "list_broadcasts", path = "/v1/broadcasts", tag = "broadcasts", security(("api_key" = [])), params(PageQuery),
    responses((status = 200, description = "newest first, without their reports", body = BroadcastPage), (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<Shared>,
    caller: Caller,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<axum::Json<BroadcastPage>, ApiError> {
    let found = state
        .store
        .broadcasts_page(&caller.workspace, page.limit.unwrap_or(25), page.cursor.as_deref())
        .await?
        .map_err(|_| ApiError::field("cursor", "is not a cursor this list gave out"))?;
    Ok(axum::Json(BroadcastPage {
        items: found.items.into_iter().map(|record| BroadcastView::of(record, None)).collect(),
        next: found.next,
    }))
}

#[utoipa::path(post, operation_id = "create_broadcast", path = "/v1/broadcasts", tag = "broadcasts", request_body = NewBroadcast,
    security(("api_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "recommended: a retried POST with the same key creates (and sends) the broadcast once, and answers it again with 200")),
    responses((status = 201, description = "stored SCHEDULED, its start scheduled (now or at `send_at`); for a CSV audience, what its import did", body = CreatedBroadcast),
        (status = 200, description = "the broadcast this Idempotency-Key already created (one that an earlier request left part-way, stored but not scheduled, is finished first)", body = CreatedBroadcast),
        (status = 400, description = "the body is not JSON, or the Idempotency-Key is not 1 to 128 characters", body = ErrorBody),
        (status = 409, description = "this Idempotency-Key created a broadcast with another body", body = ErrorBody),
        (status = 422, description = "every problem, each at its path; `account_id` when the number is not connected to this workspace; `audience.csv` when no row holds a valid number", body = ErrorBody),
        (status = 503, description = "its start could not be scheduled: the broadcast is FAILED (with the reason) and nothing will be sent; create it again. For a retry finishing what an earlier request left part-way: nothing was changed; send the same request again", body = ErrorBody)))]
async fn create(
    State(state): State<Shared>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, axum::Json<CreatedBroadcast>), ApiError> {
    let now = state.clock.now();
    let ws = &caller.workspace;
    let key = idempotency_key(&headers)?;
    let id = key.as_deref().map_or_else(new_id, |key| keyed_id(ws, key));
    let mut problems = Vec::new();
    let draft = validate(&body, now).map_err(|found| problems = found).ok();
    let account = body.get("account_id").and_then(Value::as_str).map(str::trim);
    if let Some(account) = account.and_then(|a| PhoneNumberId::parse(a).ok())
        && state.store.number(ws, Channel::WhatsApp, account.as_str()).await?.is_none()
    {
        problems.push(FieldProblem {
            field: "account_id".into(),
            problem: format!("{account} is not a WhatsApp number connected to this workspace"),
        });
    }
    let Some(draft) = draft.filter(|_| problems.is_empty()) else { return Err(ApiError::invalid(problems)) };
    let mut spec = BroadcastSpec {
        name: draft.name,
        account_id: draft.account_id,
        template: draft.template,
        language: draft.language,
        body_parameters: draft.body_parameters,
        audience: match &draft.audience {
            DraftAudience::Tags(tags) => Audience::Tags { tags: tags.iter().map(|t| t.as_str().to_owned()).collect() },
            // Counted once imported.
            DraftAudience::Csv(_) => Audience::Csv { recipients: 0 },
        },
        send_at: draft.send_at,
        over_limit: draft.over_limit,
    };
    // A broadcast this key created already is answered again. One still SCHEDULED without its
    // start schedule was left by a first request that stopped part-way (a crash, a timeout):
    // it is finished below (its recipients stored, its start scheduled: both safe to repeat).
    let resumed = match key {
        Some(_) => match state.store.broadcast(ws, &id).await? {
            Some(existing) if stopped_part_way(&state, &existing, &spec).await => Some(existing),
            Some(existing) => return replay(&state, existing, &spec).await,
            None => None,
        },
        None => None,
    };

    // The CSV's contacts are imported only once everything else is right.
    let (recipients, import) = match draft.audience {
        DraftAudience::Tags(_) => (Vec::new(), None),
        DraftAudience::Csv(rows) => {
            let (recipients, import) = recipients_of(import_audience(&state, ws, &rows, now).await?);
            if recipients.is_empty() {
                let reasons: Vec<String> =
                    import.skipped_rows.iter().take(5).map(|r| format!("row {}: {}", r.row, r.reason)).collect();
                let more = if import.skipped > 5 { "; ..." } else { "" };
                let problem = format!("holds no valid recipient ({}{more})", reasons.join("; "));
                return Err(ApiError::field("audience.csv", problem));
            }
            spec.audience = Audience::Csv { recipients: recipients.len() as u64 };
            (recipients, Some(import))
        }
    };
    let resuming = resumed.is_some();
    let record = match resumed {
        Some(existing) => existing,
        None => {
            let fresh = BroadcastRecord::scheduled(id.clone(), ws.clone(), spec, now);
            match store_new(&state, &fresh).await? {
                None => fresh,
                Some(existing) if key.is_some() => return replay(&state, existing, &fresh.spec).await,
                Some(_) => return Err(id_taken()),
            }
        }
    };
    // Stored before its start is scheduled, so the fan-out never finds it missing.
    if !recipients.is_empty()
        && let Err(error) = store_audience(&state, ws, &id, &recipients).await
    {
        tracing::error!(%error, workspace = %ws, broadcast = %id, "a CSV audience could not be stored");
        if resuming {
            return Err(unavailable_to_finish(&id));
        }
        fail(
            &state,
            &record,
            "its recipients could not be stored; nothing was sent: create it again (with a new Idempotency-Key)",
        )
        .await;
        return Err(unavailable(format!(
            "broadcast {id} could not store its recipients; it is FAILED and nothing will be sent: create it again (with a new Idempotency-Key)"
        )));
    }
    let at = record.spec.send_at.unwrap_or(now).max(now);
    if let Err(error) = schedule_start(&state, &record, at).await {
        tracing::error!(%error, workspace = %ws, broadcast = %id, "a broadcast's start could not be scheduled");
        if resuming {
            return Err(unavailable_to_finish(&id));
        }
        fail(&state, &record, "its start could not be scheduled (EventBridge Scheduler refused or did not answer); nothing was sent: create it again (with a new Idempotency-Key)").await;
        return Err(unavailable(format!(
            "broadcast {id} could not be scheduled; it is FAILED and nothing will be sent: create it again (with a new Idempotency-Key)"
        )));
    }
    tracing::info!(workspace = %ws, broadcast = %id, %at, "broadcast scheduled");
    let (answer, broadcast) = if resuming {
        (StatusCode::OK, with_report(&state, record).await?)
    } else {
        let report = tally(&record, &[]);
        (StatusCode::CREATED, BroadcastView::of(record, Some(report)))
    };
    Ok((answer, axum::Json(CreatedBroadcast { broadcast, import })))
}

fn id_taken() -> ApiError {
    ApiError::internal("a new broadcast id was already taken; nothing was created, try again")
}

/// Whether a broadcast this key created was left by a first request that stopped part-way:
/// the same request, still SCHEDULED, and its start not scheduled. When Scheduler cannot say,
/// it is taken as finished (answered again, changing nothing).
async fn stopped_part_way(state: &Shared, existing: &BroadcastRecord, asked: &BroadcastSpec) -> bool {
    if existing.state != BroadcastState::Scheduled || !same_request(&existing.spec, asked) {
        return false;
    }
    let start = schedule_name(&existing.workspace_id, &existing.broadcast_id, "start");
    matches!(wapisnap::schedules::exists(&state.scheduler, &state.broadcasts.group_name, &start).await, Ok(false))
}

/// A first request's broadcast that this retry could not finish: nothing is changed, and the
/// same request can be sent again.
fn unavailable_to_finish(id: &BroadcastId) -> ApiError {
    unavailable(format!(
        "broadcast {id} was stored by an earlier request with this Idempotency-Key that stopped part-way, and it could not be finished now; send the same request again"
    ))
}

/// Stores a new broadcast; `Some`: the broadcast that had taken its id (another request with
/// the same Idempotency-Key). A write refused by its own first try (made by DynamoDB, its answer
/// lost) has stored it: the record found is this one, made at this very instant.
async fn store_new(state: &Shared, record: &BroadcastRecord) -> Result<Option<BroadcastRecord>, ApiError> {
    match state.store.create_broadcast_or_existing(record).await? {
        None => Ok(None),
        Some(existing) if existing.created_at == record.created_at && same_request(&existing.spec, &record.spec) => {
            Ok(None)
        }
        Some(existing) => Ok(Some(existing)),
    }
}

#[utoipa::path(get, operation_id = "show_broadcast", path = "/v1/broadcasts/{id}", tag = "broadcasts", security(("api_key" = [])),
    params(("id" = String, Path, description = "broadcast id (`bc_…`)")),
    responses((status = 200, description = "with its report, tallied from its recipients' send jobs", body = BroadcastView), (status = 404, body = ErrorBody)))]
async fn show(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<BroadcastView>, ApiError> {
    let id = broadcast_id(&id)?;
    let record = existing(&state, &caller, &id).await?;
    Ok(axum::Json(with_report(&state, record).await?))
}

#[utoipa::path(post, operation_id = "cancel_broadcast", path = "/v1/broadcasts/{id}/cancel", tag = "broadcasts", security(("api_key" = [])),
    params(("id" = String, Path, description = "broadcast id (`bc_…`)")),
    responses((status = 200, description = "CANCELLED: no new send starts; the recipients not sent yet are reported skipped (cancelled)", body = BroadcastView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "it is SENT, FAILED or CANCELLED already", body = ErrorBody)))]
async fn cancel(
    State(state): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<BroadcastView>, ApiError> {
    let id = broadcast_id(&id)?;
    let now = state.clock.now();
    let update = Update::new()
        .set("state", s("CANCELLED"))
        .set("cancelled_at", s(now.to_rfc3339()))
        .remove("resume_at")
        .remove("reason");
    let moved = state.store.move_broadcast(&caller.workspace, &id, &CANCELLABLE, update, now).await?;
    let record = existing(&state, &caller, &id).await?;
    if !moved {
        return Err(ApiError::conflict(format!(
            "broadcast {id} is {} already: only a SCHEDULED, SENDING or DEFERRED broadcast can be cancelled",
            word(&record.state)
        )));
    }
    tracing::info!(workspace = %caller.workspace, broadcast = %id, "broadcast cancelled");
    // Account for the rest of the audience now (each skipped, "cancelled"), not at the
    // broadcast's time or its deferred resumption. If this schedule cannot be made, the
    // original one still does it later: the cancel itself stands either way.
    if let Err(reason) = schedule_run(&state, &record, now, "cancel").await {
        tracing::warn!(workspace = %caller.workspace, broadcast = %id, %reason, "cancel: the wrap-up run was not scheduled");
    }
    Ok(axum::Json(with_report(&state, record).await?))
}

#[utoipa::path(get, operation_id = "broadcast_report_csv", path = "/v1/broadcasts/{id}/report.csv", tag = "broadcasts", security(("api_key" = [])),
    params(("id" = String, Path, description = "broadcast id (`bc_…`)")),
    responses((status = 200, description = "one line per recipient: `recipient,outcome,error_code,reason,message_id`; outcome is accepted, delivered, read, failed, skipped, in_smart_retry or pending",
            content_type = "text/csv", body = String),
        (status = 404, body = ErrorBody)))]
async fn report_csv(State(state): State<Shared>, caller: Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = broadcast_id(&id)?;
    let record = existing(&state, &caller, &id).await?;
    let lines = state.store.broadcast_jobs(&caller.workspace, record.broadcast_id.as_str()).await?;
    let disposition = format!("attachment; filename=\"{id}.csv\"");
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, disposition)],
        report::csv(&lines),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    fn fields(problems: Vec<FieldProblem>) -> Vec<String> {
        problems.into_iter().map(|f| f.field).collect()
    }

    #[test]
    fn the_documented_example_is_a_valid_broadcast() {
        let draft = validate(&example_broadcast(), now()).expect("the example validates");
        assert_eq!((draft.name.as_str(), draft.template.as_str()), ("Spring sale", "spring_sale"));
        assert!(matches!(draft.audience, DraftAudience::Tags(ref tags) if tags.len() == 1));
        assert_eq!(draft.send_at, Some("2030-03-20T09:00:00Z".parse().unwrap()));
        assert_eq!(draft.over_limit, OverLimit::Defer);
    }

    #[test]
    fn every_problem_is_answered_at_once_at_its_path() {
        let body = serde_json::json!({
            "name": "x".repeat(101),
            "account_id": "not-a-number",
            "template": " ",
            "body_parameters": ["{{name", 7],
            "audience": { "tags": ["vip", "has space", "DND"] },
            "send_at": "tomorrow",
            "over_limit": "wait",
            "sendAt": "2030-01-02T00:00:00Z"
        });
        let found = fields(validate(&body, now()).unwrap_err());
        for path in [
            "name",
            "account_id",
            "template",
            "language",
            "body_parameters[0]",
            "body_parameters[1]",
            "audience.tags[1]",
            "audience.tags[2]",
            "send_at",
            "over_limit",
            "sendAt",
        ] {
            assert!(found.contains(&path.to_owned()), "{path} in {found:?}");
        }
    }

    #[test]
    fn an_audience_is_tags_or_a_csv() {
        let with = |audience: Value| {
            let mut body = example_broadcast();
            body["audience"] = audience;
            validate(&body, now()).map_err(fields)
        };
        assert_eq!(with(serde_json::json!({ "tags": [] })).unwrap_err(), ["audience.tags"]);
        assert_eq!(with(serde_json::json!({ "tags": ["a"], "csv": "phone\n1" })).unwrap_err(), ["audience"]);
        assert_eq!(with(serde_json::json!({})).unwrap_err(), ["audience"]);
        assert_eq!(with(serde_json::json!({ "csv": "name\nAna" })).unwrap_err(), ["audience.csv"]);
        assert_eq!(with(serde_json::json!({ "csv": "phone,name\n" })).unwrap_err(), ["audience.csv"]);
        let big = format!("phone\n{}", "16505551234\n".repeat(MAX_CSV_ROWS + 1));
        assert_eq!(with(serde_json::json!({ "csv": big })).unwrap_err(), ["audience.csv"]);
        let fits = format!("phone\n{}", "16505551234\n".repeat(MAX_CSV_ROWS));
        assert!(with(serde_json::json!({ "csv": fits })).is_ok());
        let tags = with(serde_json::json!({ "tags": ["VIP", "vip", "gold"] })).unwrap();
        let DraftAudience::Tags(tags) = tags.audience else { panic!("tags") };
        assert_eq!(tags.iter().map(Tag::as_str).collect::<Vec<_>>(), ["gold", "vip"], "normalised, once each");
    }

    #[test]
    fn a_past_send_at_means_now_and_more_than_a_year_ahead_is_refused() {
        let at = |raw: &str| {
            let mut body = example_broadcast();
            body["send_at"] = serde_json::json!(raw);
            validate(&body, now()).map(|d| d.send_at).map_err(fields)
        };
        assert_eq!(at("2029-12-31T23:00:00Z").unwrap(), None);
        assert_eq!(at("2030-01-01T02:00:00+01:00").unwrap(), Some("2030-01-01T01:00:00Z".parse().unwrap()));
        assert_eq!(at("2031-06-01T00:00:00Z").unwrap_err(), ["send_at"]);
        assert_eq!(at("2030-01-01 10:00").unwrap_err(), ["send_at"]);
    }

    #[test]
    fn a_csv_is_imported_in_parts_numbered_as_the_whole() {
        let text =
            format!("phone,name\n{}", (0..1000).map(|i| format!("1650555{i:04},\"A, {i}\"\n")).collect::<String>());
        let rows = csv_rows(&text).unwrap();
        let parts = import_parts(&rows);
        assert_eq!(parts.len(), 4, "at least 250 rows a part");
        assert_eq!(parts.iter().map(|(before, _)| *before).collect::<Vec<_>>(), [0, 250, 500, 750]);
        let second = String::from_utf8(parts[1].1.clone()).unwrap();
        assert!(second.starts_with("phone,name\n16505550250,\"A, 250\"\n"), "{}", &second[..60]);
        assert_eq!(import_parts(&csv_rows("phone\n1\n2").unwrap()).len(), 1);
    }

    #[test]
    fn an_idempotency_key_names_one_broadcast_per_workspace() {
        let (acme, globex) = (WorkspaceId::parse("acme").unwrap(), WorkspaceId::parse("globex").unwrap());
        assert_eq!(keyed_id(&acme, "spring-1"), keyed_id(&acme, "spring-1"));
        assert_ne!(keyed_id(&acme, "spring-1"), keyed_id(&acme, "spring-2"));
        assert_ne!(keyed_id(&acme, "spring-1"), keyed_id(&globex, "spring-1"));
        assert!(keyed_id(&acme, "k").strip_prefix("bc_").is_some_and(|hex| hex.len() == 16));
        let mut headers = HeaderMap::new();
        assert_eq!(idempotency_key(&headers).unwrap(), None);
        headers.insert("idempotency-key", " spring-1 ".parse().unwrap());
        assert_eq!(idempotency_key(&headers).unwrap().as_deref(), Some("spring-1"));
        headers.insert("idempotency-key", "x".repeat(129).parse().unwrap());
        assert_eq!(idempotency_key(&headers).unwrap_err().status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn the_same_number_written_three_ways_is_one_recipient() {
        let row = |row, outcome| wapisnap::contacts::RowReport { row, outcome };
        let report = ImportReport {
            created: 1,
            updated: 2,
            skipped: 1,
            rows: vec![
                row(2, RowOutcome::Created { contact_id: "16505551234".into() }),
                row(3, RowOutcome::Updated { contact_id: "16505551234".into() }),
                row(4, RowOutcome::Updated { contact_id: "16505551234".into() }),
                row(5, RowOutcome::Skipped { reason: "phone \"call me\" must be a phone number".into() }),
            ],
        };
        let (recipients, view) = recipients_of(report);
        assert_eq!(recipients.len(), 1);
        assert_eq!((view.rows, view.recipients, view.duplicates, view.skipped), (4, 1, 2, 1));
        assert_eq!(view.skipped_rows[0].row, 5);
    }
}
