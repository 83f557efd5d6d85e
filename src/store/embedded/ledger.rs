//! The ledger in the embedded store: task records, and one index `(lane, claimable-from ms,
//! id)` that is both the ready queue and the lease expiries, so a claim reads its first entry.

use std::time::Duration;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::EmbeddedStore;
use super::notifications::{
    add_counters_in, add_series_in, close_task_in, mark_sending_in, owned_deltas, register_tasks_in,
};
use super::subscriptions::{BatchActivity, record_activity};
use super::tables::{COUNTED, LANE_INDEX, TASKS, get_json, remove_subscription};
use crate::store::{
    BatchOutcome, ClaimedTask, Lane, Lease, LedgerStore, Progress, StoreError, StoreResult, Task,
    TaskStep, now_ms, to_json,
};

/// A task as the ledger keeps it.
#[derive(Serialize, Deserialize)]
struct TaskRecord {
    task: Task,
    owner: Option<String>,
    epoch: u64,
    claimable_at_ms: u64,
    progress: Progress,
    claims: u64,
}

/// Saves a claimed task's progress and extends its lease, if the claim still holds.
fn checkpoint_in(
    txn: &redb::WriteTransaction,
    claim: &ClaimedTask,
    progress: Progress,
    lease: Duration,
) -> StoreResult<()> {
    let mut record = fenced(txn, claim)?;
    unindex_task(txn, &record)?;
    record.progress = progress;
    record.claimable_at_ms = now_ms() + lease.as_millis() as u64;
    save_task(txn, &record)
}

/// Removes a claimed task, if the claim still holds.
fn complete_in(txn: &redb::WriteTransaction, claim: &ClaimedTask) -> StoreResult<()> {
    let record = fenced(txn, claim)?;
    unindex_task(txn, &record)?;
    let mut tasks = txn.open_table(TASKS)?;
    tasks.remove(record.task.id.as_str())?;
    Ok(())
}

/// Puts new tasks in the ledger, unclaimed, claimable from their `not_before_ms`, each
/// registered as open in its notification's life.
pub(super) fn save_new_tasks(txn: &redb::WriteTransaction, tasks: Vec<Task>) -> StoreResult<()> {
    for (notification, ids) in &crate::store::task_ids_by_notification(&tasks) {
        register_tasks_in(txn, notification, ids)?;
    }
    for task in tasks {
        let record = TaskRecord {
            claimable_at_ms: task.not_before_ms,
            task,
            owner: None,
            epoch: 0,
            progress: Progress::default(),
            claims: 0,
        };
        save_task(txn, &record)?;
    }
    Ok(())
}

/// The id of the first task of `lane` claimable now (new, or its lease ran out).
fn next_claimable(
    index: &impl ReadableTable<(&'static str, u64, &'static str), ()>,
    lane: Lane,
) -> StoreResult<Option<String>> {
    let now = now_ms();
    let mut range = index.range((lane.as_str(), 0, "")..(lane.as_str(), now + 1, ""))?;
    match range.next() {
        Some(entry) => Ok(Some(entry?.0.value().2.to_owned())),
        None => Ok(None),
    }
}

fn load_task(txn: &redb::WriteTransaction, id: &str) -> StoreResult<Option<TaskRecord>> {
    get_json(&txn.open_table(TASKS)?, id, "task")
}

fn save_task(txn: &redb::WriteTransaction, record: &TaskRecord) -> StoreResult<()> {
    let mut tasks = txn.open_table(TASKS)?;
    tasks.insert(record.task.id.as_str(), to_json(record)?.as_slice())?;
    let mut index = txn.open_table(LANE_INDEX)?;
    index.insert(
        (
            record.task.lane.as_str(),
            record.claimable_at_ms,
            record.task.id.as_str(),
        ),
        (),
    )?;
    Ok(())
}

fn unindex_task(txn: &redb::WriteTransaction, record: &TaskRecord) -> StoreResult<()> {
    let mut index = txn.open_table(LANE_INDEX)?;
    index.remove((
        record.task.lane.as_str(),
        record.claimable_at_ms,
        record.task.id.as_str(),
    ))?;
    Ok(())
}

/// Loads the claimed task, failing when the claim is no longer the current one.
fn fenced(txn: &redb::WriteTransaction, claim: &ClaimedTask) -> StoreResult<TaskRecord> {
    match load_task(txn, &claim.task.id)? {
        Some(record)
            if record.epoch == claim.epoch && record.owner.as_deref() == Some(&claim.worker) =>
        {
            Ok(record)
        }
        _ => Err(StoreError::LeaseLost),
    }
}

#[async_trait]
impl LedgerStore for EmbeddedStore {
    async fn enqueue_tasks(&self, tasks: &[Task]) -> StoreResult<()> {
        let tasks = tasks.to_vec();
        self.write(move |txn| save_new_tasks(txn, tasks)).await
    }

