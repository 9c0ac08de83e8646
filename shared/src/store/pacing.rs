//! The pacing items of a number (see `outbound::pacing`): `WS#{ws}#PACE#{account}#{shard}`,
//! each with the next free slot (`tat`, microseconds) and, after a 130429, `slow_until`.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};

use super::update::{Update, n, s};
use super::{Item, Store, StoreError, keys, refused_by_condition};
use crate::domain::WorkspaceId;
use crate::outbound::pacing::{MAX_AHEAD, Slot, from_micros, micros, shard_interval_micros, shards};

fn number_of(item: &Item, attribute: &str) -> Option<i64> {
    item.get(attribute).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

impl Store {
    /// Takes the next slot of one of the number's pacing items (chosen at random).
    pub async fn take_send_slot(
        &self,
        workspace: &WorkspaceId,
        account: &str,
        mps: u32,
        now: DateTime<Utc>,
    ) -> Result<Slot, StoreError> {
        let shard = rand::random_range(0..shards(mps));
        let (pk, sk) = keys::pace(workspace, account, shard);
        let interval = shard_interval_micros(mps);
        let now_us = micros(now);
        let horizon = micros(now + MAX_AHEAD);
        // An item this container last saw idle (or never saw) most likely still is: its slot
        // is taken with the one write that moves it to now, instead of an `ADD` that hands out
        // a slot in the past followed by a second write to catch up. One send of the container
        // tries it (it marks the item busy first): the others of a batch take slots after it
        // with `ADD`, so a batch never holds several slots of "now" that its answers would
        // turn into a burst.
        let try_idle = self.pace_seen.lock().is_ok_and(|mut seen| {
            let idle = seen.get(&pk).is_none_or(|tat| *tat < now_us);
            if idle {
                seen.insert(pk.clone(), now_us + interval);
            }
            idle
        });
        if try_idle && let Some(slot) = self.take_idle_slot((&pk, &sk), interval, now_us).await? {
            return Ok(slot);
        }
        for _ in 0..6 {
            let taken = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(keys::PK, s(&pk))
                .key(keys::SK, s(&sk))
                .update_expression("ADD tat :interval")
                .condition_expression("tat < :horizon")
                .expression_attribute_values(":interval", n(interval))
                .expression_attribute_values(":horizon", n(horizon))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match taken {
                Ok(output) => {
                    let item = output.attributes.unwrap_or_default();
                    let tat = number_of(&item, "tat").unwrap_or(now_us);
                    self.note_pace(&pk, tat);
                    // After Meta's 130429 the number goes at half speed: take a second slot.
                    let slowed = number_of(&item, "slow_until").is_some_and(|until| until > now_us);
                    let slot = if slowed { tat } else { tat - interval };
                    if slowed {
                        self.update_if(
                            (pk.clone(), sk.clone()),
                            Update::new().add("tat", n(interval)),
                            "UpdateItem pace",
                        )
                        .await?;
                    }
                    if slot >= now_us {
                        return Ok(Slot::At(from_micros(slot)));
                    }
                    // The item was idle: its slots lie in the past, and handing them out would
                    // send a burst. Move it to now — once, whoever wins — and take that slot.
                    let caught_up = Update::new().set("tat", n(now_us + interval)).condition(
                        "{tat} = {0}",
                        &["tat"],
                        vec![n(if slowed { tat + interval } else { tat })],
                    );
                    if self.update_if((pk.clone(), sk.clone()), caught_up, "UpdateItem pace catch-up").await? {
                        return Ok(Slot::At(now));
                    }
                }
                Err(e) if refused_by_condition(&e) => {
                    let current: Option<Item> = self
                        .client
                        .get_item()
                        .table_name(&self.table)
                        .key(keys::PK, s(&pk))
                        .key(keys::SK, s(&sk))
                        .consistent_read(true)
                        .send()
                        .await
                        .map_err(|e| StoreError::aws("GetItem pace", e))?
                        .item;
                    match current.as_ref().and_then(|i| number_of(i, "tat")) {
                        Some(tat) if tat >= horizon => {
                            return Ok(Slot::Busy { retry_at: from_micros(tat) - MAX_AHEAD / 2 });
                        }
                        Some(_) => continue,
                        None => {
                            let first: Item = [
                                (keys::PK.to_owned(), s(&pk)),
                                (keys::SK.to_owned(), s(&sk)),
                                ("tat".to_owned(), n(now_us + interval)),
                            ]
                            .into_iter()
                            .collect();
                            if self.put_new(first, "PutItem pace").await? {
                                return Ok(Slot::At(now));
                            }
                        }
                    }
                }
                Err(e) => return Err(StoreError::aws("UpdateItem pace", e)),
            }
        }
        // Many senders racing for an idle number: let this one come back a moment later.
        Ok(Slot::Busy { retry_at: now + chrono::Duration::milliseconds(200) })
    }

    fn note_pace(&self, pk: &str, tat: i64) {
        if let Ok(mut seen) = self.pace_seen.lock() {
            seen.insert(pk.to_owned(), tat);
        }
    }

    /// The slot of an idle pacing item (none yet, or its next slot in the past) in one write:
    /// the item moves to now and the slot is now. `None` when the item is busy (its next slot
    /// is now or later): the slot is then taken with `ADD`.
    async fn take_idle_slot(
        &self,
        (pk, sk): (&str, &str),
        interval: i64,
        now_us: i64,
    ) -> Result<Option<Slot>, StoreError> {
        let moved = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression("SET tat = :next")
            .condition_expression("attribute_not_exists(tat) OR tat < :now")
            .expression_attribute_values(":next", n(now_us + interval))
            .expression_attribute_values(":now", n(now_us))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match moved {
            Ok(output) => {
                let item = output.attributes.unwrap_or_default();
                let mut tat = now_us + interval;
                // After Meta's 130429 the number goes at half speed: take a second slot.
                if number_of(&item, "slow_until").is_some_and(|until| until > now_us) {
                    self.update_if(
                        (pk.to_owned(), sk.to_owned()),
                        Update::new().add("tat", n(interval)),
                        "UpdateItem pace",
                    )
                    .await?;
                    tat += interval;
                }
                self.note_pace(pk, tat);
                Ok(Some(Slot::At(from_micros(now_us))))
            }
            Err(e) if refused_by_condition(&e) => {
                // Busy: another sender (here or in another container) took the slot of now.
                self.note_pace(pk, now_us + interval);
                Ok(None)
            }
            Err(e) => Err(StoreError::aws("UpdateItem pace", e)),
        }
    }

    /// After Meta's 130429: the number goes at half speed until `until`.
    pub async fn slow_down(
        &self,
        workspace: &WorkspaceId,
        account: &str,
        mps: u32,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for shard in 0..shards(mps) {
            let update = Update::new().set("slow_until", AttributeValue::N(micros(until).to_string()));
            self.update_if(keys::pace(workspace, account, shard), update, "UpdateItem pace slow down").await?;
        }
        Ok(())
    }
}
