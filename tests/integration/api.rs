//! The workspace API on the local stack: the same router Lambda serves, reached over HTTP with
//! a workspace's API key, against the Meta sandbox. Each story is what a business (or its web
//! app) does, and what it must never be able to do.

use chrono::Duration;
use serde_json::{Value, json};
use wapisnap_local::aws_faults::AwsFault;
use wapisnap_local::environment::EnvironmentOptions;
use wapisnap_tests::{NUMBER_A, NUMBER_B, TOKEN, TestApp};

const CUSTOMER: &str = "16505551234";

/// A client of the API holding one workspace's key.
struct Client<'a> {
    app: &'a TestApp,
    key: String,
}

impl Client<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request =
            self.app.http.request(method, format!("{}{path}", self.app.env.stack.http_url)).bearer_auth(&self.key);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None, &[]).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body), &[]).await
    }

    async fn onboard(&self, number: &str) -> (u16, Value) {
        self.post(
            "/v1/numbers",
            json!({ "phone_number_id": number, "waba_id": format!("9{number}"), "access_token": TOKEN }),
        )
        .await
    }
}

impl Client<'_> {
    async fn register(&self, pin: &str) -> (u16, Value) {
        self.post(&format!("/v1/numbers/{NUMBER_A}/register"), json!({ "pin": pin })).await
    }
}

/// A workspace's client with `NUMBER_A` onboarded and registered with its PIN set.
async fn registered(app: &TestApp) -> Client<'_> {
    let api = client(app).await;
    api.onboard(NUMBER_A).await;
    assert_eq!(api.register("123456").await.0, 200, "the first register sets the PIN");
    api
}

async fn client(app: &TestApp) -> Client<'_> {
    let (_, key) = app.workspace_with_key().await;
    Client { app, key }
}

async fn other_workspace(app: &TestApp) -> Client<'_> {
    let ws = wapisnap::domain::WorkspaceId::parse(format!("other-{}", app.env.stack.resources.prefix)).unwrap();
    Client { app, key: app.key_for(&ws).await }
}

#[tokio::test]
async fn health_answers_without_a_key_and_without_configuration() {
    let app = TestApp::spawn_idle().await;
    let response = app.http.get(format!("{}/v1/health", app.env.stack.http_url)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(!body.contains(&app.env.stack.resources.prefix), "no table or queue names: {body}");
}

#[tokio::test]
async fn every_route_wants_a_valid_key_and_answers_in_one_error_shape() {
    let app = TestApp::spawn_idle().await;
    let url = format!("{}/v1/numbers", app.env.stack.http_url);
    let missing = app.http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    for bad in ["Bearer ", "Basic abc", "Bearer wsk_nope", "Bearer wsk_abcdefgh_wrongsecret"] {
        let answer = app.http.get(&url).header("authorization", bad).send().await.unwrap();
        assert_eq!(answer.status(), 401, "{bad}");
    }
    let api = client(&app).await;
    let (status, _) = api.get("/v1/numbers").await;
    assert_eq!(status, 200);
    let prefix = api.key.split('_').nth(1).unwrap().to_owned();
    let (ws, _) = app.workspace_with_key().await;
    assert!(app.store().revoke_api_key(&ws, &prefix, chrono::Utc::now()).await.unwrap());
    assert_eq!(api.get("/v1/numbers").await.0, 401, "a revoked key fails at once");
    let (status, body) = client(&app).await.get("/v1/nothing-here").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn a_number_onboarded_with_a_token_shows_only_its_last_4_and_belongs_to_one_workspace() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    let (status, number) = api.onboard(NUMBER_A).await;
    assert_eq!(status, 201, "{number}");
    assert_eq!(number["token_last4"], "tXYZ");
    assert!(!number.to_string().contains(TOKEN), "the token is never returned");
    let (_, listed) = api.get("/v1/numbers").await;
    assert_eq!(listed["items"][0]["phone_number_id"], NUMBER_A);

    let rival = other_workspace(&app).await;
    let (status, refused) = rival.onboard(NUMBER_A).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("conflict")));
    let (status, body) = rival.get(&format!("/v1/numbers/{NUMBER_A}")).await;
    assert_eq!(status, 404, "the other workspace's number is not found: {body}");
    assert_eq!(api.get(&format!("/v1/numbers/{NUMBER_A}")).await.0, 200, "the holder is unaffected");

    let (status, _) = api.call(reqwest::Method::DELETE, &format!("/v1/numbers/{NUMBER_A}"), None, &[]).await;
    assert_eq!(status, 204);
    assert_eq!(rival.onboard(NUMBER_A).await.0, 201, "a released number may be onboarded elsewhere");
}

#[tokio::test]
async fn two_workspaces_onboarding_one_number_at_once_end_with_one_owner() {
    let app = TestApp::spawn_idle().await;
    let (one, two) = (client(&app).await, other_workspace(&app).await);
    let (a, b) = tokio::join!(one.onboard(NUMBER_B), two.onboard(NUMBER_B));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [201, 409]);
}

