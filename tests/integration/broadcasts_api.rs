//! `/v1/broadcasts` (and a number's throughput) on the local stack: what a business's web app
//! does to send a template to an audience — every mistake answered at once at its path, a CSV
//! audience holding each number once, the broadcast started by its schedule and sent, its
//! report adding up, cancel refused once it is sent — and another workspace's broadcasts out
//! of reach.

use serde_json::{Value, json};
use wapisnap::broadcasts::fanout::schedule_name;
use wapisnap::clock::Clock;
use wapisnap::domain::{BroadcastId, Channel, WorkspaceId};
use wapisnap_local::aws_faults::AwsFault;
use wapisnap_tests::{NUMBER_A, NUMBER_B, TestApp, eventually};

/// A client of the API holding one workspace's key.
struct Client<'a> {
    app: &'a TestApp,
    key: String,
}

impl Client<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, _, text) = self.text(method, path, body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The answer as text, with its headers.
    async fn text(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut request =
            self.app.http.request(method, format!("{}{path}", self.app.env.stack.http_url)).bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap_or_default())
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    /// A POST carrying an `Idempotency-Key`, when given one.
    async fn post_keyed(&self, path: &str, body: Value, key: Option<&str>) -> (u16, Value) {
        let mut request =
            self.app.http.post(format!("{}{path}", self.app.env.stack.http_url)).bearer_auth(&self.key).json(&body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.expect("the API answers");
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }
}

async fn client(app: &TestApp) -> (WorkspaceId, Client<'_>) {
    let (ws, key) = app.workspace_with_key().await;
    (ws, Client { app, key })
}

async fn other_workspace(app: &TestApp) -> Client<'_> {
    let ws = WorkspaceId::parse(format!("other-{}", app.env.stack.resources.prefix)).unwrap();
    Client { app, key: app.key_for(&ws).await }
}

