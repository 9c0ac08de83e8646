//! A workspace's contacts and their tags, as the API manages them. One contact per customer
//! whatever the formatting of their number (`ContactId::for_channel`). Tags are workspace-
//! scoped; two are reserved system tags with the FAQ's meaning:
//! - `dnd` (FAQ: "How does the DND tag work?"): the customer opted out of automation — flows,
//!   broadcasts and Smart Retry resends are blocked; human replies are not.
//! - `do-not-send` (FAQ: "I keep hitting 131026"): the number is not on WhatsApp; set by the
//!   131026 rule (`outbound::undeliverable`), excluded from broadcasts.
//!
//! The CSV import goes row by row: each row's outcome is reported (created, updated, or why it
//! was skipped), duplicates merge into one contact, and tags are only ever added.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{Channel, ContactId, WorkspaceId};
use crate::store::{Store, StoreError};

pub use crate::policy::send::{DND_TAG, DO_NOT_SEND_TAG};

/// A tag: 1–50 characters of lowercase letters, digits, `-` and `_` (so `DND` and ` dnd ` are
/// the same reserved tag, not a way around it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Tag(String);

impl Tag {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let tag = raw.trim().to_lowercase();
        if tag.is_empty() || tag.len() > 50 {
            return Err("must be 1 to 50 characters");
        }
        if !tag.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
            return Err("may hold only letters, digits, '-' and '_'");
        }
        Ok(Self(tag))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the tag has a system meaning (see the module documentation).
    pub fn is_reserved(&self) -> bool {
        self.0 == DND_TAG || self.0 == DO_NOT_SEND_TAG
    }
}

/// How one CSV row ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RowOutcome {
    Created { contact_id: String },
    Updated { contact_id: String },
    Skipped { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowReport {
    /// 1-based, counting the header as row 1.
    pub row: usize,
    #[serde(flatten)]
    pub outcome: RowOutcome,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub created: usize,
    pub updated: usize,
    pub skipped: usize,
    pub rows: Vec<RowReport>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the CSV needs a header row with a `phone` column (and optionally `name`, `tags`)")]
    NoPhoneColumn,
    #[error("the CSV is unreadable: {0}")]
    Unreadable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Imports WhatsApp contacts from CSV (`phone`, `name`, `tags` separated by `;` or `|`).
pub async fn import_csv(
    store: &Store,
    workspace: &WorkspaceId,
    csv_text: &[u8],
    now: DateTime<Utc>,
) -> Result<ImportReport, ImportError> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).from_reader(csv_text);
    let headers = reader.headers().map_err(|e| ImportError::Unreadable(e.to_string()))?.clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let phone = column("phone").ok_or(ImportError::NoPhoneColumn)?;
    let (name, tags) = (column("name"), column("tags"));
    let mut report = ImportReport::default();
    for (index, record) in reader.records().enumerate() {
        let row = index + 2;
        let outcome = match record {
            Err(e) => RowOutcome::Skipped { reason: format!("unreadable row: {e}") },
            Ok(record) => {
                let field = |i: Option<usize>| i.and_then(|i| record.get(i)).filter(|v| !v.is_empty());
                match parse_row(field(Some(phone)), field(name), field(tags)) {
                    Err(reason) => RowOutcome::Skipped { reason },
                    Ok((contact, name, tags)) => {
                        let created =
                            store.save_contact(workspace, Channel::WhatsApp, &contact, name, &tags, now).await?;
                        let contact_id = contact.to_string();
                        if created { RowOutcome::Created { contact_id } } else { RowOutcome::Updated { contact_id } }
                    }
                }
            }
        };
        match &outcome {
            RowOutcome::Created { .. } => report.created += 1,
            RowOutcome::Updated { .. } => report.updated += 1,
            RowOutcome::Skipped { .. } => report.skipped += 1,
        }
        report.rows.push(RowReport { row, outcome });
    }
    Ok(report)
}

type Row<'a> = (ContactId, Option<&'a str>, BTreeSet<Tag>);

fn parse_row<'a>(phone: Option<&str>, name: Option<&'a str>, tags: Option<&str>) -> Result<Row<'a>, String> {
    let phone = phone.ok_or("no phone number")?;
    let contact =
        ContactId::for_channel(Channel::WhatsApp, phone).map_err(|e| format!("phone {phone:?} {}", e.reason))?;
    let tags = tags
        .unwrap_or_default()
        .split([';', '|'])
        .filter(|t| !t.trim().is_empty())
        .map(|t| Tag::parse(t).map_err(|problem| format!("tag {t:?} {problem}")))
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok((contact, name, tags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_normalised_so_reserved_tags_cannot_be_dodged() {
        assert_eq!(Tag::parse(" DND ").unwrap().as_str(), "dnd");
        assert!(Tag::parse("DND").unwrap().is_reserved());
        assert!(Tag::parse("do-not-send").unwrap().is_reserved());
        assert!(!Tag::parse("vip").unwrap().is_reserved());
        assert!(Tag::parse("").is_err());
        assert!(Tag::parse("has space").is_err());
        assert!(Tag::parse(&"x".repeat(51)).is_err());
    }

    #[test]
    fn a_row_normalises_its_number_and_reports_what_is_wrong() {
        let (contact, name, tags) = parse_row(Some("+1 650-555-1234"), Some("Kerry"), Some("vip; dnd")).unwrap();
        assert_eq!(contact.as_str(), "16505551234");
        assert_eq!(name, Some("Kerry"));
        assert_eq!(tags.len(), 2);
        assert!(parse_row(None, None, None).unwrap_err().contains("no phone"));
        assert!(parse_row(Some("call me"), None, None).unwrap_err().contains("phone"));
        assert!(parse_row(Some("16505551234"), None, Some("bad tag!")).unwrap_err().contains("tag"));
    }
}