#[tokio::test]
async fn register_takes_exactly_six_digits_counts_wrong_pins_and_never_extends_metas_lock() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    api.onboard(NUMBER_A).await;
    let path = format!("/v1/numbers/{NUMBER_A}/register");
    let register = |pin: &str| api.post(&path, json!({ "pin": pin }));
    let (status, body) = register("12345").await;
    assert_eq!((status, body["error"]["fields"][0]["field"].as_str()), (422, Some("pin")));
    assert_eq!(register("123456").await.0, 200, "the first register sets the PIN");

    let (status, body) = register("000000").await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("wrong_pin")));
    assert!(body["error"]["message"].as_str().unwrap().contains("2 attempt(s) left"), "{body}");
    register("000001").await;
    let (_, last) = register("000002").await;
    assert!(last["error"]["message"].as_str().unwrap().contains("0 attempt(s) left"), "{last}");
    let calls = app.env.sandbox.requests_to("/register").len();
    let (status, locked) = register("123456").await;
    assert_eq!(status, 409, "{locked}");
    assert!(locked["error"]["message"].as_str().unwrap().contains("request a code"));
    assert_eq!(
        app.env.sandbox.requests_to("/register").len(),
        calls,
        "Meta is not called: the lockout is not extended"
    );
    let (_, number) = api.get(&format!("/v1/numbers/{NUMBER_A}")).await;
    assert_eq!(number["needs_reverification"], true);

    assert_eq!(api.post(&format!("/v1/numbers/{NUMBER_A}/request_code"), json!({ "method": "sms" })).await.0, 200);
    let code = app.env.sandbox.number(NUMBER_A).pending_code.expect("Meta sent a code");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, refused) = api.post(&format!("/v1/numbers/{NUMBER_A}/verify_code"), json!({ "code": wrong })).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("meta_refused")),
        "a wrong code is Meta's refusal"
    );
    assert_eq!(api.post(&format!("/v1/numbers/{NUMBER_A}/verify_code"), json!({ "code": "12" })).await.0, 422);
    assert_eq!(api.post(&format!("/v1/numbers/{NUMBER_A}/request_code"), json!({ "method": "pigeon" })).await.0, 422);
    assert_eq!(api.post(&format!("/v1/numbers/{NUMBER_A}/verify_code"), json!({ "code": code })).await.0, 200);
    let (status, number) = register("123456").await;
    assert_eq!((status, number["state"].as_str()), (200, Some("ACTIVE")));
}

#[tokio::test]
async fn an_attempt_given_back_whose_answer_was_lost_is_given_back_once_and_the_lock_still_holds() {
    let app = TestApp::spawn_idle().await;
    let api = registered(&app).await;
    let register = |pin| api.register(pin);

    // Meta refuses a register for another reason than the PIN: the attempt reserved for it is
    // given back (ADD -1), and that write's answer is lost, so the SDK sends it again.
    app.meta_refuses_next_register(131000);
    app.aws_fails_next(AwsFault::answer_lost("UpdateItem", 1).when_body_contains("\"-1\""));
    assert_eq!(register("000000").await.0, 422, "Meta's refusal, reported");
    assert_eq!(app.aws().faults_met("UpdateItem"), 1, "the give-back's answer was lost");

    register("000001").await;
    register("000002").await;
    let (_, last) = register("000003").await;
    assert!(last["error"]["message"].as_str().unwrap().contains("0 attempt(s) left"), "given back once: {last}");
    let calls = app.env.sandbox.requests_to("/register").len();
    assert_eq!(register("123456").await.0, 409, "refused here at Meta's lock, never extending it");
    assert_eq!(app.env.sandbox.requests_to("/register").len(), calls, "Meta is not called a fourth time");
}

#[tokio::test]
async fn a_pin_attempt_whose_reservation_answer_was_lost_counts_once() {
    let app = TestApp::spawn_idle().await;
    let api = registered(&app).await;

    // The attempt is reserved (ADD 1) before Meta is called, and that write's answer is lost:
    // the SDK's second try must not count it again.
    app.aws_fails_next(AwsFault::answer_lost("UpdateItem", 1).when_body_contains("needs_reverification"));
    let (status, body) = api.register("000000").await;
    assert_eq!(app.aws().faults_met("UpdateItem"), 1, "the reservation's answer was lost");
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("wrong_pin")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("2 attempt(s) left"), "counted once: {body}");
}

#[tokio::test]
async fn deregister_needs_the_number_as_confirmation_and_says_how_to_recover() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    api.onboard(NUMBER_A).await;
    let path = format!("/v1/numbers/{NUMBER_A}/deregister");
    let (status, refused) = api.post(&path, json!({})).await;
    assert_eq!((status, refused["error"]["fields"][0]["field"].as_str()), (422, Some("confirm")));
    assert_eq!(api.post(&path, json!({ "confirm": "999" })).await.0, 422);
    assert!(app.env.sandbox.requests_to("/deregister").is_empty(), "nothing reached Meta");
    let (status, done) = api.post(&path, json!({ "confirm": NUMBER_A })).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["number"]["state"], "DISCONNECTED");
    assert!(done["recover"].as_str().unwrap().contains("request a code"));
}

