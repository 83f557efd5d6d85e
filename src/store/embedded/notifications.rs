//! Notifications in the embedded store: documents, the per-app index, counters, lives and
//! series, and idempotency keys. A new notification's document, tasks and counters are one
//! commit; a batch's counters, series and its task's close in its notification's life are
//! another (`ledger.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use redb::ReadableTable;

use super::EmbeddedStore;
use super::ledger::save_new_tasks;
use super::tables::{
    COUNTED_ONCE, COUNTERS, IDEMPOTENCY, LIFE, LIFE_TASKS, NOTIFICATIONS, NOTIFICATIONS_BY_APP,
    SERIES, get_json, keys_under,
};
use crate::notify::Notification;
use crate::notify::life::{CancelOutcome, Life};
use crate::store::{
    CountOnce, KeyClaim, NewNotification, NotificationStore, Series, Settle, StoreResult, now_ms,
    to_json,
};

/// A notification's life as the `LIFE` table keeps it: the times, and how many of its tasks are
/// registered and not yet counted through their end.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct LifeRecord {
    open: i64,
    #[serde(flatten)]
    life: Life,
}

fn life_in(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> StoreResult<LifeRecord> {
    Ok(get_json(table, id, "notification life")?.unwrap_or_default())
}

/// Changes a notification's life in `txn`: `change` answers whether to write it back.
fn change_life<T>(
    txn: &redb::WriteTransaction,
    id: &str,
    change: impl FnOnce(&mut LifeRecord) -> (bool, T),
) -> StoreResult<T> {
    let mut table = txn.open_table(LIFE)?;
    let mut record = life_in(&table, id)?;
    let (write, answer) = change(&mut record);
    if write {
        table.insert(id, to_json(&record)?.as_slice())?;
    }
    Ok(answer)
}

/// Registers tasks of notification `id` as open, once per task id (`LIFE_TASKS` keeps them,
/// done or not); none: it has no task, and completes at once.
pub(super) fn register_tasks_in(
    txn: &redb::WriteTransaction,
    id: &str,
    task_ids: &[&str],
) -> StoreResult<()> {
    let now = now_ms();
    let mut added = 0;
    {
        let mut registered = txn.open_table(LIFE_TASKS)?;
        for task in task_ids {
            if registered.insert(*task, ())?.is_none() {
                added += 1;
            }
        }
    }
    let exists = txn.open_table(LIFE)?.get(id)?.is_some();
    change_life(txn, id, |record| {
        if task_ids.is_empty() {
            if !exists {
                record.life.completed_at_ms = Some(now);
            }
            (!exists, ())
        } else {
            record.open += added;
            (added > 0 || !exists, ())
        }
    })
}

/// Notes that notification `id` began sending, unless it had.
pub(super) fn mark_sending_in(txn: &redb::WriteTransaction, id: &str) -> StoreResult<()> {
    let now = now_ms();
    change_life(txn, id, |record| {
        let first = record.life.sending_at_ms.is_none();
        record.life.sending_at_ms.get_or_insert(now);
        (first, ())
    })
}

/// Closes task `task_id` of notification `id`, counted through its end for the first time, if
/// it was registered: the last one to close completes the notification unless it was
/// cancelled.
pub(super) fn close_task_in(
    txn: &redb::WriteTransaction,
    id: &str,
    task_id: &str,
) -> StoreResult<()> {
    if txn.open_table(LIFE_TASKS)?.get(task_id)?.is_none() {
        return Ok(());
    }
    let now = now_ms();
    change_life(txn, id, |record| {
        record.open -= 1;
        if record.open <= 0 && record.life.cancelled_at_ms.is_none() {
            record.life.completed_at_ms.get_or_insert(now);
        }
        (true, ())
    })
}

/// Adds a batch's counters to notification `id`'s series, in `bucket`.
pub(super) fn add_series_in(
    txn: &redb::WriteTransaction,
    id: &str,
    bucket: u64,
    deltas: &[(String, i64)],
) -> StoreResult<()> {
    let mut table = txn.open_table(SERIES)?;
    for (counter, delta) in deltas {
        let row = (id, bucket, counter.as_str());
        let current = table.get(row)?.map_or(0, |v| v.value());
        table.insert(row, current + delta)?;
    }
    Ok(())
}

/// The document of `id` with its life, in a read transaction.
fn read_notification(txn: &redb::ReadTransaction, id: &str) -> StoreResult<Option<Notification>> {
    let table = txn.open_table(NOTIFICATIONS)?;
    let Some(mut notification): Option<Notification> = get_json(&table, id, "notification")? else {
        return Ok(None);
    };
    let life = life_in(&txn.open_table(LIFE)?, id)?.life;
    notification.status = life.status(notification.status);
    notification.life = life;
    Ok(Some(notification))
}

fn save_notification(txn: &redb::WriteTransaction, notification: &Notification) -> StoreResult<()> {
    let document = to_json(notification)?;
    let mut table = txn.open_table(NOTIFICATIONS)?;
    let existed = table
        .insert(notification.id.as_str(), document.as_slice())?
        .is_some();
    if !existed {
        let mut index = txn.open_table(NOTIFICATIONS_BY_APP)?;
        index.insert(
            (
                notification.app_id.as_str(),
                now_ms(),
                notification.id.as_str(),
            ),
            (),
        )?;
    }
    Ok(())
}

pub(super) fn owned_deltas(deltas: &[(&str, i64)]) -> Vec<(String, i64)> {
    deltas.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

pub(super) fn add_counters_in(
    txn: &redb::WriteTransaction,
    id: &str,
    deltas: &[(String, i64)],
) -> StoreResult<()> {
    let mut table = txn.open_table(COUNTERS)?;
    for (field, delta) in deltas {
        let current = table.get((id, field.as_str()))?.map_or(0, |v| v.value());
        table.insert((id, field.as_str()), current + delta)?;
    }
    Ok(())
}

#[async_trait]
impl NotificationStore for EmbeddedStore {
    async fn create_notification(&self, new: NewNotification<'_>) -> StoreResult<()> {
        let notification = new.notification.clone();
        let tasks = new.tasks.to_vec();
        let counters = owned_deltas(new.counters);
        self.write(move |txn| {
            save_notification(txn, &notification)?;
            if tasks.is_empty() {
                register_tasks_in(txn, &notification.id, &[])?;
            }
            save_new_tasks(txn, tasks)?;
            add_counters_in(txn, &notification.id, &counters)
        })
        .await
    }

    async fn put_notification(&self, notification: &Notification) -> StoreResult<()> {
        let notification = notification.clone();
        self.write(move |txn| save_notification(txn, &notification))
            .await
    }

    async fn get_notification(&self, id: &str) -> StoreResult<Option<Notification>> {
        let id = id.to_owned();
        self.read(move |txn| read_notification(txn, &id)).await
    }

    async fn list_notifications(
        &self,
        app_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Notification>> {
        let app_id = app_id.to_owned();
        self.read(move |txn| {
            let index = txn.open_table(NOTIFICATIONS_BY_APP)?;
            let mut out = Vec::new();
            let range = index
                .range((app_id.as_str(), 0, "")..=(app_id.as_str(), u64::MAX, "\u{10FFFF}"))?;
            for entry in range.rev().take(limit) {
                let (key, _) = entry?;
                let (_, _, id) = key.value();
                if let Some(notification) = read_notification(txn, id)? {
                    out.push(notification);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn add_counters(&self, notification_id: &str, deltas: &[(&str, i64)]) -> StoreResult<()> {
        let id = notification_id.to_owned();
        let deltas = owned_deltas(deltas);
        self.write(move |txn| add_counters_in(txn, &id, &deltas))
            .await
    }

    async fn counters(&self, notification_id: &str) -> StoreResult<BTreeMap<String, i64>> {
        let id = notification_id.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(COUNTERS)?;
            let mut out = BTreeMap::new();
            for entry in table.range(keys_under(&id))? {
                let (key, value) = entry?;
                out.insert(key.value().1.to_owned(), value.value());
            }
            Ok(out)
        })
        .await
    }

    async fn cancel_notification(&self, notification_id: &str) -> StoreResult<CancelOutcome> {
        let id = notification_id.to_owned();
        self.write(move |txn| {
            let now = now_ms();
            change_life(txn, &id, |record| match record.life {
                Life {
                    completed_at_ms: Some(at),
                    ..
                } => (false, CancelOutcome::Completed(at)),
                Life {
                    cancelled_at_ms: Some(at),
                    ..
                } => (false, CancelOutcome::AlreadyCancelled(at)),
                _ => {
                    record.life.cancelled_at_ms = Some(now);
                    (true, CancelOutcome::Cancelled(now))
                }
            })
        })
        .await
    }

    async fn series(&self, notification_id: &str) -> StoreResult<Series> {
        let id = notification_id.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(SERIES)?;
            let mut series = Series::new();
            for entry in
                table.range((id.as_str(), 0, "")..=(id.as_str(), u64::MAX, "\u{10FFFF}"))?
            {
                let (key, value) = entry?;
                let (_, bucket, counter) = key.value();
                series
                    .entry(bucket)
                    .or_default()
                    .insert(counter.to_owned(), value.value());
            }
            Ok(series)
        })
        .await
    }

    async fn count_once(&self, once: CountOnce<'_>) -> StoreResult<bool> {
        let id = once.notification_id.to_owned();
        let member = once.member.to_owned();
        let keep_until_ms = once.keep_until_ms;
        let deltas: Vec<(String, i64)> =
            once.counters.iter().map(|c| ((*c).to_owned(), 1)).collect();
        self.write(move |txn| {
            let now = now_ms();
            {
                let mut table = txn.open_table(COUNTED_ONCE)?;
                let row = (id.as_str(), member.as_str());
                if table.get(row)?.is_some_and(|until| until.value() > now) {
                    return Ok(false);
                }
                table.insert(row, keep_until_ms)?;
            }
            add_counters_in(txn, &id, &deltas)?;
            Ok(true)
        })
        .await
    }

    async fn claim_idempotency_key(
        &self,
        claim: KeyClaim<'_>,
        ttl: Duration,
    ) -> StoreResult<Option<String>> {
        let (app_id, key, id) = owned(claim);
        self.write(move |txn| {
            let mut table = txn.open_table(IDEMPOTENCY)?;
            let row = (app_id.as_str(), key.as_str());
            let now = now_ms();
            if let Some(existing) = table.get(row)? {
                let (holder, expires) = existing.value();
                if expires > now {
                    return Ok(Some(holder.to_owned()));
                }
            }
            let expires = now + ttl.as_millis() as u64;
            table.insert(row, (id.as_str(), expires))?;
            Ok(None)
        })
        .await
    }

    async fn settle_idempotency_key(&self, claim: KeyClaim<'_>, settle: Settle) -> StoreResult<()> {
        let (app_id, key, id) = owned(claim);
        self.write(move |txn| {
            let mut table = txn.open_table(IDEMPOTENCY)?;
            let row = (app_id.as_str(), key.as_str());
            let held = table.get(row)?.is_some_and(|v| v.value().0 == id);
            if !held {
                return Ok(());
            }
            match settle {
                Settle::Keep(ttl) => {
                    let expires = now_ms() + ttl.as_millis() as u64;
                    table.insert(row, (id.as_str(), expires))?;
                }
                Settle::Release => {
                    table.remove(row)?;
                }
            }
            Ok(())
        })
        .await
    }
}

/// A key claim owned, for the writer thread: (app, key, holder).
fn owned(claim: KeyClaim<'_>) -> (String, String, String) {
    let KeyClaim {
        app_id,
        key,
        holder,
    } = claim;
    (app_id.to_owned(), key.to_owned(), holder.to_owned())
}
