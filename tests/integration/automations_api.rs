//! `/v1/automations` and a conversation's run history on the local stack: what a business's web
//! app does to define its bots, every mistake in a definition answered at once at its path, and
//! another workspace's automations out of reach.

use serde_json::{Value, json};
use wapisnap::domain::{Channel, WorkspaceId};
use wapisnap_tests::{NUMBER_A, TestApp, sample};

const CUSTOMER: &str = "16505551234";
const CONVERSATION: &str = "wa:106540352242922:16505551234";

/// A client of the API holding one workspace's key.
struct Client<'a> {
    app: &'a TestApp,
    key: String,
}

impl Client<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request =
            self.app.http.request(method, format!("{}{path}", self.app.env.stack.http_url)).bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::answer(request).await
    }

    /// A body sent as it is, with a JSON content type.
    async fn raw(&self, method: reqwest::Method, path: &str, body: &str) -> (u16, Value) {
        let request = self
            .app
            .http
            .request(method, format!("{}{path}", self.app.env.stack.http_url))
            .bearer_auth(&self.key)
            .header("content-type", "application/json")
            .body(body.to_owned());
        Self::answer(request).await
    }

    async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
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

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

async fn client(app: &TestApp) -> Client<'_> {
    let (_, key) = app.workspace_with_key().await;
    Client { app, key }
}

async fn other_workspace(app: &TestApp) -> Client<'_> {
    let ws = WorkspaceId::parse(format!("other-{}", app.env.stack.resources.prefix)).unwrap();
    Client { app, key: app.key_for(&ws).await }
}

/// A small valid automation: greet on a keyword, wait for the answer, thank.
fn greeter(name: &str) -> Value {
    json!({
        "name": name,
        "priority": 5,
        "trigger": { "type": "keyword", "keywords": ["hello"] },
        "start": "greet",
        "nodes": [
            { "id": "greet", "type": "sendMessage", "text": "Hi {{name}}, how can we help?", "next": "wait" },
            { "id": "wait", "type": "waitForReply", "timeout_seconds": 600, "next": "thanks" },
            { "id": "thanks", "type": "sendMessage", "text": "Thanks, we are on it." }
        ]
    })
}

