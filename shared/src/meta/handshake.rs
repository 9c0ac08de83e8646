//! The webhook verification handshake: when a callback URL is saved in the Meta App
//! Dashboard, Meta sends `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…` and
//! expects the challenge echoed back as plain text.
//! <https://developers.facebook.com/docs/graph-api/webhooks/getting-started#verification-requests>

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("query parameter {0} is missing")]
    Missing(&'static str),
    #[error("hub.mode must be \"subscribe\", got {0:?}")]
    WrongMode(String),
    #[error("hub.verify_token does not match the configured verify token")]
    WrongToken,
}

/// Returns the challenge to echo when the request is a valid subscription for one of our
/// tokens (the current one, or the previous one during a rotation).
pub fn verify_subscription(
    query: &[(String, String)],
    verify_tokens: &[SecretString],
) -> Result<String, HandshakeError> {
    let param = |name: &'static str| {
        query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).ok_or(HandshakeError::Missing(name))
    };
    let mode = param("hub.mode")?;
    let token = param("hub.verify_token")?;
    let challenge = param("hub.challenge")?;
    if mode != "subscribe" {
        return Err(HandshakeError::WrongMode(mode.to_owned()));
    }
    // Every token compared, in constant time: which one matched (or how many) leaks nothing.
    let matched = verify_tokens.iter().fold(subtle::Choice::from(0), |matched, ours| {
        matched | token.as_bytes().ct_eq(ours.expose_secret().as_bytes())
    });
    if !bool::from(matched) {
        return Err(HandshakeError::WrongToken);
    }
    Ok(challenge.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    fn token() -> [SecretString; 1] {
        [SecretString::from("s3cret")]
    }

    #[test]
    fn the_right_token_echoes_the_challenge() {
        let q = query(&[("hub.mode", "subscribe"), ("hub.verify_token", "s3cret"), ("hub.challenge", "1158201444")]);
        assert_eq!(verify_subscription(&q, &token()).unwrap(), "1158201444");
    }

    #[test]
    fn a_wrong_token_is_refused() {
        let q = query(&[("hub.mode", "subscribe"), ("hub.verify_token", "guess"), ("hub.challenge", "1")]);
        assert_eq!(verify_subscription(&q, &token()), Err(HandshakeError::WrongToken));
    }

    #[test]
    fn during_a_rotation_the_previous_token_is_accepted_too() {
        let tokens = [SecretString::from("new"), SecretString::from("old")];
        let q = query(&[("hub.mode", "subscribe"), ("hub.verify_token", "old"), ("hub.challenge", "7")]);
        assert_eq!(verify_subscription(&q, &tokens).unwrap(), "7");
    }

    #[test]
    fn a_missing_parameter_is_named() {
        let q = query(&[("hub.mode", "subscribe"), ("hub.verify_token", "s3cret")]);
        assert_eq!(verify_subscription(&q, &token()), Err(HandshakeError::Missing("hub.challenge")));
    }
}
