//! Subscriptions on Redis: one hash per shard (`{s:APP:SHARD}`), id → compact record. An
//! upsert is one `HSETNX` when new, else a compare-and-set merge; the count is the shards'
//! lengths, so it cannot drift.

use std::collections::BTreeMap;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::cas::Change;
use super::{RedisStore, keys};
use crate::store::{
    SHARDS, ScanBatch, ScanCursor, StoreError, StoreResult, Subscription, SubscriptionId,
    SubscriptionStore, Upserted,
};

impl RedisStore {
    /// Deletes a subscription record and answers what it held.
    pub(super) async fn take_subscription(
        &self,
        app_id: &str,
        id: SubscriptionId,
    ) -> StoreResult<Option<Subscription>> {
        let mut conn = self.conn().await?;
        let record: Option<Vec<u8>> = self
            .scripts
            .take_field
            .key(keys::shard(app_id, id.shard()))
            .arg(id.to_bytes().as_slice())
            .invoke_async(&mut conn)
            .await?;
        record
            .map(|r| Subscription::decode(app_id, id, &r))
            .transpose()
    }
}

#[async_trait]
impl SubscriptionStore for RedisStore {
    async fn upsert_subscription(&self, subscription: &Subscription) -> StoreResult<Upserted> {
        let key = keys::shard(&subscription.app_id, subscription.id.shard());
        let field = subscription.id.to_bytes();
        let record = subscription.encode()?;
        // Most subscribes are new: one round trip creates them; only an existing one merges.
        let mut conn = self.conn().await?;
        let created: bool = conn.hset_nx(&key, field.as_slice(), &record).await?;
        if created {
            return Ok(Upserted::Created);
        }
        let what = format!("subscription {}", subscription.id);
        self.change_field(&key, &field, &what, |current| match current {
            None => Ok(Change::Write(record.clone(), Upserted::Created)),
            Some(current) => {
                let existing =
                    Subscription::decode(&subscription.app_id, subscription.id, current)?;
                let merged = subscription.merged_over(&existing);
                Ok(Change::Write(merged.encode()?, Upserted::Updated))
            }
        })
        .await
    }

    async fn insert_subscriptions(&self, subscriptions: &[Subscription]) -> StoreResult<()> {
        let mut by_shard: BTreeMap<(&str, u16), Vec<(Vec<u8>, Vec<u8>)>> = BTreeMap::new();
        for sub in subscriptions {
            by_shard
                .entry((sub.app_id.as_str(), sub.id.shard()))
                .or_default()
                .push((sub.id.to_bytes().to_vec(), sub.encode()?));
        }
        let conn = self.conn().await?;
        // One HSET per shard, all in flight at once: the multiplexed connection pipelines them
        // (and the cluster client sends each to its node).
        let writes = by_shard.into_iter().map(|((app_id, shard), fields)| {
            let mut conn = conn.clone();
            async move {
                let mut hset = redis::cmd("HSET");
                hset.arg(keys::shard(app_id, shard));
                for (id, record) in &fields {
                    hset.arg(id).arg(record);
                }
                let _: u64 = hset.query_async(&mut conn).await?;
                Ok::<_, StoreError>(())
            }
        });
        futures::future::try_join_all(writes).await?;
        Ok(())
    }

    async fn get_subscription(
        &self,
        app_id: &str,
        id: SubscriptionId,
    ) -> StoreResult<Option<Subscription>> {
        let mut conn = self.conn().await?;
        let raw: Option<Vec<u8>> = conn
            .hget(keys::shard(app_id, id.shard()), id.to_bytes().as_slice())
            .await?;
        raw.map(|r| Subscription::decode(app_id, id, &r))
            .transpose()
    }

    async fn get_subscriptions(
        &self,
        app_id: &str,
        ids: &[SubscriptionId],
    ) -> StoreResult<Vec<Subscription>> {
        let conn = self.conn().await?;
        let reads = ids.iter().map(|id| {
            let mut conn = conn.clone();
            let key = keys::shard(app_id, id.shard());
            async move {
                let raw: Option<Vec<u8>> = conn.hget(key, id.to_bytes().as_slice()).await?;
                raw.map(|r| Subscription::decode(app_id, *id, &r))
                    .transpose()
            }
        });
        let found = futures::future::try_join_all(reads).await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn delete_subscription(&self, app_id: &str, id: SubscriptionId) -> StoreResult<bool> {
        let Some(sub) = self.take_subscription(app_id, id).await? else {
            return Ok(false);
        };
        if let Some(external_id) = &sub.external_id {
            self.unlist(app_id, external_id, id).await?;
        }
        Ok(true)
    }

    async fn count_subscriptions(&self, app_id: &str) -> StoreResult<u64> {
        let conn = self.conn().await?;
        let lengths = (0..SHARDS).map(|shard| {
            let mut conn = conn.clone();
            async move {
                let length: u64 = conn.hlen(keys::shard(app_id, shard)).await?;
                Ok::<_, StoreError>(length)
            }
        });
        Ok(futures::future::try_join_all(lengths)
            .await?
            .into_iter()
            .sum())
    }

    async fn scan_shard(
        &self,
        app_id: &str,
        shard: u16,
        cursor: &ScanCursor,
        limit: usize,
    ) -> StoreResult<ScanBatch> {
        if shard >= SHARDS {
            return Err(StoreError::Invalid(format!("shard {shard} ≥ {SHARDS}")));
        }
        let position: u64 = match cursor.0.as_slice() {
            [] => 0,
            bytes => std::str::from_utf8(bytes)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| StoreError::Corrupt("scan cursor".into()))?,
        };
        let mut conn = self.conn().await?;
        let (next, entries): (u64, Vec<(Vec<u8>, Vec<u8>)>) = redis::cmd("HSCAN")
            .arg(keys::shard(app_id, shard))
            .arg(position)
            .arg("COUNT")
            .arg(limit.max(1))
            .query_async(&mut conn)
            .await?;
        let subscriptions = entries
            .iter()
            .map(|(id, record)| {
                Subscription::decode(app_id, SubscriptionId::from_bytes(id)?, record)
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(ScanBatch {
            subscriptions,
            next: (next != 0).then(|| ScanCursor(next.to_string().into_bytes())),
        })
    }
}
