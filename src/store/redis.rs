//! The Redis store: a single Redis or a Redis Cluster, through `deadpool-redis`.
//!
//! Layout (every key of one shard shares a hash tag, so a shard lives on one cluster node):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{s:APP:SHARD}` | hash | subscription id (8 raw bytes) → compact record (`model.rs`) |
//! | `{c:APP}` | string | subscription count |
//! | `{p:APP:EXTERNAL_ID}` | string | profile (JSON) |
//! | `{a}:apps`, `{a}:keys` | hash | apps (JSON); API-key hash → app id |
//! | `{n:ID}:doc`, `{n:ID}:counters` | string, hash | notification document; its counters |
//! | `{na:APP}` | sorted set | the app's notification ids by creation time |
//! | `{i:APP}:KEY`, `{f:APP:EXTERNAL_ID}:WINDOW` | string | idempotency keys; send counts |
//! | `{ledger}:lane:LANE`, `{ledger}:tasks`, `{ledger}:of:NOTIFICATION` | zset, hash, set | the ledger |
//!
//! The ledger's sorted set scores each task by when it may be claimed: `not_before` for a new
//! task, the lease's end for a claimed one, so a claim is "the first member scored ≤ now" and a
//! takeover needs no separate scan. Lua scripts make claim, checkpoint and completion atomic and
//! fence stale claims by epoch; they read the clock with `TIME` so instances need not agree on it.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionLike;
use redis::{AsyncCommands, Cmd, Pipeline, RedisFuture, Script, Value};

use super::{
    App, ClaimedTask, Lane, Profile, ProfileUpdate, Progress, SHARDS, ScanBatch, ScanCursor, Store,
    StoreError, StoreResult, Subscription, SubscriptionId, Task, Upserted, now_ms,
};

/// A connection from either pool; both are multiplexed and cheap to clone.
#[derive(Clone)]
enum Connection {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

enum Pool {
    Single(deadpool_redis::Pool),
    Cluster(deadpool_redis::cluster::Pool),
}

/// The Redis store.
pub struct RedisStore {
    pool: Pool,
    scripts: Scripts,
}

struct Scripts {
    claim: Script,
    checkpoint: Script,
    complete: Script,
    cancel: Script,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn json<T: serde::Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn from_json<T: for<'de> serde::Deserialize<'de>>(bytes: &[u8], what: &str) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn shard_key(app_id: &str, shard: u16) -> String {
    format!("{{s:{app_id}:{shard}}}")
}

fn count_key(app_id: &str) -> String {
    format!("{{c:{app_id}}}")
}

fn profile_key(app_id: &str, external_id: &str) -> String {
    format!("{{p:{app_id}:{external_id}}}")
}

const APPS: &str = "{a}:apps";
const API_KEYS: &str = "{a}:keys";
const TASKS: &str = "{ledger}:tasks";

fn lane_key(lane: Lane) -> String {
    format!("{{ledger}}:lane:{}", lane.as_str())
}

fn tasks_of_key(notification_id: &str) -> String {
    format!("{{ledger}}:of:{notification_id}")
}

/// `redis.call('TIME')` in milliseconds, shared by the ledger scripts.
const NOW_MS: &str = "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n";

impl RedisStore {
    /// Connects to `url`: `redis://host:port` for one Redis, or several comma-separated
    /// `redis://` URLs (or one `redis+cluster://` URL) for the nodes of a Redis Cluster.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let urls: Vec<String> = url.split(',').map(|u| u.trim().to_owned()).collect();
        let cluster = urls.len() > 1 || url.starts_with("redis+cluster://");
        let pool = if cluster {
            let urls = urls
                .into_iter()
                .map(|u| u.replacen("redis+cluster://", "redis://", 1))
                .collect::<Vec<_>>();
            let pool = deadpool_redis::cluster::Config::from_urls(urls)
                .create_pool(Some(deadpool_redis::Runtime::Tokio1))
                .map_err(|e| StoreError::Invalid(format!("Redis Cluster URL `{url}`: {e}")))?;
            Pool::Cluster(pool)
        } else {
            let pool = deadpool_redis::Config::from_url(url)
                .create_pool(Some(deadpool_redis::Runtime::Tokio1))
                .map_err(|e| StoreError::Invalid(format!("Redis URL `{url}`: {e}")))?;
            Pool::Single(pool)
        };
        let store = Self {
            pool,
            scripts: Scripts::new(),
        };
        store.ping().await?;
        Ok(store)
    }

