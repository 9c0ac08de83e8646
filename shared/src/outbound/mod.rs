//! Everything we send: accepting a send job ([`accept`]), its Graph API body ([`content`]),
//! sending it ([`sender`]) at the number's pace ([`pacing`]), settling what no event settles ([`sweeper`]), and the 131026 rule
//! ([`undeliverable`]). The send job and its states are nouns: [`crate::domain`].

pub mod accept;
pub mod content;
pub mod pacing;
pub mod sender;
pub mod sweeper;
pub mod undeliverable;
