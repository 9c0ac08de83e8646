//! Integration tests: the real handlers driven through the local stack (AWS emulator, local
//! Lambda glue, Meta sandbox). One binary, so the emulator starts once for all of them.

mod engine_faults;
mod local_stack;
mod sandbox;
mod sending;
mod webhook_handshake;
mod webhook_receipt;
