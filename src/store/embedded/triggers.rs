//! Triggers in the embedded store: rules per app, pending sends with a due-time index and a
//! per-person index, claimed under leases fenced by epoch, each change one transaction.

use std::collections::BTreeMap;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::EmbeddedStore;
use super::tables::{PENDING, PENDING_DUE, PENDING_OF, TRIGGER_COUNTERS, TRIGGERS, get_json};
use crate::store::{
    ClaimedSend, Lease, ProfileRef, Scheduled, StoreError, StoreResult, TriggerStore, now_ms,
    to_json,
};
use crate::triggers::model::{PendingSend, Repeat, SendRef, Trigger, TriggerRef};

/// A pending send as kept, with its claim.
#[derive(Serialize, Deserialize)]
struct PendingRecord {
    send: PendingSend,
    epoch: u64,
    owner: Option<String>,
    claimable_at_ms: u64,
}

fn load(txn: &redb::WriteTransaction, id: &str) -> StoreResult<Option<PendingRecord>> {
    get_json(&txn.open_table(PENDING)?, id, "pending send")
}

/// Writes a record and its indexes (the caller removed the old due entry).
fn save(txn: &redb::WriteTransaction, id: &str, record: &PendingRecord) -> StoreResult<()> {
    txn.open_table(PENDING)?
        .insert(id, to_json(record)?.as_slice())?;
    txn.open_table(PENDING_DUE)?
        .insert((record.claimable_at_ms, id), ())?;
    let send = &record.send;
    txn.open_table(PENDING_OF)?
        .insert((send.app_id.as_str(), send.external_id.as_str(), id), ())?;
    Ok(())
}

fn unindex_due(txn: &redb::WriteTransaction, id: &str, record: &PendingRecord) -> StoreResult<()> {
    txn.open_table(PENDING_DUE)?
        .remove((record.claimable_at_ms, id))?;
    Ok(())
}

fn remove(txn: &redb::WriteTransaction, id: &str, record: &PendingRecord) -> StoreResult<()> {
    unindex_due(txn, id, record)?;
    txn.open_table(PENDING)?.remove(id)?;
    let send = &record.send;
    txn.open_table(PENDING_OF)?
        .remove((send.app_id.as_str(), send.external_id.as_str(), id))?;
    Ok(())
}

#[async_trait]
impl TriggerStore for EmbeddedStore {
    async fn put_trigger(&self, trigger: &Trigger) -> StoreResult<()> {
        let trigger = trigger.clone();
        self.write(move |txn| {
            txn.open_table(TRIGGERS)?.insert(
                (trigger.app_id.as_str(), trigger.name.as_str()),
                to_json(&trigger)?.as_slice(),
            )?;
            Ok(())
        })
        .await
    }

    async fn get_trigger(&self, trigger: TriggerRef<'_>) -> StoreResult<Option<Trigger>> {
        self.read_json(TRIGGERS, (trigger.app_id, trigger.name), "trigger")
            .await
    }

    async fn list_triggers(&self, app_id: &str) -> StoreResult<Vec<Trigger>> {
        self.list_json(TRIGGERS, app_id, "trigger").await
    }

    async fn delete_trigger(&self, trigger: TriggerRef<'_>) -> StoreResult<bool> {
        let (app_id, name) = (trigger.app_id.to_owned(), trigger.name.to_owned());
        self.write(move |txn| {
            let mut table = txn.open_table(TRIGGERS)?;
            Ok(table.remove((app_id.as_str(), name.as_str()))?.is_some())
        })
        .await
    }

    async fn schedule_send(&self, send: &PendingSend, repeat: Repeat) -> StoreResult<Scheduled> {
        let send = send.clone();
        self.write(move |txn| {
            let id = send.id();
            let previous = load(txn, &id)?;
            let epoch = match (&previous, repeat) {
                (Some(_), Repeat::Ignore) => return Ok(Scheduled::AlreadyPending),
                (Some(previous), Repeat::Rearm) => {
                    unindex_due(txn, &id, previous)?;
                    previous.epoch + 1
                }
                (None, _) => 0,
            };
            let record = PendingRecord {
                claimable_at_ms: send.due_ms,
                send,
                epoch,
                owner: None,
            };
            save(txn, &id, &record)?;
            Ok(if previous.is_some() {
                Scheduled::Rearmed
            } else {
                Scheduled::New
            })
        })
        .await
    }

    async fn cancel_send(&self, send: SendRef<'_>) -> StoreResult<bool> {
        let id = send.id();
        self.write(move |txn| match load(txn, &id)? {
            Some(record) => {
                remove(txn, &id, &record)?;
                Ok(true)
            }
            None => Ok(false),
        })
        .await
    }

