//! Story helpers for automations: a workspace defines a bot, a customer talks to it, an agent
//! steps in, and what Meta received and what the run recorded are read back.

use std::time::Duration;

use serde_json::Value;
use wapisnap::clock::Clock;
use wapisnap::domain::{AutomationId, WorkspaceId};
use wapisnap::store::automations::Automation;
use wapisnap::store::conversation_flows::HistoryEntry;
use wapisnap_local::sandbox::InboundText;

use crate::{NUMBER_A, TestApp, eventually};

/// Two customers, with the names their WhatsApp profiles show.
pub const ANA: &str = "16505551234";
pub const BEN: &str = "16505550000";

fn profile_name(from: &str) -> &'static str {
    match from {
        ANA => "Ana",
        BEN => "Ben",
        _ => "Customer",
    }
}

/// How long a story waits for the stack's queues to carry a tick through.
pub const FLOW_WAIT: Duration = Duration::from_secs(30);

impl TestApp {
    /// The workspace saves an enabled automation (validated as the API validates it).
    pub async fn automate(&self, ws: &WorkspaceId, definition: Value) -> AutomationId {
        let definition = wapisnap::flows::validate::validate(&definition).expect("a valid test automation");
        let now = self.env.stack.clock.now();
        let id = AutomationId::parse(format!("auto_{}", definition.name.to_lowercase().replace(' ', "_"))).unwrap();
        let automation = Automation::first_version(id.clone(), ws.clone(), definition, true, now);
        self.store().create_automation(&automation).await.expect("automation saved");
        id
    }

    /// The customer types `text` to `NUMBER_A`; returns the message's wamid.
    pub async fn customer_says(&self, from: &str, text: &str) -> String {
        self.customer_sends(from, text, None).await
    }

    /// The customer taps one of our reply buttons.
    pub async fn customer_taps(&self, from: &str, button_id: &str, title: &str) -> String {
        self.customer_sends(from, title, Some(button_id)).await
    }

    async fn customer_sends(&self, from: &str, text: &str, button_id: Option<&str>) -> String {
        let message = InboundText {
            phone_number_id: NUMBER_A.into(),
            from: from.into(),
            name: Some(profile_name(from).into()),
            text: text.into(),
            wamid: None,
            timestamp: Some(self.env.stack.clock.now().timestamp()),
            button_id: button_id.map(str::to_owned),
        };
        let (wamid, answered) = self.env.sandbox.state.post_inbound_text(&message).await.unwrap();
        assert_eq!(answered, 200);
        wamid
    }

    /// How many messages wait out an SQS delay on a queue (a receive cannot see them yet).
    pub async fn delayed_on(&self, logical_id: &str) -> usize {
        use aws_sdk_sqs::types::QueueAttributeName;
        let attributes = self
            .env
            .stack
            .aws
            .sqs
            .get_queue_attributes()
            .queue_url(self.queue_url(logical_id))
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .expect("queue attributes");
        attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessagesDelayed))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// A tick died after its effects, before its last write: the conversation's flow state and
    /// run history are as they were before it (the two are written in one transaction).
    pub async fn tick_dies_before_storing_its_state(&self, ws: &WorkspaceId, conversation: &str) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let stack = &self.env.stack;
        let table = stack.resources.table_name();
        let (pk, sk) = wapisnap::store::keys::conversation_flow(ws, conversation);
        let mut keys = vec![(pk, sk)];
        let history = wapisnap::store::keys::run_history(ws, conversation);
        let lines = stack
            .aws
            .dynamodb
            .query()
            .table_name(&table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(history.clone()))
            .send()
            .await
            .unwrap();
        for line in lines.items() {
            keys.push((history.clone(), line["sk"].as_s().unwrap().clone()));
        }
        for (pk, sk) in keys {
            stack
                .aws
                .dynamodb
                .delete_item()
                .table_name(&table)
                .key("pk", AttributeValue::S(pk))
                .key("sk", AttributeValue::S(sk))
                .send()
                .await
                .unwrap();
        }
    }

    /// The bodies Meta received on `/messages`, in order.
    pub fn meta_received(&self) -> Vec<Value> {
        self.env.sandbox.requests_to("/messages").into_iter().map(|r| r.body).collect()
    }

    /// Waits until Meta has received `count` messages, and returns them all.
    pub async fn meta_receives(&self, count: usize) -> Vec<Value> {
        eventually(&format!("Meta to receive {count} messages"), FLOW_WAIT, || async {
            let received = self.meta_received();
            (received.len() >= count).then_some(received)
        })
        .await
    }

    /// The conversation's run history, oldest first.
    pub async fn run_history(&self, ws: &WorkspaceId, conversation: &str) -> Vec<HistoryEntry> {
        let (entries, _) = self.store().run_history(ws, conversation, 200, None).await.unwrap().unwrap();
        entries
    }

    /// Waits until the run history has a line for which `check` holds, and returns the history.
    pub async fn history_shows(
        &self,
        ws: &WorkspaceId,
        conversation: &str,
        what: &str,
        check: impl Fn(&HistoryEntry) -> bool,
    ) -> Vec<HistoryEntry> {
        eventually(what, FLOW_WAIT, || async {
            let history = self.run_history(ws, conversation).await;
            history.iter().any(&check).then_some(history)
        })
        .await
    }

    /// An agent answers in the inbox composer with `content` (a text, a template...).
    pub async fn agent_sends(&self, key: &str, conversation: &str, content: Value, idempotency: &str) -> Value {
        let response = self
            .http
            .post(format!("{}/v1/conversations/{conversation}/messages", self.env.stack.http_url))
            .bearer_auth(key)
            .header("idempotency-key", idempotency)
            .json(&serde_json::json!({ "agent_id": "dana", "content": content }))
            .send()
            .await
            .expect("the API answers");
        assert_eq!(response.status().as_u16(), 202);
        response.json().await.unwrap()
    }
}

/// What a history line says happened, in one word (`sent`, `skipped`, `waiting`, ...).
pub fn outcome(entry: &HistoryEntry) -> String {
    serde_json::to_value(&entry.record).unwrap()["outcome"].as_str().unwrap_or_default().to_owned()
}

/// `node:outcome` for each line, for assertions that read like the run.
pub fn story(history: &[HistoryEntry]) -> Vec<String> {
    history.iter().map(|e| format!("{}:{}", e.record.node, outcome(e))).collect()
}
