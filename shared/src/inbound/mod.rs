//! Receiving what Meta delivers: parsing a webhook body into events ([`event`]), storing each
//! event exactly once ([`receiver`]), and marking numbers whose statuses flow ([`heartbeat`]).
//! The events themselves, and the delivery-status ordering, are nouns: [`crate::domain`].

pub mod event;
pub mod heartbeat;
pub mod receiver;

/// The webhook's global allocator: a delivery is parsed into thousands of short-lived small
/// allocations (ids, texts, event vectors) that are all freed before the next one, which
/// mimalloc serves several times faster than the system allocator. Declared by the webhook
/// function (and `make bench-peers`, to measure what runs) with
/// `#[global_allocator] static ALLOCATOR: Allocator = Allocator;`.
pub use mimalloc::MiMalloc as Allocator;