    async fn conn(&self) -> StoreResult<Connection> {
        // The pooled object is returned at once: its connection is multiplexed, and a clone
        // shares it. A broken one is replaced by the pool on a later `get`.
        match &self.pool {
            Pool::Single(pool) => {
                let pooled = pool.get().await.map_err(unavailable)?;
                Ok(Connection::Single((*pooled).clone()))
            }
            Pool::Cluster(pool) => {
                let pooled = pool.get().await.map_err(unavailable)?;
                Ok(Connection::Cluster((*pooled).clone()))
            }
        }
    }

    /// Redis `INFO memory`'s `used_memory`, for the memory benchmark.
    pub async fn used_memory(&self) -> StoreResult<u64> {
        let mut conn = self.conn().await?;
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        info.lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| StoreError::Unavailable("INFO memory has no used_memory".into()))
    }
}

impl Scripts {
    fn new() -> Self {
        Self {
            // KEYS: lane, tasks. ARGV: lease ms, worker. Returns {id, spec, epoch, claims, progress}.
            claim: Script::new(&format!(
                "{NOW_MS}
                local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)
                if #ids == 0 then return false end
                local id = ids[1]
                local spec = redis.call('HGET', KEYS[2], id .. ':spec')
                if not spec then redis.call('ZREM', KEYS[1], id) return false end
                local epoch = redis.call('HINCRBY', KEYS[2], id .. ':epoch', 1)
                local claims = redis.call('HINCRBY', KEYS[2], id .. ':claims', 1) - 1
                redis.call('HSET', KEYS[2], id .. ':owner', ARGV[2])
                redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), id)
                local progress = redis.call('HGET', KEYS[2], id .. ':progress') or ''
                return {{id, spec, epoch, claims, progress}}"
            )),
            // KEYS: lane, tasks. ARGV: id, epoch, worker, progress, lease ms.
            checkpoint: Script::new(&format!(
                "{NOW_MS}
                local id = ARGV[1]
                if redis.call('HGET', KEYS[2], id .. ':epoch') ~= ARGV[2]
                   or redis.call('HGET', KEYS[2], id .. ':owner') ~= ARGV[3] then return 0 end
                redis.call('HSET', KEYS[2], id .. ':progress', ARGV[4])
                redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[5]), id)
                return 1"
            )),
            // KEYS: lane, tasks, tasks-of-notification. ARGV: id, epoch, worker.
            complete: Script::new(
                "local id = ARGV[1]
                if redis.call('HGET', KEYS[2], id .. ':epoch') ~= ARGV[2]
                   or redis.call('HGET', KEYS[2], id .. ':owner') ~= ARGV[3] then return 0 end
                redis.call('ZREM', KEYS[1], id)
                redis.call('HDEL', KEYS[2], id .. ':spec', id .. ':epoch', id .. ':owner', id .. ':progress', id .. ':claims')
                redis.call('SREM', KEYS[3], id)
                return 1",
            ),
            // KEYS: priority lane, bulk lane, tasks, tasks-of-notification.
            cancel: Script::new(
                "local ids = redis.call('SMEMBERS', KEYS[4])
                for _, id in ipairs(ids) do
                  redis.call('ZREM', KEYS[1], id)
                  redis.call('ZREM', KEYS[2], id)
                  redis.call('HDEL', KEYS[3], id .. ':spec', id .. ':epoch', id .. ':owner', id .. ':progress', id .. ':claims')
                end
                redis.call('DEL', KEYS[4])
                return #ids",
            ),
        }
    }
}