    async fn claim_task(&self, lane: Lane, lease: Lease<'_>) -> StoreResult<Option<ClaimedTask>> {
        let Lease { worker, ttl: lease } = lease;
        // Idle lanes poll often (the priority lane every few milliseconds): look in a read
        // transaction first, so that an empty poll costs no turn of the writer; and inline, as
        // it reads a few pages of a small index, which costs less than the thread switches of
        // a trip to the blocking pool.
        let ready = {
            let txn = self.db.begin_read()?;
            next_claimable(&txn.open_table(LANE_INDEX)?, lane)?
        };
        if ready.is_none() {
            return Ok(None);
        }
        let worker = worker.to_owned();
        self.writer
            .write(false, move |txn| {
                let now = now_ms();
                let next = next_claimable(&txn.open_table(LANE_INDEX)?, lane)?;
                let Some(task_id) = next else { return Ok(None) };
                let mut record = load_task(txn, &task_id)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("indexed task {task_id} has no record"))
                })?;
                unindex_task(txn, &record)?;
                let previous_claims = record.claims;
                record.claims += 1;
                record.epoch += 1;
                record.owner = Some(worker.clone());
                record.claimable_at_ms = now + lease.as_millis() as u64;
                save_task(txn, &record)?;
                mark_sending_in(txn, &record.task.notification_id)?;
                Ok(Some(ClaimedTask {
                    task: record.task,
                    worker,
                    epoch: record.epoch,
                    progress: record.progress,
                    previous_claims,
                }))
            })
            .await
    }

    async fn record_batch(
        &self,
        claim: &ClaimedTask,
        outcome: BatchOutcome<'_>,
    ) -> StoreResult<()> {
        let claim = claim.clone();
        let deltas = owned_deltas(outcome.counters);
        let gone: Vec<_> = outcome
            .gone
            .iter()
            .map(|s| (s.app_id.clone(), s.id))
            .collect();
        let activity = BatchActivity::of(&outcome);
        let reaches = outcome.step.reaches();
        let bucket = outcome.series_bucket_ms;
        let checkpoint = match outcome.step {
            TaskStep::Checkpoint { progress, lease } => Some((progress.clone(), lease)),
            TaskStep::Complete => None,
        };
        // One transaction: deletions and counters are written first, so they commit even when
        // the fence then says the lease was lost.
        self.write(move |txn| {
            for (app_id, id) in &gone {
                remove_subscription(txn, app_id, *id)?;
            }
            let notification = claim.task.notification_id.as_str();
            let completes = checkpoint.is_none();
            // A completion always counts (through the task's end, once), to close the task in
            // its notification's life.
            if (!deltas.is_empty() || completes) && first_to_reach(txn, &claim.task.id, reaches)? {
                add_counters_in(txn, notification, &deltas)?;
                add_series_in(txn, notification, bucket, &deltas)?;
                if completes {
                    close_task_in(txn, notification, &claim.task.id)?;
                }
            }
            let expired = record_activity(txn, &activity)?;
            if expired > 0 {
                add_counters_in(
                    txn,
                    &claim.task.notification_id,
                    &[("expired_stale".to_owned(), expired)],
                )?;
            }
            match checkpoint {
                Some((progress, lease)) => checkpoint_in(txn, &claim, progress, lease),
                None => complete_in(txn, &claim),
            }
        })
        .await
    }

    async fn cancel_tasks(&self, notification_id: &str) -> StoreResult<u64> {
        let prefix = format!("{notification_id}:");
        // ';' follows ':' in ASCII: the range holds exactly the ids with this prefix.
        let upper = format!("{notification_id};");
        self.write(move |txn| {
            let ids: Vec<String> = {
                let tasks = txn.open_table(TASKS)?;
                let mut ids = Vec::new();
                for entry in tasks.range(prefix.as_str()..upper.as_str())? {
                    ids.push(entry?.0.value().to_owned());
                }
                ids
            };
            for id in &ids {
                if let Some(record) = load_task(txn, id)? {
                    unindex_task(txn, &record)?;
                    let mut tasks = txn.open_table(TASKS)?;
                    tasks.remove(id.as_str())?;
                }
            }
            Ok(ids.len() as u64)
        })
        .await
    }

    async fn pending_tasks(&self, lane: Lane) -> StoreResult<u64> {
        self.read(move |txn| {
            let index = txn.open_table(LANE_INDEX)?;
            let range =
                index.range((lane.as_str(), 0, "")..=(lane.as_str(), u64::MAX, "\u{10FFFF}"))?;
            Ok(range.count() as u64)
        })
        .await
    }
}

/// Whether a batch of task `task_id` that `reaches` this far is the first to be counted that
/// far (`LedgerStore::record_batch`); if so, remembers it.
fn first_to_reach(txn: &redb::WriteTransaction, task_id: &str, reaches: u64) -> StoreResult<bool> {
    let mut counted = txn.open_table(COUNTED)?;
    let reached = counted.get(task_id)?.map(|v| v.value());
    if reached.is_some_and(|reached| reaches <= reached) {
        return Ok(false);
    }
    counted.insert(task_id, reaches)?;
    Ok(true)
}
