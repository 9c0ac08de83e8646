//! A broadcast's report, tallied from its recipients' jobs: what Meta accepted, delivered and
//! read, what failed (by Meta's error code), what was skipped (by reason), what waits in Smart
//! Retry — and the silent failures (FAQ: "Why do some of my messages show status FAILED with
//! no error message?"): above 5% of what Meta accepted, the broadcast is flagged with the
//! affected message ids, which is what Meta's support asks for.

use std::collections::BTreeMap;

use serde::Serialize;

use super::spec::{BroadcastRecord, BroadcastState};
use crate::domain::JobState;
use crate::store::broadcasts::JobLine;

/// Above this share of silent failures a broadcast is flagged.
pub const SILENT_FAILURE_FLAG_RATIO: f64 = 0.05;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// Every recipient: once the fan-out is through the audience, its size; before, the
    /// recipients handled so far.
    pub total: u64,
    pub audience_complete: bool,
    /// Meta took the message (delivered or read included).
    pub accepted: u64,
    pub delivered: u64,
    pub read: u64,
    pub failed: u64,
    /// Failures by Meta's error code; `none` is a silent failure.
    pub failed_by_code: BTreeMap<String, u64>,
    pub skipped: u64,
    pub skipped_by_reason: BTreeMap<String, u64>,
    /// Not settled yet: queued, being sent, waiting in Smart Retry, or not yet reached by the
    /// fan-out. `accepted + failed + skipped + pending = total`, always.
    pub pending: u64,
    pub in_smart_retry: u64,
    pub silent_failures: u64,
    pub silent_failure_rate: f64,
    pub flagged: bool,
    /// The wamids of the silent failures, when flagged.
    pub silent_message_ids: Vec<String>,
}

/// What became of one recipient, in one word.
pub fn outcome(line: &JobLine) -> &'static str {
    match line.state {
        JobState::Accepted => "accepted",
        JobState::Delivered if line.read => "read",
        JobState::Delivered => "delivered",
        JobState::Failed => "failed",
        JobState::Refused => "skipped",
        JobState::FailedAttempt | JobState::RetryScheduled => "in_smart_retry",
        JobState::Queued | JobState::Sending | JobState::Uncertain => "pending",
    }
}

fn is_silent(line: &JobLine) -> bool {
    line.state == JobState::Failed && line.error_code.is_none() && line.reason.as_deref().is_none_or(str::is_empty)
}

/// Of the messages Meta accepted, the share never reported delivered or failed.
pub fn silent_failure_rate(lines: &[JobLine]) -> f64 {
    let silent = lines.iter().filter(|l| is_silent(l)).count();
    let taken = lines.iter().filter(|l| matches!(l.state, JobState::Accepted | JobState::Delivered)).count() + silent;
    if taken == 0 { 0.0 } else { silent as f64 / taken as f64 }
}

pub fn tally(broadcast: &BroadcastRecord, lines: &[JobLine]) -> Report {
    let mut report = Report::default();
    for line in lines {
        match line.state {
            JobState::Accepted => report.accepted += 1,
            JobState::Delivered => {
                report.accepted += 1;
                report.delivered += 1;
                report.read += u64::from(line.read);
            }
            JobState::Failed => {
                report.failed += 1;
                let code = line.error_code.map_or_else(|| "none".to_owned(), |c| c.to_string());
                *report.failed_by_code.entry(code).or_default() += 1;
                if is_silent(line) {
                    report.silent_failures += 1;
                    if let Some(wamid) = &line.wamid {
                        report.silent_message_ids.push(wamid.clone());
                    }
                }
            }
            JobState::Refused => {
                report.skipped += 1;
                let reason = line.reason.clone().unwrap_or_else(|| "no reason recorded".into());
                *report.skipped_by_reason.entry(reason).or_default() += 1;
            }
            JobState::FailedAttempt | JobState::RetryScheduled => report.in_smart_retry += 1,
            JobState::Queued | JobState::Sending | JobState::Uncertain => {}
        }
    }
    let written = lines.len() as u64;
    report.audience_complete = broadcast.audience_total.is_some();
    // The fan-out counts a recipient after writing their job, so jobs can be ahead of it.
    report.total = broadcast.audience_total.unwrap_or(broadcast.enumerated).max(written);
    if broadcast.state == BroadcastState::Failed {
        report.total = written;
    }
    report.pending = report.total - report.accepted - report.failed - report.skipped;
    let taken = report.accepted + report.silent_failures;
    report.silent_failure_rate = if taken == 0 { 0.0 } else { report.silent_failures as f64 / taken as f64 };
    report.flagged = report.silent_failure_rate > SILENT_FAILURE_FLAG_RATIO;
    if !report.flagged {
        report.silent_message_ids.clear();
    }
    report.silent_message_ids.sort();
    report
}

