//! Notifications on Redis: the document (`{n:ID}:doc`), its counters (`{n:ID}:counters`), its
//! life and series (`{n:ID}:life`, `{n:ID}:series`), the set of what was counted once
//! (`{n:ID}:once`), the app's index by creation time (`{na:APP}`) and idempotency keys
//! (`{i:APP}:KEY`).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::{RedisStore, keys};
use crate::notify::Notification;
use crate::notify::life::{CancelOutcome, Life};
use crate::store::{
    CountOnce, KeyClaim, LedgerStore, NewNotification, NotificationStore, Series, Settle,
    StoreError, StoreResult, from_json, now_ms, to_json,
};

/// A life as `{n:ID}:life` holds it.
fn life_of(fields: &BTreeMap<String, u64>) -> Life {
    Life {
        sending_at_ms: fields.get("sending_at").copied(),
        completed_at_ms: fields.get("completed_at").copied(),
        cancelled_at_ms: fields.get("cancelled_at").copied(),
    }
}

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
        let id = new.notification.id.as_str();
        let tasks = async {
            if new.tasks.is_empty() {
                self.register_tasks(id, &[]).await
            } else {
                self.enqueue_tasks(new.tasks).await
            }
        };
        futures::try_join!(tasks, counted)?;
        Ok(())
    }

    async fn put_notification(&self, notification: &Notification) -> StoreResult<()> {
        let mut conn = self.conn();
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
        let conn = self.conn();
        let (mut doc, mut life) = (conn.clone(), conn);
        let (raw, fields): (Option<Vec<u8>>, BTreeMap<String, u64>) = futures::try_join!(
            doc.get(keys::notification(id)),
            life.hgetall(keys::life(id))
        )?;
        let Some(raw) = raw else { return Ok(None) };
        let mut notification: Notification = from_json(&raw, "notification")?;
        let life = life_of(&fields);
        notification.status = life.status(notification.status);
        notification.life = life;
        Ok(Some(notification))
    }

    async fn list_notifications(
        &self,
        app_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Notification>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn();
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
        let mut conn = self.conn();
        Ok(conn.hgetall(keys::counters(notification_id)).await?)
    }

    async fn cancel_notification(&self, notification_id: &str) -> StoreResult<CancelOutcome> {
        let (outcome, at): (String, u64) = self
            .run_script(
                self.scripts
                    .cancel_notification
                    .key(keys::life(notification_id))
                    .arg(now_ms()),
            )
            .await?;
        match outcome.as_str() {
            "cancelled" => Ok(CancelOutcome::Cancelled(at)),
            "already" => Ok(CancelOutcome::AlreadyCancelled(at)),
            "completed" => Ok(CancelOutcome::Completed(at)),
            other => Err(StoreError::Corrupt(format!(
                "cancel_notification answered `{other}`"
            ))),
        }
    }

    async fn series(&self, notification_id: &str) -> StoreResult<Series> {
        let mut conn = self.conn();
        let fields: BTreeMap<String, i64> = conn.hgetall(keys::series(notification_id)).await?;
        let mut series = Series::new();
        for (field, count) in fields {
            let (bucket, counter) = field
                .split_once(':')
                .and_then(|(bucket, counter)| Some((bucket.parse::<u64>().ok()?, counter)))
                .ok_or_else(|| StoreError::Corrupt(format!("series field `{field}`")))?;
            series
                .entry(bucket)
                .or_default()
                .insert(counter.to_owned(), count);
        }
        Ok(series)
    }

    async fn count_once(&self, once: CountOnce<'_>) -> StoreResult<bool> {
        let mut invocation = self.scripts.count_once.prepare_invoke();
        invocation
            .key(keys::counted_once(once.notification_id))
            .key(keys::counters(once.notification_id))
            .arg(once.member)
            .arg(once.keep_until_ms);
        for counter in once.counters {
            invocation.arg(*counter);
        }
        let counted: u8 = self.run_script(&invocation).await?;
        Ok(counted == 1)
    }

    async fn claim_idempotency_key(
        &self,
        claim: KeyClaim<'_>,
        ttl: Duration,
    ) -> StoreResult<Option<String>> {
        let mut conn = self.conn();
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
        let _: u8 = self
            .run_script(
                self.scripts
                    .settle_key
                    .key(keys::idempotency(claim.app_id, claim.key))
                    .arg(claim.holder)
                    .arg(action)
                    .arg(ttl),
            )
            .await?;
        Ok(())
    }
}