#[tokio::test]
async fn a_number_moves_to_another_workspace_by_deregistering_it_and_cannot_be_registered_back_after() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    api.onboard(NUMBER_A).await;
    let rival = other_workspace(&app).await;
    let (status, refused) = rival.onboard(NUMBER_A).await;
    assert_eq!(status, 409, "held by the first workspace");
    assert!(refused["error"]["message"].as_str().unwrap().contains("deregister it there first"), "{refused}");

    let deregister = json!({ "confirm": NUMBER_A });
    assert_eq!(api.post(&format!("/v1/numbers/{NUMBER_A}/deregister"), deregister).await.0, 200);
    // Neither re-adding it here nor a register Meta refuses takes it back.
    let (status, readded) = api.onboard(NUMBER_A).await;
    assert!(status < 300, "{readded}");
    assert_eq!(readded["state"], "DISCONNECTED", "re-adding does not undo a deregistration");
    app.meta_refuses_next_register(131000);
    assert_eq!(api.register("123456").await.0, 422, "Meta refused it");
    let (status, moved) = rival.onboard(NUMBER_A).await;
    assert_eq!(status, 201, "the FAQ's move: deregister, then onboard in the other workspace: {moved}");
    assert_eq!(rival.register("123456").await.0, 200);
    app.customer_writes(CUSTOMER).await;
    let (_, conversations) = rival.get("/v1/conversations").await;
    assert_eq!(conversations["items"].as_array().unwrap().len(), 1, "the customer's messages reach the new workspace");
    let (_, conversations) = api.get("/v1/conversations").await;
    assert!(conversations["items"].as_array().unwrap().is_empty(), "and nothing reaches the old one");

    // The old workspace cannot take it back by registering its stale record.
    let registers = app.env.sandbox.requests_to("/register").len();
    let (status, refused) = api.register("123456").await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("another workspace has onboarded it"));
    assert_eq!(app.env.sandbox.requests_to("/register").len(), registers, "nothing reached Meta");
    let (_, stale) = api.get(&format!("/v1/numbers/{NUMBER_A}")).await;
    assert_eq!(stale["state"], "DISCONNECTED");
    let (status, _) = api.call(reqwest::Method::DELETE, &format!("/v1/numbers/{NUMBER_A}"), None, &[]).await;
    assert_eq!(status, 204, "its record is released");
    assert_eq!(rival.get(&format!("/v1/numbers/{NUMBER_A}")).await.0, 200, "the new holder is unaffected");
    app.customer_writes(CUSTOMER).await;
    let (_, conversations) = rival.get("/v1/conversations").await;
    let conversation = conversations["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, messages) = rival.get(&format!("/v1/conversations/{conversation}/messages")).await;
    assert_eq!(messages["items"].as_array().unwrap().len(), 2, "still routed to the new workspace");
}

#[tokio::test]
async fn a_number_its_new_workspace_deregistered_too_can_be_registered_back_in_the_old_one() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    api.onboard(NUMBER_A).await;
    let rival = other_workspace(&app).await;
    let deregister = json!({ "confirm": NUMBER_A });
    let path = format!("/v1/numbers/{NUMBER_A}/deregister");
    assert_eq!(api.post(&path, deregister.clone()).await.0, 200);
    assert_eq!(rival.onboard(NUMBER_A).await.0, 201);
    assert_eq!(rival.post(&path, deregister).await.0, 200, "freed by its new workspace as well");

    let (status, back) = api.register("123456").await;
    assert_eq!(status, 200, "free again, so the old workspace may take it back: {back}");
    assert_eq!(back["state"], "ACTIVE");
    app.customer_writes(CUSTOMER).await;
    let (_, conversations) = api.get("/v1/conversations").await;
    assert_eq!(conversations["items"].as_array().unwrap().len(), 1, "the customer's messages reach it again");
    assert_eq!(rival.onboard(NUMBER_A).await.0, 409, "and it is held again");
}

#[tokio::test]
async fn an_agent_replies_from_the_inbox_once_per_idempotency_key_and_takes_the_conversation_over() {
    let app = TestApp::spawn().await;
    let api = client(&app).await;
    api.onboard(NUMBER_A).await;
    app.customer_writes(CUSTOMER).await;
    let (_, conversations) = api.get("/v1/conversations").await;
    let conversation = conversations["items"][0]["id"].as_str().expect("the customer's conversation").to_owned();
    assert_eq!(conversations["items"][0]["window_open"], true);
    let (_, messages) = api.get(&format!("/v1/conversations/{conversation}/messages")).await;
    assert_eq!(messages["items"].as_array().unwrap().len(), 1);

    let path = format!("/v1/conversations/{conversation}/messages");
    let reply = json!({ "agent_id": "dana", "content": { "type": "text", "body": "Ships tomorrow." } });
    let key = [("idempotency-key", "reply-1")];
    let (status, queued) = api.call(reqwest::Method::POST, &path, Some(reply.clone()), &key).await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["human_handoff"], true, "a human text takes the conversation over");
    let (status, again) = api.call(reqwest::Method::POST, &path, Some(reply), &key).await;
    assert_eq!((status, &again["job_id"]), (202, &queued["job_id"]), "a retried POST is the same job");
    let other = json!({ "agent_id": "dana", "content": { "type": "text", "body": "Something else" } });
    assert_eq!(api.call(reqwest::Method::POST, &path, Some(other), &key).await.0, 409);

    let job = queued["job_id"].as_str().unwrap();
    wapisnap_tests::eventually("the reply to be delivered", std::time::Duration::from_secs(20), || async {
        let (_, view) = api.get(&format!("/v1/jobs/{job}")).await;
        (view["state"] == "DELIVERED").then_some(())
    })
    .await;
    assert_eq!(app.sends_received(), 1, "Meta received it once");
    let (_, history) = api.get(&format!("/v1/conversations/{conversation}/messages")).await;
    let history = history["items"].as_array().unwrap().clone();
    assert_eq!(history.len(), 2, "the customer's message and our reply, once: {history:?}");
    assert_eq!((history[0]["direction"].as_str(), history[1]["direction"].as_str()), (Some("in"), Some("out")));
    assert_eq!(
        (history[1]["state"].as_str(), &history[1]["content"]["body"]),
        (Some("DELIVERED"), &json!("Ships tomorrow."))
    );
    assert!(history[1]["wamid"].as_str().is_some());
    let (_, listed) = api.get("/v1/conversations").await;
    assert_eq!(listed["items"][0]["human_handoff"], true);
    let handoff = format!("/v1/conversations/{conversation}/handoff");
    let (status, off) = api.call(reqwest::Method::PUT, &handoff, Some(json!({ "human_handoff": false })), &[]).await;
    assert_eq!((status, &off["human_handoff"]), (200, &json!(false)));
}

