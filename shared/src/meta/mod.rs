//! Meta's protocol: the webhook handshake and signatures, payload types, the Graph API client.

pub mod errors;
pub mod graph;
pub mod handshake;
pub mod signature;
pub mod webhook;