fn fields(error: &Value) -> Vec<String> {
    error["error"]["fields"]
        .as_array()
        .map(|found| found.iter().filter_map(|f| f["field"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The spring sale to the contacts tagged `vip`, from `NUMBER_A`, now.
fn spring_sale() -> Value {
    json!({
        "name": "Spring sale",
        "account_id": NUMBER_A,
        "template": "spring_sale",
        "language": "en_US",
        "body_parameters": ["{{name|there}}"],
        "audience": { "tags": ["vip"] },
    })
}

/// A report always adds up.
fn adds_up(report: &Value) -> bool {
    let count = |k: &str| report[k].as_u64().unwrap_or_else(|| panic!("{k} in {report}"));
    count("accepted") + count("failed") + count("skipped") + count("pending") == count("total")
}

#[tokio::test]
async fn a_broadcast_is_checked_whole_and_every_problem_answered_at_its_path() {
    let app = TestApp::spawn_idle().await;
    let (ws, api) = client(&app).await;
    app.connect_number(&ws, NUMBER_A).await;

    let broken = json!({
        "name": "",
        "account_id": NUMBER_B,
        "template": "spring_sale",
        "body_parameters": ["{{name", "ok"],
        "audience": { "tags": ["vip", "has space", "dnd"] },
        "send_at": "2999-01-01T00:00:00Z",
        "over_limit": "later",
        "sendAt": "2030-01-01T00:00:00Z",
    });
    let (status, refused) = api.post("/v1/broadcasts", broken).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("invalid")), "{refused}");
    let mut found = fields(&refused);
    found.sort();
    assert_eq!(
        found,
        [
            "account_id",
            "audience.tags[1]",
            "audience.tags[2]",
            "body_parameters[0]",
            "language",
            "name",
            "over_limit",
            "sendAt",
            "send_at"
        ],
        "{refused}"
    );
    assert!(refused["error"]["message"].as_str().unwrap().contains("not a WhatsApp number connected"), "{refused}");

    let mut both = spring_sale();
    both["audience"] = json!({ "tags": ["vip"], "csv": "phone\n16505551234" });
    assert_eq!(fields(&api.post("/v1/broadcasts", both).await.1), ["audience"]);
    let mut no_phone = spring_sale();
    no_phone["audience"] = json!({ "csv": "name,tags\nAna,vip" });
    assert_eq!(fields(&api.post("/v1/broadcasts", no_phone).await.1), ["audience.csv"]);
    let mut too_many = spring_sale();
    too_many["audience"] = json!({ "csv": format!("phone\n{}", "16505551234\n".repeat(10_001)) });
    let (status, refused) = api.post("/v1/broadcasts", too_many).await;
    assert_eq!((status, fields(&refused)), (422, vec!["audience.csv".to_owned()]));
    assert!(refused["error"]["message"].as_str().unwrap().contains("with a tag first"), "{refused}");
    let mut nobody = spring_sale();
    nobody["audience"] = json!({ "csv": "phone,name\ncall me,Ana\n,Bo" });
    let (status, refused) = api.post("/v1/broadcasts", nobody).await;
    assert_eq!((status, fields(&refused)), (422, vec!["audience.csv".to_owned()]), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("row 2"), "{refused}");
    assert_eq!(api.post("/v1/broadcasts", json!([1])).await.0, 422);

    let (_, listed) = api.get("/v1/broadcasts").await;
    assert_eq!(listed["items"], json!([]), "nothing was created");
    assert!(app.schedules().await.is_empty(), "nothing was scheduled");
}

#[tokio::test]
async fn a_csv_audience_holds_each_number_once_and_reports_the_rows_it_skipped() {
    let app = TestApp::spawn_idle().await;
    let (ws, api) = client(&app).await;
    app.connect_number(&ws, NUMBER_A).await;
    let mut body = spring_sale();
    body["audience"] = json!({
        "csv": "phone,name,tags\n+1 650-555-1234,Ana,\n16505551234,,vip\n\"+1 (650) 555.1234\",Ana B,\ncall me maybe,Bo,\n"
    });
    let send_at = app.env.stack.clock.now() + chrono::Duration::hours(2);
    body["send_at"] = json!(send_at.to_rfc3339());
    let (status, created) = api.post("/v1/broadcasts", body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "SCHEDULED");
    assert_eq!(created["audience"], json!({ "type": "csv", "recipients": 1 }), "{created}");
    let import = &created["import"];
    assert_eq!((import["rows"].as_u64(), import["recipients"].as_u64()), (Some(4), Some(1)), "{import}");
    assert_eq!((import["duplicates"].as_u64(), import["skipped"].as_u64()), (Some(2), Some(1)), "{import}");
    assert_eq!(import["skipped_rows"][0]["row"], 5, "{import}");
    assert!(import["skipped_rows"][0]["reason"].as_str().unwrap().contains("call me maybe"), "{import}");

    let id = BroadcastId::parse(created["id"].as_str().unwrap()).unwrap();
    let stored = app.store().broadcast_audience_page(&ws, &id, None, 100).await.unwrap();
    assert_eq!(stored, ["16505551234"], "one recipient, normalised");
    let contact = app.store().contact_record(&ws, Channel::WhatsApp, "16505551234").await.unwrap().expect("imported");
    assert!(contact.tags.contains("vip"), "the rows' tags are added to the contact");
    let start = schedule_name(&ws, &id, "start");
    assert_eq!(app.schedules().await, std::slice::from_ref(&start), "its start is scheduled");
    let stack = &app.env.stack;
    let schedule = stack
        .aws
        .scheduler
        .get_schedule()
        .group_name(stack.resources.schedule_group())
        .name(&start)
        .send()
        .await
        .unwrap();
    assert_eq!(schedule.schedule_expression(), Some(format!("at({})", send_at.format("%Y-%m-%dT%H:%M:%S")).as_str()));
    let input: Value = serde_json::from_str(schedule.target().unwrap().input().unwrap()).unwrap();
    assert_eq!(
        input,
        json!({ "workspace_id": ws.as_str(), "broadcast_id": id.as_str() }),
        "it fires the broadcast function"
    );

    let path = format!("/v1/broadcasts/{id}");
    let (status, shown) = api.get(&path).await;
    assert_eq!((status, shown["report"]["total"].as_u64()), (200, Some(0)), "{shown}");
    assert!(shown.get("import").is_none());
    let (status, cancelled) = api.post(&format!("{path}/cancel"), json!({})).await;
    assert_eq!((status, cancelled["state"].as_str()), (200, Some("CANCELLED")), "{cancelled}");
    assert!(cancelled["cancelled_at"].is_string(), "{cancelled}");
    let (status, again) = api.post(&format!("{path}/cancel"), json!({})).await;
    assert_eq!((status, again["error"]["code"].as_str()), (409, Some("conflict")), "{again}");
    assert!(again["error"]["message"].as_str().unwrap().contains("CANCELLED"), "{again}");
}

#[tokio::test]
async fn a_broadcast_to_a_tag_is_sent_by_its_schedule_and_its_report_adds_up() {
    let app = TestApp::spawn().await;
    let (ws, api) = client(&app).await;
    app.connect_number(&ws, NUMBER_A).await;
    app.approve_template(&ws, "spring_sale").await;
    let vips = ["16505550001", "16505550002", "16505550003"];
    for (i, phone) in vips.iter().enumerate() {
        let (status, _) =
            api.post("/v1/contacts", json!({ "phone": phone, "name": format!("Vip {i}"), "tags": ["vip"] })).await;
        assert_eq!(status, 201);
    }
    let contact = |phone: &str, tags: Value| json!({ "phone": phone, "name": "Quiet", "tags": tags });
    assert_eq!(api.post("/v1/contacts", contact("16505550009", json!(["vip", "dnd"]))).await.0, 201);
    assert_eq!(api.post("/v1/contacts", contact("16505550010", json!(["regular"]))).await.0, 201);

    let (status, created) = api.post("/v1/broadcasts", spring_sale()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.strip_prefix("bc_").is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit())));
    assert_eq!((created["state"].as_str(), created["over_limit"].as_str()), (Some("SCHEDULED"), Some("defer")));
    assert_eq!(created["audience"], json!({ "type": "tags", "tags": ["vip"] }));
    assert_eq!(created["send_at"], Value::Null, "now");

    let path = format!("/v1/broadcasts/{id}");
    let done =
        eventually("the broadcast to be sent and every send accepted", std::time::Duration::from_secs(60), || async {
            let (status, shown) = api.get(&path).await;
            assert_eq!(status, 200, "{shown}");
            assert!(adds_up(&shown["report"]), "{shown}");
            let report = &shown["report"];
            (shown["state"] == "SENT" && report["accepted"] == 3 && report["pending"] == 0).then_some(shown)
        })
        .await;
    let report = &done["report"];
    assert_eq!((report["total"].as_u64(), report["skipped"].as_u64()), (Some(4), Some(1)), "{done}");
    assert_eq!(report["audience_complete"], true);
    let reasons = report["skipped_by_reason"].as_object().unwrap();
    assert!(reasons.keys().any(|reason| reason.contains("dnd")), "{reasons:?}");

    let sends: Vec<_> =
        app.env.sandbox.requests_to("/messages").into_iter().filter(|r| r.body["type"] == "template").collect();
    assert_eq!(sends.len(), 3, "one template send per vip, none to the dnd or untagged contact");
    for send in &sends {
        assert!(vips.contains(&send.body["to"].as_str().unwrap()), "{}", send.body);
        assert_eq!(send.body["template"]["name"], "spring_sale");
        let greeting = &send.body["template"]["components"][0]["parameters"][0]["text"];
        assert!(greeting.as_str().unwrap().starts_with("Vip "), "the contact's name: {}", send.body);
    }

    let (status, refused) = api.post(&format!("{path}/cancel"), json!({})).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("conflict")), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("SENT"), "{refused}");

    let (status, headers, csv) = api.text(reqwest::Method::GET, &format!("{path}/report.csv"), None).await;
    assert_eq!(status, 200, "{csv}");
    assert!(headers[reqwest::header::CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
    assert_eq!(
        headers[reqwest::header::CONTENT_DISPOSITION].to_str().unwrap(),
        format!("attachment; filename=\"{id}.csv\"")
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "recipient,outcome,error_code,reason,message_id");
    assert_eq!(lines.len(), 5, "a line per recipient: {csv}");
    assert!(lines.iter().any(|l| l.starts_with("16505550009,skipped,")), "{csv}");
    let sent = lines.iter().filter(|l| [",accepted,", ",delivered,", ",read,"].iter().any(|o| l.contains(o)));
    assert_eq!(sent.count(), 3, "{csv}");

    let (status, listed) = api.get("/v1/broadcasts").await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"][0]["id"], id.as_str());
    assert!(listed["items"][0].get("report").is_none(), "lists leave reports out");

    let stranger = other_workspace(&app).await;
    for (status, body) in [
        stranger.get(&path).await,
        stranger.post(&format!("{path}/cancel"), json!({})).await,
        stranger.get(&format!("{path}/report.csv")).await,
        stranger.get("/v1/broadcasts/bc_0000000000000000").await,
    ] {
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    }
    assert_eq!(stranger.get("/v1/broadcasts").await.1["items"], json!([]));
}

#[tokio::test]
async fn a_create_retried_with_its_idempotency_key_makes_one_broadcast() {
    let app = TestApp::spawn_idle().await;
    let (ws, api) = client(&app).await;
    app.connect_number(&ws, NUMBER_A).await;
    let post = |body: Value, key: &'static str| {
        let request = app
            .http
            .post(format!("{}/v1/broadcasts", app.env.stack.http_url))
            .bearer_auth(&api.key)
            .header("idempotency-key", key)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, first) = post(spring_sale(), "spring-1").await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = post(spring_sale(), "spring-1").await;
    assert_eq!((status, &again["id"]), (200, &first["id"]), "{again}");
    assert_eq!(api.get("/v1/broadcasts").await.1["items"].as_array().unwrap().len(), 1);
    assert_eq!(app.schedules().await.len(), 1, "one start");
    let mut other = spring_sale();
    other["name"] = json!("Summer sale");
    let (status, refused) = post(other.clone(), "spring-1").await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("conflict")), "{refused}");
    assert_eq!(post(other, "summer-1").await.0, 201, "a new key, a new broadcast");
}