#[tokio::test]
async fn the_composer_points_to_templates_outside_the_window_and_a_template_leaves_the_bot_on() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    api.onboard(NUMBER_A).await;
    app.customer_writes(CUSTOMER).await;
    let conversation = format!("wa:{NUMBER_A}:{CUSTOMER}");
    let path = format!("/v1/conversations/{conversation}/messages");
    app.advance(Duration::hours(25)).await;
    let late = json!({ "agent_id": "dana", "content": { "type": "text", "body": "Still there?" } });
    let (status, refused) = api.call(reqwest::Method::POST, &path, Some(late), &[("idempotency-key", "late-1")]).await;
    assert_eq!(status, 422);
    assert!(refused["error"]["message"].as_str().unwrap().contains("template"), "{refused}");
    let template =
        json!({ "agent_id": "dana", "content": { "type": "template", "name": "spring_sale", "language": "en_US" } });
    let (status, queued) =
        api.call(reqwest::Method::POST, &path, Some(template), &[("idempotency-key", "tpl-1")]).await;
    assert_eq!((status, &queued["human_handoff"]), (202, &json!(false)), "{queued}");
    let bad = json!({ "agent_id": "dana", "content": { "type": "carrier-pigeon" } });
    let (status, invalid) = api.call(reqwest::Method::POST, &path, Some(bad), &[("idempotency-key", "bad-1")]).await;
    assert_eq!((status, invalid["error"]["fields"][0]["field"].as_str()), (422, Some("content")));
    let missing_key = json!({ "agent_id": "dana", "content": { "type": "text", "body": "hi" } });
    assert_eq!(api.post(&path, missing_key).await.0, 400, "no Idempotency-Key");
}

#[tokio::test]
async fn another_workspaces_ids_and_cursors_reach_nothing() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    api.onboard(NUMBER_A).await;
    app.customer_writes(CUSTOMER).await;
    app.customer_writes("16505550002").await;
    let (_, page) = api.get("/v1/conversations?limit=1").await;
    let cursor = page["next"].as_str().expect("a second page").to_owned();
    let conversation = page["items"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/conversations/{conversation}/messages");
    let (_, queued) = api
        .call(
            reqwest::Method::POST,
            &path,
            Some(json!({ "agent_id": "a", "content": { "type": "text", "body": "hi" } })),
            &[("idempotency-key", "k1")],
        )
        .await;
    let job = queued["job_id"].as_str().unwrap().to_owned();

    let rival = other_workspace(&app).await;
    let (owner, _) = app.workspace_with_key().await;
    for path in [
        format!("/v1/numbers/{NUMBER_A}"),
        format!("/v1/conversations/{conversation}/messages"),
        format!("/v1/jobs/{job}"),
    ] {
        let (status, body) = rival.get(&path).await;
        assert_eq!(status, 404, "{path}: {body}");
        // The answer may repeat the id the caller sent, nothing of what is stored under it.
        let said = body.to_string();
        assert!(!said.contains(owner.as_str()) && !said.contains("hello") && !said.contains("token"), "{said}");
    }
    let handoff = format!("/v1/conversations/{conversation}/handoff");
    assert_eq!(rival.call(reqwest::Method::PUT, &handoff, Some(json!({ "human_handoff": true })), &[]).await.0, 404);
    let (status, _) = rival.get(&format!("/v1/conversations?cursor={cursor}")).await;
    assert_eq!(status, 422, "a cursor from another workspace is refused");
    let (_, theirs) = rival.get("/v1/conversations").await;
    assert_eq!(theirs["items"], json!([]));
}

#[tokio::test]
async fn the_openapi_document_is_served_and_every_operation_in_it_is_routed() {
    let app = TestApp::spawn_idle().await;
    let url = &app.env.stack.http_url;
    let response = app.http.get(format!("{url}/v1/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc, serde_json::to_value(wapisnap_api::openapi()).unwrap(), "the document served is the code's");

    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.split('/').map(|part| if part.starts_with('{') { "x" } else { part }).collect::<Vec<_>>();
        for method in item.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response =
                app.http.request(method.clone(), format!("{url}{}", concrete.join("/"))).send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            assert!(status != 405 && !body.contains("no such route"), "{method} {path} is not routed: {status} {body}");
            operations += 1;
        }
    }
    assert!(operations > 30, "{operations} operations");
}

#[tokio::test]
async fn a_contact_is_one_contact_however_its_number_is_written_and_keeps_its_tags() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    let (status, created) =
        api.post("/v1/contacts", json!({ "phone": "+1 650-555-1234", "name": "Kerry", "tags": ["VIP"] })).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["id"], CUSTOMER);
    let (status, merged) = api.post("/v1/contacts", json!({ "phone": "16505551234", "tags": ["dnd"] })).await;
    assert_eq!(status, 200, "the same contact, merged: {merged}");
    assert_eq!(merged["tags"], json!(["dnd", "vip"]), "existing tags kept");
    assert_eq!(merged["name"], "Kerry");
    let (status, invalid) = api.post("/v1/contacts", json!({ "phone": "call me", "tags": ["ok", "not ok!"] })).await;
    assert_eq!(status, 422);
    let fields: Vec<&str> =
        invalid["error"]["fields"].as_array().unwrap().iter().filter_map(|f| f["field"].as_str()).collect();
    assert_eq!(fields, ["phone", "tags[1]"]);

    let path = format!("/v1/contacts/wa/{CUSTOMER}");
    let (_, untagged) = api.call(reqwest::Method::DELETE, &format!("{path}/tags/dnd"), None, &[]).await;
    assert_eq!(untagged["tags"], json!(["vip"]));
    let (_, tagged) = api.call(reqwest::Method::PUT, &format!("{path}/tags/do-not-send"), None, &[]).await;
    assert_eq!(tagged["tags"], json!(["do-not-send", "vip"]));
    let (status, renamed) = api.call(reqwest::Method::PATCH, &path, Some(json!({ "name": "Kerry F." })), &[]).await;
    assert_eq!((status, &renamed["name"]), (200, &json!("Kerry F.")));
    let (_, listed) = api.get("/v1/contacts").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    let rival = other_workspace(&app).await;
    assert_eq!(rival.get(&path).await.0, 404, "another workspace's contact is not found");
    assert_eq!(rival.call(reqwest::Method::DELETE, &path, None, &[]).await.0, 404);
    assert_eq!(api.call(reqwest::Method::DELETE, &path, None, &[]).await.0, 204);
    assert_eq!(api.get(&path).await.0, 404);
}

