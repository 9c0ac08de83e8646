//! Everything we send: the send job (what, to whom, on whose behalf), its Graph API body, and
//! the messages that move it through the send queue.

pub mod accept;
pub mod content;
pub mod job;
pub mod sender;
pub mod sweeper;
pub mod undeliverable;
