//! Story helpers for broadcasts: an audience of tagged contacts, a broadcast, its function
//! firing (as its schedule would), and the report read back.

use std::collections::BTreeSet;

use wapisnap::broadcasts::fanout::{FanoutError, FanoutOutcome, Fired};
use wapisnap::broadcasts::report::{Report, tally};
use wapisnap::broadcasts::spec::{Audience, BroadcastRecord, BroadcastSpec, OverLimit};
use wapisnap::clock::Clock;
use wapisnap::contacts::Tag;
use wapisnap::domain::{AccountId, BroadcastId, Channel, ContactId, WorkspaceId};

use crate::TestApp;

/// The `i`-th customer of a story's audience.
pub fn customer(i: usize) -> String {
    format!("1650556{i:04}")
}

impl TestApp {
    /// `count` WhatsApp contacts (customers `from..from+count`) tagged `tag`.
    pub async fn contacts_tagged(&self, ws: &WorkspaceId, tag: &str, from: usize, count: usize) -> Vec<String> {
        let tags = BTreeSet::from([Tag::parse(tag).unwrap()]);
        let now = self.env.stack.clock.now();
        let mut ids = Vec::new();
        for i in from..from + count {
            let contact = ContactId::for_channel(Channel::WhatsApp, &customer(i)).unwrap();
            self.store().save_contact(ws, Channel::WhatsApp, &contact, Some("Sam"), &tags, now).await.unwrap();
            ids.push(contact.to_string());
        }
        ids
    }

    /// The workspace creates a broadcast of `template` from `number` to the contacts tagged
    /// `tag` (stored SCHEDULED, as the API stores it).
    pub async fn broadcast_to_tag(
        &self,
        ws: &WorkspaceId,
        id: &str,
        number: &str,
        tag: &str,
        template: &str,
        over_limit: OverLimit,
    ) -> BroadcastId {
        let now = self.env.stack.clock.now();
        let id = BroadcastId::parse(id).unwrap();
        let spec = BroadcastSpec {
            name: id.to_string(),
            account_id: AccountId::parse(number).unwrap(),
            template: template.into(),
            language: "en_US".into(),
            body_parameters: vec![wapisnap::flows::text::TextTemplate::parse("{{name|there}}").unwrap()],
            audience: Audience::Tags { tags: vec![tag.into()] },
            send_at: None,
            over_limit,
        };
        let record = BroadcastRecord::scheduled(id.clone(), ws.clone(), spec, now);
        assert!(self.store().create_broadcast(&record).await.unwrap());
        id
    }

    /// The broadcast function runs for the broadcast, as its schedule fires it.
    pub async fn broadcast_fires(&self, ws: &WorkspaceId, id: &BroadcastId) -> FanoutOutcome {
        self.broadcast_runs_until(ws, id, None).await
    }

    /// The same, with the Lambda's deadline at `deadline`.
    pub async fn broadcast_runs_until(
        &self,
        ws: &WorkspaceId,
        id: &BroadcastId,
        deadline: Option<std::time::Instant>,
    ) -> FanoutOutcome {
        self.broadcast_run(ws, id, deadline).await.expect("the broadcast runs")
    }

    /// One run of the broadcast function, as Lambda reports it (an error: Scheduler fires it again).
    pub async fn broadcast_run(
        &self,
        ws: &WorkspaceId,
        id: &BroadcastId,
        deadline: Option<std::time::Instant>,
    ) -> Result<FanoutOutcome, FanoutError> {
        let functions = &self.env.stack.functions;
        let fired = Fired { workspace_id: ws.clone(), broadcast_id: id.clone() };
        functions.broadcast.handle(fired, &functions.broadcast_arn, deadline).await
    }

    pub async fn broadcast(&self, ws: &WorkspaceId, id: &BroadcastId) -> BroadcastRecord {
        self.store().broadcast(ws, id).await.unwrap().expect("the broadcast exists")
    }

    /// The broadcast's report, tallied from its jobs.
    pub async fn broadcast_report(&self, ws: &WorkspaceId, id: &BroadcastId) -> Report {
        let record = self.broadcast(ws, id).await;
        let lines = self.store().broadcast_jobs(ws, id.as_str()).await.unwrap();
        let report = tally(&record, &lines);
        assert_eq!(
            report.accepted + report.failed + report.skipped + report.pending,
            report.total,
            "a report always adds up: {report:?}"
        );
        report
    }

    /// Waits until nothing of the broadcast is pending.
    pub async fn broadcast_settles(&self, ws: &WorkspaceId, id: &BroadcastId) -> Report {
        crate::eventually("the broadcast to settle", std::time::Duration::from_secs(120), || async {
            let report = self.broadcast_report(ws, id).await;
            if std::env::var("DEBUG_BROADCAST").is_ok() {
                eprintln!("{report:?}");
            }
            (report.audience_complete && report.pending == report.in_smart_retry).then_some(report)
        })
        .await
    }

    /// The portfolio (`business`) and its messaging limit, as Meta reported them for a number.
    pub async fn number_in_portfolio(&self, ws: &WorkspaceId, number: &str, business: &str, tier: &str) {
        let store = self.store();
        let mut record = store.number(ws, Channel::WhatsApp, number).await.unwrap().expect("connected");
        record.business_id = Some(business.into());
        record.messaging_limit = Some(tier.into());
        store.put_number(&record).await.unwrap();
    }

    /// Template sends Meta received for these recipients.
    pub fn template_sends_to(&self, recipients: &[String]) -> usize {
        self.env
            .sandbox
            .requests_to("/messages")
            .iter()
            .filter(|r| r.body["type"] == "template" && recipients.iter().any(|c| r.body["to"] == c.as_str()))
            .count()
    }
}