#[tokio::test]
async fn a_csv_import_reports_every_row_merges_duplicates_and_keeps_tags() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    api.post("/v1/contacts", json!({ "phone": "16505551234", "tags": ["dnd"] })).await;
    let csv = "phone,name,tags\n+1 650 555 1234,Kerry,vip\n16505550001,Ann,\nnot a number,Bob,\n+16505550001,Ann B,newsletter;vip\n";
    let response = app
        .http
        .post(format!("{}/v1/contacts/import", app.env.stack.http_url))
        .bearer_auth(&api.key)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(
        (report["created"].as_u64(), report["updated"].as_u64(), report["skipped"].as_u64()),
        (Some(1), Some(2), Some(1)),
        "{report}"
    );
    assert_eq!(report["rows"][2]["row"], 4);
    assert!(report["rows"][2]["reason"].as_str().unwrap().contains("phone"));
    let (_, kerry) = api.get("/v1/contacts/wa/16505551234").await;
    assert_eq!(kerry["tags"], json!(["dnd", "vip"]), "dnd kept through the import");
    let (_, ann) = api.get("/v1/contacts/wa/16505550001").await;
    assert_eq!((ann["name"].as_str(), &ann["tags"]), (Some("Ann B"), &json!(["newsletter", "vip"])));
    let bad = app
        .http
        .post(format!("{}/v1/contacts/import", app.env.stack.http_url))
        .bearer_auth(&api.key)
        .body("name\nx\n")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
async fn templates_sync_from_meta_and_say_whether_they_can_be_sent() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    api.onboard(NUMBER_A).await;
    let waba = format!("9{NUMBER_A}");
    let create = json!({ "name": "order_update", "language": "en_US", "category": "UTILITY", "components": [] });
    let created = app
        .http
        .post(format!("{}/v23.0/{waba}/message_templates", app.env.sandbox.url))
        .bearer_auth(TOKEN)
        .json(&create)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let (status, synced) = api.post("/v1/templates/sync", json!({})).await;
    assert_eq!((status, synced["templates"].as_u64()), (200, Some(1)), "{synced}");
    let ws = app.workspace_with_key().await.0;
    app.store().put_template(&ws, &waba, "old_promo", "en_US", wapisnap::domain::TemplateStatus::Paused).await.unwrap();
    let (_, listed) = api.get("/v1/templates").await;
    let items = listed["items"].as_array().unwrap();
    let order = items.iter().find(|t| t["name"] == "order_update").unwrap();
    assert_eq!((order["status"].as_str(), &order["sendable"]), (Some("APPROVED"), &json!(true)));
    let paused = items.iter().find(|t| t["name"] == "old_promo").unwrap();
    assert_eq!(paused["sendable"], false);
    assert!(paused["why_not"].as_str().unwrap().contains("paused"));
    let rival = other_workspace(&app).await;
    let (_, theirs) = rival.get("/v1/templates").await;
    assert_eq!(theirs["items"], json!([]));
    assert_eq!(rival.post("/v1/templates/sync", json!({})).await.0, 422, "no number, no WABA");
}

#[tokio::test]
async fn metas_template_reviews_and_quality_news_reach_the_workspace_that_onboarded_the_waba() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    let (_, number) = api.onboard(NUMBER_A).await;
    api.onboard(NUMBER_B).await; // another WABA of the same business portfolio
    let waba = format!("9{NUMBER_A}");
    let display = number["display_phone_number"].as_str().unwrap_or_default().to_owned();
    let body = json!({ "object": "whatsapp_business_account", "entry": [{ "id": waba, "changes": [
        { "field": "message_template_status_update", "value": { "event": "PAUSED", "message_template_id": 7,
          "message_template_name": "spring_sale", "message_template_language": "en_US", "reason": "LOW_QUALITY" } },
        { "field": "phone_number_quality_update", "value": { "display_phone_number": display, "event": "DOWNGRADE", "current_limit": "TIER_1K" } }
    ] }] });
    let (status, _) = app.deliver(body.to_string().as_bytes()).await;
    assert_eq!(status, 200);
    let (_, templates) = api.get("/v1/templates").await;
    let paused = &templates["items"][0];
    assert_eq!(
        (paused["name"].as_str(), paused["status"].as_str(), &paused["sendable"]),
        (Some("spring_sale"), Some("PAUSED"), &json!(false))
    );
    assert_eq!(paused["status_reason"], "LOW_QUALITY");
    let (_, number) = api.get(&format!("/v1/numbers/{NUMBER_A}")).await;
    assert_eq!(
        (number["quality_event"].as_str(), number["messaging_limit"].as_str()),
        (Some("DOWNGRADE"), Some("TIER_1K"))
    );
    let (_, sibling) = api.get(&format!("/v1/numbers/{NUMBER_B}")).await;
    assert_eq!(sibling["messaging_limit"], "TIER_1K", "the limit is the portfolio's, shared by its numbers");
    assert_eq!(sibling["quality_event"], Value::Null, "the quality event is the number's own");

    let banned = json!({ "object": "whatsapp_business_account", "entry": [{ "id": waba, "changes": [
        { "field": "account_update", "value": { "phone_number": display, "event": "DISABLED_UPDATE",
          "ban_info": { "waba_ban_state": ["DISABLE"], "waba_ban_date": "2026-11-28" } } }
    ] }] });
    assert_eq!(app.deliver(banned.to_string().as_bytes()).await.0, 200);
    let (_, number) = api.get(&format!("/v1/numbers/{NUMBER_A}")).await;
    assert_eq!(number["state"], "ERROR", "{number}");
    assert!(number["state_reason"].as_str().unwrap().contains("DISABLED_UPDATE"));
}

