//! The Meta sandbox records what it receives and fails the way Meta fails.

use std::net::SocketAddr;

use serde_json::{Value, json};
use wapisnap_local::sandbox::{Fault, FaultEffect, Sandbox};

async fn sandbox() -> Sandbox {
    Sandbox::start(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap()
}

fn text_to(to: &str) -> Value {
    json!({ "messaging_product": "whatsapp", "to": to, "type": "text", "text": { "body": "hi" },
            "biz_opaque_callback_data": "job-1" })
}

#[tokio::test]
async fn the_sandbox_records_a_request_and_returns_an_injected_meta_error() {
    let sandbox = sandbox().await;
    sandbox.inject(Fault {
        path_contains: Some("/messages".into()),
        recipient: Some("16505550000".into()),
        times: 1,
        effect: FaultEffect::MetaError { code: 131026, subcode: None, http_status: None, message: None },
    });
    let http = reqwest::Client::new();
    let url = format!("{}/v23.0/106540352242922/messages", sandbox.url);

    let refused = http.post(&url).bearer_auth("EAAG-token").json(&text_to("16505550000")).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], 131026);
    assert_eq!(body["error"]["type"], "OAuthException");
    assert!(body["error"]["error_data"]["details"].as_str().unwrap().contains("not a WhatsApp phone number"));
    assert!(body["error"]["fbtrace_id"].is_string());

    let accepted = http.post(&url).bearer_auth("EAAG-token").json(&text_to("16505550000")).send().await.unwrap();
    assert_eq!(accepted.status(), 200, "the fault applied once");
    let body: Value = accepted.json().await.unwrap();
    assert!(body["messages"][0]["id"].as_str().unwrap().starts_with("wamid."));

    let recorded = sandbox.requests_to("/messages");
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].answered_status, 400);
    assert_eq!(recorded[0].authorization.as_deref(), Some("Bearer EAAG-token"));
    assert_eq!(recorded[0].body["biz_opaque_callback_data"], "job-1");
}

#[tokio::test]
async fn the_sandbox_refuses_a_call_without_an_access_token_like_meta() {
    let sandbox = sandbox().await;
    let response = reqwest::Client::new()
        .post(format!("{}/v23.0/1/messages", sandbox.url))
        .json(&text_to("1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], 190);
}

#[tokio::test]
async fn wrong_pins_lock_registration_until_the_number_is_reverified() {
    let sandbox = sandbox().await;
    let http = reqwest::Client::new();
    let call = |edge: &'static str, body: Value| {
        let http = http.clone();
        let url = format!("{}/v23.0/777/{edge}", sandbox.url);
        async move {
            let response = http.post(url).bearer_auth("t").json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(call("register", json!({ "messaging_product": "whatsapp", "pin": "123456" })).await.0, 200);
    for _ in 0..3 {
        let (_, body) = call("register", json!({ "messaging_product": "whatsapp", "pin": "000000" })).await;
        assert_eq!(body["error"]["code"], 133005);
    }
    let (_, locked) = call("register", json!({ "messaging_product": "whatsapp", "pin": "123456" })).await;
    assert_eq!(locked["error"]["code"], 133006, "locked even with the right PIN");

    call("request_code", json!({ "code_method": "SMS", "language": "en_US" })).await;
    let code = sandbox.number("777").pending_code.expect("a code was sent");
    assert_eq!(call("verify_code", json!({ "code": code })).await.0, 200);
    assert_eq!(call("register", json!({ "messaging_product": "whatsapp", "pin": "123456" })).await.0, 200);
}

#[tokio::test]
async fn past_a_number_s_throughput_the_sandbox_answers_130429_like_meta_and_counts_per_number() {
    let sandbox = sandbox().await;
    let http = reqwest::Client::new();
    let send = |number: &'static str| {
        let (http, url) = (http.clone(), format!("{}/v23.0/{number}/messages", sandbox.url));
        async move {
            let response = http.post(url).bearer_auth("t").json(&text_to("16505550000")).send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let control = format!("{}/_sandbox/throughput", sandbox.url);
    let limit = json!({ "phone_number_id": "106540352242922", "mps": 3 });
    assert_eq!(http.post(&control).json(&limit).send().await.unwrap().status(), 204);

    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(send("106540352242922").await);
    }
    assert!(answers[..3].iter().all(|(status, _)| *status == 200), "{answers:?}");
    for (status, body) in &answers[3..] {
        assert_eq!((*status, body["error"]["code"].as_i64()), (400, Some(130429)), "{body}");
    }
    assert_eq!(send("106540352242923").await.0, 200, "another number has its own throughput");

    let recorded = sandbox.requests_to("/106540352242922/messages");
    assert_eq!(recorded.iter().filter(|r| r.answered_error_code == Some(130429)).count(), 2);
    assert!(recorded.windows(2).all(|w| w[0].received_at_micros <= w[1].received_at_micros), "timestamped");

    tokio::time::sleep(std::time::Duration::from_millis(1_050)).await;
    assert_eq!(send("106540352242922").await.0, 200, "a second later the window has room again");
    let lifted = json!({ "phone_number_id": "106540352242922", "mps": null });
    assert_eq!(http.post(&control).json(&lifted).send().await.unwrap().status(), 204);
    for _ in 0..5 {
        assert_eq!(send("106540352242922").await.0, 200, "no limit once lifted");
    }
}
