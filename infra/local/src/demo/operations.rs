//! Issue 12: what an operator relies on — the app secret rotated in Secrets Manager without a
//! redeploy, and one customer message followed across the functions by its correlation id.

use super::{DEMO_NUMBER, Demo, Failure};
use crate::sandbox::InboundText;
use crate::sandbox::webhooks::WebhookTarget;
use wapisnap::domain::MessageId;

const CUSTOMER: &str = "16505557777";

impl Demo<'_> {
    pub(super) async fn operations(&self) -> Result<(), Failure> {
        self.timeline.chapter("Operations: the app secret rotates without a redeploy");
        let stack = &self.environment.stack;
        stack.rotate_meta_secrets("demo-rotated-app-secret", "local-verify-token").await?;
        self.timeline.step("operator: put-secret-value on the MetaSecrets secret (the old value becomes AWSPREVIOUS)");
        self.environment
            .sandbox
            .set_webhook(WebhookTarget { url: stack.webhook_url(), app_secret: "demo-rotated-app-secret".into() });
        self.timeline.step("Meta now signs with the new secret");
        // The webhook re-reads the secret when a signature matches none it holds (at most every
        // 30 s): the demo's clock jumps past that.
        stack.clock.advance(chrono::Duration::seconds(31));
        let inbound = InboundText {
            phone_number_id: DEMO_NUMBER.into(),
            from: CUSTOMER.into(),
            name: Some("Robin".into()),
            text: "Are you open on Sunday?".into(),
            wamid: Some("wamid.DEMO-OPERATIONS-1".into()),
            timestamp: None,
            button_id: None,
        };
        let (wamid, answered) = self.environment.sandbox.state.post_inbound_text(&inbound).await?;
        self.timeline.step(format!("a delivery signed with the new secret → webhook answered {answered}"));

        self.timeline.chapter("Operations: one message followed across functions");
        let chain = wapisnap::correlation::for_inbound(&self.workspace, &MessageId::parse(wamid.as_str())?);
        self.timeline.step(format!(
            "{wamid} carries correlation id {chain}: its flow tick, the sends the flow makes and their \
             Smart Retries carry it in their queue messages, and every log line written for them has it"
        ));
        let answer = self.http.get(format!("{}/health", stack.api_url())).send().await?;
        let api_chain = answer.headers().get("x-correlation-id").and_then(|v| v.to_str().ok()).unwrap_or("(none)");
        self.timeline.step(format!("an API request answers with its own: x-correlation-id {api_chain}"));
        self.timeline.step(format!(
            "customers appear in log lines by their last 4 digits only: {}",
            wapisnap::domain::mask(CUSTOMER)
        ));
        Ok(())
    }
}
