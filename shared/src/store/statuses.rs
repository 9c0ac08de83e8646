//! Statuses of the messages we sent, keyed by Meta's wamid (on Instagram, the mid its echo and
//! reads name) and applied monotonically (see [`DeliveryState`] for the order). Each state's timestamp is kept even when the state
//! itself does not advance. A `failed` that advances the status is handed to Smart Retry once:
//! `retry_handoff` is `pending` until the hand-over is on the retry queue, so a redelivered
//! `failed` finishes a hand-over that was cut short, and never starts a second one.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, keys, refused_by_condition};
use crate::domain::{Channel, DeliveryState, MessageId, SendJobId, StatusEvent, WorkspaceId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryHandoff {
    Pending,
    Done,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboundStatus {
    pub workspace_id: WorkspaceId,
    /// Absent on statuses stored before Instagram's were: those are all WhatsApp's.
    #[serde(default)]
    pub channel: Option<Channel>,
    pub message_id: MessageId,
    pub recipient_id: String,
    #[serde(default)]
    pub recipient_user_id: Option<String>,
    #[serde(default)]
    pub job_id: Option<SendJobId>,
    pub status: DeliveryState,
    #[serde(default, with = "chrono::serde::ts_milliseconds_option")]
    pub sent_at: Option<DateTime<Utc>>,
    #[serde(default, with = "chrono::serde::ts_milliseconds_option")]
    pub delivered_at: Option<DateTime<Utc>>,
    #[serde(default, with = "chrono::serde::ts_milliseconds_option")]
    pub read_at: Option<DateTime<Utc>>,
    /// A voice message the customer listened to.
    #[serde(default, with = "chrono::serde::ts_milliseconds_option")]
    pub played_at: Option<DateTime<Utc>>,
    #[serde(default, with = "chrono::serde::ts_milliseconds_option")]
    pub failed_at: Option<DateTime<Utc>>,
    /// Why a state's time is not Meta's timestamp as sent, e.g. `read: timestamp … is in the
    /// future; the receipt time is used`.
    #[serde(default)]
    pub timestamp_note: Option<String>,
    #[serde(default)]
    pub error_code: Option<i64>,
    #[serde(default)]
    pub error_title: Option<String>,
    #[serde(default)]
    pub error_details: Option<String>,
    #[serde(default)]
    pub retry_handoff: Option<RetryHandoff>,
}

/// What applying one status did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusOutcome {
    pub advanced: bool,
    /// The stored status is this one: it advanced now, or an earlier delivery of it stored it
    /// (Meta's redelivery of a status whose job update failed, or this write's own first try,
    /// made by DynamoDB with its answer lost). Its job must say so too.
    pub is_current: bool,
    /// The failure must be handed to Smart Retry now.
    pub hand_to_retry: bool,
    /// The send job the message belongs to, as stored (from `biz_opaque_callback_data`, or
    /// linked by the sender for Instagram, whose statuses carry no job).
    pub job_id: Option<SendJobId>,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// Of the statuses of one job's wamids (one per attempt), the one that says most about the
/// job: any non-failed one beats a failure (a retry got through), then the furthest state,
/// then the wamid — so the same statuses always give the same answer, whatever order the
/// index returns them in.
pub fn best_status(statuses: Vec<OutboundStatus>) -> Option<OutboundStatus> {
    statuses.into_iter().max_by(|a, b| {
        let key = |s: &OutboundStatus| (s.status != DeliveryState::Failed, s.status.rank());
        key(a).cmp(&key(b)).then_with(|| a.message_id.cmp(&b.message_id))
    })
}

impl Store {
    pub async fn apply_status(
        &self,
        workspace: &WorkspaceId,
        event: &StatusEvent,
    ) -> Result<StatusOutcome, StoreError> {
        let failed = event.state == DeliveryState::Failed;
        let at_field = format!("{}_at", event.state.as_str());
        // Always: the state's own timestamp, the job link, the failure's details.
        let mut always = format!(
            "workspace_id = :ws, #channel = :channel, message_id = :mid, recipient_id = :to, \
             {at_field} = if_not_exists({at_field}, :at)"
        );
        let mut values = vec![
            (":ws", s(workspace.as_str())),
            (":channel", s(event.channel.as_str())),
            (":mid", s(&event.message_id)),
            (":to", s(&event.recipient_id)),
            (":at", AttributeValue::N(event.at.timestamp_millis().to_string())),
        ];
        if let Some(user_id) = &event.recipient_user_id {
            always.push_str(", recipient_user_id = :user");
            values.push((":user", s(user_id)));
        }
        if let Some(note) = &event.timestamp_note {
            always.push_str(", timestamp_note = :note");
            values.push((":note", s(format!("{}: {note}", event.state.as_str()))));
        }
        if let Some(job) = &event.job_id {
            // Indexed by job too: a send whose answer was lost is reconciled from its status.
            always.push_str(
                ", job_id = if_not_exists(job_id, :job), gsi1pk = if_not_exists(gsi1pk, :jobkey), \
                 gsi1sk = if_not_exists(gsi1sk, :sk)",
            );
            values.push((":job", s(job)));
            values.push((":jobkey", s(keys::job_statuses(workspace, job))));
            values.push((":sk", s("STATUS")));
        }
        if let Some(error) = event.error.as_ref().filter(|_| failed) {
            always.push_str(", error_code = :code");
            values.push((":code", AttributeValue::N(error.code.to_string())));
            if let Some(title) = error.title.as_ref().or(error.message.as_ref()) {
                always.push_str(", error_title = :title");
                values.push((":title", s(title)));
            }
            if let Some(details) = error.error_data.as_ref().and_then(|d| d.details.as_ref()) {
                always.push_str(", error_details = :details");
                values.push((":details", s(details)));
            }
        }

        let mut advance = format!("SET {always}, #status = :state, status_rank = :rank");
        if failed {
            advance.push_str(", retry_handoff = :pending");
        }
        let (pk, sk) = keys::outbound_status(workspace, &event.message_id);
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(&pk))
            .key(keys::SK, s(&sk))
            .update_expression(advance)
            .condition_expression("attribute_not_exists(status_rank) OR status_rank < :rank")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#channel", "channel")
            .expression_attribute_values(":state", s(event.state.as_str()))
            .expression_attribute_values(":rank", AttributeValue::N(event.state.rank().to_string()));
        if failed {
            request = request.expression_attribute_values(":pending", s("pending"));
        }
        for (name, value) in &values {
            request = request.expression_attribute_values(*name, value.clone());
        }
        match request.return_values(ReturnValue::AllNew).send().await {
            Ok(output) => {
                let job_id = output.attributes.as_ref().and_then(|a| a.get("job_id")).and_then(|v| v.as_s().ok());
                let job_id = job_id.and_then(|j| SendJobId::parse(j.as_str()).ok());
                return Ok(StatusOutcome { advanced: true, is_current: true, hand_to_retry: failed, job_id });
            }
            Err(e) if refused_by_condition(&e) => {}
            Err(e) => return Err(StoreError::aws("UpdateItem status", e)),
        }

        // Not newer than what is stored: keep its timestamp (and details) only.
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression(format!("SET {always}"))
            .expression_attribute_names("#channel", "channel")
            .return_values(ReturnValue::AllNew);
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        let stored = request.send().await.map_err(|e| StoreError::aws("UpdateItem status", e))?;
        let stored: OutboundStatus = serde_dynamo::from_item(stored.attributes.unwrap_or_default())
            .map_err(|e| StoreError::Corrupt { entity: "status", reason: e.to_string() })?;
        let unfinished_handoff =
            failed && stored.status == DeliveryState::Failed && stored.retry_handoff == Some(RetryHandoff::Pending);
        Ok(StatusOutcome {
            advanced: false,
            is_current: stored.status == event.state,
            hand_to_retry: unfinished_handoff,
            job_id: stored.job_id,
        })
    }

    /// Links an Instagram message to the job that sent it: Instagram's echoes and reads name
    /// only the mid, so this is how they find the job. (WhatsApp statuses carry the job id.)
    pub async fn link_message_to_job(
        &self,
        workspace: &WorkspaceId,
        message_id: &str,
        job_id: &str,
    ) -> Result<(), StoreError> {
        let (pk, sk) = keys::outbound_status(workspace, message_id);
        self.client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression("SET job_id = if_not_exists(job_id, :job)")
            .expression_attribute_values(":job", s(job_id))
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem status job link", e))?;
        Ok(())
    }

    pub async fn mark_retry_handed(&self, workspace: &WorkspaceId, message_id: &str) -> Result<(), StoreError> {
        let (pk, sk) = keys::outbound_status(workspace, message_id);
        self.client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression("SET retry_handoff = :done")
            .expression_attribute_values(":done", s("done"))
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem status", e))?;
        Ok(())
    }

    /// The status Meta reported for the send job `job_id` (from `biz_opaque_callback_data`),
    /// whether or not the sender got to record the wamid. A job retried after a failure has
    /// several wamids: the one that decides is [`best_status`].
    pub async fn status_for_job(
        &self,
        workspace: &WorkspaceId,
        job_id: &str,
    ) -> Result<Option<OutboundStatus>, StoreError> {
        let items = self.query_index(keys::job_statuses(workspace, job_id), "Query status by job").await?;
        let statuses = items
            .into_iter()
            .map(|item| {
                serde_dynamo::from_item(item)
                    .map_err(|e| StoreError::Corrupt { entity: "status", reason: e.to_string() })
            })
            .collect::<Result<Vec<OutboundStatus>, _>>()?;
        Ok(best_status(statuses))
    }

    pub async fn outbound_status(
        &self,
        workspace: &WorkspaceId,
        message_id: &str,
    ) -> Result<Option<OutboundStatus>, StoreError> {
        let (pk, sk) = keys::outbound_status(workspace, message_id);
        self.get(pk, sk, "status").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(wamid: &str, state: &str) -> OutboundStatus {
        serde_json::from_value(serde_json::json!({
            "workspace_id": "acme", "message_id": wamid, "recipient_id": "16505551234", "status": state
        }))
        .unwrap()
    }

    #[test]
    fn a_retry_that_got_through_decides_the_job_over_the_failed_attempt() {
        let best = best_status(vec![status("wamid.A", "failed"), status("wamid.B", "sent")]).unwrap();
        assert_eq!(best.message_id, "wamid.B");
        let best = best_status(vec![status("wamid.B", "sent"), status("wamid.A", "failed")]).unwrap();
        assert_eq!(best.message_id, "wamid.B", "whatever order the index returns them in");
    }

    #[test]
    fn equal_statuses_are_read_the_same_way_every_time() {
        let one = best_status(vec![status("wamid.A", "delivered"), status("wamid.B", "delivered")]).unwrap();
        let two = best_status(vec![status("wamid.B", "delivered"), status("wamid.A", "delivered")]).unwrap();
        assert_eq!(one.message_id, two.message_id);
        assert!(best_status(vec![]).is_none());
    }
}