#[tokio::test]
async fn diagnostics_run_the_faqs_checks_for_a_number_and_say_what_to_do() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    api.onboard(NUMBER_A).await;
    api.post(&format!("/v1/numbers/{NUMBER_A}/register"), json!({ "pin": "246810" })).await;
    app.statuses_flow_for_the_number().await;
    let (status, healthy) = api.get(&format!("/v1/numbers/{NUMBER_A}/diagnostics")).await;
    assert_eq!(status, 200, "{healthy}");
    assert_eq!(healthy["healthy"], true, "{healthy}");
    let verdict = |d: &Value, name: &str| {
        d["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["verdict"].clone()
    };
    assert_eq!(verdict(&healthy, "app_subscribed"), "pass");
    assert_eq!(verdict(&healthy, "callback_url"), "pass", "Meta posts to our webhook, with `messages`");
    assert_eq!(verdict(&healthy, "webhook_recent"), "pass");

    api.post(&format!("/v1/numbers/{NUMBER_A}/deregister"), json!({ "confirm": NUMBER_A })).await;
    let (_, broken) = api.get(&format!("/v1/numbers/{NUMBER_A}/diagnostics")).await;
    assert_eq!(broken["healthy"], false);
    assert_eq!(verdict(&broken, "state_active"), "fail");
    assert_eq!(verdict(&broken, "meta_connected"), "fail");
    let recovery = broken["checks"].as_array().unwrap().iter().find(|c| c["name"] == "no_pending_recovery").unwrap();
    assert!(recovery["fix"].as_str().unwrap().contains("request a code"));
    assert_eq!(other_workspace(&app).await.get(&format!("/v1/numbers/{NUMBER_A}/diagnostics")).await.0, 404);
}

#[tokio::test]
async fn diagnostics_fail_each_broken_link_between_meta_and_our_webhook_and_say_how_to_fix_it() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    api.onboard(NUMBER_A).await;
    api.post(&format!("/v1/numbers/{NUMBER_A}/register"), json!({ "pin": "246810" })).await;
    let diagnose = || async {
        let (status, diagnosis) = api.get(&format!("/v1/numbers/{NUMBER_A}/diagnostics")).await;
        assert_eq!(status, 200, "{diagnosis}");
        diagnosis
    };
    let check = |diagnosis: &Value, name: &str| {
        diagnosis["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone()
    };

    // The FAQ's step 2: the callback URL in the App Dashboard is not ours.
    app.env.sandbox.app_webhook_changed("https://old-provider.example.com/hook", &["messages"]);
    let diagnosis = diagnose().await;
    assert_eq!(diagnosis["healthy"], false);
    let callback = check(&diagnosis, "callback_url");
    assert_eq!(callback["verdict"], "fail");
    assert!(callback["detail"].as_str().unwrap().contains("https://old-provider.example.com/hook"), "{callback}");
    assert!(callback["fix"].as_str().unwrap().contains("callback URL"), "{callback}");

    // Step 3: ours, but without the `messages` field.
    let ours = app.env.sandbox.state.webhook_url().unwrap();
    app.env.sandbox.app_webhook_changed(&ours, &["account_update"]);
    let callback = check(&diagnose().await, "callback_url");
    assert_eq!(callback["verdict"], "fail");
    assert!(callback["detail"].as_str().unwrap().contains("`messages`"), "{callback}");

    // And the app removed from the WABA: Meta sends it nothing at all.
    app.env.sandbox.app_webhook_changed(&ours, &["messages"]);
    app.env.sandbox.app_removed_from_waba(&format!("9{NUMBER_A}"));
    let diagnosis = diagnose().await;
    assert_eq!(check(&diagnosis, "callback_url")["verdict"], "pass");
    let subscribed = check(&diagnosis, "app_subscribed");
    assert_eq!(subscribed["verdict"], "fail");
    assert!(subscribed["fix"].as_str().unwrap().contains("POST /v1/numbers"), "{subscribed}");
    assert_eq!(diagnosis["healthy"], false);
}

#[tokio::test]
async fn a_workspace_over_its_request_rate_gets_429_with_retry_after_and_others_do_not() {
    let app = TestApp::spawn_with(EnvironmentOptions { api_workspace_rate: Some(3), ..Default::default() }).await;
    let api = client(&app).await;
    let rival = other_workspace(&app).await;
    let url = format!("{}/v1/numbers", app.env.stack.http_url);
    let burst = (0..8).map(|_| app.http.get(&url).bearer_auth(&api.key).send());
    let answers = futures_util::future::join_all(burst).await;
    let limited: Vec<_> = answers.into_iter().map(Result::unwrap).filter(|r| r.status() == 429).collect();
    assert!(!limited.is_empty(), "a burst over the rate is refused");
    assert!(limited[0].headers().get("retry-after").is_some());
    assert_eq!(rival.get("/v1/numbers").await.0, 200, "another workspace keeps its own budget");
}

