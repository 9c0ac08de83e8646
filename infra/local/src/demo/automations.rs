//! Issue 9: a bot answers, waits, branches — and steps aside when an agent takes over.

use std::time::Duration;

use serde_json::{Value, json};

use super::{DEMO_NUMBER, Demo, Failure};
use crate::sandbox::InboundText;

/// A second customer, so the bot meets a conversation no agent has touched yet.
const SHOPPER: &str = "16505550199";

/// The sample automation in `events/flows/`, as a business would POST it.
const WELCOME: &str = include_str!("../../../../events/flows/welcome.json");

impl Demo<'_> {
    pub(super) async fn automations(&self) -> Result<(), Failure> {
        self.timeline.chapter("A bot answers customers (POST /v1/automations), then an agent takes over");
        let definition: Value = serde_json::from_str(WELCOME)?;
        let (status, saved) = self.call(reqwest::Method::POST, "/v1/automations", Some(definition), None).await?;
        self.timeline.step(format!(
            "POST /v1/automations (events/flows/welcome.json) → {status}: {} version {}, trigger: keyword hi/hello on WhatsApp",
            saved["id"], saved["version"]
        ));
        let broken = json!({
            "name": "Broken", "trigger": { "type": "message" }, "start": "a",
            "nodes": [
                { "id": "a", "type": "sendSms", "text": "hi" },
                { "id": "b", "type": "sendMessage", "text": "loop", "next": "b" }
            ]
        });
        let (status, refused) = self.call(reqwest::Method::POST, "/v1/automations", Some(broken), None).await?;
        for problem in refused["error"]["fields"].as_array().into_iter().flatten() {
            self.timeline
                .step(format!("an invalid automation → {status}: {}: {}", problem["field"], problem["problem"]));
        }

        let conversation = format!("wa:{DEMO_NUMBER}:{SHOPPER}");
        let from_bot = |text: &str| format!("bot → customer: {text}");
        self.customer(SHOPPER, "hi", None).await?;
        self.timeline.step("customer → bot: hi");
        let greeting = self.bot_says(1).await?;
        self.timeline.step(from_bot(&greeting));
        self.customer(SHOPPER, "Track my order", Some("order")).await?;
        self.timeline.step("customer taps the button \"Track my order\"");
        let answer = self.bot_says(2).await?;
        self.timeline.step(from_bot(&answer));

        self.customer(SHOPPER, "hello again", None).await?;
        self.timeline.step("customer → bot: hello again (a new run starts)");
        let greeting = self.bot_says(3).await?;
        self.timeline.step(from_bot(&greeting));
        let path = format!("/v1/conversations/{conversation}/messages");
        let reply = json!({ "agent_id": "dana", "content": { "type": "text", "body": "Hi, Dana here. Let me look." } });
        let (status, queued) = self.call(reqwest::Method::POST, &path, Some(reply), Some("demo-takeover-1")).await?;
        self.timeline.step(format!("agent Dana answers in text → {status}: humanHandoff {}", queued["human_handoff"]));
        self.customer(SHOPPER, "Track my order", Some("order")).await?;
        self.timeline.step("customer taps \"Track my order\" on the bot's old buttons");
        let runs = format!("/v1/conversations/{conversation}/automation-runs");
        let stopped = self
            .until(Duration::from_secs(20), || async {
                let (_, history) = self.call(reqwest::Method::GET, &runs, None, None).await?;
                let items = history["items"].as_array().cloned().unwrap_or_default();
                Ok(items.iter().any(|e| e["outcome"] == "stopped").then_some(items))
            })
            .await?
            .ok_or("the run never stopped for the agent")?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let bot_messages = self.bot_messages().len();
        self.timeline.step(if bot_messages == 3 {
            "the bot stays silent: still its 3 messages, nothing after the agent's".to_owned()
        } else {
            format!("the bot sent {bot_messages} messages: it talked over the agent (a bug)")
        });
        self.timeline.step(format!("GET {runs} →"));
        for line in &stopped {
            let detail = line["reason"].as_str().or(line["job_id"].as_str()).unwrap_or("");
            self.timeline.step(format!(
                "    {} {:<8} {:<16} {}",
                line["run_id"].as_str().unwrap_or("").get(..12).unwrap_or(""),
                line["node"].as_str().unwrap_or(""),
                line["outcome"].as_str().unwrap_or(""),
                detail
            ));
        }
        Ok(())
    }

    async fn customer(&self, from: &str, text: &str, button_id: Option<&str>) -> Result<(), Failure> {
        let message = InboundText {
            phone_number_id: DEMO_NUMBER.into(),
            from: from.into(),
            name: Some("Sam Rivera".into()),
            text: text.into(),
            wamid: None,
            timestamp: None,
            button_id: button_id.map(str::to_owned),
        };
        self.environment.sandbox.state.post_inbound_text(&message).await?;
        Ok(())
    }

    /// What the bot sent the shopper, in order, in one line each.
    fn bot_messages(&self) -> Vec<String> {
        self.environment
            .sandbox
            .requests_to("/messages")
            .into_iter()
            .filter(|r| {
                r.body["to"] == SHOPPER
                    && r.body["biz_opaque_callback_data"].as_str().is_some_and(|j| j.starts_with("flow-"))
            })
            .map(|r| match r.body["type"].as_str() {
                Some("interactive") => {
                    let buttons: Vec<&str> = r.body["interactive"]["action"]["buttons"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|b| b["reply"]["title"].as_str())
                        .collect();
                    format!(
                        "{} [{}]",
                        r.body["interactive"]["body"]["text"].as_str().unwrap_or(""),
                        buttons.join("] [")
                    )
                }
                _ => r.body["text"]["body"].as_str().unwrap_or("").to_owned(),
            })
            .collect()
    }

    /// Waits for the bot's `n`-th message to the shopper.
    async fn bot_says(&self, n: usize) -> Result<String, Failure> {
        self.until(Duration::from_secs(20), || async { Ok(self.bot_messages().get(n - 1).cloned()) })
            .await?
            .ok_or_else(|| format!("the bot never sent message {n}").into())
    }
}