    async fn claim_due_sends(
        &self,
        lease: Lease<'_>,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedSend>> {
        let Lease { worker, ttl: lease } = lease;
        // Idle runners look often: an empty look costs a read, not a turn of the writer.
        let due = {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(PENDING_DUE)?;
            table.range((0, "")..(now_ms() + 1, ""))?.next().is_some()
        };
        if !due {
            return Ok(Vec::new());
        }
        let worker = worker.to_owned();
        self.writer
            .write(true, move |txn| {
                let now = now_ms();
                let ids: Vec<String> = {
                    let table = txn.open_table(PENDING_DUE)?;
                    let mut ids = Vec::new();
                    for entry in table.range((0, "")..(now + 1, ""))?.take(limit.max(1)) {
                        ids.push(entry?.0.value().1.to_owned());
                    }
                    ids
                };
                let mut claimed = Vec::with_capacity(ids.len());
                for id in ids {
                    let Some(mut record) = load(txn, &id)? else {
                        continue;
                    };
                    unindex_due(txn, &id, &record)?;
                    record.epoch += 1;
                    record.owner = Some(worker.clone());
                    record.claimable_at_ms = now + lease.as_millis() as u64;
                    save(txn, &id, &record)?;
                    claimed.push(ClaimedSend {
                        send: record.send,
                        worker: worker.clone(),
                        epoch: record.epoch,
                    });
                }
                Ok(claimed)
            })
            .await
    }

    async fn finish_send(&self, claim: &ClaimedSend) -> StoreResult<()> {
        let claim = claim.clone();
        self.write(move |txn| {
            let id = claim.send.id();
            match load(txn, &id)? {
                Some(record)
                    if record.epoch == claim.epoch
                        && record.owner.as_deref() == Some(claim.worker.as_str()) =>
                {
                    remove(txn, &id, &record)
                }
                _ => Err(StoreError::LeaseLost),
            }
        })
        .await
    }

    async fn next_due_ms(&self) -> StoreResult<Option<u64>> {
        self.read(|txn| {
            let table = txn.open_table(PENDING_DUE)?;
            let first = table.first()?;
            Ok(first.map(|(key, _)| key.value().0))
        })
        .await
    }

    async fn pending_sends_of(&self, person: ProfileRef<'_>) -> StoreResult<Vec<PendingSend>> {
        let (app_id, external_id) = (person.app_id.to_owned(), person.external_id.to_owned());
        self.read(move |txn| {
            let index = txn.open_table(PENDING_OF)?;
            let table = txn.open_table(PENDING)?;
            let mut sends = Vec::new();
            let range = index.range(
                (app_id.as_str(), external_id.as_str(), "")
                    ..=(app_id.as_str(), external_id.as_str(), "\u{10FFFF}"),
            )?;
            for entry in range {
                let (key, _) = entry?;
                if let Some(record) =
                    get_json::<_, PendingRecord>(&table, key.value().2, "pending send")?
                {
                    sends.push(record.send);
                }
            }
            sends.sort_by_key(|send| send.due_ms);
            Ok(sends)
        })
        .await
    }

    async fn add_trigger_counters(
        &self,
        trigger: TriggerRef<'_>,
        deltas: &[(&str, i64)],
    ) -> StoreResult<()> {
        let (app_id, trigger) = (trigger.app_id.to_owned(), trigger.name.to_owned());
        let deltas: Vec<(String, i64)> =
            deltas.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
        self.write(move |txn| {
            let mut table = txn.open_table(TRIGGER_COUNTERS)?;
            for (counter, delta) in &deltas {
                let key = (app_id.as_str(), trigger.as_str(), counter.as_str());
                let current = table.get(key)?.map_or(0, |v| v.value());
                table.insert(key, current + delta)?;
            }
            Ok(())
        })
        .await
    }

    async fn trigger_counters(
        &self,
        trigger: TriggerRef<'_>,
    ) -> StoreResult<BTreeMap<String, i64>> {
        let (app_id, trigger) = (trigger.app_id.to_owned(), trigger.name.to_owned());
        self.read(move |txn| {
            let table = txn.open_table(TRIGGER_COUNTERS)?;
            let mut out = BTreeMap::new();
            for entry in table.range(
                (app_id.as_str(), trigger.as_str(), "")
                    ..=(app_id.as_str(), trigger.as_str(), "\u{10FFFF}"),
            )? {
                let (key, value) = entry?;
                out.insert(key.value().2.to_owned(), value.value());
            }
            Ok(out)
        })
        .await
    }
}
