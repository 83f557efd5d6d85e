//! The subscription store: one [`Store`] trait, two backends that pass the same conformance
//! suite (`tests/store_conformance.rs`).
//!
//! - [`redis`]: production and horizontal scale; a single Redis or a Redis Cluster.
//! - [`embedded`]: a single file under the data directory (`redb`), the default when no Redis
//!   URL is configured, so `aviso serve` runs on a fresh machine with nothing else installed.
//!
//! Besides apps, subscriptions and profiles the store keeps the delivery ledger: tasks
//! (notification × shard) that workers in any instance claim under a lease, checkpoint, and
//! complete; a task whose lease ran out (its worker stopped checkpointing) is claimed by another
//! worker, which resumes from the last checkpoint.

pub mod embedded;
mod endpoint;
pub mod model;
pub mod redis;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use model::{
    ApiKey, App, AttributeValue, MAX_ENDPOINT_LEN, Profile, ProfileUpdate, SHARDS, Scope,
    Subscription, SubscriptionId, hash_api_key,
};

/// What went wrong in the store; each variant says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store is unavailable ({0}); check that Redis is running and reachable")]
    Unavailable(String),
    #[error("the embedded store failed: {0}")]
    Embedded(String),
    #[error("a stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("invalid value: {0}")]
    Invalid(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("the task's lease was lost (it was taken over, cancelled or completed elsewhere)")]
    LeaseLost,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Whether an upsert made a new subscription or updated one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
}

/// One batch of a shard scan; `next` is `None` when the shard is done.
#[derive(Debug, Clone, Default)]
pub struct ScanBatch {
    pub subscriptions: Vec<Subscription>,
    pub next: Option<ScanCursor>,
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

/// The two lanes of the ledger: one-to-one pushes never wait behind broadcasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    Priority,
    Bulk,
}

impl Lane {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Priority => "priority",
            Self::Bulk => "bulk",
        }
    }
}

/// What a task delivers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskTarget {
    /// Every subscription of one shard (broadcasts and segments).
    Shard(u16),
    /// These subscriptions (one-to-one and small audiences).
    Subscriptions(Vec<SubscriptionId>),
}

/// A unit of delivery work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Unique; `notification_id` + `:` + a suffix.
    pub id: String,
    pub app_id: String,
    pub notification_id: String,
    pub lane: Lane,
    pub target: TaskTarget,
    /// Not claimable before this time (Unix milliseconds); 0 = at once.
    pub not_before_ms: u64,
}

/// How far a task got: saved at each checkpoint, handed to whoever resumes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub cursor: ScanCursor,
    /// Subscriptions handed out so far.
    pub processed: u64,
}

/// A task claimed by a worker. `epoch` fences it: after a takeover, the old claim's
/// checkpoints and completion fail with [`StoreError::LeaseLost`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedTask {
    pub task: Task,
    pub worker: String,
    pub epoch: u64,
    pub progress: Progress,
    /// How many times this task was claimed before (0 for a first claim).
    pub previous_claims: u64,
}

/// A notification as it is created: its document, the ledger tasks that deliver it, and its
/// first counters (`targeted`, when the audience is known up front).
#[derive(Debug, Clone, Copy)]
pub struct NewNotification<'a> {
    pub app_id: &'a str,
    pub id: &'a str,
    pub document: &'a [u8],
    pub tasks: &'a [Task],
    pub counters: &'a [(&'a str, i64)],
}

/// Where a task goes after a batch: see [`Store::record_batch`].
#[derive(Debug, Clone, Copy)]
pub enum TaskStep<'a> {
    /// Save `progress`; the lease then runs `lease` from now (zero hands the task back).
    Checkpoint {
        progress: &'a Progress,
        lease: Duration,
    },
    /// The task is done.
    Complete,
}