#[async_trait]
impl Store for RedisStore {
    fn is_shared(&self) -> bool {
        true
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn put_app(&self, app: &App) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let previous: Option<Vec<u8>> = conn.hget(APPS, &app.id).await.map_err(unavailable)?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        if let Some(previous) = previous {
            let previous: App = from_json(&previous, "app")?;
            for hash in previous.key_hashes() {
                pipe.hdel(API_KEYS, hash.as_slice()).ignore();
            }
        }
        for hash in app.key_hashes() {
            pipe.hset(API_KEYS, hash.as_slice(), &app.id).ignore();
        }
        pipe.hset(APPS, &app.id, json(app)?).ignore();
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    async fn get_app(&self, app_id: &str) -> StoreResult<Option<App>> {
        let mut conn = self.conn().await?;
        let raw: Option<Vec<u8>> = conn.hget(APPS, app_id).await.map_err(unavailable)?;
        raw.map(|r| from_json(&r, "app")).transpose()
    }

    async fn list_apps(&self) -> StoreResult<Vec<App>> {
        let mut conn = self.conn().await?;
        let raw: Vec<Vec<u8>> = conn.hvals(APPS).await.map_err(unavailable)?;
        raw.iter().map(|r| from_json(r, "app")).collect()
    }

    async fn app_by_api_key(&self, key_hash: &[u8; 32]) -> StoreResult<Option<App>> {
        let mut conn = self.conn().await?;
        let app_id: Option<String> = conn
            .hget(API_KEYS, key_hash.as_slice())
            .await
            .map_err(unavailable)?;
        match app_id {
            Some(id) => self.get_app(&id).await,
            None => Ok(None),
        }
    }

    async fn delete_app(&self, app_id: &str) -> StoreResult<bool> {
        let Some(previous) = self.get_app(app_id).await? else {
            return Ok(false);
        };
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for hash in previous.key_hashes() {
            pipe.hdel(API_KEYS, hash.as_slice()).ignore();
        }
        pipe.hdel(APPS, app_id).ignore();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)?;
        // Shards live on different cluster nodes: one DEL each.
        let shards = (0..SHARDS).map(|shard| {
            let mut conn = conn.clone();
            async move { conn.del::<_, ()>(shard_key(app_id, shard)).await }
        });
        futures::future::try_join_all(shards)
            .await
            .map_err(unavailable)?;
        conn.del::<_, ()>(count_key(app_id))
            .await
            .map_err(unavailable)?;
        Ok(true)
    }

    async fn upsert_subscription(&self, subscription: &Subscription) -> StoreResult<Upserted> {
        let mut conn = self.conn().await?;
        let key = shard_key(&subscription.app_id, subscription.id.shard());
        let field = subscription.id.to_bytes();
        // Most subscribes are new: try to create first (one round trip), merge only when it exists.
        let created: bool = conn
            .hset_nx(&key, field.as_slice(), subscription.encode()?)
            .await
            .map_err(unavailable)?;
        if created {
            let _: i64 = conn
                .incr(count_key(&subscription.app_id), 1)
                .await
                .map_err(unavailable)?;
            return Ok(Upserted::Created);
        }
        let existing: Option<Vec<u8>> = conn
            .hget(&key, field.as_slice())
            .await
            .map_err(unavailable)?;
        let mut sub = subscription.clone();
        if let Some(existing) = existing {
            let existing = Subscription::decode(&sub.app_id, sub.id, &existing)?;
            sub.created_at = existing.created_at;
            if sub.external_id.is_none() {
                sub.external_id = existing.external_id;
            }
        }
        let _: u64 = conn
            .hset(&key, field.as_slice(), sub.encode()?)
            .await
            .map_err(unavailable)?;
        Ok(Upserted::Updated)
    }