fn fields(error: &Value) -> Vec<(String, String)> {
    error["error"]["fields"]
        .as_array()
        .map(|found| {
            found
                .iter()
                .map(|f| (f["field"].as_str().unwrap_or("").to_owned(), f["problem"].as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn an_automation_is_created_read_listed_replaced_switched_off_and_on_and_deleted() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    let (status, created) = api.post("/v1/automations", greeter("Greeter")).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("an id").to_owned();
    assert!(
        id.strip_prefix("auto_").is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit())),
        "{id}"
    );
    assert_eq!((created["name"].as_str(), created["priority"].as_i64()), (Some("Greeter"), Some(5)));
    assert_eq!((created["enabled"].as_bool(), created["version"].as_u64()), (Some(true), Some(1)));
    assert_eq!(created["definition"]["start"], "greet");
    assert_eq!(created["definition"]["nodes"][1]["timeout_seconds"], 600);
    let path = format!("/v1/automations/{id}");
    let (status, shown) = api.get(&path).await;
    assert_eq!((status, &shown), (200, &created), "read back as created");

    let mut quiet = greeter("Quiet one");
    quiet["enabled"] = json!(false);
    let (status, second) = api.post("/v1/automations", quiet).await;
    assert_eq!((status, second["enabled"].as_bool()), (201, Some(false)), "{second}");
    assert!(second["definition"].get("enabled").is_none(), "`enabled` is not part of the definition");
    let (status, first_page) = api.get("/v1/automations?limit=1").await;
    assert_eq!(status, 200, "{first_page}");
    assert_eq!(first_page["items"].as_array().unwrap().len(), 1);
    assert_eq!(first_page["items"][0]["id"], id.as_str(), "oldest first");
    let cursor = first_page["next"].as_str().expect("a second page").to_owned();
    let (_, second_page) = api.get(&format!("/v1/automations?limit=1&cursor={cursor}")).await;
    assert_eq!(second_page["items"][0]["id"], second["id"]);
    let (_, everything) = api.get("/v1/automations").await;
    assert_eq!(everything["items"].as_array().unwrap().len(), 2);
    assert_eq!(everything["next"], Value::Null);
    assert_eq!(api.get("/v1/automations?cursor=nonsense").await.0, 422);

    let mut edited = greeter("Greeter v2");
    edited["nodes"][0]["text"] = json!("Hello again!");
    let (status, replaced) = api.put(&path, edited).await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!((replaced["version"].as_u64(), replaced["name"].as_str()), (Some(2), Some("Greeter v2")));
    assert_eq!(replaced["enabled"], true, "a replace without `enabled` keeps it");
    assert_eq!(replaced["created_at"], created["created_at"]);
    assert_eq!(replaced["definition"]["nodes"][0]["text"], "Hello again!");
    let mut off = greeter("Greeter v3");
    off["enabled"] = json!(false);
    let (_, replaced) = api.put(&path, off).await;
    assert_eq!((replaced["version"].as_u64(), replaced["enabled"].as_bool()), (Some(3), Some(false)));

    let (status, on) = api.post(&format!("{path}/enable"), json!({})).await;
    assert_eq!((status, on["enabled"].as_bool(), on["version"].as_u64()), (200, Some(true), Some(3)), "{on}");
    let (status, disabled) = api.post(&format!("{path}/disable"), json!({})).await;
    assert_eq!((status, disabled["enabled"].as_bool()), (200, Some(false)));
    assert_eq!(api.get(&path).await.1["enabled"], false, "switching is stored");

    assert_eq!(api.delete(&path).await.0, 204);
    for (status, body) in [
        api.get(&path).await,
        api.delete(&path).await,
        api.put(&path, greeter("Back")).await,
        api.post(&format!("{path}/enable"), json!({})).await,
        api.post(&format!("{path}/disable"), json!({})).await,
    ] {
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    }
    let (_, left) = api.get("/v1/automations").await;
    assert_eq!(left["items"].as_array().unwrap().len(), 1, "only the other one is left");
}

#[tokio::test]
async fn every_problem_of_a_definition_is_answered_at_once_at_its_path() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    let broken = json!({
        "name": "Everything wrong",
        "trigger": { "type": "message", "channel": "instagram" },
        "start": "start",
        "nodes": [
            { "id": "start", "type": "condition", "rules": [{ "when": { "has_tag": "vip" }, "next": "a" }], "otherwise": "ask" },
            { "id": "a", "type": "addTag", "tag": "lead", "next": "b" },
            { "id": "b", "type": "setField", "name": "stage", "value": "warm", "next": "a" },
            { "id": "w", "type": "waitForReply", "next": "s" },
            { "id": "s", "type": "sendMessage", "text": "Bye", "next": "gone" },
            { "id": "orphan", "type": "end" },
            { "id": "c", "type": "teleport" },
            { "id": "ask", "type": "sendInteractive", "body": "Which?", "buttons": [{ "id": "x", "title": "X" }], "next": "s" }
        ]
    });
    let (status, refused) = api.post("/v1/automations", broken.clone()).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("invalid")), "{refused}");
    let found = fields(&refused);
    let problem_at = |path: &str| {
        found
            .iter()
            .find(|(field, _)| field == path)
            .map(|(_, problem)| problem.clone())
            .unwrap_or_else(|| panic!("no problem at {path} in {found:?}"))
    };
    assert!(problem_at("nodes[6].type").contains("teleport"), "an unknown node type");
    assert!(problem_at("nodes[4].next").contains("gone"), "a dangling edge");
    assert!(problem_at("nodes[5]").contains("cannot be reached"), "an unreachable node");
    assert_eq!(problem_at("nodes[3].timeout_seconds"), "is required", "a missing parameter");
    assert!(problem_at("nodes[1]").contains("loop"), "a cycle without a wait");
    assert!(
        found.iter().all(|(field, _)| !field.starts_with("nodes[7]")),
        "a WhatsApp-only node on Instagram is kept, to be skipped when run: {found:?}"
    );
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("nodes[4].next"),
        "the message sums the problems up: {refused}"
    );
    let (_, listed) = api.get("/v1/automations").await;
    assert_eq!(listed["items"], json!([]), "nothing was stored");

    let (_, created) = api.post("/v1/automations", greeter("Fine")).await;
    let path = format!("/v1/automations/{}", created["id"].as_str().unwrap());
    let (status, refused) = api.put(&path, broken).await;
    assert_eq!(status, 422, "a replace is checked the same way");
    assert!(fields(&refused).len() >= 5, "{refused}");
    assert_eq!(api.get(&path).await.1["version"], 1, "a refused replace saves nothing");

    let mut bad_switch = greeter("Fine");
    bad_switch["enabled"] = json!("yes");
    let (status, refused) = api.post("/v1/automations", bad_switch).await;
    assert_eq!((status, fields(&refused)[0].0.as_str()), (422, "enabled"));
    let (status, refused) = api.post("/v1/automations", json!({ "nodes": [] })).await;
    let named: Vec<String> = fields(&refused).into_iter().map(|(field, _)| field).collect();
    assert_eq!(status, 422);
    for required in ["name", "trigger", "start", "nodes"] {
        assert!(named.iter().any(|f| f == required), "{required} in {named:?}");
    }
    let (status, refused) = api.raw(reqwest::Method::POST, "/v1/automations", "{ not json").await;
    assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("bad_request")), "{refused}");
    let (status, refused) = api.raw(reqwest::Method::PUT, &path, "nodes: []").await;
    assert_eq!(status, 400, "{refused}");
}

