//! Subscriptions on Redis: one hash per shard (`{s:APP:SHARD}`), id → compact record. An
//! upsert is one `HSETNX` when new, else a compare-and-set merge; the count is the shards'
//! lengths, so it cannot drift.
//!
//! A renewal (`replace_subscription`) changes up to four units — the new subscription's shard,
//! its profile, the old subscription's shard, and a profile the new one named before — in this
//! order, like a link (`redis/profiles.rs`):
//! 1. the old record is read and the proof checked;
//! 2. the new record takes over what the old one had (compare-and-set);
//! 3. its profile lists it (`lua/list_subscription.lua`);
//! 4. the old record is deleted if it still holds what was read (else all again from 1, so a
//!    change made to the old one meanwhile is carried over too);
//! 5. the profiles stop listing the old id (and the new one, if it moved to another profile).
//!
//! At every step the new subscription is listed by its profile or about to be, as after a link;
//! an interrupted renewal leaves both subscriptions, the old one still whole, and the browser's
//! next renewal finishes it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::cas::Change;
use super::{RedisStore, keys, scripts};
use crate::store::{
    BatchOutcome, Refused, Replaced, Replacing, SHARDS, ScanBatch, ScanCursor, ShardAt, StoreError,
    StoreResult, Subscription, SubscriptionId, SubscriptionStore, Upserted,
};

/// How many times a renewal starts again when the old subscription changed under it.
const RENEWAL_ATTEMPTS: usize = 16;

impl RedisStore {
    /// Deletes a subscription record and answers what it held.
    pub(super) async fn take_subscription(
        &self,
        app_id: &str,
        id: SubscriptionId,
    ) -> StoreResult<Option<Subscription>> {
        let record: Option<Vec<u8>> = self
            .run_script(
                self.scripts
                    .take_field
                    .key(keys::shard(app_id, id.shard()))
                    .arg(id.to_bytes().as_slice()),
            )
            .await?;
        record
            .map(|r| Subscription::decode(app_id, id, &r))
            .transpose()
    }
}

/// A script's arguments per shard key: each subscription's id, then what `rest` pushes for it
/// (into the shard's arguments: no list of its own per subscriber on this per-message path).
fn by_shard(
    subscriptions: &[Subscription],
    rest: impl Fn(&Subscription, &mut Vec<Vec<u8>>),
) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut args: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for sub in subscriptions {
        let shard = args
            .entry(keys::shard(&sub.app_id, sub.id.shard()))
            .or_default();
        shard.push(sub.id.to_bytes().to_vec());
        rest(sub, shard);
    }
    args
}

