//! Issue 4: sends through the send queue, statuses, Smart Retry, do-not-send.

use std::time::Duration;

use wapisnap::clock::Clock;
use wapisnap::domain::Channel;
use wapisnap::domain::SendJobId;
use wapisnap::domain::TemplateStatus;
use wapisnap::domain::{JobState, Origin, SendJob, SendRequest};
use wapisnap::outbound::content::OutboundContent;
use wapisnap::policy::send::DO_NOT_SEND_TAG;
use wapisnap::store::jobs::JobRecord;

use super::receiving::CUSTOMER;
use super::{DEMO_NUMBER, Demo, Failure};
use crate::sandbox::{Fault, FaultEffect, StatusUpdate};

const LONG_GONE_CUSTOMER: &str = "16505550199";

impl Demo<'_> {
    fn job(&self, id: &str, to: &str, origin: Origin, content: OutboundContent) -> Result<SendJob, Failure> {
        Ok(SendJob {
            job_id: SendJobId::parse(id)?,
            workspace_id: self.workspace.clone(),
            channel: Channel::WhatsApp,
            account_id: wapisnap::domain::AccountId::parse(DEMO_NUMBER)?,
            to: wapisnap::domain::ContactId::for_channel(Channel::WhatsApp, to)?,
            origin,
            content,
        })
    }

    async fn enqueue(&self, job: &SendJob) -> Result<(), Failure> {
        let stack = &self.environment.stack;
        let url = stack.resources.queue("SendQueue").ok_or("no send queue")?.url;
        let body = serde_json::to_string(&SendRequest::New { job: Box::new(job.clone()) })?;
        stack.aws.sqs.send_message().queue_url(url).message_body(body).send().await?;
        Ok(())
    }

    async fn job_in(&self, id: &str, wanted: &[JobState]) -> Result<JobRecord, Failure> {
        let job_id = SendJobId::parse(id)?;
        let record = self
            .until(Duration::from_secs(20), || async {
                let record = self.store.job(&self.workspace, &job_id).await?;
                Ok(record.filter(|r| wanted.contains(&r.state)))
            })
            .await?;
        record.ok_or_else(|| format!("job {id} never reached {wanted:?}").into())
    }

    pub(super) async fn sending(&self) -> Result<(), Failure> {
        self.reply().await?;
        self.frequency_cap().await?;
        self.not_on_whatsapp().await
    }

    async fn reply(&self) -> Result<(), Failure> {
        self.timeline.chapter("An agent replies inside the 24-hour window");
        let reply = OutboundContent::Text { body: "Yes — it arrives tomorrow.".into(), preview_url: false };
        self.enqueue(&self.job("reply-1", CUSTOMER, Origin::Human { agent_id: "dana".into() }, reply)?).await?;
        self.timeline.step("job reply-1 on the send queue; the sender claims it, checks the policy, opens the token");
        let accepted = self.job_in("reply-1", &[JobState::Accepted, JobState::Delivered]).await?;
        let wamid = accepted.wamid.clone().ok_or("accepted without a wamid")?;
        self.timeline.step(format!("Meta (sandbox) accepted it: {wamid}"));
        let read = self
            .until(Duration::from_secs(10), || async {
                let status = match self.store.outbound_status(&self.workspace, &wamid).await {
                    // moto makes the item a first update creates with its keys alone, then
                    // fills it in: a read in between sees it bare (DynamoDB's updates are
                    // atomic). Not read yet, then.
                    Err(wapisnap::store::StoreError::Corrupt { .. }) => None,
                    read => read?,
                };
                Ok(status.filter(|s| s.read_at.is_some()))
            })
            .await?
            .ok_or("no read status")?;
        let time =
            |at: Option<chrono::DateTime<chrono::Utc>>| at.map_or("—".into(), |t| t.format("%H:%M:%S").to_string());
        self.timeline.step(format!(
            "status webhooks applied in order: sent {} · delivered {} · read {} (job {})",
            time(read.sent_at),
            time(read.delivered_at),
            time(read.read_at),
            read.job_id.as_deref().unwrap_or("?")
        ));
        let late = StatusUpdate {
            wamid: wamid.to_string(),
            status: "delivered".into(),
            recipient_id: CUSTOMER.into(),
            biz_opaque_callback_data: Some("reply-1".into()),
            ..Default::default()
        };
        self.environment.sandbox.state.post_status(DEMO_NUMBER, &late).await?;
        let status = self.store.outbound_status(&self.workspace, &wamid).await?.map(|s| s.status);
        self.timeline.step(format!("a late duplicate 'delivered' arrives after 'read' … the status stays {status:?}"));
        Ok(())
    }

    async fn frequency_cap(&self) -> Result<(), Failure> {
        self.timeline.chapter("A marketing template hits Meta's frequency cap (131049)");
        self.store
            .put_template(&self.workspace, "102290129340398", "spring_sale", "en_US", TemplateStatus::Approved)
            .await?;
        let sandbox = &self.environment.sandbox;
        sandbox.inject(Fault {
            path_contains: Some("/messages".into()),
            recipient: Some(LONG_GONE_CUSTOMER.into()),
            times: 1,
            effect: FaultEffect::FailedStatus { code: 131049 },
        });
        let sale =
            OutboundContent::Template { name: "spring_sale".into(), language: "en_US".into(), components: vec![] };
        self.enqueue(&self.job(
            "spring-1",
            LONG_GONE_CUSTOMER,
            Origin::Broadcast { broadcast_id: "spring".into() },
            sale,
        )?)
        .await?;
        let scheduled = self.job_in("spring-1", &[JobState::RetryScheduled]).await?;
        let clock = &self.environment.stack.clock;
        let retry_at = scheduled.retry_at.unwrap_or_default();
        self.timeline.step(format!(
            "Meta accepted it, then reported 131049; Smart Retry scheduled attempt {} for {} ({} days out, never the hours ladder)",
            scheduled.attempt,
            retry_at.format("%Y-%m-%d %H:%M"),
            ((retry_at - clock.now()).num_minutes() as f64 / 1440.0).round()
        ));
        clock.advance(chrono::Duration::days(7) + chrono::Duration::minutes(61));
        self.timeline.step(format!(
            "clock advanced 7 days and an hour (the retries' flexible window): now {}",
            clock.now().format("%Y-%m-%d %H:%M")
        ));
        let delivered = self.job_in("spring-1", &[JobState::Delivered]).await?;
        self.timeline.step(format!(
            "the schedule fired, the sender re-checked the policy and resent: {} → delivered",
            delivered.wamid.map(String::from).unwrap_or_default()
        ));
        Ok(())
    }

    async fn not_on_whatsapp(&self) -> Result<(), Failure> {
        self.timeline.chapter("A landline in the contact list: 131026 twice in a row");
        self.store
            .put_template(&self.workspace, "102290129340398", "order_update", "en_US", TemplateStatus::Approved)
            .await?;
        let landline = "15555550100";
        self.environment.sandbox.inject(Fault {
            path_contains: Some("/messages".into()),
            recipient: Some(landline.into()),
            times: 2,
            effect: FaultEffect::MetaError { code: 131026, subcode: None, http_status: None, message: None },
        });
        for id in ["landline-1", "landline-2"] {
            let update =
                OutboundContent::Template { name: "order_update".into(), language: "en_US".into(), components: vec![] };
            let job = self.job(id, landline, Origin::Flow { run_id: "run-7".into(), step: id.into() }, update)?;
            self.enqueue(&job).await?;
            let failed = self.job_in(id, &[JobState::Failed]).await?;
            self.timeline.step(format!("{id}: FAILED ({}) — not retried", failed.reason.unwrap_or_default()));
        }
        let tags = self
            .until(Duration::from_secs(5), || async {
                let tags = self.store.contact_tags(&self.workspace, Channel::WhatsApp, landline).await?;
                Ok(tags.contains(DO_NOT_SEND_TAG).then_some(tags))
            })
            .await?
            .ok_or("the contact was not tagged do-not-send")?;
        self.timeline.step(format!("after two in a row the contact's tags are {tags:?}: broadcasts now skip it"));
        Ok(())
    }
}
