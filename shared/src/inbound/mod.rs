//! Receiving what Meta delivers: parsing a webhook body into events ([`event`]), storing each
//! event exactly once ([`receiver`]), and marking numbers whose statuses flow ([`heartbeat`]).
//! The events themselves, and the delivery-status ordering, are nouns: [`crate::domain`].

pub mod event;
pub mod heartbeat;
pub mod receiver;
