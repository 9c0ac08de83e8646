//! Automations ("flows"): a workspace's bots. A definition is a trigger and a graph of nodes
//! ([`definition`], checked on save by [`validate`]); a run walks the graph one node per tick
//! through the pure [`engine`]; [`trigger`] decides which automation an event starts; the
//! [`runner`] is the shell that loads, steps, applies effects idempotently and stores.
//!
//! The rules the FAQ names live where a reader looks for them: a human takeover stops the run
//! at its next tick (FAQ: "An agent replied and the bot went silent"), `dnd` skips sends and
//! Instagram skips WhatsApp-only nodes ([`crate::policy::send::automation_may_send`]), and the
//! trigger's channel filter defaults to WhatsApp ([`definition::ChannelFilter`]).

pub mod definition;
pub mod engine;
pub mod runner;
pub mod text;
pub mod timers;
pub mod trigger;
pub mod validate;

#[cfg(test)]
mod tests;
