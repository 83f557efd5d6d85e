//! Subscriptions in the store: upserts by endpoint, reads, deletes, and the shard scans that
//! broadcasts stream.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::model::Refused;
use super::{StoreResult, Subscription, SubscriptionId};

/// Whether an upsert made a new subscription, updated one, or was refused (nothing written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    Refused(Refused),
}

/// What a renewal ([`SubscriptionStore::replace_subscription`]) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    /// The new subscription holds the old one's tags, link and activity; the old one is gone.
    /// `created` when the new endpoint was not stored before.
    Moved { created: bool },
    /// No subscription has the old endpoint (already renewed, unsubscribed, or deleted as
    /// gone): nothing written.
    OldNotFound,
    /// Nothing written.
    Refused(Refused),
}

/// One batch of a shard scan; `next` is `None` when the shard is done.
#[derive(Debug, Clone, Default)]
pub struct ScanBatch {
    pub subscriptions: Vec<Subscription>,
    pub next: Option<ScanCursor>,
}

/// Where a shard scan reads from: one shard of one app, from a cursor.
#[derive(Debug, Clone, Copy)]
pub struct ShardAt<'a> {
    pub app_id: &'a str,
    pub shard: u16,
    pub cursor: &'a ScanCursor,
}

impl<'a> ShardAt<'a> {
    pub const fn new(app_id: &'a str, shard: u16, cursor: &'a ScanCursor) -> Self {
        Self {
            app_id,
            shard,
            cursor,
        }
    }
}

/// The subscription a renewal replaces, and the proof that the caller holds it: its auth
/// secret.
#[derive(Debug, Clone, Copy)]
pub struct Replacing<'a> {
    pub id: SubscriptionId,
    pub auth: &'a [u8; 16],
}

impl<'a> Replacing<'a> {
    pub const fn new(id: SubscriptionId, auth: &'a [u8; 16]) -> Self {
        Self { id, auth }
    }
}

/// Where a shard scan resumes; opaque to callers, stored in checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanCursor(pub Vec<u8>);

impl ScanCursor {
    /// The start of a shard.
    pub fn start() -> Self {
        Self(Vec::new())
    }
}

#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// Inserts or updates by endpoint (the id derives from it), merging over the stored record
    /// by [`Subscription::merged_over`]: atomic against concurrent upserts, links and deletes.
    async fn upsert_subscription(&self, subscription: &Subscription) -> StoreResult<Upserted>;
    /// The browser replaced subscription `old` by `new` (`pushsubscriptionchange`, or new keys
    /// for the same endpoint): with `old.auth` as proof, `new` takes over what `old` had by
    /// [`Subscription::renewed_from`] and `old` is deleted, its profile then listing `new`
    /// instead. Atomic on the embedded store; on Redis ordered so that no interleaving leaves a
    /// subscription naming a profile that does not list it (`redis/subscriptions.rs`).
    async fn replace_subscription(
        &self,
        old: Replacing<'_>,
        new: &Subscription,
    ) -> StoreResult<Replaced>;
    /// A receipt from the browser at `at` (Unix seconds): its activity says it is alive
    /// ([`super::model::Activity::receipted`]). `false` when the subscription does not exist.
    async fn record_receipt(&self, app_id: &str, id: SubscriptionId, at: u32) -> StoreResult<bool>;
    /// Writes many subscriptions at once, as they are (bulk imports, benchmarks).
    async fn insert_subscriptions(&self, subscriptions: &[Subscription]) -> StoreResult<()>;
    async fn get_subscription(
        &self,
        app_id: &str,
        id: SubscriptionId,
    ) -> StoreResult<Option<Subscription>>;
    /// The ones of `ids` that exist, in the order asked.
    async fn get_subscriptions(
        &self,
        app_id: &str,
        ids: &[SubscriptionId],
    ) -> StoreResult<Vec<Subscription>>;
    /// Deletes one subscription, and its profile stops listing it; `false` when it did not
    /// exist.
    async fn delete_subscription(&self, app_id: &str, id: SubscriptionId) -> StoreResult<bool>;
    async fn count_subscriptions(&self, app_id: &str) -> StoreResult<u64>;
    /// Up to about `limit` subscriptions of one shard from `cursor`. A scan hands out every
    /// subscription present throughout it at least once, and may hand one out twice (Redis'
    /// HSCAN does when the hash is resized under it, and the Redis store starts the shard again
    /// when the cursor comes from before a Redis restart): callers that must not repeat
    /// themselves (the delivery engine) drop the ids they have seen. The guarantee holds across
    /// restarts of the store: a cursor saved in a checkpoint resumes without a gap.
    async fn scan_shard(&self, at: ShardAt<'_>, limit: usize) -> StoreResult<ScanBatch>;
}
