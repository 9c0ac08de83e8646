//! Meta's webhook verification handshake, through the local API Gateway.

use wapisnap_tests::TestApp;

async fn handshake(app: &TestApp, query: &[(&str, &str)]) -> (u16, String) {
    let response = app.http.get(app.webhook_url()).query(query).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn a_get_with_the_right_verify_token_echoes_the_challenge() {
    let app = TestApp::spawn_idle().await;
    let (status, body) = handshake(
        &app,
        &[("hub.mode", "subscribe"), ("hub.verify_token", "local-verify-token"), ("hub.challenge", "1158201444")],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "1158201444"));
}

#[tokio::test]
async fn a_wrong_token_is_forbidden_and_missing_parameters_are_bad_requests() {
    let app = TestApp::spawn_idle().await;
    let wrong = &[("hub.mode", "subscribe"), ("hub.verify_token", "guess"), ("hub.challenge", "1")];
    assert_eq!(handshake(&app, wrong).await.0, 403);
    let (status, body) =
        handshake(&app, &[("hub.mode", "subscribe"), ("hub.verify_token", "local-verify-token")]).await;
    assert_eq!(status, 400);
    assert!(body.contains("hub.challenge is missing"), "{body}");
}