/// One line per recipient, for a spreadsheet.
pub fn csv(lines: &[JobLine]) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["recipient", "outcome", "error_code", "reason", "message_id"]).expect("in memory");
    let mut sorted: Vec<&JobLine> = lines.iter().collect();
    sorted.sort_by(|a, b| a.contact.cmp(&b.contact));
    for line in sorted {
        let code = line.error_code.map(|c| c.to_string()).unwrap_or_default();
        let reason = line.reason.clone().unwrap_or_default();
        let wamid = line.wamid.clone().unwrap_or_default();
        writer.write_record([line.contact.as_str(), outcome(line), &code, &reason, &wamid]).expect("in memory");
    }
    String::from_utf8(writer.into_inner().expect("in memory")).expect("utf-8 in, utf-8 out")
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::broadcasts::spec::{Audience, BroadcastSpec, OverLimit};
    use crate::domain::{AccountId, BroadcastId, WorkspaceId};

    fn broadcast(total: Option<u64>, enumerated: u64) -> BroadcastRecord {
        let spec = BroadcastSpec {
            name: "Spring".into(),
            account_id: AccountId::parse("1065").unwrap(),
            template: "spring_sale".into(),
            language: "en_US".into(),
            body_parameters: Vec::new(),
            audience: Audience::Tags { tags: vec!["vip".into()] },
            send_at: None,
            over_limit: OverLimit::Defer,
        };
        let id = BroadcastId::parse("bc_1").unwrap();
        let mut record = BroadcastRecord::scheduled(id, WorkspaceId::parse("acme").unwrap(), spec, Utc::now());
        record.state = BroadcastState::Sending;
        record.enumerated = enumerated;
        record.audience_total = total;
        record
    }

    fn line(contact: &str, state: JobState) -> JobLine {
        JobLine { contact: contact.into(), state, error_code: None, reason: None, wamid: None, read: false }
    }

    #[test]
    fn accepted_failed_skipped_and_pending_always_add_up_to_the_total() {
        let mut lines = vec![
            line("1", JobState::Accepted),
            JobLine { read: true, ..line("2", JobState::Delivered) },
            JobLine { error_code: Some(131026), reason: Some("undeliverable".into()), ..line("3", JobState::Failed) },
            JobLine { reason: Some("the contact is tagged dnd".into()), ..line("4", JobState::Refused) },
            line("5", JobState::RetryScheduled),
            line("6", JobState::Queued),
        ];
        let report = tally(&broadcast(None, 8), &lines);
        assert_eq!((report.total, report.accepted, report.failed, report.skipped, report.pending), (8, 2, 1, 1, 4));
        assert_eq!((report.delivered, report.read, report.in_smart_retry), (1, 1, 1));
        assert_eq!(report.failed_by_code["131026"], 1);
        assert_eq!(report.skipped_by_reason["the contact is tagged dnd"], 1);
        assert!(!report.audience_complete);
        lines.truncate(4);
        let done = tally(&broadcast(Some(4), 4), &lines);
        assert_eq!(done.pending, 0, "everything settled");
    }

    #[test]
    fn silent_failures_above_five_percent_flag_the_broadcast_with_their_message_ids() {
        let mut lines: Vec<JobLine> = (0..18).map(|i| line(&i.to_string(), JobState::Delivered)).collect();
        lines.push(JobLine { wamid: Some("wamid.B".into()), ..line("a", JobState::Failed) });
        lines.push(JobLine { wamid: Some("wamid.A".into()), ..line("b", JobState::Failed) });
        let report = tally(&broadcast(Some(20), 20), &lines);
        assert_eq!(report.silent_failures, 2);
        assert!((report.silent_failure_rate - 0.1).abs() < 1e-9);
        assert!(report.flagged);
        assert_eq!(report.silent_message_ids, ["wamid.A", "wamid.B"]);
        let mut calm: Vec<JobLine> = (0..20).map(|i| line(&i.to_string(), JobState::Delivered)).collect();
        calm.push(JobLine { wamid: Some("wamid.C".into()), ..line("c", JobState::Failed) });
        let calm = tally(&broadcast(Some(21), 21), &calm);
        assert!(!calm.flagged, "1 in 21 is under 5%");
        assert!(calm.silent_message_ids.is_empty());
    }

    #[test]
    fn the_csv_has_a_line_per_recipient() {
        let lines = vec![
            JobLine { wamid: Some("wamid.1".into()), ..line("2", JobState::Accepted) },
            JobLine { reason: Some("dnd, \"opted out\"".into()), ..line("1", JobState::Refused) },
        ];
        let csv = csv(&lines);
        assert_eq!(
            csv,
            "recipient,outcome,error_code,reason,message_id\n1,skipped,,\"dnd, \"\"opted out\"\"\",\n2,accepted,,,wamid.1\n"
        );
    }
}
