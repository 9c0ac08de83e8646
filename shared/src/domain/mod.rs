//! The nouns every part of wapisnap shares, in one place: channels and typed ids, inbound
//! messages and statuses, delivery states, send jobs and their states, number and template
//! states. `inbound/` and `outbound/` hold the verbs; everything here is data, valid by
//! construction where it can be.

mod account;
mod channel;
mod delivery;
mod ids;
mod inbound;
mod send;

pub use account::{NumberState, TemplateStatus};
pub use channel::Channel;
pub use delivery::DeliveryState;
pub use ids::{
    AccountId, AutomationId, BroadcastId, ContactId, CorrelationId, InvalidId, MessageId, NodeId, PhoneNumberId, RunId,
    SendJobId, WaId, WabaId, WorkspaceId, conversation_id, mask,
};
pub use inbound::{
    AccountEvent, AccountUpdate, InboundMessage, MessageContent, StatusEvent, UnknownEvent, WebhookEvent,
};
pub use send::{JobState, Origin, SendJob, SendRequest};
