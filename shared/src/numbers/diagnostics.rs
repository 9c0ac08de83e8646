//! The FAQ's "Inbound messages stopped arriving. Where do I look?", as checks the API can run
//! for a number: each passes or fails with what to do, in the FAQ's order, plus the onboarding
//! trap users hit most (registering before Meta approved the display name).

use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;

use crate::domain::{NumberState, WorkspaceId};
use crate::meta::graph::GraphClient;
use crate::store::numbers::NumberRecord;
use crate::vault::Vault;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// Not checkable from here (or Meta did not answer): the `fix` says where to look.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    /// What to do when it fails.
    pub fix: Option<String>,
}

fn check(name: &'static str, verdict: Verdict, detail: impl Into<String>, fix: Option<&str>) -> Check {
    Check { name, verdict, detail: detail.into(), fix: fix.map(str::to_owned) }
}

/// A webhook within this long counts as "recently".
fn recent() -> Duration {
    Duration::hours(24)
}

/// Where we expect Meta to post webhooks, and the app whose subscription says where it does.
pub struct Expected<'a> {
    pub callback_url: Option<&'a str>,
    pub app: Option<(&'a str, &'a SecretString)>,
}

pub async fn diagnose(
    vault: &Vault,
    graph: &GraphClient,
    workspace: &WorkspaceId,
    number: &NumberRecord,
    expected: Expected<'_>,
    now: DateTime<Utc>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(match number.state {
        NumberState::Active => check("state_active", Verdict::Pass, "the number is ACTIVE here", None),
        state => check(
            "state_active",
            Verdict::Fail,
            format!("the number is {state:?} here{}", number.state_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()),
            Some("register the number (POST /v1/numbers/{id}/register); an ERROR from an invalid token needs the number onboarded again with a fresh token"),
        ),
    });
    let (meta, subscribed) = match vault.open(workspace.as_str(), &number.account_id, &number.token).await {
        Ok(token) => {
            let meta =
                graph.get(&graph.endpoint(&super::onboarding::number_fields(&number.account_id)), &token).await.ok();
            let subscribed = match &number.waba_id {
                Some(waba) => graph.get(&graph.endpoint(&format!("{waba}/subscribed_apps")), &token).await.ok(),
                None => None,
            };
            (meta, subscribed)
        }
        Err(_) => (None, None),
    };
    checks.push(match &subscribed {
        Some(answer) if answer["data"].as_array().is_some_and(|apps| !apps.is_empty()) => {
            check("app_subscribed", Verdict::Pass, "the app is subscribed to the WhatsApp Business Account", None)
        }
        Some(_) => check(
            "app_subscribed",
            Verdict::Fail,
            "the app is not subscribed to the WhatsApp Business Account: Meta sends it no webhooks",
            Some("onboard the number again (POST /v1/numbers subscribes the app), and in the Meta App Dashboard subscribe the `messages` field"),
        ),
        None => check("app_subscribed", Verdict::Unknown, "Meta did not answer", Some("check WhatsApp → Configuration in the Meta App Dashboard")),
    });
    checks.push(callback_check(graph, &expected).await);
    let meta_status = meta.as_ref().and_then(|m| m["status"].as_str()).map(str::to_owned);
    checks.push(match meta_status.as_deref() {
        Some("CONNECTED") => check("meta_connected", Verdict::Pass, "Meta's status of the number is CONNECTED", None),
        Some(other) => check(
            "meta_connected",
            Verdict::Fail,
            format!("Meta's status of the number is {other}"),
            Some("WhatsApp Manager → Phone numbers: the number must be CONNECTED; after a deregistration it must be verified again by SMS and registered"),
        ),
        None => check("meta_connected", Verdict::Unknown, "Meta did not answer", Some("look the number up in WhatsApp Manager")),
    });
    checks.push(if number.needs_reverification || number.state == NumberState::Disconnected {
        check(
            "no_pending_recovery",
            Verdict::Fail,
            "the number was deregistered or Meta locked registration after wrong PINs",
            Some(super::registration::REVERIFY_STEPS),
        )
    } else {
        check("no_pending_recovery", Verdict::Pass, "no deregistration or PIN lock waiting for recovery", None)
    });
    checks.push(match number.statuses_seen_at {
        Some(at) if now - at <= recent() => {
            check("webhook_recent", Verdict::Pass, format!("a webhook for the number arrived at {at}"), None)
        }
        Some(at) => check(
            "webhook_recent",
            Verdict::Fail,
            format!("the last webhook for the number arrived at {at}"),
            Some("if customers are writing, Meta is not delivering: check the subscription and callback URL above"),
        ),
        None => check(
            "webhook_recent",
            Verdict::Unknown,
            "no webhook for the number has arrived yet",
            Some("send a message to the number from a phone and look again"),
        ),
    });
    checks.push(display_name_check(meta.as_ref()));
    checks
}

