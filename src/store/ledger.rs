//! The delivery ledger: tasks (notification × shard, or a list of recipients) that workers in
//! any instance claim under a lease, checkpoint and complete. A task whose lease ran out (its
//! worker stopped checkpointing) is claimed by another worker, which resumes from the last
//! checkpoint; the old claim is fenced by its epoch.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{ScanCursor, StoreResult, Subscription, SubscriptionId};

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
/// checkpoints and completion fail with [`super::StoreError::LeaseLost`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedTask {
    pub task: Task,
    pub worker: String,
    pub epoch: u64,
    pub progress: Progress,
    /// How many times this task was claimed before (0 for a first claim).
    pub previous_claims: u64,
}

/// Where a task goes after a batch: see [`LedgerStore::record_batch`].
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

/// Who claims work, and for how long: the claim is theirs until `ttl` passes without a
/// checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    pub worker: &'a str,
    pub ttl: Duration,
}

/// What a batch leaves to record: see [`LedgerStore::record_batch`].
#[derive(Debug, Clone, Copy)]
pub struct BatchOutcome<'a> {
    /// Counter deltas for the task's notification (`sent`, `delivered`, `failed.REASON`, …).
    pub counters: &'a [(&'a str, i64)],
    /// Subscriptions the push service said are gone (404/410): deleted, and unlisted from
    /// their profiles.
    pub gone: &'a [Subscription],
    /// Subscriptions delivered to at `delivered_at` (Unix seconds) whose activity changes by
    /// it (`Activity::needs_write_after_delivery`), as they were read: each gets
    /// `Activity::delivered` unless its activity changed since (a receipt came meanwhile).
    pub delivered: &'a [Subscription],
    pub delivered_at: u32,
    /// Subscriptions judged stale as they were read (`Activity::is_stale`): deleted and
    /// unlisted unless their activity changed since; each deletion counts `expired_stale`.
    pub stale: &'a [Subscription],
    /// Where the task goes next.
    pub step: TaskStep<'a>,
}

impl<'a> BatchOutcome<'a> {
    /// Nothing sent: only the task's step (a checkpoint that extends the lease, or its end).
    pub fn step(step: TaskStep<'a>) -> Self {
        Self {
            counters: &[],
            gone: &[],
            delivered: &[],
            delivered_at: 0,
            stale: &[],
            step,
        }
    }
}

#[async_trait]
pub trait LedgerStore: Send + Sync {
    async fn enqueue_tasks(&self, tasks: &[Task]) -> StoreResult<()>;
    /// Claims the next ready task of `lane` (new, or one whose lease ran out).
    async fn claim_task(&self, lane: Lane, lease: Lease<'_>) -> StoreResult<Option<ClaimedTask>>;
    /// Records a batch in one write: deletes its gone subscriptions, adds its counters to the
    /// task's notification, then checkpoints or completes the task (`outcome.step`). The
    /// deletions and counters hold even when the lease was lost (the messages went out); the
    /// answer is then [`super::StoreError::LeaseLost`].
    async fn record_batch(&self, claim: &ClaimedTask, outcome: BatchOutcome<'_>)
    -> StoreResult<()>;
    /// Removes a notification's tasks, claimed or not; their workers lose their leases.
    async fn cancel_tasks(&self, notification_id: &str) -> StoreResult<u64>;
    /// Tasks waiting or in progress in `lane`.
    async fn pending_tasks(&self, lane: Lane) -> StoreResult<u64>;
}
