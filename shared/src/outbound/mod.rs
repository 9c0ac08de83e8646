//! Everything we send: accepting a send job ([`accept`]), its Graph API body ([`content`]),
//! sending it ([`sender`]), settling what no event settles ([`sweeper`]), and the 131026 rule
//! ([`undeliverable`]). The send job and its states are nouns: [`crate::domain`].

pub mod accept;
pub mod content;
pub mod sender;
pub mod sweeper;
pub mod undeliverable;