#[tokio::test]
async fn another_workspaces_automation_is_not_found() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    let (_, created) = api.post("/v1/automations", greeter("Ours")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/automations/{id}");

    let rival = other_workspace(&app).await;
    for (status, body) in [
        rival.get(&path).await,
        rival.put(&path, greeter("Theirs now")).await,
        rival.post(&format!("{path}/disable"), json!({})).await,
        rival.post(&format!("{path}/enable"), json!({})).await,
        rival.delete(&path).await,
    ] {
        assert_eq!(status, 404, "{body}");
        assert!(!body.to_string().contains("Ours"), "nothing of what is stored is said: {body}");
    }
    let (_, theirs) = rival.get("/v1/automations").await;
    assert_eq!(theirs["items"], json!([]));
    let (_, ours) = api.get("/v1/automations?limit=1").await;
    assert_eq!(ours["items"][0]["id"], id.as_str());
    let (status, _) = rival.get("/v1/automations?cursor=7b7d").await;
    assert_eq!(status, 422, "a cursor that is not one of this list's");

    let (status, untouched) = api.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!((untouched["version"].as_u64(), untouched["enabled"].as_bool()), (Some(1), Some(true)));
    for malformed in ["/v1/automations/a%23b", "/v1/automations/%20%07"] {
        let (status, body) = api.get(malformed).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{malformed}: {body}");
    }
}

#[tokio::test]
async fn a_conversations_run_history_is_empty_before_any_run_and_unknown_conversations_are_not_found() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    assert_eq!(app.deliver(&sample("whatsapp-text.json")).await.0, 200);
    let api = Client { app: &app, key: app.key_for(&ws).await };
    let runs = format!("/v1/conversations/{CONVERSATION}/automation-runs");
    let (status, history) = api.get(&runs).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history, json!({ "items": [], "next": null }));
    assert_eq!(api.get(&format!("{runs}?limit=5")).await.0, 200);

    let (status, body) = api.get("/v1/conversations/wa:106540352242922:19995550000/automation-runs").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    let rival = other_workspace(&app).await;
    assert_eq!(rival.get(&runs).await.0, 404, "another workspace's conversation is not found");
}

/// The tag-added trigger: a tag the contact did not have, added through the API, puts a
/// `tag_added` tick on the flow queue for the conversation the customer last wrote to.
#[tokio::test]
async fn a_tag_newly_added_through_the_api_hands_a_tick_to_the_automations() {
    let app = TestApp::spawn_idle().await;
    let ws = app.workspace_owning(Channel::WhatsApp, NUMBER_A).await;
    assert_eq!(app.deliver(&sample("whatsapp-text.json")).await.0, 200);
    let api = Client { app: &app, key: app.key_for(&ws).await };
    app.drain("FlowQueue").await;

    let tag = format!("/v1/contacts/wa/{CUSTOMER}/tags/VIP");
    let (status, tagged) = api.call(reqwest::Method::PUT, &tag, None).await;
    assert_eq!((status, &tagged["tags"]), (200, &json!(["vip"])), "{tagged}");
    let ticks = app.drain("FlowQueue").await;
    assert_eq!(ticks.len(), 1, "{ticks:?}");
    assert_eq!((ticks[0]["tick"].as_str(), ticks[0]["tag"].as_str()), (Some("tag_added"), Some("vip")));
    let conversation = &ticks[0]["conversation"];
    assert_eq!(conversation["workspace_id"], ws.as_str());
    assert_eq!(
        (conversation["account_id"].as_str(), conversation["contact_id"].as_str()),
        (Some(NUMBER_A), Some(CUSTOMER))
    );

    assert_eq!(api.call(reqwest::Method::PUT, &tag, None).await.0, 200);
    let (status, merged) =
        api.post("/v1/contacts", json!({ "phone": "+1 650 555 1234", "tags": ["vip", "gold"] })).await;
    assert_eq!(status, 200, "{merged}");
    let ticks = app.drain("FlowQueue").await;
    let tags: Vec<&str> = ticks.iter().filter_map(|t| t["tag"].as_str()).collect();
    assert_eq!(tags, ["gold"], "a tag already there starts nothing; a new one in a merge does");

    let (status, _) = api.post("/v1/contacts", json!({ "phone": "+1 650 555 0000", "tags": ["vip"] })).await;
    assert_eq!(status, 201);
    assert_eq!(api.call(reqwest::Method::PUT, "/v1/contacts/wa/16505550000/tags/gold", None).await.0, 200);
    assert!(app.drain("FlowQueue").await.is_empty(), "a contact who never wrote has no conversation to run in");
}
