//! The store: what Aviso keeps, behind one [`Store`] trait made of one trait per concern, and
//! two backends that pass the same conformance suite (`tests/store_conformance.rs`, which also
//! runs every multi-key change concurrently):
//!
//! - [`redis`]: production and horizontal scale; a single Redis or a Redis Cluster.
//! - [`embedded`]: a single file under the data directory (`redb`), the default when no Redis
//!   URL is configured, so `aviso serve` runs on a fresh machine with nothing else installed.
//!
//! | concern | trait | holds |
//! |---|---|---|
//! | apps | [`AppStore`] | apps and their API-key index |
//! | subscriptions | [`SubscriptionStore`] | one compact record per browser, in shards |
//! | profiles | [`ProfileStore`] | CRM profiles, their links to subscriptions, send counts |
//! | notifications | [`NotificationStore`] | typed documents, counters, idempotency keys |
//! | ledger | [`LedgerStore`] | delivery tasks under leases |
//! | triggers | [`TriggerStore`] | trigger rules, pending sends under leases, their counters |
//! | policy | [`PolicyStore`] | delivery policies, frequency-cap counts, shared token buckets |
//! | webhooks | [`WebhookStore`] | webhooks, their outbox, delivery state under leases, dead letters |
//!
//! The rules of every change (what an upsert keeps, what a link moves, what an erasure
//! deletes, how large a profile may grow) live in [`model`], beside the types; the backends
//! only store, index and make each change atomic. Storage knows no HTTP.

mod apps;
pub mod clock;
pub mod embedded;
mod error;
mod ledger;
pub mod model;
mod notifications;
mod policy;
mod profiles;
pub mod redis;
mod subscriptions;
mod triggers;
mod webhooks;

use std::sync::Arc;

use async_trait::async_trait;

pub use crate::refs::{ProfileRef, WebhookRef};
pub use apps::AppStore;
pub use error::{StoreError, StoreResult};
pub(crate) use error::{from_json, to_json};
pub use ledger::{
    BatchOutcome, ClaimedTask, Lane, Lease, LedgerStore, Phase, Progress, Task, TaskStep,
    TaskTarget, task_ids_by_notification,
};
pub use model::{
    Activity, ApiKey, App, AttributeValue, MAX_ENDPOINT_LEN, MAX_PROFILE_FIELDS, MAX_PROFILE_TEXT,
    Profile, ProfileUpdate, Refused, SHARDS, Scope, Subscription, SubscriptionId, hash_api_key,
};
pub use notifications::{CountOnce, KeyClaim, NewNotification, NotificationStore, Series, Settle};
pub use policy::{Bucket, CapCheck, CapHolder, CapScope, PolicyStore, TokenGrant};
pub use profiles::{ProfileReads, ProfileStore};
pub use subscriptions::{
    Replaced, Replacing, ScanBatch, ScanCursor, ShardAt, SubscriptionStore, Upserted,
};
pub use triggers::{ClaimedSend, Scheduled, TriggerStore};
pub use webhooks::{StateSave, WebhookStore};

/// The whole store: every concern, and what concerns the backend itself.
#[async_trait]
pub trait Store:
    AppStore
    + SubscriptionStore
    + ProfileStore
    + NotificationStore
    + LedgerStore
    + TriggerStore
    + PolicyStore
    + WebhookStore
    + 'static
{
    /// Answers when the store is reachable and accepts writes (a Redis out of memory refuses
    /// them: readiness must say so).
    async fn ping(&self) -> StoreResult<()>;

    /// Whether other processes may enqueue tasks here too (Redis), so that idle workers must
    /// poll for them; the embedded store is one process's file.
    fn is_shared(&self) -> bool;
}

/// Milliseconds since the Unix epoch, by the application's clock ([`clock`]).
pub fn now_ms() -> u64 {
    clock::now_ms()
}

/// Opens the configured store: Redis when a URL is given, else the embedded file in `data_dir`
/// (with the default page cache, [`embedded::DEFAULT_CACHE_MB`]).
pub async fn open(
    redis_url: Option<&str>,
    data_dir: &std::path::Path,
) -> StoreResult<Arc<dyn Store>> {
    open_with_cache(redis_url, data_dir, embedded::DEFAULT_CACHE_MB).await
}

/// [`open`], the embedded store's page cache capped at `cache_mb` MiB (unused with Redis).
pub async fn open_with_cache(
    redis_url: Option<&str>,
    data_dir: &std::path::Path,
    cache_mb: u64,
) -> StoreResult<Arc<dyn Store>> {
    match redis_url {
        Some(url) => Ok(Arc::new(redis::RedisStore::connect(url).await?)),
        None => Ok(Arc::new(embedded::EmbeddedStore::open_with_cache(
            data_dir, cache_mb,
        )?)),
    }
}
