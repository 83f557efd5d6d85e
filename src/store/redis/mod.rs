//! The Redis store: a single Redis or a Redis Cluster, over one multiplexed connection that
//! reconnects by itself (the `connection` field of [`RedisStore`] says how).
//!
//! One file per concern (`apps`, `subscriptions`, `profiles`, `notifications`, `ledger`,
//! `triggers`, `webhooks`), the
//! key layout in [`keys`], the Lua scripts in `lua/` (loaded by [`scripts`]), and the one
//! compare-and-set loop that every read-modify-write goes through in [`cas`].
//!
//! Every multi-key change is atomic where it can be on a Cluster: each atomic unit lives under
//! one hash tag (a shard's subscriptions; one profile's document, links and send counts; the
//! apps; the ledger), and a change that spans two units is ordered so that any interleaving
//! with another request reads as one order of the two (see `profiles.rs`).

mod apps;
mod cas;
mod keys;
mod ledger;
mod notifications;
mod policy;
mod profiles;
mod scripts;
mod subscriptions;
mod triggers;
mod webhooks;

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::{Store, StoreError, StoreResult};
use scripts::Scripts;

/// The connection to either kind of Redis (see [`RedisStore`]); both are multiplexed and
/// cheap to clone.
#[derive(Clone)]
enum Connection {
    Single(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

/// How long one request to Redis (a command, a pipeline, a script, making a connection) may
/// take before it fails as the store being unavailable. The store's longest script runs over
/// one batch (milliseconds); this bounds what would otherwise wait forever: a request
/// the cluster client lost (seen in a conformance run: four claimers on a 3-node Cluster, all
/// idle for 20 minutes, nothing in flight on any socket), a Redis that stopped answering.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// `request`, failed with a timed-out I/O error after [`RESPONSE_TIMEOUT`].
fn bounded<'a, T: Send + 'a>(request: RedisFuture<'a, T>) -> RedisFuture<'a, T> {
    Box::pin(async move {
        tokio::time::timeout(RESPONSE_TIMEOUT, request)
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("Redis did not answer within {RESPONSE_TIMEOUT:?}"),
                )
                .into())
            })
    })
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        bounded(match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        bounded(match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        })
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// The Redis store.
pub struct RedisStore {
    /// The store's one connection. It is multiplexed: every request of every task is pipelined on
    /// it (Redis runs one command at a time anyway), and handing it out is a clone. It reconnects
    /// by itself: redis' `ConnectionManager` after an I/O error (the request that met the error
    /// fails; the next one finds the new connection), the cluster client to a node it lost. A pool
    /// that checked a connection with a `PING` round trip at every checkout (deadpool-redis, used
    /// before) doubled the round trips of every store call. Each lane of the engine opens a store
    /// of its own, so a broadcast's scans never queue in front of a one-to-one push's claim on one
    /// socket.
    connection: Connection,
    scripts: Scripts,
}

impl RedisStore {
    /// Connects to `url`: `redis://host:port` for one Redis, or several comma-separated
    /// `redis://` URLs (or one `redis+cluster://` URL) for the nodes of a Redis Cluster.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let urls: Vec<String> = url.split(',').map(|u| u.trim().to_owned()).collect();
        let cluster = urls.len() > 1 || url.starts_with("redis+cluster://");
        let connection = if cluster {
            let urls = urls
                .into_iter()
                .map(|u| u.replacen("redis+cluster://", "redis://", 1))
                .collect::<Vec<_>>();
            let client = redis::cluster::ClusterClient::new(urls)
                .map_err(|e| StoreError::Invalid(format!("Redis Cluster URL `{url}`: {e}")))?;
            Connection::Cluster(bounded(Box::pin(client.get_async_connection())).await?)
        } else {
            let client = redis::Client::open(url)
                .map_err(|e| StoreError::Invalid(format!("Redis URL `{url}`: {e}")))?;
            // One attempt at reconnecting per request that finds the connection broken: while
            // Redis is down a request fails at once (readiness says so), and once it is back
            // the next request reconnects.
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_number_of_retries(0)
                .set_connection_timeout(Some(RESPONSE_TIMEOUT));
            Connection::Single(redis::aio::ConnectionManager::new_lazy_with_config(
                client, config,
            )?)
        };
        let store = Self {
            connection,
            scripts: Scripts::new(),
        };
        store.ping().await?;
        Ok(store)
    }

    /// The store's connection, to send requests on.
    fn conn(&self) -> Connection {
        self.connection.clone()
    }

    /// Runs a script (its keys and arguments given) on the store's connection, and answers
    /// what it answers.
    async fn run_script<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> StoreResult<T> {
        let mut conn = self.conn();
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// Adds each delta to its field of the counters hash `key`, in one round trip.
    async fn add_to_hash(&self, key: &str, deltas: &[(&str, i64)]) -> StoreResult<()> {
        let mut pipe = redis::pipe();
        for (field, delta) in deltas {
            pipe.hincr(key, *field, *delta).ignore();
        }
        let mut conn = self.conn();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Redis `INFO memory`'s `used_memory`, for the memory benchmark.
    pub async fn used_memory(&self) -> StoreResult<u64> {
        let mut conn = self.conn();
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await?;
        info.lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| StoreError::Unavailable("INFO memory has no used_memory".into()))
    }
}

#[async_trait]
impl Store for RedisStore {
    fn is_shared(&self) -> bool {
        true
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn();
        // A write, not a PING: a Redis at its memory limit answers PING but refuses writes
        // (`OOM command not allowed`), and then nothing can be subscribed or sent.
        let _: () = redis::cmd("SET")
            .arg(keys::READY_PROBE)
            .arg(super::now_ms())
            .arg("PX")
            .arg(60_000)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}
