//! Integration tests: the real handlers driven through the local stack (AWS emulator, local
//! Lambda glue, Meta sandbox). One binary, so the emulator starts once for all of them.

mod access;
mod api;
mod automations_api;
mod broadcasts;
mod broadcasts_api;
mod engine_faults;
mod exactly_once;
mod flows;
mod interleavings;
mod local_stack;
mod sandbox;
mod send_policy;
mod smart_retry;
mod sweeper;
mod webhook_fuzz;
mod webhook_handshake;
mod webhook_receipt;
