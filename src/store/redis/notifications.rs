//! Notifications on Redis: the document (`{n:ID}:doc`), its counters (`{n:ID}:counters`), the
//! app's index by creation time (`{na:APP}`) and idempotency keys (`{i:APP}:KEY`).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::{RedisStore, keys};
use crate::notify::Notification;
use crate::store::{
    KeyClaim, LedgerStore, NewNotification, NotificationStore, Settle, StoreResult, from_json,
    now_ms, to_json,
};

#[async_trait]
impl NotificationStore for RedisStore {
    async fn create_notification(&self, new: NewNotification<'_>) -> StoreResult<()> {
        // The document first: a worker that claims a task must find it.
        self.put_notification(new.notification).await?;
        let counted = async {
            if new.counters.is_empty() {
                Ok(())
            } else {
                self.add_counters(&new.notification.id, new.counters).await
            }
        };
        futures::try_join!(self.enqueue_tasks(new.tasks), counted)?;
        Ok(())
    }

    async fn put_notification(&self, notification: &Notification) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let _: () = conn
            .set(keys::notification(&notification.id), to_json(notification)?)
            .await?;
        let _: u64 = redis::cmd("ZADD")
            .arg(keys::app_notifications(&notification.app_id))
            .arg("NX")
            .arg(now_ms())
            .arg(&notification.id)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn get_notification(&self, id: &str) -> StoreResult<Option<Notification>> {
        let mut conn = self.conn().await?;
        let raw: Option<Vec<u8>> = conn.get(keys::notification(id)).await?;
        raw.map(|r| from_json(&r, "notification")).transpose()
    }

    async fn list_notifications(
        &self,
        app_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Notification>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let ids: Vec<String> = conn
            .zrevrange(keys::app_notifications(app_id), 0, limit as isize - 1)
            .await?;
        let reads = ids.iter().map(|id| self.get_notification(id));
        let found = futures::future::try_join_all(reads).await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn add_counters(&self, notification_id: &str, deltas: &[(&str, i64)]) -> StoreResult<()> {
        self.add_to_hash(&keys::counters(notification_id), deltas)
            .await
    }

    async fn counters(&self, notification_id: &str) -> StoreResult<BTreeMap<String, i64>> {
        let mut conn = self.conn().await?;
        Ok(conn.hgetall(keys::counters(notification_id)).await?)
    }

    async fn claim_idempotency_key(
        &self,
        claim: KeyClaim<'_>,
        ttl: Duration,
    ) -> StoreResult<Option<String>> {
        let mut conn = self.conn().await?;
        let redis_key = keys::idempotency(claim.app_id, claim.key);
        let set: Option<String> = redis::cmd("SET")
            .arg(&redis_key)
            .arg(claim.holder)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut conn)
            .await?;
        if set.is_some() {
            return Ok(None);
        }
        Ok(conn.get(&redis_key).await?)
    }

    async fn settle_idempotency_key(&self, claim: KeyClaim<'_>, settle: Settle) -> StoreResult<()> {
        let (action, ttl) = match settle {
            Settle::Keep(ttl) => ("keep", ttl.as_millis().max(1) as u64),
            Settle::Release => ("release", 0),
        };
        let mut conn = self.conn().await?;
        let _: u8 = self
            .scripts
            .settle_key
            .key(keys::idempotency(claim.app_id, claim.key))
            .arg(claim.holder)
            .arg(action)
            .arg(ttl)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }
}
