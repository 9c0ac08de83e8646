//! Workspaces and API keys on the local table: created once, keys shown once and stored as a
//! hash, a revocation effective for the very next request, and no workspace reaching another's
//! keys. The operator CLI is run through its library entry point against the same table.

use aws_sdk_dynamodb::types::AttributeValue;
use secrecy::ExposeSecret;
use wapisnap::access::{IssueKeyError, WorkspaceCreation};
use wapisnap::clock::Clock;
use wapisnap::config::Env;
use wapisnap::domain::WorkspaceId;
use wapisnap_admin::AdminError;
use wapisnap_local::aws_faults::AwsFault;
use wapisnap_tests::TestApp;

fn ws(id: &str) -> WorkspaceId {
    WorkspaceId::parse(id).unwrap()
}

/// The key's prefix, as `wsk_{prefix}_{secret}` spells it.
fn prefix_of(key: &str) -> &str {
    &key[4..12]
}

#[tokio::test]
async fn a_workspace_is_created_once_and_never_overwritten() {
    let app = TestApp::spawn_idle().await;
    let store = app.store();
    let acme = ws("acme");
    let first = app.env.stack.clock.now();

    let created = store.create_workspace(&acme, "Acme", first).await.unwrap();
    assert!(matches!(&created, WorkspaceCreation::Created(w) if w.name == "Acme"), "{created:?}");
    let again = store.create_workspace(&acme, "Impostor", first + chrono::Duration::hours(1)).await.unwrap();
    assert_eq!(again, WorkspaceCreation::AlreadyExists);

    let stored = store.workspace(&acme).await.unwrap().expect("the workspace exists");
    assert_eq!((stored.name.as_str(), stored.created_at), ("Acme", first), "the first creation stands");
    assert_eq!(store.workspace(&ws("nobody")).await.unwrap(), None);
}

#[tokio::test]
async fn a_workspace_whose_writes_answers_were_lost_is_opened_with_one_working_key() {
    let app = TestApp::spawn_idle().await;
    let store = app.store();
    let acme = ws("acme");

    // DynamoDB writes the workspace, then its first key, and both answers are lost: each time
    // the SDK's second try is refused by the first one.
    app.aws_fails_next(AwsFault::answer_lost("PutItem", 1).when_body_contains("#WORKSPACE"));
    app.aws_fails_next(AwsFault::answer_lost("PutItem", 1).when_body_contains("APIKEY#"));
    let opened = wapisnap::access::open_workspace(&store, &acme, "Acme", app.env.stack.clock.now())
        .await
        .expect("opened, not 'already exists'");
    assert_eq!(app.aws().faults_met("PutItem"), 2, "both answers were lost");
    assert_eq!(store.authenticate(opened.key.key.expose_secret()).await.unwrap(), Some(acme.clone()));
    assert_eq!(store.api_keys(&acme).await.unwrap().len(), 1, "one key, no orphan");
}

