//! The demo's API chapters: onboarding and registering the number through the workspace API,
//! and an agent answering from the inbox — with the same calls a business's web app makes.

use std::time::Duration;

use serde_json::{Value, json};

use super::receiving::CUSTOMER;
use super::{DEMO_NUMBER, DEMO_TOKEN, DEMO_WABA, Demo, Failure};

impl Demo<'_> {
    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> Result<(u16, Value), Failure> {
        use secrecy::ExposeSecret;
        let api_key = self.environment.api_key.as_ref().ok_or("the demo workspace has no API key")?;
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.environment.stack.http_url))
            .bearer_auth(api_key.expose_secret());
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    pub(super) async fn onboard_through_the_api(&self) -> Result<(), Failure> {
        self.timeline.chapter("Workspace acme onboards its WhatsApp number through the API");
        let body = json!({ "phone_number_id": DEMO_NUMBER, "waba_id": DEMO_WABA, "access_token": DEMO_TOKEN });
        let (status, number) = self.call(reqwest::Method::POST, "/v1/numbers", Some(body), None).await?;
        self.timeline.step(format!(
            "POST /v1/numbers → {status}: token checked with Meta, app subscribed to the WABA, number claimed; token shown as …{}",
            number["token_last4"].as_str().unwrap_or("?")
        ));
        let register = format!("/v1/numbers/{DEMO_NUMBER}/register");
        let (status, refused) =
            self.call(reqwest::Method::POST, &register, Some(json!({ "pin": "12345" })), None).await?;
        self.timeline.step(format!("register with a 5-digit PIN → {status}: {}", refused["error"]["message"]));
        let (status, number) =
            self.call(reqwest::Method::POST, &register, Some(json!({ "pin": "246810" })), None).await?;
        self.timeline.step(format!(
            "register with a 6-digit PIN → {status}: state {} (the PIN is never stored)",
            number["state"]
        ));
        let deregister = format!("/v1/numbers/{DEMO_NUMBER}/deregister");
        let (status, refused) = self.call(reqwest::Method::POST, &deregister, Some(json!({})), None).await?;
        self.timeline.step(format!("deregister without confirmation → {status}: {}", refused["error"]["message"]));
        Ok(())
    }

    pub(super) async fn inbox(&self) -> Result<(), Failure> {
        self.timeline.chapter("An agent answers from the inbox (POST /v1/conversations/{id}/messages)");
        let (_, conversations) = self.call(reqwest::Method::GET, "/v1/conversations", None, None).await?;
        let conversation = format!("wa:{DEMO_NUMBER}:{CUSTOMER}");
        let listed = conversations["items"].as_array().map_or(0, Vec::len);
        self.timeline.step(format!(
            "GET /v1/conversations → {listed} conversation(s); {conversation} window open until {}",
            conversations["items"][0]["window_closes_at"]
        ));
        let path = format!("/v1/conversations/{conversation}/messages");
        let reply = json!({ "agent_id": "dana", "content": { "type": "text", "body": "Your parcel leaves today." } });
        let (status, queued) =
            self.call(reqwest::Method::POST, &path, Some(reply.clone()), Some("demo-reply-1")).await?;
        self.timeline
            .step(format!("→ {status}: job {} queued; humanHandoff {}", queued["job_id"], queued["human_handoff"]));
        let (status, again) = self.call(reqwest::Method::POST, &path, Some(reply), Some("demo-reply-1")).await?;
        self.timeline.step(format!(
            "the web app retries the POST with the same Idempotency-Key → {status}, the same job {}",
            again["job_id"]
        ));
        let job = queued["job_id"].as_str().unwrap_or_default().to_owned();
        let delivered = self
            .until(Duration::from_secs(20), || async {
                let (_, view) = self.call(reqwest::Method::GET, &format!("/v1/jobs/{job}"), None, None).await?;
                Ok((view["state"] == "DELIVERED").then_some(view))
            })
            .await?
            .ok_or("the inbox reply was never delivered")?;
        let sent = self
            .environment
            .sandbox
            .requests_to("/messages")
            .iter()
            .filter(|r| r.body["biz_opaque_callback_data"] == job)
            .count();
        self.timeline.step(format!("GET /v1/jobs/{job} → {} (Meta received it {sent} time)", delivered["state"]));
        Ok(())
    }
}
