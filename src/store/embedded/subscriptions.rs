//! Subscriptions in the embedded store: `(app, shard, id)` → compact record, and a count per
//! app kept in the same transactions.

use async_trait::async_trait;

use super::EmbeddedStore;
use super::tables::{
    SUBSCRIPTION_COUNTS, SUBSCRIPTIONS, list_in_profile, load_subscription, put_subscription,
    read_subscription, remove_subscription, unlist,
};
use crate::store::{
    Activity, BatchOutcome, Replaced, Replacing, ScanBatch, ScanCursor, ShardAt, StoreResult,
    Subscription, SubscriptionId, SubscriptionStore, Upserted,
};

/// A delivered batch's activity (`BatchOutcome`), owned for the writer.
pub(super) struct BatchActivity {
    delivered: Vec<(String, SubscriptionId, Activity)>,
    at: u32,
    stale: Vec<(String, SubscriptionId, Activity)>,
}

impl BatchActivity {
    pub(super) fn of(outcome: &BatchOutcome<'_>) -> Self {
        let owned = |subs: &[Subscription]| {
            subs.iter()
                .map(|s| (s.app_id.clone(), s.id, s.activity))
                .collect()
        };
        Self {
            delivered: owned(outcome.delivered),
            at: outcome.delivered_at,
            stale: owned(outcome.stale),
        }
    }
}

/// Writes a batch's deliveries into its subscriptions' activity and deletes the stale ones,
/// each only if its activity is still what the batch read; answers how many expired.
pub(super) fn record_activity(
    txn: &redb::WriteTransaction,
    batch: &BatchActivity,
) -> StoreResult<i64> {
    for (app_id, id, read) in &batch.delivered {
        if let Some(mut sub) = load_subscription(txn, app_id, *id)?
            && sub.activity == *read
        {
            sub.activity = read.delivered(batch.at);
            put_subscription(txn, &sub)?;
        }
    }
    let mut expired = 0;
    for (app_id, id, read) in &batch.stale {
        let unchanged = load_subscription(txn, app_id, *id)?.is_some_and(|s| s.activity == *read);
        if unchanged && remove_subscription(txn, app_id, *id)?.is_some() {
            expired += 1;
        }
    }
    Ok(expired)
}

#[async_trait]
impl SubscriptionStore for EmbeddedStore {
    async fn upsert_subscription(&self, subscription: &Subscription) -> StoreResult<Upserted> {
        let sub = subscription.clone();
        self.write(
            move |txn| match load_subscription(txn, &sub.app_id, sub.id)? {
                Some(existing) => match sub.merged_over(&existing) {
                    Ok(merged) => {
                        put_subscription(txn, &merged)?;
                        Ok(Upserted::Updated)
                    }
                    Err(refused) => Ok(Upserted::Refused(refused)),
                },
                None => {
                    put_subscription(txn, &sub)?;
                    Ok(Upserted::Created)
                }
            },
        )
        .await
    }

    async fn replace_subscription(
        &self,
        old: Replacing<'_>,
        new: &Subscription,
    ) -> StoreResult<Replaced> {
        let (old, proof, new) = (old.id, *old.auth, new.clone());
        self.write(move |txn| {
            let app_id = new.app_id.as_str();
            let Some(old_sub) = load_subscription(txn, app_id, old)? else {
                return Ok(Replaced::OldNotFound);
            };
            let existing = load_subscription(txn, app_id, new.id)?;
            let renewed = match new.renewed_from(&old_sub, &proof, existing.as_ref()) {
                Ok(renewed) => renewed,
                Err(refused) => return Ok(Replaced::Refused(refused)),
            };
            if old != new.id {
                remove_subscription(txn, app_id, old)?;
            }
            if let Some(previous) = existing.as_ref().and_then(|e| e.external_id.as_deref())
                && renewed.external_id.as_deref() != Some(previous)
            {
                unlist(txn, app_id, previous, new.id)?;
            }
            let created = put_subscription(txn, &renewed)?;
            if let Some(external_id) = &renewed.external_id {
                list_in_profile(txn, app_id, external_id, new.id)?;
            }
            Ok(Replaced::Moved {
                created: created && old != new.id,
            })
        })
        .await
    }

    async fn record_receipt(&self, app_id: &str, id: SubscriptionId, at: u32) -> StoreResult<bool> {
        let app_id = app_id.to_owned();
        self.write(move |txn| {
            let Some(mut sub) = load_subscription(txn, &app_id, id)? else {
                return Ok(false);
            };
            sub.activity = sub.activity.receipted(at);
            put_subscription(txn, &sub)?;
            Ok(true)
        })
        .await
    }

    async fn insert_subscriptions(&self, subscriptions: &[Subscription]) -> StoreResult<()> {
        let subscriptions = subscriptions.to_vec();
        self.write(move |txn| {
            for sub in &subscriptions {
                put_subscription(txn, sub)?;
            }
            Ok(())
        })
        .await
    }

    async fn get_subscription(
        &self,
        app_id: &str,
        id: SubscriptionId,
    ) -> StoreResult<Option<Subscription>> {
        let app_id = app_id.to_owned();
        self.read(move |txn| read_subscription(&txn.open_table(SUBSCRIPTIONS)?, &app_id, id))
            .await
    }

    async fn get_subscriptions(
        &self,
        app_id: &str,
        ids: &[SubscriptionId],
    ) -> StoreResult<Vec<Subscription>> {
        let app_id = app_id.to_owned();
        self.read_found(SUBSCRIPTIONS, ids.to_vec(), move |table, id| {
            read_subscription(table, &app_id, id)
        })
        .await
    }

    async fn delete_subscription(&self, app_id: &str, id: SubscriptionId) -> StoreResult<bool> {
        let app_id = app_id.to_owned();
        self.write(move |txn| Ok(remove_subscription(txn, &app_id, id)?.is_some()))
            .await
    }

    async fn count_subscriptions(&self, app_id: &str) -> StoreResult<u64> {
        let app_id = app_id.to_owned();
        self.read(move |txn| {
            let counts = txn.open_table(SUBSCRIPTION_COUNTS)?;
            Ok(counts.get(app_id.as_str())?.map_or(0, |v| v.value()))
        })
        .await
    }

    async fn scan_shard(&self, at: ShardAt<'_>, limit: usize) -> StoreResult<ScanBatch> {
        let (app_id, shard, cursor) = (at.app_id.to_owned(), at.shard, at.cursor);
        // The cursor is the last id handed out, big-endian; empty = from the start.
        let after = match cursor.0.as_slice() {
            [] => None,
            bytes => Some(SubscriptionId::from_bytes(bytes)?.0),
        };
        let limit = limit.max(1);
        self.read(move |txn| {
            let table = txn.open_table(SUBSCRIPTIONS)?;
            let start = after.map_or(0, |id| id.saturating_add(1));
            let mut subscriptions = Vec::with_capacity(limit);
            if after != Some(u64::MAX) {
                let range = table
                    .range((app_id.as_str(), shard, start)..=(app_id.as_str(), shard, u64::MAX))?;
                for entry in range.take(limit) {
                    let (key, value) = entry?;
                    let (_, _, id) = key.value();
                    subscriptions.push(Subscription::decode(
                        &app_id,
                        SubscriptionId(id),
                        value.value(),
                    )?);
                }
            }
            let next = (subscriptions.len() == limit)
                .then(|| {
                    subscriptions
                        .last()
                        .map(|s| ScanCursor(s.id.to_bytes().to_vec()))
                })
                .flatten();
            Ok(ScanBatch {
                subscriptions,
                next,
            })
        })
        .await
    }
}