    async fn insert_subscriptions(&self, subscriptions: &[Subscription]) -> StoreResult<()> {
        let mut by_shard: BTreeMap<(String, u16), Vec<(Vec<u8>, Vec<u8>)>> = BTreeMap::new();
        for sub in subscriptions {
            by_shard
                .entry((sub.app_id.clone(), sub.id.shard()))
                .or_default()
                .push((sub.id.to_bytes().to_vec(), sub.encode()?));
        }
        let conn = self.conn().await?;
        // One HSET per shard, all in flight at once: the multiplexed connection pipelines them
        // (and the cluster client sends each to its node).
        let writes = by_shard.into_iter().map(|((app_id, shard), fields)| {
            let mut conn = conn.clone();
            async move {
                // HSET with many pairs answers how many fields are new (HMSET only answers OK).
                let mut hset = redis::cmd("HSET");
                hset.arg(shard_key(&app_id, shard));
                for (id, record) in &fields {
                    hset.arg(id).arg(record);
                }
                let created: u64 = hset.query_async(&mut conn).await.map_err(unavailable)?;
                Ok::<_, StoreError>((app_id, created))
            }
        });
        let mut created_per_app: BTreeMap<String, u64> = BTreeMap::new();
        for result in futures::future::join_all(writes).await {
            let (app_id, created) = result?;
            *created_per_app.entry(app_id).or_default() += created;
        }
        let mut conn = conn;
        for (app_id, created) in created_per_app {
            if created > 0 {
                let _: i64 = conn
                    .incr(count_key(&app_id), created)
                    .await
                    .map_err(unavailable)?;
            }
        }
        Ok(())
    }