impl RedisStore {
    /// A delivered batch's activity (`BatchOutcome`): one script per shard for the deliveries
    /// (`lua/set_activity.lua`) and one for the stale ones (`lua/expire_stale.lua`), all in
    /// flight at once beside the batch's other writes; then the profiles of the expired ones
    /// stop listing them and their count lands on the notification (only when some expired).
    pub(super) async fn record_activity(
        &self,
        outcome: &BatchOutcome<'_>,
        notification_id: &str,
    ) -> StoreResult<()> {
        if outcome.delivered.is_empty() && outcome.stale.is_empty() {
            return Ok(());
        }
        let touched = by_shard(outcome.delivered, |sub, args| {
            args.push(sub.activity.record_bytes());
            args.push(sub.activity.delivered(outcome.delivered_at).record_bytes());
        });
        let stale = by_shard(outcome.stale, |sub, args| {
            args.push(sub.activity.record_bytes());
        });
        let conn = self.conn();
        let run = |script: &'static str, key: String, args: Vec<Vec<u8>>| {
            let mut conn = conn.clone();
            async move {
                let script = match script {
                    "set" => &self.scripts.set_activity,
                    _ => &self.scripts.expire_stale,
                };
                let mut invocation = script.prepare_invoke();
                invocation.key(key);
                for arg in &args {
                    invocation.arg(arg.as_slice());
                }
                let answer: redis::Value = invocation.invoke_async(&mut conn).await?;
                Ok::<_, StoreError>(answer)
            }
        };
        let touches = touched.into_iter().map(|(key, args)| run("set", key, args));
        let expiries = stale
            .into_iter()
            .map(|(key, args)| run("expire", key, args));
        let (_, expired) = futures::try_join!(
            futures::future::try_join_all(touches),
            futures::future::try_join_all(expiries)
        )?;
        let mut deleted = Vec::new();
        for answer in expired {
            let ids: Vec<Vec<u8>> = redis::from_redis_value(answer)
                .map_err(|e| StoreError::Corrupt(format!("expire_stale's answer: {e}")))?;
            for id in ids {
                deleted.push(SubscriptionId::from_bytes(&id)?);
            }
        }
        if deleted.is_empty() {
            return Ok(());
        }
        for sub in outcome.stale.iter().filter(|s| deleted.contains(&s.id)) {
            if let Some(external_id) = &sub.external_id {
                self.unlist(&sub.app_id, external_id, sub.id).await?;
            }
        }
        let mut conn = conn.clone();
        let _: i64 = conn
            .hincr(
                keys::counters(notification_id),
                "expired_stale",
                deleted.len() as i64,
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl SubscriptionStore for RedisStore {
    async fn upsert_subscription(&self, subscription: &Subscription) -> StoreResult<Upserted> {
        let key = keys::shard(&subscription.app_id, subscription.id.shard());
        let field = subscription.id.to_bytes();
        let record = subscription.encode()?;
        // Most subscribes are new: one round trip creates them; only an existing one merges.
        let mut conn = self.conn();
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
                match subscription.merged_over(&existing) {
                    Ok(merged) => Ok(Change::Write(merged.encode()?, Upserted::Updated)),
                    Err(refused) => Ok(Change::Keep(Upserted::Refused(refused))),
                }
            }
        })
        .await
    }

    async fn replace_subscription(
        &self,
        old: Replacing<'_>,
        new: &Subscription,
    ) -> StoreResult<Replaced> {
        let Replacing {
            id: old,
            auth: proof,
        } = old;
        let app_id = new.app_id.as_str();
        let old_key = keys::shard(app_id, old.shard());
        let new_key = keys::shard(app_id, new.id.shard());
        let what = format!("subscription {}", new.id);
        if old == new.id {
            // New keys for the same endpoint: one compare-and-set of the one record.
            let outcome = self
                .change_field(&new_key, &new.id.to_bytes(), &what, |current| {
                    let Some(current) = current else {
                        return Ok(Change::Keep(Err(Replaced::OldNotFound)));
                    };
                    let stored = Subscription::decode(app_id, old, current)?;
                    match new.renewed_from(&stored, proof, None) {
                        Ok(renewed) => Ok(Change::Write(
                            renewed.encode()?,
                            Ok((stored.external_id, renewed.external_id)),
                        )),
                        Err(refused) => Ok(Change::Keep(Err(Replaced::Refused(refused)))),
                    }
                })
                .await?;
            let (before, after) = match outcome {
                Ok(links) => links,
                Err(replaced) => return Ok(replaced),
            };
            if before != after {
                if let Some(external_id) = &after {
                    self.list(app_id, external_id, new.id).await?;
                }
                if let Some(previous) = &before {
                    self.unlist(app_id, previous, new.id).await?;
                }
            }
            return Ok(Replaced::Moved { created: false });
        }
        for _ in 0..RENEWAL_ATTEMPTS {
            let read: Option<Vec<u8>> = self
                .conn()
                .hget(&old_key, old.to_bytes().as_slice())
                .await?;
            let Some(read) = read else {
                return Ok(Replaced::OldNotFound);
            };
            let old_sub = Subscription::decode(app_id, old, &read)?;
            if !old_sub.proves(proof) {
                return Ok(Replaced::Refused(Refused::WrongAuth));
            }
            let (renewed, created, previous) = self
                .change_field(&new_key, &new.id.to_bytes(), &what, |current| {
                    let existing = current
                        .map(|c| Subscription::decode(app_id, new.id, c))
                        .transpose()?;
                    let renewed = new
                        .renewed_from(&old_sub, proof, existing.as_ref())
                        .map_err(|_| StoreError::Invalid("the proof was checked".into()))?;
                    let previous = existing.as_ref().and_then(|e| e.external_id.clone());
                    Ok(Change::Write(
                        renewed.encode()?,
                        (renewed, existing.is_none(), previous),
                    ))
                })
                .await?;
            if let Some(external_id) = &renewed.external_id {
                self.list(app_id, external_id, new.id).await?;
            }
            let old_what = format!("subscription {old}");
            let taken = self
                .change_field(
                    &old_key,
                    &old.to_bytes(),
                    &old_what,
                    |current| match current {
                        // Deleted meanwhile (gone, unsubscribed, renewed elsewhere): the move stands.
                        None => Ok(Change::Keep(true)),
                        Some(current) if current == read.as_slice() => Ok(Change::Delete(true)),
                        Some(_) => Ok(Change::Keep(false)),
                    },
                )
                .await?;
            if !taken {
                continue;
            }
            if let Some(external_id) = &old_sub.external_id {
                self.unlist(app_id, external_id, old).await?;
            }
            if let Some(previous) = previous
                && renewed.external_id.as_ref() != Some(&previous)
            {
                self.unlist(app_id, &previous, new.id).await?;
            }
            return Ok(Replaced::Moved { created });
        }
        Err(StoreError::Contended(format!("subscription {old}")))
    }

    async fn record_receipt(&self, app_id: &str, id: SubscriptionId, at: u32) -> StoreResult<bool> {
        let key = keys::shard(app_id, id.shard());
        let what = format!("subscription {id}");
        self.change_field(&key, &id.to_bytes(), &what, |current| {
            let Some(current) = current else {
                return Ok(Change::Keep(false));
            };
            let mut sub = Subscription::decode(app_id, id, current)?;
            let receipted = sub.activity.receipted(at);
            if receipted == sub.activity {
                return Ok(Change::Keep(true));
            }
            sub.activity = receipted;
            Ok(Change::Write(sub.encode()?, true))
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
        let conn = self.conn();
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
        let mut conn = self.conn();
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
        let conn = self.conn();
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
        let conn = self.conn();
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

    async fn scan_shard(&self, at: ShardAt<'_>, limit: usize) -> StoreResult<ScanBatch> {
        let (app_id, shard, cursor) = (at.app_id, at.shard, at.cursor);
        if shard >= SHARDS {
            return Err(StoreError::Invalid(format!("shard {shard} ≥ {SHARDS}")));
        }
        // The cursor is `RUN_ID:POSITION` (`lua/run_id.lua`); empty = from the start. One from
        // another run of the server, or without a run id (written before cursors had one),
        // starts the shard again: some subscribers handed out twice, none missed.
        let (cursor_run, position) = match cursor.0.as_slice() {
            [] => ("", 0),
            bytes => std::str::from_utf8(bytes)
                .ok()
                .map(|cursor| cursor.split_once(':').unwrap_or(("", cursor)))
                .and_then(|(run, position)| Some((run, position.parse::<u64>().ok()?)))
                .ok_or_else(|| StoreError::Corrupt("scan cursor".into()))?,
        };
        let key = keys::shard(app_id, shard);
        let mut conn = self.conn();
        let page = |position: u64| {
            let mut pipe = redis::pipe();
            pipe.cmd("EVAL").arg(scripts::RUN_ID).arg(1).arg(&key);
            pipe.cmd("HSCAN")
                .arg(&key)
                .arg(position)
                .arg("COUNT")
                .arg(limit.max(1));
            pipe
        };
        type Page = (String, (u64, Vec<(Vec<u8>, Vec<u8>)>));
        let (mut run_id, (mut next, mut entries)): Page =
            page(position).query_async(&mut conn).await?;
        if position != 0 && run_id != cursor_run {
            (run_id, (next, entries)) = page(0).query_async(&mut conn).await?;
        }
        let subscriptions = entries
            .iter()
            .map(|(id, record)| {
                Subscription::decode(app_id, SubscriptionId::from_bytes(id)?, record)
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(ScanBatch {
            subscriptions,
            next: (next != 0).then(|| ScanCursor(format!("{run_id}:{next}").into_bytes())),
        })
    }
}
