//! Issue 10: a scheduled template broadcast to a tag, a `dnd` contact left out, the report.

use std::time::Duration;

use serde_json::json;
use wapisnap::clock::Clock;

use super::{DEMO_NUMBER, Demo, Failure};

impl Demo<'_> {
    pub(super) async fn broadcasts(&self) -> Result<(), Failure> {
        self.timeline.chapter("A scheduled broadcast (POST /v1/broadcasts) to a tag, one contact opted out");
        let audience = [
            ("+1 650 555 0201", "Ana", false),
            ("+1 650 555 0202", "Ben", false),
            ("+1 650 555 0203", "Chloé", true),
            ("+1 650 555 0204", "Dev", false),
        ];
        for (phone, name, opted_out) in audience {
            let tags = if opted_out { json!(["spring-list", "dnd"]) } else { json!(["spring-list"]) };
            self.call(
                reqwest::Method::POST,
                "/v1/contacts",
                Some(json!({ "phone": phone, "name": name, "tags": tags })),
                None,
            )
            .await?;
        }
        self.timeline
            .step("4 contacts tagged spring-list; Chloé also tagged dnd (she opted out of automated messages)");
        let send_at = self.environment.stack.clock.now() + chrono::Duration::minutes(10);
        let body = json!({
            "name": "Spring sale",
            "account_id": DEMO_NUMBER,
            "template": "spring_sale",
            "language": "en_US",
            "body_parameters": ["{{name|there}}"],
            "audience": { "tags": ["spring-list"] },
            "send_at": send_at,
        });
        let (status, created) = self.call(reqwest::Method::POST, "/v1/broadcasts", Some(body), None).await?;
        let id = created["id"].as_str().ok_or("no broadcast id")?.to_owned();
        self.timeline.step(format!(
            "→ {status}: {id} {} for {send_at} (a one-time EventBridge Scheduler schedule)",
            created["state"]
        ));
        self.environment.stack.clock.advance(chrono::Duration::minutes(10));
        self.timeline.step("clock advanced 10 minutes: the schedule fires the broadcast function");
        let path = format!("/v1/broadcasts/{id}");
        let done = self
            .until(Duration::from_secs(30), || async {
                let (_, view) = self.call(reqwest::Method::GET, &path, None, None).await?;
                let report = &view["report"];
                let finished =
                    view["state"] == "SENT" && report["pending"] == 0 && report["read"] == report["accepted"];
                Ok(finished.then_some(view))
            })
            .await?
            .ok_or("the broadcast never finished")?;
        let report = &done["report"];
        self.timeline.step(format!(
            "GET {path} → {}: total {} = accepted {} + failed {} + skipped {} + pending {}",
            done["state"], report["total"], report["accepted"], report["failed"], report["skipped"], report["pending"]
        ));
        self.timeline.step(format!(
            "delivered {}, read {}, silent failures {}",
            report["delivered"], report["read"], report["silent_failures"]
        ));
        for (reason, count) in report["skipped_by_reason"].as_object().into_iter().flatten() {
            self.timeline.step(format!("skipped {count}: {reason}"));
        }
        let greeted: Vec<String> = self
            .environment
            .sandbox
            .requests_to("/messages")
            .iter()
            .filter(|r| {
                r.body["type"] == "template"
                    && r.body["biz_opaque_callback_data"].as_str().is_some_and(|j| j.starts_with(&id))
            })
            .map(|r| r.body["template"]["components"][0]["parameters"][0]["text"].as_str().unwrap_or("").to_owned())
            .collect();
        self.timeline.step(format!(
            "Meta received {} template sends, {{{{1}}}} filled in per contact: {greeted:?}",
            greeted.len()
        ));
        let csv = self.csv(&format!("{path}/report.csv")).await?;
        self.timeline.step(format!("GET {path}/report.csv →"));
        for line in csv.lines() {
            self.timeline.step(format!("    {line}"));
        }
        Ok(())
    }

    async fn csv(&self, path: &str) -> Result<String, Failure> {
        use secrecy::ExposeSecret;
        let key = self.environment.api_key.as_ref().ok_or("no API key")?;
        let url = format!("{}{path}", self.environment.stack.http_url);
        Ok(self.http.get(url).bearer_auth(key.expose_secret()).send().await?.text().await?)
    }
}
