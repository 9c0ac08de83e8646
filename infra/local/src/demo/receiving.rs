//! Issue 3: Meta's deliveries stored exactly once.

use super::{DEMO_NUMBER, Demo, Failure};
use crate::sandbox::InboundText;
use wapisnap::domain::Channel;

pub const CUSTOMER: &str = "16505551234";

impl Demo<'_> {
    pub(super) async fn receiving(&self) -> Result<(), Failure> {
        self.timeline.chapter("A customer writes; Meta delivers the webhook twice");
        let inbound = InboundText {
            phone_number_id: DEMO_NUMBER.into(),
            from: CUSTOMER.into(),
            name: Some("Kerry Fisher".into()),
            text: "Hi! Is my order on its way?".into(),
            wamid: Some("wamid.DEMO-INBOUND-1".into()),
            timestamp: None,
            button_id: None,
        };
        for attempt in ["delivery", "redelivery (Meta delivers at least once)"] {
            let (wamid, answered) = self.environment.sandbox.state.post_inbound_text(&inbound).await?;
            self.timeline.step(format!("sandbox signs and posts {wamid} — {attempt} → webhook answered {answered}"));
        }
        let conversation_id = format!("wa:{DEMO_NUMBER}:{CUSTOMER}");
        let stored = self.store.conversation_messages(&self.workspace, &conversation_id).await?;
        self.timeline.step(format!("stored messages in the conversation: {} (exactly once)", stored.len()));
        if let Some(conversation) = self.store.conversation(&self.workspace, &conversation_id).await? {
            self.timeline.step(format!(
                "24-hour window open from Meta's timestamp {} until {}",
                conversation.last_inbound_at, conversation.window_closes_at
            ));
        }
        let contact = self.store.contact(&self.workspace, Channel::WhatsApp, CUSTOMER).await?;
        self.timeline.step(format!("contact: {:?}", contact.and_then(|c| c.profile_name)));
        Ok(())
    }
}
