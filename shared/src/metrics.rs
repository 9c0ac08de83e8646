//! Metrics: CloudWatch Embedded Metric Format through the `metrics` facade and the
//! `metrics_cloudwatch_embedded` exporter, set up once per process and flushed to stdout after
//! each invocation (CloudWatch Logs turns the JSON line into metrics; no API call, no agent).
//!
//! Every metric is named here, with its one dimension; dimension values are outcomes, states,
//! Meta error codes and ladders — never a workspace's customer data (no phone number, no text).
//! `infra/template.yaml`'s alarms and dashboard read these names.

use std::sync::OnceLock;

use metrics_cloudwatch_embedded::Collector;

pub const NAMESPACE: &str = "wapisnap";

static COLLECTOR: OnceLock<Option<&'static Collector>> = OnceLock::new();

/// Installs the recorder (once; later calls are no-ops) with the function's name as a property
/// of every record.
pub fn init(function: &str) {
    COLLECTOR.get_or_init(|| {
        match metrics_cloudwatch_embedded::Builder::new().cloudwatch_namespace(NAMESPACE).init() {
            Ok(collector) => {
                collector.set_property("function", function.to_owned());
                Some(collector)
            }
            Err(error) => {
                // Another recorder is installed (tests): metrics go there.
                tracing::debug!(%error, "metrics recorder not installed");
                None
            }
        }
    });
}

/// Writes what was counted since the last flush as EMF lines to `writer`.
pub fn flush_to(writer: impl std::io::Write) {
    if let Some(Some(collector)) = COLLECTOR.get()
        && let Err(error) = collector.flush(writer)
    {
        tracing::warn!(%error, "metrics not flushed");
    }
}

/// Writes what was counted since the last flush to stdout, where Lambda sends it to
/// CloudWatch Logs; call it at the end of each invocation.
pub fn flush() {
    flush_to(std::io::stdout().lock());
}

fn count(name: &'static str, dimension: &'static str, value: String) {
    metrics::counter!(name, dimension => value).increment(1);
}

/// A webhook POST: `accepted`, `bad_signature`, `too_large` or `malformed`.
pub fn webhook_delivery(outcome: &'static str) {
    count("WebhookDeliveries", "Outcome", outcome.to_owned());
}

/// An event kept as unrouted (an unknown number, field or object).
pub fn unrouted_event() {
    metrics::counter!("UnroutedEvents").increment(1);
}

/// An inbound message: `new` or `duplicate` (a redelivery).
pub fn inbound_message(outcome: &'static str) {
    count("InboundMessages", "Outcome", outcome.to_owned());
}

/// A status webhook, by the state it reports.
pub fn status(state: &str) {
    count("Statuses", "State", state.to_owned());
}

/// A send attempt's outcome: `accepted`, `refused`, `failed`, `uncertain`, `reconciled`,
/// `retrying`.
pub fn send(outcome: &'static str) {
    count("Sends", "Outcome", outcome.to_owned());
}

/// A send Meta refused or reported failed, by its error code (`none` when Meta gave none).
pub fn send_failure(code: Option<i64>) {
    count("SendFailures", "Code", code.map_or_else(|| "none".to_owned(), |c| c.to_string()));
}

/// A Smart Retry resend scheduled, by ladder.
pub fn retry_scheduled(ladder: &'static str) {
    count("RetrySchedules", "Ladder", ladder.to_owned());
}

/// A flow tick: `started`, `stepped`, `stopped` or `nothing`.
pub fn flow_tick(outcome: &'static str) {
    count("FlowTicks", "Outcome", outcome.to_owned());
}

/// A broadcast recipient written by the fan-out: `queued` or `skipped`.
pub fn broadcast_recipient(outcome: &'static str) {
    count("BroadcastRecipients", "Outcome", outcome.to_owned());
}

/// A broadcast found above 5 % silent failures.
pub fn broadcast_flagged() {
    metrics::counter!("BroadcastsFlagged").increment(1);
}

/// A call to KMS: `GenerateDataKey` or `Decrypt`.
pub fn kms_call(operation: &'static str) {
    count("KmsCalls", "Operation", operation.to_owned());
}

/// The Meta secrets read from Secrets Manager (a cold start, a refresh, a rotation caught).
pub fn secrets_read() {
    metrics::counter!("SecretsReads").increment(1);
}