    async fn get_subscription(
        &self,
        app_id: &str,
        id: SubscriptionId,
    ) -> StoreResult<Option<Subscription>> {
        let mut conn = self.conn().await?;
        let raw: Option<Vec<u8>> = conn
            .hget(shard_key(app_id, id.shard()), id.to_bytes().as_slice())
            .await
            .map_err(unavailable)?;
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
            let key = shard_key(app_id, id.shard());
            async move {
                let raw: Option<Vec<u8>> = conn
                    .hget(key, id.to_bytes().as_slice())
                    .await
                    .map_err(unavailable)?;
                raw.map(|r| Subscription::decode(app_id, *id, &r))
                    .transpose()
            }
        });
        let mut out = Vec::with_capacity(ids.len());
        for result in futures::future::join_all(reads).await {
            if let Some(sub) = result? {
                out.push(sub);
            }
        }
        Ok(out)
    }

    async fn delete_subscription(&self, app_id: &str, id: SubscriptionId) -> StoreResult<bool> {
        let Some(sub) = self.get_subscription(app_id, id).await? else {
            return Ok(false);
        };
        let mut conn = self.conn().await?;
        let removed: u64 = conn
            .hdel(shard_key(app_id, id.shard()), id.to_bytes().as_slice())
            .await
            .map_err(unavailable)?;
        if removed == 0 {
            return Ok(false);
        }
        let _: i64 = conn.decr(count_key(app_id), 1).await.map_err(unavailable)?;
        if let Some(external_id) = &sub.external_id
            && let Some(mut profile) = self.get_profile(app_id, external_id).await?
        {
            profile.subscriptions.retain(|s| *s != id);
            self.save_profile(app_id, &profile).await?;
        }
        Ok(true)
    }

    async fn count_subscriptions(&self, app_id: &str) -> StoreResult<u64> {
        let mut conn = self.conn().await?;
        let count: Option<i64> = conn.get(count_key(app_id)).await.map_err(unavailable)?;
        Ok(count.unwrap_or(0).max(0) as u64)
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
            .arg(shard_key(app_id, shard))
            .arg(position)
            .arg("COUNT")
            .arg(limit.max(1))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
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

    async fn update_profile(&self, app_id: &str, update: &ProfileUpdate) -> StoreResult<Profile> {
        let mut profile = self
            .get_profile(app_id, &update.external_id)
            .await?
            .unwrap_or_else(|| Profile {
                external_id: update.external_id.clone(),
                ..Profile::default()
            });
        profile.apply(update, now_ms() / 1000);
        self.save_profile(app_id, &profile).await?;
        Ok(profile)
    }

    async fn get_profile(&self, app_id: &str, external_id: &str) -> StoreResult<Option<Profile>> {
        let mut conn = self.conn().await?;
        let raw: Option<Vec<u8>> = conn
            .get(profile_key(app_id, external_id))
            .await
            .map_err(unavailable)?;
        raw.map(|r| from_json(&r, "profile")).transpose()
    }

    async fn link_subscription(
        &self,
        app_id: &str,
        external_id: &str,
        id: SubscriptionId,
    ) -> StoreResult<()> {
        let mut sub = self
            .get_subscription(app_id, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("subscription {id}")))?;
        if let Some(previous) = sub.external_id.as_deref()
            && previous != external_id
            && let Some(mut old) = self.get_profile(app_id, previous).await?
        {
            old.subscriptions.retain(|s| *s != id);
            self.save_profile(app_id, &old).await?;
        }
        sub.external_id = Some(external_id.to_owned());
        let mut conn = self.conn().await?;
        let _: u64 = conn
            .hset(
                shard_key(app_id, id.shard()),
                id.to_bytes().as_slice(),
                sub.encode()?,
            )
            .await
            .map_err(unavailable)?;
        let mut profile = self
            .get_profile(app_id, external_id)
            .await?
            .unwrap_or_else(|| Profile {
                external_id: external_id.to_owned(),
                updated_at: now_ms() / 1000,
                ..Profile::default()
            });
        if !profile.subscriptions.contains(&id) {
            profile.subscriptions.push(id);
        }
        self.save_profile(app_id, &profile).await
    }

    async fn erase_profile(&self, app_id: &str, external_id: &str) -> StoreResult<u64> {
        let Some(profile) = self.get_profile(app_id, external_id).await? else {
            return Ok(0);
        };
        let mut conn = self.conn().await?;
        let mut deleted = 0;
        for id in &profile.subscriptions {
            let removed: u64 = conn
                .hdel(shard_key(app_id, id.shard()), id.to_bytes().as_slice())
                .await
                .map_err(unavailable)?;
            deleted += removed;
        }
        if deleted > 0 {
            let _: i64 = conn
                .decr(count_key(app_id), deleted)
                .await
                .map_err(unavailable)?;
        }
        let _: u64 = conn
            .del(profile_key(app_id, external_id))
            .await
            .map_err(unavailable)?;
        Ok(deleted)
    }

    async fn put_notification(&self, app_id: &str, id: &str, document: &[u8]) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let _: () = conn
            .set(format!("{{n:{id}}}:doc"), document)
            .await
            .map_err(unavailable)?;
        let _: u64 = redis::cmd("ZADD")
            .arg(format!("{{na:{app_id}}}"))
            .arg("NX")
            .arg(now_ms())
            .arg(id)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get_notification(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        let mut conn = self.conn().await?;
        conn.get(format!("{{n:{id}}}:doc"))
            .await
            .map_err(unavailable)
    }

    async fn list_notifications(&self, app_id: &str, limit: usize) -> StoreResult<Vec<Vec<u8>>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let ids: Vec<String> = conn
            .zrevrange(format!("{{na:{app_id}}}"), 0, limit as isize - 1)
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(document) = self.get_notification(&id).await? {
                out.push(document);
            }
        }
        Ok(out)
    }

    async fn add_counters(&self, notification_id: &str, deltas: &[(&str, i64)]) -> StoreResult<()> {
        let key = format!("{{n:{notification_id}}}:counters");
        let mut pipe = redis::pipe();
        for (field, delta) in deltas {
            pipe.hincr(&key, *field, *delta).ignore();
        }
        let mut conn = self.conn().await?;
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    async fn counters(&self, notification_id: &str) -> StoreResult<BTreeMap<String, i64>> {
        let mut conn = self.conn().await?;
        conn.hgetall(format!("{{n:{notification_id}}}:counters"))
            .await
            .map_err(unavailable)
    }

    async fn claim_idempotency_key(
        &self,
        app_id: &str,
        key: &str,
        notification_id: &str,
        ttl: Duration,
    ) -> StoreResult<Option<String>> {
        let mut conn = self.conn().await?;
        let redis_key = format!("{{i:{app_id}}}:{key}");
        let set: Option<String> = redis::cmd("SET")
            .arg(&redis_key)
            .arg(notification_id)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if set.is_some() {
            return Ok(None);
        }
        conn.get(&redis_key).await.map_err(unavailable)
    }

    async fn count_profile_send(
        &self,
        app_id: &str,
        external_id: &str,
        window: Duration,
    ) -> StoreResult<u64> {
        let window_ms = window.as_millis().max(1) as u64;
        let slot = now_ms() / window_ms;
        let key = format!("{{f:{app_id}:{external_id}}}:{slot}");
        let mut conn = self.conn().await?;
        let (count,): (u64,) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .pexpire(&key, window_ms as i64)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(count)
    }

    async fn enqueue_tasks(&self, tasks: &[Task]) -> StoreResult<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for task in tasks {
            pipe.hset(TASKS, format!("{}:spec", task.id), json(task)?)
                .ignore();
            pipe.hset(TASKS, format!("{}:epoch", task.id), 0).ignore();
            pipe.hset(TASKS, format!("{}:claims", task.id), 0).ignore();
            pipe.zadd(lane_key(task.lane), &task.id, task.not_before_ms)
                .ignore();
            pipe.sadd(tasks_of_key(&task.notification_id), &task.id)
                .ignore();
        }
        let mut conn = self.conn().await?;
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    async fn claim_task(
        &self,
        lane: Lane,
        worker: &str,
        lease: Duration,
    ) -> StoreResult<Option<ClaimedTask>> {
        let mut conn = self.conn().await?;
        let claimed: Option<(String, Vec<u8>, u64, u64, Vec<u8>)> = self
            .scripts
            .claim
            .key(lane_key(lane))
            .key(TASKS)
            .arg(lease.as_millis() as u64)
            .arg(worker)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let Some((_, spec, epoch, previous_claims, progress)) = claimed else {
            return Ok(None);
        };
        Ok(Some(ClaimedTask {
            task: from_json(&spec, "task")?,
            worker: worker.to_owned(),
            epoch,
            progress: if progress.is_empty() {
                Progress::default()
            } else {
                from_json(&progress, "task progress")?
            },
            previous_claims,
        }))
    }

    async fn checkpoint_task(
        &self,
        claim: &ClaimedTask,
        progress: &Progress,
        lease: Duration,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let saved: u64 = self
            .scripts
            .checkpoint
            .key(lane_key(claim.task.lane))
            .key(TASKS)
            .arg(&claim.task.id)
            .arg(claim.epoch)
            .arg(&claim.worker)
            .arg(json(progress)?)
            .arg(lease.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if saved == 1 {
            Ok(())
        } else {
            Err(StoreError::LeaseLost)
        }
    }

    async fn complete_task(&self, claim: &ClaimedTask) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let done: u64 = self
            .scripts
            .complete
            .key(lane_key(claim.task.lane))
            .key(TASKS)
            .key(tasks_of_key(&claim.task.notification_id))
            .arg(&claim.task.id)
            .arg(claim.epoch)
            .arg(&claim.worker)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::LeaseLost)
        }
    }

    async fn cancel_tasks(&self, notification_id: &str) -> StoreResult<u64> {
        let mut conn = self.conn().await?;
        self.scripts
            .cancel
            .key(lane_key(Lane::Priority))
            .key(lane_key(Lane::Bulk))
            .key(TASKS)
            .key(tasks_of_key(notification_id))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn pending_tasks(&self, lane: Lane) -> StoreResult<u64> {
        let mut conn = self.conn().await?;
        conn.zcard(lane_key(lane)).await.map_err(unavailable)
    }
}

impl RedisStore {
    async fn save_profile(&self, app_id: &str, profile: &Profile) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        conn.set(profile_key(app_id, &profile.external_id), json(profile)?)
            .await
            .map_err(unavailable)
    }
}
