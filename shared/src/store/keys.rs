//! Every key format of the table, in one place (see the access-pattern table in `store`).

use crate::domain::Channel;
use crate::domain::WorkspaceId;

pub const PK: &str = "pk";
pub const SK: &str = "sk";

pub fn route(channel: Channel, account_id: &str) -> (String, String) {
    (format!("ROUTE#{}#{account_id}", channel.as_str()), "ROUTE".into())
}

/// Which workspace hears Meta's news about a WhatsApp Business Account.
pub fn waba_route(waba_id: &str) -> (String, String) {
    (format!("ROUTE#waba#{waba_id}"), "ROUTE".into())
}

pub fn message(ws: &WorkspaceId, message_id: &str) -> (String, String) {
    (format!("WS#{ws}#MSG#{message_id}"), "MSG".into())
}

pub fn contact(ws: &WorkspaceId, channel: Channel, contact_id: &str) -> (String, String) {
    (format!("WS#{ws}#CONTACT#{}#{contact_id}", channel.as_str()), "CONTACT".into())
}

pub fn conversation(ws: &WorkspaceId, conversation_id: &str) -> (String, String) {
    (format!("WS#{ws}#CONV#{conversation_id}"), "CONV".into())
}

/// Messages of one conversation, ordered by Meta's timestamp.
pub fn conversation_messages(ws: &WorkspaceId, conversation_id: &str) -> String {
    format!("WS#{ws}#CONV#{conversation_id}")
}

/// A workspace's conversations, ordered by last inbound message.
pub fn workspace_conversations(ws: &WorkspaceId) -> String {
    format!("WS#{ws}#CONVS")
}

pub fn outbound_status(ws: &WorkspaceId, wamid: &str) -> (String, String) {
    (format!("WS#{ws}#OUT#{wamid}"), "STATUS".into())
}

pub fn job(ws: &WorkspaceId, job_id: &str) -> (String, String) {
    (format!("WS#{ws}#JOB#{job_id}"), "JOB".into())
}

pub fn number(ws: &WorkspaceId, channel: Channel, account_id: &str) -> (String, String) {
    (format!("WS#{ws}#NUMBER#{}#{account_id}", channel.as_str()), "NUMBER".into())
}

/// A workspace's templates, for listing them.
pub fn workspace_templates(ws: &WorkspaceId) -> String {
    format!("WS#{ws}#TEMPLATES")
}

/// A workspace's contacts, for listing them.
pub fn workspace_contacts(ws: &WorkspaceId) -> String {
    format!("WS#{ws}#CONTACTS")
}

/// A workspace's numbers, for listing them.
pub fn workspace_numbers(ws: &WorkspaceId) -> String {
    format!("WS#{ws}#NUMBERS")
}

pub fn template(ws: &WorkspaceId, waba_id: &str, name: &str, language: &str) -> (String, String) {
    (format!("WS#{ws}#TEMPLATE#{waba_id}#{name}#{language}"), "TEMPLATE".into())
}

pub fn broadcast(ws: &WorkspaceId, broadcast_id: &str) -> (String, String) {
    (format!("WS#{ws}#BROADCAST#{broadcast_id}"), "BROADCAST".into())
}

/// A workspace's broadcasts, newest first.
pub fn workspace_broadcasts(ws: &WorkspaceId) -> String {
    format!("WS#{ws}#BROADCASTS")
}

/// A CSV broadcast's recipients (sort key: the contact).
pub fn broadcast_audience(ws: &WorkspaceId, broadcast_id: &str) -> String {
    format!("WS#{ws}#BROADCAST#{broadcast_id}#AUDIENCE")
}

/// When a portfolio last reached a customer (Meta's messaging limit counts each once a window).
pub fn reached(ws: &WorkspaceId, business: &str, contact: &str) -> (String, String) {
    (format!("WS#{ws}#REACHED#{business}#{contact}"), "REACHED".into())
}

/// Customers a portfolio newly reached in one hour, one of several counter shards.
pub fn reach_count(ws: &WorkspaceId, business: &str, hour: &str, shard: u32) -> (String, String) {
    (format!("WS#{ws}#REACHCOUNT#{business}#{hour}#{shard:02}"), "COUNT".into())
}

/// Statuses by our send job id (echoed by Meta in `biz_opaque_callback_data`).
pub fn job_statuses(ws: &WorkspaceId, job_id: &str) -> String {
    format!("WS#{ws}#JOB#{job_id}")
}

pub fn unrouted(raw_sha256: &str) -> (String, String) {
    (format!("UNROUTED#{raw_sha256}"), "EVENT".into())
}

/// Sortable millisecond timestamp (fixed width so string order is time order).
pub fn sortable_millis(ms: i64) -> String {
    format!("{ms:015}")
}

pub fn automation(ws: &WorkspaceId, automation_id: &str) -> (String, String) {
    (format!("WS#{ws}#AUTOMATION#{automation_id}"), "AUTOMATION".into())
}

/// One saved version of an automation, beside its head item.
pub fn automation_version(ws: &WorkspaceId, automation_id: &str, version: u32) -> (String, String) {
    (format!("WS#{ws}#AUTOMATION#{automation_id}"), format!("V#{version:06}"))
}

/// A workspace's automations, oldest first.
pub fn workspace_automations(ws: &WorkspaceId) -> String {
    format!("WS#{ws}#AUTOMATIONS")
}

/// The flow state of a conversation (its active run), beside the conversation item.
pub fn conversation_flow(ws: &WorkspaceId, conversation_id: &str) -> (String, String) {
    (format!("WS#{ws}#CONV#{conversation_id}"), "FLOW".into())
}

/// A conversation's run history: one item per tick, `{run start ms}#{run}#{step}`.
pub fn run_history(ws: &WorkspaceId, conversation_id: &str) -> String {
    format!("WS#{ws}#RUNLOG#{conversation_id}")
}

/// One of a number's pacing items (see `outbound::pacing`).
pub fn pace(ws: &WorkspaceId, account_id: &str, shard: u32) -> (String, String) {
    (format!("WS#{ws}#PACE#{account_id}#{shard}"), "PACE".into())
}

/// Broadcasts whose fan-out is under way or paused, across workspaces, for the sweeper to
/// restart one that stalled (`gsi2`, sort key: when it last moved, or is due to resume).
pub fn active_broadcasts(shard: u32) -> String {
    format!("ACTIVE_BROADCASTS#{shard}")
}