#[tokio::test]
async fn embedded_signup_exchanges_the_code_and_onboards_the_wabas_numbers() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    let waba = format!("9{NUMBER_B}");
    let (status, refused) = api.post("/v1/numbers/embedded-signup", json!({ "code": "forged", "waba_id": waba })).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("meta_refused")), "{refused}");
    let (status, onboarded) =
        api.post("/v1/numbers/embedded-signup", json!({ "code": "sandbox-code-42", "waba_id": waba })).await;
    assert_eq!(status, 201, "{onboarded}");
    assert_eq!(onboarded["items"][0]["phone_number_id"], NUMBER_B);
    assert!(!onboarded.to_string().contains("EAAGsignup42TOKEN"), "the business token is never returned");
    let exchange = app.env.sandbox.requests_to("/oauth/access_token");
    assert_eq!(exchange.len(), 2);
    assert!(exchange[1].query.contains("client_id=local-app"));
    let sent_with = app.env.sandbox.requests_to("/phone_numbers");
    assert_eq!(
        sent_with[0].authorization.as_deref(),
        Some("Bearer EAAGsignup42TOKEN"),
        "the exchanged token is the one used"
    );
}

#[tokio::test]
async fn a_signup_onboards_the_wabas_free_numbers_and_names_those_another_workspace_holds() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    let rival = other_workspace(&app).await;
    assert_eq!(rival.onboard(NUMBER_B).await.0, 201);
    let waba = format!("9{NUMBER_A}");
    app.env.sandbox.waba_holds(&waba, &[NUMBER_A, NUMBER_B]);

    let signup = json!({ "code": "sandbox-code-7", "waba_id": waba });
    let (status, signed_up) = api.post("/v1/numbers/embedded-signup", signup).await;
    assert_eq!(status, 201, "{signed_up}");
    assert_eq!(signed_up["items"].as_array().unwrap().len(), 1);
    assert_eq!(signed_up["items"][0]["phone_number_id"], NUMBER_A);
    assert_eq!(signed_up["held_elsewhere"], json!([NUMBER_B]), "named, not onboarded, and no error");
    assert_eq!(rival.get(&format!("/v1/numbers/{NUMBER_B}")).await.0, 200, "still the other workspace's");

    // Every number of the WABA held elsewhere: nothing to onboard is a conflict.
    app.env.sandbox.waba_holds(&waba, &[NUMBER_B]);
    let (status, refused) =
        api.post("/v1/numbers/embedded-signup", json!({ "code": "sandbox-code-9", "waba_id": waba })).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("conflict")), "{refused}");
}

#[tokio::test]
async fn re_onboarding_stores_the_fresh_token_and_leaves_registration_alone() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    api.onboard(NUMBER_A).await;
    api.post(&format!("/v1/numbers/{NUMBER_A}/deregister"), json!({ "confirm": NUMBER_A })).await;
    let fresh =
        json!({ "phone_number_id": NUMBER_A, "waba_id": format!("9{NUMBER_A}"), "access_token": "EAAGfreshTOKEN9876" });
    let (status, again) = api.post("/v1/numbers", fresh).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["token_last4"], "9876", "the fresh token is stored");
    assert_eq!(again["state"], "DISCONNECTED", "re-adding does not undo a deregistration (FAQ)");
}

#[tokio::test]
async fn a_released_number_stops_routing_to_the_workspace_within_seconds() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    api.onboard(NUMBER_A).await;
    app.customer_writes(CUSTOMER).await;
    assert_eq!(api.call(reqwest::Method::DELETE, &format!("/v1/numbers/{NUMBER_A}"), None, &[]).await.0, 204);
    tokio::time::sleep(std::time::Duration::from_secs(6)).await; // the webhook's route cache
    app.customer_writes("16505550009").await;
    let (_, page) = api.get("/v1/conversations").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "the message after the release is not this workspace's");
}

#[tokio::test]
async fn number_and_template_lists_page_with_cursors() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    api.onboard(NUMBER_A).await;
    api.onboard(NUMBER_B).await;
    let (_, first) = api.get("/v1/numbers?limit=1").await;
    let cursor = first["next"].as_str().expect("a second page").to_owned();
    let (_, second) = api.get(&format!("/v1/numbers?limit=1&cursor={cursor}")).await;
    assert_ne!(first["items"][0]["phone_number_id"], second["items"][0]["phone_number_id"]);
    let (status, _) = api.get("/v1/templates?cursor=00").await;
    assert_eq!(status, 422, "a cursor this list never gave out");
}

#[tokio::test]
async fn parallel_wrong_pins_never_reach_meta_more_often_than_its_lock_allows_and_a_locked_number_is_not_released() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    api.onboard(NUMBER_A).await;
    let path = format!("/v1/numbers/{NUMBER_A}/register");
    assert_eq!(api.post(&path, json!({ "pin": "246810" })).await.0, 200);
    let before = app.env.sandbox.requests_to("/register").len();
    let wrong = (0..6).map(|i| api.post(&path, json!({ "pin": format!("00000{i}") })));
    let answers = futures_util::future::join_all(wrong).await;
    let at_meta = app.env.sandbox.requests_to("/register").len() - before;
    assert_eq!(at_meta, 3, "only as many wrong PINs as Meta allows reached Meta: {answers:?}");
    assert_eq!(answers.iter().filter(|(status, _)| *status == 409).count(), 3, "the rest were refused here");
    let (status, refused) = api.call(reqwest::Method::DELETE, &format!("/v1/numbers/{NUMBER_A}"), None, &[]).await;
    assert_eq!(status, 409, "releasing would wipe the lock: {refused}");
}

