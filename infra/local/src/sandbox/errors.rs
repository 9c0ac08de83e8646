//! Meta's errors as Meta sends them: the Graph API's JSON error body, with the codes and
//! titles of the WhatsApp Cloud API error reference.
//! <https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes>

use serde_json::{Value, json};

/// (HTTP status, title, details) Meta uses for a code.
pub fn describe(code: i64) -> (u16, &'static str, &'static str) {
    match code {
        190 => {
            (401, "Invalid OAuth access token - Cannot parse access token", "The access token is invalid or expired.")
        }
        100 => (400, "Invalid parameter", "A required parameter is missing or invalid."),
        80007 => (400, "Rate limit issues", "The WhatsApp Business Account has reached its rate limit."),
        130429 => (400, "Rate limit hit", "Cloud API message throughput has been reached."),
        131000 => (500, "Something went wrong", "Message failed to send due to an unknown error."),
        131016 => (503, "Service unavailable", "A service is temporarily unavailable."),
        131026 => (
            400,
            "Message undeliverable",
            "Unable to deliver message. Reasons can include: the recipient phone number is not a WhatsApp phone number.",
        ),
        131047 => (
            400,
            "Re-engagement message",
            "More than 24 hours have passed since the recipient last replied to the sender number.",
        ),
        131049 => (
            400,
            "This message was not delivered to maintain healthy ecosystem engagement.",
            "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
        ),
        131056 => (
            400,
            "(Business Account, Consumer Account) pair rate limit hit",
            "Too many messages sent from the sender phone number to the same recipient phone number in a short period of time.",
        ),
        132001 => (
            404,
            "Template name does not exist in the translation",
            "The template does not exist in the specified language.",
        ),
        132015 => (400, "Template is Paused", "The template has been paused due to low quality."),
        132016 => (400, "Template is Disabled", "The template has been disabled due to low quality."),
        133004 => (503, "Server temporarily unavailable", "The server is temporarily unavailable."),
        133005 => (400, "Two step verification PIN Mismatch", "The two-step verification PIN is incorrect."),
        133006 => {
            (400, "Phone number re-verification needed", "The phone number needs to be verified before registering.")
        }
        133010 => (
            400,
            "Phone number Not Registered",
            "The phone number is not registered on the WhatsApp Business Platform.",
        ),
        136025 => (400, "Verify code error", "The verification code could not be verified."),
        _ => (400, "Unknown error", "An error occurred."),
    }
}

pub fn error_body(code: i64, subcode: Option<i64>, message: Option<&str>, details: Option<&str>, trace: u64) -> Value {
    let (_, title, default_details) = describe(code);
    let mut error = json!({
        "message": format!("(#{code}) {}", message.unwrap_or(title)),
        "type": "OAuthException",
        "code": code,
        "error_data": { "messaging_product": "whatsapp", "details": details.unwrap_or(default_details) },
        "fbtrace_id": format!("ASandbox{trace:08}"),
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    json!({ "error": error })
}
