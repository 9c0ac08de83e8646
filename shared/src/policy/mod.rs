//! Meta's rules and ours, as pure functions named after the rule. No I/O here: every rule is
//! unit-tested the way the product FAQ states it.

pub mod handoff;
pub mod messaging_limit;
pub mod send;
pub mod window;
