//! wapisnap's library crate: everything the Lambda functions share.
//!
//! Split by concept, so a reader finds each rule in one obvious place:
//! - [`config`]: typed configuration read from environment variables, once per cold start.
//! - [`clock`]: the injected clock (real in Lambda, controllable on the local stack).
//! - [`domain`]: the shared nouns — channels, typed ids, messages, statuses, send jobs, states.
//! - [`aws`]: AWS SDK clients, built once per cold start and shared.
//! - [`telemetry`]: tracing set up in one place.
//! - [`lambda`]: the glue between Lambda events and our code (SQS batches, HTTP responses).
//! - [`meta`]: Meta's webhook and Graph API protocol.
//! - [`broadcasts`]: template campaigns — the fan-out, its report.
//! - [`flows`]: automations — definitions, the pure step engine, the runner.
//! - [`access`]: workspaces and their API keys (issued once, stored hashed, revocable).

pub mod access;
pub mod aws;
pub mod broadcasts;
pub mod clock;
pub mod config;
pub mod contacts;
pub mod correlation;
pub mod domain;
pub mod flows;
#[cfg(test)]
mod fuzz;
pub mod inbound;
pub mod inbox;
pub mod lambda;
pub mod meta;
pub mod metrics;
pub mod numbers;
pub mod outbound;
pub mod policy;
pub mod queues;
pub mod retry;
pub mod schedules;
pub mod secrets;
pub mod store;
pub mod telemetry;
pub mod templates;
pub mod vault;