#[tokio::test]
async fn an_issued_key_authenticates_as_its_workspace_only_for_an_existing_workspace() {
    let app = TestApp::spawn_idle().await;
    let (workspace, key) = app.workspace_with_key().await;
    let store = app.store();

    assert_eq!(store.authenticate(&key).await.unwrap(), Some(workspace.clone()));
    assert_eq!(store.authenticate(&key).await.unwrap(), Some(workspace), "a key is not used up");

    let refused = store.issue_api_key(&ws("never-created"), "x", app.env.stack.clock.now()).await;
    assert!(matches!(refused, Err(IssueKeyError::NoSuchWorkspace(_))), "{refused:?}");
    assert!(store.api_keys(&ws("never-created")).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_revoked_key_fails_at_once_and_other_keys_keep_working() {
    let app = TestApp::spawn_idle().await;
    let (workspace, revoked) = app.workspace_with_key().await;
    let kept = app.key_for(&workspace).await;
    let store = app.store();
    let now = app.env.stack.clock.now();
    assert_eq!(store.authenticate(&revoked).await.unwrap(), Some(workspace.clone()));

    assert!(store.revoke_api_key(&workspace, prefix_of(&revoked), now).await.unwrap());
    assert_eq!(store.authenticate(&revoked).await.unwrap(), None, "the very next request is refused");
    assert_eq!(store.authenticate(&kept).await.unwrap(), Some(workspace.clone()));

    let later = now + chrono::Duration::hours(1);
    assert!(store.revoke_api_key(&workspace, prefix_of(&revoked), later).await.unwrap(), "revoking twice is fine");
    let listed = store.api_keys(&workspace).await.unwrap();
    let entry = listed.iter().find(|k| k.prefix == prefix_of(&revoked)).expect("still listed");
    assert_eq!(entry.revoked_at, Some(now), "the first revocation's time is kept");
    assert_eq!(store.authenticate(&revoked).await.unwrap(), None);
}

#[tokio::test]
async fn malformed_keys_unknown_prefixes_and_wrong_secrets_fail() {
    let app = TestApp::spawn_idle().await;
    let (_, key) = app.workspace_with_key().await;
    let store = app.store();
    let prefix = prefix_of(&key);
    let secret = &key[13..];
    let mut wrong_secret = secret.to_owned();
    let last = if wrong_secret.ends_with('A') { "B" } else { "A" };
    wrong_secret.replace_range(wrong_secret.len() - 1.., last);

    for presented in [
        String::new(),
        "Bearer".into(),
        format!("Bearer {key}"),
        format!("{key} "),
        key.to_uppercase(),
        format!("wsk_{prefix}"),
        format!("wsk_{prefix}_{}", &secret[1..]),
        format!("wsk_{prefix}_{wrong_secret}"),
        format!("wsk_zzzzzzzz_{secret}"),
        format!("wsk_{prefix}_{}", "A".repeat(43)),
    ] {
        assert_eq!(store.authenticate(&presented).await.unwrap(), None, "{presented:?} was accepted");
    }
    assert!(store.authenticate(&key).await.unwrap().is_some(), "failed attempts do not lock the real key");
}

#[tokio::test]
async fn a_key_of_workspace_a_cannot_revoke_or_list_workspace_bs_keys() {
    let app = TestApp::spawn_idle().await;
    let (a, a_key) = app.workspace_with_key().await;
    let b = ws("other-business");
    let b_key = app.key_for(&b).await;
    let store = app.store();
    let now = app.env.stack.clock.now();

    assert!(!store.revoke_api_key(&a, prefix_of(&b_key), now).await.unwrap(), "not A's key");
    assert!(!store.revoke_api_key(&a, "../../x", now).await.unwrap(), "not a prefix at all");
    assert_eq!(store.authenticate(&b_key).await.unwrap(), Some(b.clone()), "B's key still works");
    assert!(store.api_keys(&b).await.unwrap().iter().all(|k| k.revoked_at.is_none()));

    let a_listed: Vec<String> = store.api_keys(&a).await.unwrap().into_iter().map(|k| k.prefix).collect();
    assert_eq!(a_listed, [prefix_of(&a_key)], "A lists its own key only");
}

#[tokio::test]
async fn listing_shows_prefixes_and_labels_and_the_table_holds_only_a_hash() {
    let app = TestApp::spawn_idle().await;
    let (workspace, first) = app.workspace_with_key().await;
    let store = app.store();
    let later = app.env.stack.clock.now() + chrono::Duration::seconds(5);
    let second = store.issue_api_key(&workspace, "zapier", later).await.unwrap();
    let second_key = secrecy::ExposeSecret::expose_secret(&second.key).to_owned();

    let listed = store.api_keys(&workspace).await.unwrap();
    let prefixes: Vec<&str> = listed.iter().map(|k| k.prefix.as_str()).collect();
    assert_eq!(prefixes, [prefix_of(&first), second.prefix.as_str()], "oldest first");
    assert_eq!(listed[1].label, "zapier");
    let shown = format!("{listed:?}");
    for key in [&first, &second_key] {
        assert!(!shown.contains(&key[13..]), "a listing never shows a secret");
    }
    assert!(!format!("{second:?}").contains(&second_key[13..]), "an issued key's Debug is redacted");

    // Nothing in the stored item is the key or its secret: only a SHA-256 of it.
    let item = app
        .env
        .stack
        .aws
        .dynamodb
        .get_item()
        .table_name(app.env.stack.resources.table_name())
        .key("pk", AttributeValue::S(format!("APIKEY#{}", second.prefix)))
        .key("sk", AttributeValue::S("APIKEY".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the key's item");
    for value in item.values() {
        if let AttributeValue::S(text) = value {
            assert!(!text.contains(&second_key[13..]), "the table holds the secret in {text:?}");
        }
    }
    assert!(matches!(item.get("key_sha256"), Some(AttributeValue::S(h)) if h.len() == 64));
}

/// Runs `wapisnap-admin` (its library entry point) against the stack's table, as an operator
/// would with the environment `make dev` prints.
async fn admin(app: &TestApp, line: &str) -> Result<String, AdminError> {
    let env = Env::from_pairs([
        ("TABLE_NAME", app.env.stack.resources.table_name()),
        ("AWS_ENDPOINT_URL", app.env.aws_endpoint.clone()),
    ]);
    let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    let mut out = Vec::new();
    wapisnap_admin::run(&args, &env, app.env.stack.clock.now(), &mut out).await?;
    Ok(String::from_utf8(out).expect("the CLI prints text"))
}

fn printed_key(output: &str) -> String {
    output.lines().find(|l| l.starts_with("wsk_")).unwrap_or_else(|| panic!("no key printed in {output}")).to_owned()
}

#[tokio::test]
async fn the_admin_cli_creates_workspaces_and_keys_lists_and_revokes_them() {
    let app = TestApp::spawn_idle().await;
    let store = app.store();

    let created = admin(&app, "workspace create acme --name Acme").await.unwrap();
    let first = printed_key(&created);
    assert!(created.contains("workspace acme"), "{created}");
    assert_eq!(store.authenticate(&first).await.unwrap(), Some(ws("acme")));
    assert_eq!(store.workspace(&ws("acme")).await.unwrap().unwrap().name, "Acme");

    let again = admin(&app, "workspace create acme").await.expect_err("acme exists");
    assert_eq!(again.exit_code(), 1);
    assert!(again.to_string().contains("already exists"), "{again}");

    let second = printed_key(&admin(&app, "key create acme --label ci").await.unwrap());
    assert_ne!(first, second);
    assert_eq!(store.authenticate(&second).await.unwrap(), Some(ws("acme")));

    let listed = admin(&app, "key list acme").await.unwrap();
    assert!(listed.contains(prefix_of(&first)) && listed.contains(prefix_of(&second)), "{listed}");
    assert!(listed.contains("ci") && listed.contains("2 key(s)"), "{listed}");
    assert!(!listed.contains(&first[13..]) && !listed.contains(&second[13..]), "a listing shows prefixes only");

    let revoked = admin(&app, &format!("key revoke acme {}", prefix_of(&first))).await.unwrap();
    assert!(revoked.contains("revoked"), "{revoked}");
    assert_eq!(store.authenticate(&first).await.unwrap(), None);
    assert_eq!(store.authenticate(&second).await.unwrap(), Some(ws("acme")));

    app.key_for(&ws("globex")).await;
    let foreign =
        admin(&app, &format!("key revoke globex {}", prefix_of(&second))).await.expect_err("not globex's key");
    assert!(matches!(foreign, AdminError::NoSuchKey { .. }), "{foreign}");
    assert_eq!(store.authenticate(&second).await.unwrap(), Some(ws("acme")));

    let missing = admin(&app, "key create nobody").await.expect_err("no such workspace");
    assert_eq!(missing.exit_code(), 1);
    let usage = admin(&app, "key frobnicate acme").await.expect_err("not a command");
    assert_eq!(usage.exit_code(), 2);
}
