//! Meta's error codes, named in one place, and what each one means for a send: the table reads
//! like Meta's error reference
//! (<https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes>).
//!
//! The class decides what Smart Retry does (`crate::retry`): a frequency cap waits days, a
//! temporary error climbs the hours ladder, a rate limit backs off briefly without counting an
//! attempt, and everything permanent is never retried.

/// Meta's numeric error code (`error.code` in a Graph answer, `errors[].code` in a status).
pub type MetaCode = i64;

// Authorization and permissions.
pub const API_UNKNOWN: MetaCode = 1;
pub const API_SERVICE: MetaCode = 2;
pub const API_TOO_MANY_CALLS: MetaCode = 4;
pub const PERMISSION_DENIED: MetaCode = 10;
pub const ACCESS_TOKEN_EXPIRED: MetaCode = 190;
pub const INVALID_PARAMETER: MetaCode = 100;
pub const TEMPORARILY_BLOCKED_FOR_POLICY: MetaCode = 368;

// Throttling.
pub const RATE_LIMIT_HIT: MetaCode = 80007;
pub const RATE_LIMIT_HIT_BUSINESS_USE_CASE: MetaCode = 80004;
pub const THROUGHPUT_REACHED: MetaCode = 130429;
pub const SPAM_RATE_LIMIT_HIT: MetaCode = 131048;
pub const PAIR_RATE_LIMIT_HIT: MetaCode = 131056;

// Sending.
pub const SOMETHING_WENT_WRONG: MetaCode = 131000;
pub const SERVICE_UNAVAILABLE: MetaCode = 131016;
pub const RECIPIENT_CANNOT_BE_SENDER: MetaCode = 131021;
pub const NOT_ON_WHATSAPP: MetaCode = 131026;
pub const BUSINESS_ELIGIBILITY_PAYMENT_ISSUE: MetaCode = 131042;
pub const RE_ENGAGEMENT_REQUIRED: MetaCode = 131047;
pub const FREQUENCY_CAP: MetaCode = 131049;
pub const USER_STOPPED_MARKETING: MetaCode = 131050;
pub const UNSUPPORTED_MESSAGE_TYPE: MetaCode = 131051;
pub const MEDIA_DOWNLOAD_ERROR: MetaCode = 131052;
pub const MEDIA_UPLOAD_ERROR: MetaCode = 131053;
pub const ACCOUNT_IN_MAINTENANCE: MetaCode = 131057;

// Templates.
pub const TEMPLATE_PARAMETER_COUNT_MISMATCH: MetaCode = 132000;
pub const TEMPLATE_DOES_NOT_EXIST: MetaCode = 132001;
pub const TEMPLATE_PAUSED: MetaCode = 132015;
pub const TEMPLATE_DISABLED: MetaCode = 132016;
pub const FLOW_THROTTLED: MetaCode = 132069;

// Registration (the FAQ's account lifecycle).
pub const SERVER_TEMPORARILY_UNAVAILABLE: MetaCode = 133004;
pub const PIN_MISMATCH: MetaCode = 133005;
pub const REVERIFICATION_NEEDED: MetaCode = 133006;
pub const NOT_REGISTERED: MetaCode = 133010;

/// What a failure means for the send that met it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// 131049: the recipient had their fill of marketing, from anyone, for about a week.
    FrequencyCap,
    /// Meta could not do it now, and says so: try again in hours.
    Transient,
    /// Meta asks us to slow down; not the message's fault.
    Throttled,
    /// 131026: the recipient is not on WhatsApp (or cannot receive this message).
    NotOnWhatsApp,
    /// 190: the number's access token is invalid; nothing goes out until it is replaced.
    TokenInvalid,
    /// Everything else: the same request will be refused again.
    Permanent,
}

/// Classifies a failure by Meta's error code, or by HTTP status when Meta sent no code. A 5xx
/// without a Meta error body is not classified here: it does not say whether Meta processed
/// the request, so the sender treats it as "maybe sent".
pub fn classify(code: Option<MetaCode>, http_status: Option<u16>) -> FailureClass {
    let Some(code) = code else {
        return match http_status {
            Some(429) => FailureClass::Throttled,
            Some(status) if status >= 500 => FailureClass::Transient,
            _ => FailureClass::Permanent,
        };
    };
    match code {
        FREQUENCY_CAP => FailureClass::FrequencyCap,
        NOT_ON_WHATSAPP => FailureClass::NotOnWhatsApp,
        ACCESS_TOKEN_EXPIRED => FailureClass::TokenInvalid,
        API_TOO_MANY_CALLS
        | RATE_LIMIT_HIT
        | RATE_LIMIT_HIT_BUSINESS_USE_CASE
        | THROUGHPUT_REACHED
        | SPAM_RATE_LIMIT_HIT
        | PAIR_RATE_LIMIT_HIT
        | FLOW_THROTTLED => FailureClass::Throttled,
        API_UNKNOWN
        | API_SERVICE
        | SOMETHING_WENT_WRONG
        | SERVICE_UNAVAILABLE
        | ACCOUNT_IN_MAINTENANCE
        | SERVER_TEMPORARILY_UNAVAILABLE => FailureClass::Transient,
        // An undocumented code in a 5xx answer: Meta's side failed, so it is worth another try.
        _ if http_status.is_some_and(|status| status >= 500) => FailureClass::Transient,
        _ => FailureClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marketing_frequency_cap_has_its_own_class() {
        assert_eq!(classify(Some(FREQUENCY_CAP), Some(400)), FailureClass::FrequencyCap);
    }

    #[test]
    fn meta_s_temporary_errors_are_retried_not_failed() {
        for code in [SOMETHING_WENT_WRONG, SERVICE_UNAVAILABLE, ACCOUNT_IN_MAINTENANCE, SERVER_TEMPORARILY_UNAVAILABLE]
        {
            assert_eq!(classify(Some(code), Some(400)), FailureClass::Transient, "{code}");
        }
    }

    #[test]
    fn rate_limits_are_throttles() {
        for code in [THROUGHPUT_REACHED, PAIR_RATE_LIMIT_HIT, RATE_LIMIT_HIT, SPAM_RATE_LIMIT_HIT, API_TOO_MANY_CALLS] {
            assert_eq!(classify(Some(code), Some(400)), FailureClass::Throttled, "{code}");
        }
        assert_eq!(classify(None, Some(429)), FailureClass::Throttled, "a bare 429 is a rate limit");
    }

    #[test]
    fn a_5xx_carrying_a_meta_code_is_classified_by_the_code() {
        assert_eq!(classify(Some(NOT_ON_WHATSAPP), Some(500)), FailureClass::NotOnWhatsApp);
        assert_eq!(classify(Some(TEMPLATE_PAUSED), Some(503)), FailureClass::Transient, "undocumented in a 5xx");
        assert_eq!(classify(Some(TEMPLATE_PAUSED), Some(400)), FailureClass::Permanent);
    }

    #[test]
    fn refusals_that_would_repeat_are_permanent() {
        for code in [
            RE_ENGAGEMENT_REQUIRED,
            TEMPLATE_PAUSED,
            TEMPLATE_DISABLED,
            TEMPLATE_PARAMETER_COUNT_MISMATCH,
            TEMPLATE_DOES_NOT_EXIST,
            NOT_REGISTERED,
            USER_STOPPED_MARKETING,
            RECIPIENT_CANNOT_BE_SENDER,
        ] {
            assert_eq!(classify(Some(code), Some(400)), FailureClass::Permanent, "{code}");
        }
        assert_eq!(classify(Some(ACCESS_TOKEN_EXPIRED), Some(401)), FailureClass::TokenInvalid);
    }
}
