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
    /// Every subscription of one shard (broadcasts and segments of large audiences).
    Shard(u16),
    /// Every subscription of the shards `start..end`, read in that order (broadcasts and
    /// segments of audiences too small to give each shard a task of its own).
    Shards(std::ops::Range<u16>),
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
    /// Which part of the target's subscribers the task is for (all of them but in a winner
    /// test: `notify::variants`).
    #[serde(default, skip_serializing_if = "Phase::is_whole")]
    pub phase: Phase,
}

/// The part of a task's subscribers it sends to: all of them, or, in an A/B winner test, the
/// test's members (the variants) or everyone else (the winner, after the test).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Whole,
    Test,
    Rest,
}

impl Phase {
    pub fn is_whole(&self) -> bool {
        *self == Self::Whole
    }
}

/// The ids of `tasks` by notification, as each notification's life registers them
/// ([`LedgerStore::enqueue_tasks`]).
pub fn task_ids_by_notification(tasks: &[Task]) -> std::collections::BTreeMap<&str, Vec<&str>> {
    let mut of: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for task in tasks {
        of.entry(task.notification_id.as_str())
            .or_default()
            .push(task.id.as_str());
    }
    of
}

fn is_zero(shard: &u16) -> bool {
    *shard == 0
}

/// How far a task got: saved at each checkpoint, handed to whoever resumes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Where the scan resumes in the shard [`Self::shard`].
    pub cursor: ScanCursor,
    /// For a task over several shards ([`TaskTarget::Shards`]): the shard `cursor` is in (0,
    /// the default, reads as the range's first shard).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shard: u16,
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

impl TaskStep<'_> {
    /// How far into its task a batch recorded with this step reaches: the subscriptions
    /// handed out once it is done (`Progress::processed`), or all of them when the task
    /// completes. A task's batches reach strictly further one after another, and a resumed
    /// task repeats its batches from its last checkpoint at the same positions, so "counted
    /// through here" tells a batch counted already (see [`LedgerStore::record_batch`]).
    pub fn reaches(&self) -> u64 {
        match self {
            Self::Checkpoint { progress, .. } => progress.processed,
            Self::Complete => u64::MAX,
        }
    }
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
    /// The bucket of the notification's series that `counters` also go to
    /// (`notify::life::series_bucket`).
    pub series_bucket_ms: u64,
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
            series_bucket_ms: 0,
        }
    }
}

#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// Puts tasks in the ledger, each registered first as open in its notification's life
    /// (once per task id: a task enqueued again, a slice deferred again after a crash, is
    /// not counted twice), so that the notification completes only when they are done too.
    async fn enqueue_tasks(&self, tasks: &[Task]) -> StoreResult<()>;
    /// Claims the next ready task of `lane` (new, or one whose lease ran out); its
    /// notification's life gets `sending_at_ms` unless it had it (where that is a write of
    /// its own, Redis, its failure does not fail the claim: a later claim sets it).
    async fn claim_task(&self, lane: Lane, lease: Lease<'_>) -> StoreResult<Option<ClaimedTask>>;
    /// Records a batch: deletes its gone subscriptions, adds its counters to the task's
    /// notification, then checkpoints or completes the task (`outcome.step`), in that order:
    /// a crash in between leaves a batch counted and not checkpointed (its resumed task
    /// repeats it), never checkpointed and not counted.
    ///
    /// Counters count once per task and position: they are added only when the batch reaches
    /// further into its task ([`TaskStep::reaches`]) than every batch of the task counted
    /// before, so a batch recorded twice (repeated after a crash cut its record short, or
    /// recorded late by a claim that was taken over) is counted once, and a notification's
    /// counters match its distinct deliveries. The deletions, and the counters of a batch not
    /// counted yet, hold even when the lease was lost (the messages went out); the answer is
    /// then [`super::StoreError::LeaseLost`].
    ///
    /// A completion counts the task through its end even with no counters (then no later
    /// batch of it counts): the first completion recorded, by whichever claim, is the one.
    ///
    /// The counters also go to the notification's series, in the batch's bucket, in the same
    /// atomic change. A task counted through its end ([`TaskStep::Complete`], counted once) is
    /// no longer open in its notification's life; when it was the last open one and the
    /// notification is not cancelled, the notification completes (`completed_at_ms`), in that
    /// same change: its counters are then final.
    async fn record_batch(&self, claim: &ClaimedTask, outcome: BatchOutcome<'_>)
    -> StoreResult<()>;
    /// Removes a notification's tasks, claimed or not; their workers lose their leases.
    async fn cancel_tasks(&self, notification_id: &str) -> StoreResult<u64>;
    /// Tasks waiting or in progress in `lane`.
    async fn pending_tasks(&self, lane: Lane) -> StoreResult<u64>;
}