/// The callback URL and fields Meta has for the app, against ours.
async fn callback_check(graph: &GraphClient, expected: &Expected<'_>) -> Check {
    const FIX: &str = "Meta App Dashboard → WhatsApp → Configuration: set the callback URL to ours and subscribe the `messages` field";
    let ours = expected.callback_url.unwrap_or("the stack's WebhookUrl output");
    let Some((app_id, app_secret)) = expected.app else {
        return check(
            "callback_url",
            Verdict::Unknown,
            format!("our webhook is {ours}; META_APP_ID is not set, so Meta's side is not read"),
            Some(FIX),
        );
    };
    let Ok(subscriptions) = graph.app_subscriptions(app_id, app_secret).await else {
        return check(
            "callback_url",
            Verdict::Unknown,
            format!("our webhook is {ours}; Meta did not answer"),
            Some(FIX),
        );
    };
    let whatsapp =
        subscriptions["data"].as_array().into_iter().flatten().find(|s| s["object"] == "whatsapp_business_account");
    let Some(whatsapp) = whatsapp else {
        return check("callback_url", Verdict::Fail, "the app has no WhatsApp webhook subscription", Some(FIX));
    };
    let theirs = whatsapp["callback_url"].as_str().unwrap_or_default();
    let messages =
        whatsapp["fields"].as_array().into_iter().flatten().any(|f| f["name"] == "messages" || f == "messages");
    match (expected.callback_url, messages) {
        (Some(ours), true) if theirs == ours => {
            check("callback_url", Verdict::Pass, format!("Meta posts to {theirs}, with `messages`"), None)
        }
        (None, true) => check(
            "callback_url",
            Verdict::Unknown,
            format!("Meta posts to {theirs}; compare with the stack's WebhookUrl"),
            Some(FIX),
        ),
        (_, false) => check("callback_url", Verdict::Fail, "the `messages` field is not subscribed", Some(FIX)),
        (Some(ours), true) => {
            check("callback_url", Verdict::Fail, format!("Meta posts to {theirs}, not to {ours}"), Some(FIX))
        }
    }
}

/// Registering before Meta approved the display name leaves the number unable to send.
fn display_name_check(meta: Option<&Value>) -> Check {
    match meta.and_then(|m| m["name_status"].as_str()) {
        None | Some("APPROVED") | Some("AVAILABLE_WITHOUT_REVIEW") => check(
            "display_name_approved",
            Verdict::Pass,
            "the display name is approved (or Meta did not say otherwise)",
            None,
        ),
        Some(other) => check(
            "display_name_approved",
            Verdict::Fail,
            format!("the display name's review is {other}"),
            Some(
                "wait for Meta to approve the display name (WhatsApp Manager → Phone numbers), then register the number again",
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_display_name_still_in_review_is_the_onboarding_trap() {
        assert_eq!(
            display_name_check(Some(&serde_json::json!({ "name_status": "PENDING_REVIEW" }))).verdict,
            Verdict::Fail
        );
        assert_eq!(display_name_check(Some(&serde_json::json!({ "name_status": "APPROVED" }))).verdict, Verdict::Pass);
    }
}