#[tokio::test]
async fn a_retried_inbox_post_answers_as_the_first_did_even_after_the_window_closed() {
    let app = TestApp::spawn_idle().await;
    let api = client(&app).await;
    api.onboard(NUMBER_A).await;
    app.customer_writes(CUSTOMER).await;
    let path = format!("/v1/conversations/wa:{NUMBER_A}:{CUSTOMER}/messages");
    let reply = json!({ "agent_id": "dana", "content": { "type": "text", "body": "On its way" } });
    let key = [("idempotency-key", "late-retry-1")];
    let (status, first) = api.call(reqwest::Method::POST, &path, Some(reply.clone()), &key).await;
    assert_eq!(status, 202, "{first}");
    app.advance(Duration::hours(25)).await;
    let (status, again) = api.call(reqwest::Method::POST, &path, Some(reply), &key).await;
    assert_eq!((status, &again["job_id"]), (202, &first["job_id"]), "{again}");
    let long = json!({ "agent_id": "dana", "content": { "type": "text", "body": "x".repeat(5000) } });
    let (status, refused) = api.call(reqwest::Method::POST, &path, Some(long), &[("idempotency-key", "long-1")]).await;
    assert_eq!((status, refused["error"]["fields"][0]["field"].as_str()), (422, Some("content.body")));
    assert_eq!(api.get("/v1/conversations?limit=abc").await.0, 422, "a query that does not read");
}

/// An inbox whose two conversations DynamoDB can list but, for a while, not read.
async fn inbox_of_two(app: &TestApp) -> Client<'_> {
    let api = client(app).await;
    api.onboard(NUMBER_A).await;
    app.customer_writes(CUSTOMER).await;
    app.customer_writes("16505550002").await;
    api
}

fn listed(page: &Value) -> usize {
    page["items"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn an_inbox_whose_items_cannot_be_read_answers_503_and_the_next_listing_is_whole() {
    let app = TestApp::spawn_idle().await;
    let api = inbox_of_two(&app).await;
    app.aws_fails_next(AwsFault::internal_error("BatchGetItem", 100));

    let (status, refused) = api.get("/v1/conversations").await;
    assert_eq!((status, refused["error"]["code"].as_str()), (503, Some("unavailable")), "{refused}");
    assert!(app.aws().faults_met("BatchGetItem") >= 1, "the read of the listed items is what failed");
    assert!(!refused.to_string().contains("BatchGetItem"), "storage's internals stay ours: {refused}");

    app.aws().heal();
    let (status, page) = api.get("/v1/conversations").await;
    assert_eq!((status, listed(&page)), (200, 2), "nothing was lost: {page}");
}

#[tokio::test]
async fn a_throttled_read_of_the_listed_items_is_retried_and_the_listing_is_whole() {
    let app = TestApp::spawn_idle().await;
    let api = inbox_of_two(&app).await;
    app.aws_fails_next(AwsFault::throttled("BatchGetItem", 1));

    let (status, page) = api.get("/v1/conversations").await;
    assert_eq!((status, listed(&page)), (200, 2), "{page}");
    assert_eq!(app.aws().faults_met("BatchGetItem"), 1);
}

#[tokio::test]
async fn keys_dynamodb_leaves_unprocessed_are_asked_again_and_a_read_that_never_completes_is_a_503() {
    let app = TestApp::spawn_idle().await;
    let api = inbox_of_two(&app).await;

    app.aws_fails_next(AwsFault::nothing_processed(2));
    let (status, page) = api.get("/v1/conversations").await;
    assert_eq!((status, listed(&page)), (200, 2), "the third ask read them: {page}");

    app.aws_fails_next(AwsFault::nothing_processed(100));
    let (status, refused) = api.get("/v1/conversations").await;
    assert_eq!(status, 503, "never a short page that silently drops what was not read: {refused}");
    assert_eq!(app.aws().faults_met("BatchGetItem"), 2 + 8, "asked 8 times, then given up");
}

#[tokio::test]
async fn a_number_that_cannot_be_connected_is_not_held_from_another_workspace() {
    let app = TestApp::spawn_idle().await;
    let (api, rival) = (client(&app).await, other_workspace(&app).await);

    app.aws_fails_next(AwsFault::internal_error("GenerateDataKey", 100));
    let (status, refused) = api.onboard(NUMBER_A).await;
    assert_eq!(status, 503, "try again shortly: {refused}");
    assert!(app.aws().faults_met("GenerateDataKey") >= 1, "sealing the token is what failed");
    app.aws().heal();
    assert_eq!(api.get(&format!("/v1/numbers/{NUMBER_A}")).await.0, 404, "not connected");

    // The number was never this workspace's: the business may connect it where it means to.
    let (status, connected) = rival.onboard(NUMBER_A).await;
    assert_eq!(status, 201, "{connected}");

    // The claim and the number's first record are one write; when it fails, neither is kept.
    app.aws_fails_next(AwsFault::internal_error("TransactWriteItems", 100).when_body_contains("#NUMBER#"));
    assert_eq!(api.onboard(NUMBER_B).await.0, 503);
    app.aws().heal();
    assert_eq!(rival.onboard(NUMBER_B).await.0, 201, "not held by the workspace that failed to connect it");
}
