//! Subscriptions in the embedded store: `(app, shard, id)` → compact record, and a count per
//! app kept in the same transactions.

use async_trait::async_trait;

use super::EmbeddedStore;
use super::tables::{
    SUBSCRIPTION_COUNTS, SUBSCRIPTIONS, load_subscription, put_subscription, read_subscription,
    remove_subscription,
};
use crate::store::{
    ScanBatch, ScanCursor, StoreResult, Subscription, SubscriptionId, SubscriptionStore, Upserted,
};

#[async_trait]
impl SubscriptionStore for EmbeddedStore {
    async fn upsert_subscription(&self, subscription: &Subscription) -> StoreResult<Upserted> {
        let sub = subscription.clone();
        self.write(
            move |txn| match load_subscription(txn, &sub.app_id, sub.id)? {
                Some(existing) => {
                    put_subscription(txn, &sub.merged_over(&existing))?;
                    Ok(Upserted::Updated)
                }
                None => {
                    put_subscription(txn, &sub)?;
                    Ok(Upserted::Created)
                }
            },
        )
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
        let ids = ids.to_vec();
        self.read(move |txn| {
            let table = txn.open_table(SUBSCRIPTIONS)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(sub) = read_subscription(&table, &app_id, id)? {
                    out.push(sub);
                }
            }
            Ok(out)
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

    async fn scan_shard(
        &self,
        app_id: &str,
        shard: u16,
        cursor: &ScanCursor,
        limit: usize,
    ) -> StoreResult<ScanBatch> {
        let app_id = app_id.to_owned();
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
