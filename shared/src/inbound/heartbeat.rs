//! Proof that Meta's statuses are flowing for a number: the webhook marks the number when a
//! status arrives for it. The sweeper settles an UNCERTAIN send as "never reached Meta" only
//! when statuses arrived after it (see `outbound::sweeper`). At 1,000 messages per second a
//! write per status would make the number's item a hot key, so each container writes the mark
//! at most once a minute per number.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use crate::domain::Channel;
use crate::domain::WorkspaceId;
use crate::store::{Store, StoreError};

/// How stale a number's mark may get (per container).
const MARK_EVERY: i64 = 60;

#[derive(Default)]
pub struct StatusHeartbeat {
    marked: Mutex<HashMap<(WorkspaceId, Channel, String), DateTime<Utc>>>,
}

impl StatusHeartbeat {
    pub async fn beat(
        &self,
        store: &Store,
        workspace: &WorkspaceId,
        channel: Channel,
        account_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let key = (workspace.clone(), channel, account_id.to_owned());
        let due = self
            .marked
            .lock()
            .expect("heartbeat")
            .get(&key)
            .is_none_or(|last| now - *last >= Duration::seconds(MARK_EVERY) || now < *last);
        if due {
            store.note_statuses_seen(workspace, channel, account_id, now).await?;
            self.marked.lock().expect("heartbeat").insert(key, now);
        }
        Ok(())
    }
}
