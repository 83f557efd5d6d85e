//! Notifications in the embedded store: documents, the per-app index, counters and idempotency
//! keys. A new notification's document, tasks and counters are one commit.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use redb::ReadableTable;

use super::EmbeddedStore;
use super::ledger::save_new_tasks;
use super::tables::{COUNTERS, IDEMPOTENCY, NOTIFICATIONS, NOTIFICATIONS_BY_APP};
use crate::notify::Notification;
use crate::store::{
    KeyClaim, NewNotification, NotificationStore, Settle, StoreResult, from_json, now_ms, to_json,
};

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
        self.read(move |txn| {
            let table = txn.open_table(NOTIFICATIONS)?;
            let value = table.get(id.as_str())?;
            value
                .map(|v| from_json(v.value(), "notification"))
                .transpose()
        })
        .await
    }

    async fn list_notifications(
        &self,
        app_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Notification>> {
        let app_id = app_id.to_owned();
        self.read(move |txn| {
            let index = txn.open_table(NOTIFICATIONS_BY_APP)?;
            let table = txn.open_table(NOTIFICATIONS)?;
            let mut out = Vec::new();
            let range = index
                .range((app_id.as_str(), 0, "")..=(app_id.as_str(), u64::MAX, "\u{10FFFF}"))?;
            for entry in range.rev().take(limit) {
                let (key, _) = entry?;
                let (_, _, id) = key.value();
                if let Some(document) = table.get(id)? {
                    out.push(from_json(document.value(), "notification")?);
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
            for entry in table.range((id.as_str(), "")..=(id.as_str(), "\u{10FFFF}"))? {
                let (key, value) = entry?;
                out.insert(key.value().1.to_owned(), value.value());
            }
            Ok(out)
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