/// The subscription store.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the store is reachable.
    async fn ping(&self) -> StoreResult<()>;

    /// Whether other processes may enqueue tasks here too (Redis), so that idle workers must
    /// poll for them; the embedded store is one process's file.
    fn is_shared(&self) -> bool;

    // Apps.
    async fn put_app(&self, app: &App) -> StoreResult<()>;
    async fn get_app(&self, app_id: &str) -> StoreResult<Option<App>>;
    async fn list_apps(&self) -> StoreResult<Vec<App>>;
    async fn app_by_api_key(&self, key_hash: &[u8; 32]) -> StoreResult<Option<App>>;
    /// Deletes an app, its key index entries, its subscriptions and their count; `false` when it
    /// did not exist. (Its profiles and notification documents stay, unreachable by any key.)
    async fn delete_app(&self, app_id: &str) -> StoreResult<bool>;

    // Subscriptions.
    /// Inserts or updates by endpoint (the id derives from it); keeps `created_at` and an
    /// existing profile link when the update has none.
    async fn upsert_subscription(&self, subscription: &Subscription) -> StoreResult<Upserted>;
    /// Writes many subscriptions at once, as they are (bulk imports, benchmarks).
    async fn insert_subscriptions(&self, subscriptions: &[Subscription]) -> StoreResult<()>;
    async fn get_subscription(
        &self,
        app_id: &str,
        id: SubscriptionId,
    ) -> StoreResult<Option<Subscription>>;
    async fn get_subscriptions(
        &self,
        app_id: &str,
        ids: &[SubscriptionId],
    ) -> StoreResult<Vec<Subscription>>;
    /// Deletes one subscription (and its profile link); `false` when it did not exist.
    async fn delete_subscription(&self, app_id: &str, id: SubscriptionId) -> StoreResult<bool>;
    async fn count_subscriptions(&self, app_id: &str) -> StoreResult<u64>;
    /// Up to about `limit` subscriptions of one shard from `cursor`. A scan hands out every
    /// subscription present throughout it at least once, and may hand one out twice (Redis'
    /// HSCAN does when the hash is resized under it): callers that must not repeat themselves
    /// (the delivery engine) drop the ids they have seen.
    async fn scan_shard(
        &self,
        app_id: &str,
        shard: u16,
        cursor: &ScanCursor,
        limit: usize,
    ) -> StoreResult<ScanBatch>;

    // Profiles.
    async fn update_profile(&self, app_id: &str, update: &ProfileUpdate) -> StoreResult<Profile>;
    async fn get_profile(&self, app_id: &str, external_id: &str) -> StoreResult<Option<Profile>>;
    /// Links a subscription to a profile (creating the profile if needed).
    async fn link_subscription(
        &self,
        app_id: &str,
        external_id: &str,
        id: SubscriptionId,
    ) -> StoreResult<()>;
    /// Erases a profile and every subscription linked to it; returns how many were deleted.
    async fn erase_profile(&self, app_id: &str, external_id: &str) -> StoreResult<u64>;

    // Notifications: opaque documents owned by the API and delivery engine.
    async fn put_notification(&self, app_id: &str, id: &str, document: &[u8]) -> StoreResult<()>;
    /// Stores a new notification with its ledger tasks and first counters. The document goes
    /// first (a worker that claims a task must find it), then tasks and counters together; a
    /// backend that can commit all three at once (the embedded store) does, so that a one-to-one
    /// push waits for one commit between its creation and its claim.
    async fn create_notification(&self, new: NewNotification<'_>) -> StoreResult<()> {
        self.put_notification(new.app_id, new.id, new.document)
            .await?;
        let counted = async {
            if new.counters.is_empty() {
                Ok(())
            } else {
                self.add_counters(new.id, new.counters).await
            }
        };
        futures::try_join!(self.enqueue_tasks(new.tasks), counted)?;
        Ok(())
    }
    async fn get_notification(&self, id: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Newest first.
    async fn list_notifications(&self, app_id: &str, limit: usize) -> StoreResult<Vec<Vec<u8>>>;
    async fn add_counters(&self, notification_id: &str, deltas: &[(&str, i64)]) -> StoreResult<()>;
    async fn counters(&self, notification_id: &str) -> StoreResult<BTreeMap<String, i64>>;
    /// Records `key` → `notification_id` unless the key is taken; returns the holder if taken.
    async fn claim_idempotency_key(
        &self,
        app_id: &str,
        key: &str,
        notification_id: &str,
        ttl: Duration,
    ) -> StoreResult<Option<String>>;
    /// Counts one send to a profile in the current window of `window`; returns the count.
    async fn count_profile_send(
        &self,
        app_id: &str,
        external_id: &str,
        window: Duration,
    ) -> StoreResult<u64>;

    // The delivery ledger.
    async fn enqueue_tasks(&self, tasks: &[Task]) -> StoreResult<()>;
    /// Claims the next ready task of `lane` (new, or one whose lease ran out) for `lease`.
    async fn claim_task(
        &self,
        lane: Lane,
        worker: &str,
        lease: Duration,
    ) -> StoreResult<Option<ClaimedTask>>;
    /// Saves progress and extends the lease.
    async fn checkpoint_task(
        &self,
        claim: &ClaimedTask,
        progress: &Progress,
        lease: Duration,
    ) -> StoreResult<()>;
    async fn complete_task(&self, claim: &ClaimedTask) -> StoreResult<()>;
    /// Records a delivered batch: adds `counters` to the task's notification, then checkpoints
    /// or completes the task. The counters count even when the lease was lost (the messages
    /// went out); the answer is then [`StoreError::LeaseLost`]. A backend that can commit both
    /// at once does (the embedded store: one commit per batch, not two, and no double count
    /// when a crash falls between them); by default they are two writes.
    async fn record_batch(
        &self,
        claim: &ClaimedTask,
        counters: &[(&str, i64)],
        step: TaskStep<'_>,
    ) -> StoreResult<()> {
        if !counters.is_empty() {
            self.add_counters(&claim.task.notification_id, counters)
                .await?;
        }
        match step {
            TaskStep::Checkpoint { progress, lease } => {
                self.checkpoint_task(claim, progress, lease).await
            }
            TaskStep::Complete => self.complete_task(claim).await,
        }
    }
    /// Removes a notification's tasks, claimed or not; their workers lose their leases.
    async fn cancel_tasks(&self, notification_id: &str) -> StoreResult<u64>;
    /// Tasks waiting or in progress in `lane`.
    async fn pending_tasks(&self, lane: Lane) -> StoreResult<u64>;
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Opens the configured store: Redis when a URL is given, else the embedded file in `data_dir`.
pub async fn open(
    redis_url: Option<&str>,
    data_dir: &std::path::Path,
) -> StoreResult<std::sync::Arc<dyn Store>> {
    match redis_url {
        Some(url) => Ok(std::sync::Arc::new(redis::RedisStore::connect(url).await?)),
        None => Ok(std::sync::Arc::new(embedded::EmbeddedStore::open(
            data_dir,
        )?)),
    }
}