#[tokio::test]
async fn a_broadcast_whose_start_cannot_be_scheduled_is_failed_not_lost() {
    let app = TestApp::spawn_idle().await;
    let (ws, api) = client(&app).await;
    app.connect_number(&ws, NUMBER_A).await;
    let stack = &app.env.stack;
    stack.aws.scheduler.delete_schedule_group().name(stack.resources.schedule_group()).send().await.unwrap();

    let (status, refused) = api.post("/v1/broadcasts", spring_sale()).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (503, Some("unavailable")), "{refused}");
    let (_, listed) = api.get("/v1/broadcasts").await;
    let failed = &listed["items"][0];
    assert_eq!(failed["state"], "FAILED", "{listed}");
    assert!(failed["reason"].as_str().unwrap().contains("could not be scheduled"), "{failed}");
    assert!(refused["error"]["message"].as_str().unwrap().contains(failed["id"].as_str().unwrap()), "{refused}");
}

#[tokio::test]
async fn a_numbers_throughput_is_set_within_meta_s_limits() {
    let app = TestApp::spawn_idle().await;
    let (ws, api) = client(&app).await;
    app.connect_number(&ws, NUMBER_A).await;
    let path = format!("/v1/numbers/{NUMBER_A}");
    assert_eq!(api.get(&path).await.1["throughput_mps"], 80, "Meta's default");
    for mps in [json!(0), json!(1001), json!(-5)] {
        let (status, refused) = api.put(&format!("{path}/throughput"), json!({ "mps": mps })).await;
        assert_eq!((status, fields(&refused)), (422, vec!["mps".to_owned()]), "{mps}: {refused}");
    }
    let (status, number) = api.put(&format!("{path}/throughput"), json!({ "mps": 1000 })).await;
    assert_eq!((status, number["throughput_mps"].as_u64()), (200, Some(1000)), "{number}");
    assert_eq!(api.get(&path).await.1["throughput_mps"], 1000);
    let stored = app.store().number(&ws, Channel::WhatsApp, NUMBER_A).await.unwrap().unwrap();
    assert_eq!(stored.throughput_mps, Some(1000));
    assert_eq!(stored.token.last4, number["token_last4"].as_str().unwrap(), "the rest of the number is kept");

    let stranger = other_workspace(&app).await;
    let (status, body) = stranger.put(&format!("{path}/throughput"), json!({ "mps": 500 })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    let unknown = api.put("/v1/numbers/999999/throughput", json!({ "mps": 500 })).await;
    assert_eq!(unknown.0, 404);
}

#[tokio::test]
async fn a_csv_audience_skips_the_contacts_tagged_dnd_or_do_not_send_with_their_reason() {
    let app = TestApp::spawn_idle().await;
    let (ws, api) = client(&app).await;
    app.connect_number(&ws, NUMBER_A).await;
    app.approve_template(&ws, "spring_sale").await;
    assert_eq!(api.post("/v1/contacts", json!({ "phone": "16505550001", "tags": ["dnd"] })).await.0, 201);
    assert_eq!(api.post("/v1/contacts", json!({ "phone": "16505550002", "tags": ["do-not-send"] })).await.0, 201);
    let mut body = spring_sale();
    // The FAQ: dnd blocks "Broadcast inclusion (both tag-based and CSV imports)" — a CSV row is
    // no way around a customer's opt-out, nor around two 131026 in a row.
    body["audience"] = json!({ "csv": "phone,name
16505550001,Opted Out
16505550002,Landline
16505550003,Cleo
" });
    let (status, created) = api.post("/v1/broadcasts", body).await;
    assert_eq!(status, 201, "{created}");
    let id = BroadcastId::parse(created["id"].as_str().unwrap()).unwrap();

    app.broadcast_fires(&ws, &id).await;
    let report = app.broadcast_report(&ws, &id).await;
    assert_eq!((report.total, report.skipped), (3, 2), "{report:?}");
    let reasons: Vec<&String> = report.skipped_by_reason.keys().collect();
    assert!(
        reasons.iter().any(|r| r.contains("dnd")) && reasons.iter().any(|r| r.contains("do-not-send")),
        "{reasons:?}"
    );
    for request in app.drain("SendQueue").await {
        app.sender().send(serde_json::from_value(request).unwrap()).await.unwrap();
    }
    let sent: Vec<_> = app.env.sandbox.requests_to("/messages").iter().map(|r| r.body["to"].clone()).collect();
    assert_eq!(sent, [json!("16505550003")], "only Cleo gets the template");
}

#[tokio::test]
async fn a_csv_audience_dynamodb_leaves_unwritten_is_written_again_and_one_never_written_sends_nothing() {
    let app = TestApp::spawn_idle().await;
    let (ws, api) = client(&app).await;
    app.connect_number(&ws, NUMBER_A).await;
    let with_csv = |numbers: &str| {
        let mut body = spring_sale();
        body["audience"] = json!({ "csv": format!("phone\n{numbers}") });
        body
    };

    app.aws_fails_next(AwsFault::nothing_written(2));
    let (status, created) = api.post("/v1/broadcasts", with_csv("16505551234\n16505551235\n16505551236")).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(app.aws().faults_met("BatchWriteItem"), 2, "handed back twice, written on the third ask");
    let id = BroadcastId::parse(created["id"].as_str().unwrap()).unwrap();
    let stored = app.store().broadcast_audience_page(&ws, &id, None, 100).await.unwrap();
    assert_eq!(stored, ["16505551234", "16505551235", "16505551236"], "every recipient stored");

    app.aws_fails_next(AwsFault::nothing_written(100));
    let (status, refused) = api.post("/v1/broadcasts", with_csv("16505551237")).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (503, Some("unavailable")), "{refused}");
    assert_eq!(app.aws().faults_met("BatchWriteItem"), 2 + 8, "asked 8 times, then given up");
    let (_, listed) = api.get("/v1/broadcasts").await;
    let states: Vec<_> = listed["items"].as_array().unwrap().iter().map(|b| b["state"].as_str().unwrap()).collect();
    assert_eq!(states.iter().filter(|s| **s == "FAILED").count(), 1, "the broadcast without its recipients: {listed}");
    assert_eq!(app.schedules().await, [schedule_name(&ws, &id, "start")], "only the first broadcast will start");
}

#[tokio::test]
async fn a_broadcast_whose_stored_answer_was_lost_is_still_started_and_a_lost_cancel_answer_is_still_a_cancel() {
    let app = TestApp::spawn_idle().await;
    let (ws, api) = client(&app).await;
    app.connect_number(&ws, NUMBER_A).await;

    // DynamoDB stores the broadcast and its answer is lost: the SDK's second try is refused,
    // the id being taken, by this very request. With or without an Idempotency-Key, it is
    // this request's broadcast: created, and its start scheduled.
    for key in [Some("lost-answer-1"), None] {
        app.aws_fails_next(AwsFault::answer_lost("PutItem", 1).when_body_contains("#BROADCAST#"));
        let (status, created) = api.post_keyed("/v1/broadcasts", spring_sale(), key).await;
        assert_eq!(status, 201, "{key:?}: {created}");
        let id = BroadcastId::parse(created["id"].as_str().unwrap()).unwrap();
        assert!(app.schedules().await.contains(&schedule_name(&ws, &id, "start")), "{key:?}: its start is scheduled");
    }
    assert_eq!(app.aws().faults_met("PutItem"), 2);

    // The same for a cancel: made, its answer lost, refused on the second try by itself.
    let (_, listed) = api.get("/v1/broadcasts").await;
    let id = listed["items"][0]["id"].as_str().unwrap().to_owned();
    app.aws_fails_next(AwsFault::answer_lost("UpdateItem", 1).when_body_contains("CANCELLED"));
    let (status, cancelled) = api.post(&format!("/v1/broadcasts/{id}/cancel"), json!({})).await;
    assert_eq!((status, cancelled["state"].as_str()), (200, Some("CANCELLED")), "{cancelled}");
    assert_eq!(app.aws().faults_met("UpdateItem"), 1);
    let id = BroadcastId::parse(&id).unwrap();
    assert!(app.schedules().await.contains(&schedule_name(&ws, &id, "cancel")), "its wrap-up run is scheduled");
}
