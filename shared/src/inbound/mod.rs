//! Receiving what Meta delivers: parsing a webhook body into events ([`event`]), the
//! delivery-status ordering ([`status`]), and storing each event exactly once ([`receiver`]).

pub mod event;
pub mod heartbeat;
pub mod receiver;
pub mod status;
