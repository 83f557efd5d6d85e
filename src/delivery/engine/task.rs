//! A worker's loop over the ledger: it claims a task, sends its batches with a turn of its
//! lane, keeps the lease alive by a heartbeat while a batch is in flight, checkpoints after each
//! batch, and hands the task back at shutdown.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use metrics::{gauge, histogram};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Engine;
use super::prepared::Prepared;
use super::record::Recorded;
use super::scan::scan;
use crate::delivery::sender::{Batch, Sender};
use crate::notify::model::Status;
use crate::push::VapidHeaderCache;
use crate::store::{
    BatchOutcome, ClaimedTask, Lane, Progress, Store, StoreError, Subscription, SubscriptionId,
    TaskStep, TaskTarget, now_ms,
};

/// How long a hand-back at shutdown may take before the task is left to its lease.
const HAND_BACK_TIMEOUT: Duration = Duration::from_secs(2);
/// How soon a heartbeat that failed is tried again (doubling up to a third of the lease).
const HEARTBEAT_RETRY: Duration = Duration::from_millis(100);

/// How often an idle worker refreshes the queue-depth gauge.
const QUEUE_DEPTH_INTERVAL: Duration = Duration::from_secs(1);

pub(super) enum TaskEnd {
    Done,
    /// Saved its progress and goes on.
    Checkpointed,
    /// Cancelled, taken over, or handed back at shutdown.
    Stopped,
}

/// How one batch's delivery ended.
enum Batched {
    /// Every message has its outcome.
    Done(Recorded),
    /// Shutdown came first: some messages have none. Nothing is recorded; the task is handed
    /// back at its last checkpoint.
    Interrupted,
    /// The heartbeat found the lease gone (cancelled, or taken over): stop without a word.
    LeaseLost,
}

impl Engine {
    /// The lane's turn to start sending, or `None` at shutdown.
    async fn turn(&self, turns: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
        tokio::select! {
            turn = turns.clone().acquire_owned() => turn.ok(),
            _ = self.stop.cancelled() => None,
        }
    }

    pub(super) async fn work(
        self: Arc<Self>,
        lane: Lane,
        tick: Arc<tokio::sync::Notify>,
        turns: Arc<Semaphore>,
    ) {
        // The queue-depth gauge costs a count of the lane's tasks: at most once per interval,
        // not on every idle poll (the priority lane polls every few milliseconds).
        let mut depth_measured: Option<Instant> = None;
        let store = self.store_for(lane);
        while !self.stop.is_cancelled() {
            let Some(turn) = self.turn(&turns).await else {
                break;
            };
            // The turn is held while looking and, when a task is found, while running it; never
            // while idle (idle workers holding every turn would keep a task whose batch gave its
            // turn up from getting one back).
            let look = async {
                let turn = turn;
                match store.claim_task(lane, self.config.lease()).await {
                    Ok(None) => {
                        drop(turn);
                        if depth_measured.is_none_or(|at| at.elapsed() >= QUEUE_DEPTH_INTERVAL) {
                            depth_measured = Some(Instant::now());
                            if let Ok(depth) = store.pending_tasks(lane).await {
                                gauge!("aviso_queue_depth", "lane" => lane.as_str())
                                    .set(depth as f64);
                            }
                        }
                        None
                    }
                    found => Some((found, turn)),
                }
            };
            let tick_or_stop = async {
                tokio::select! {
                    _ = tick.notified() => {}
                    _ = self.stop.cancelled() => {}
                }
            };
            match self.wake.look_or_wait(lane, look, tick_or_stop).await {
                None | Some((Ok(None), _)) => {}
                Some((Ok(Some(task)), turn)) => {
                    self.held.fetch_add(1, Ordering::SeqCst);
                    let lag = now_ms().saturating_sub(task.task.not_before_ms) as f64 / 1000.0;
                    histogram!("aviso_task_lag_seconds", "lane" => lane.as_str()).record(lag);
                    if let Err(error) = self.run_task(&task, &turns, turn).await {
                        tracing::warn!(task = %task.task.id, %error, "task interrupted; it will be resumed after its lease");
                    }
                    self.held.fetch_sub(1, Ordering::SeqCst);
                }
                Some((Err(error), turn)) => {
                    drop(turn);
                    tracing::warn!(%error, "cannot claim tasks; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.poll_interval * 5) => {}
                        _ = self.stop.cancelled() => {}
                    }
                }
            }
        }
    }

    async fn run_task(
        &self,
        claim: &ClaimedTask,
        turns: &Arc<Semaphore>,
        turn: OwnedSemaphorePermit,
    ) -> Result<TaskEnd, StoreError> {
        let store = self.store_for(claim.task.lane);
        if self.stop.is_cancelled() {
            // Claimed as the shutdown began: straight back.
            return Ok(self.hand_back(store, claim, &claim.progress).await);
        }
        let Some(prepared) = self.prepare(store, &claim.task.notification_id).await? else {
            store
                .record_batch(claim, BatchOutcome::step(TaskStep::Complete))
                .await?;
            return Ok(TaskEnd::Done);
        };
        if prepared.notification.status == Status::Cancelled {
            store
                .record_batch(claim, BatchOutcome::step(TaskStep::Complete))
                .await?;
            return Ok(TaskEnd::Done);
        }
        let vapid = self
            .app_keys(store, &claim.task.app_id)
            .await?
            .vapid
            .clone();
        let sender = match claim.task.lane {
            Lane::Priority => &self.priority,
            Lane::Bulk => &self.bulk,
        };
        let mut progress = claim.progress.clone();
        let shards = match &claim.task.target {
            TaskTarget::Subscriptions(ids) => {
                let subscriptions = store.get_subscriptions(&claim.task.app_id, ids).await?;
                // Gone since they were planned (or deferred): a final outcome of their own.
                let missing = ids.len().saturating_sub(subscriptions.len());
                let sent = self.send_batch(
                    (store, claim, &progress),
                    (&prepared, &vapid, sender),
                    subscriptions,
                    turn,
                );
                let (mut counts, _) = match sent.await? {
                    Ok(sent) => sent,
                    Err(end) => return Ok(end),
                };
                counts.count("missing", missing);
                return self
                    .record_retrying(store, claim, counts, TaskStep::Complete)
                    .await;
            }
            TaskTarget::Shard(shard) => *shard..shard + 1,
            TaskTarget::Shards(shards) => shards.clone(),
        };
        // A scan may hand out a subscription twice (Redis' HSCAN does when the hash is
        // resized under it, e.g. as 410s delete subscriptions during the broadcast): a
        // subscriber is sent to once per claim. 8 bytes per subscriber of the task's shards.
        let mut seen: HashSet<SubscriptionId> = HashSet::new();
        let mut turn = Some(turn);
        loop {
            let turn_now = match turn.take() {
                Some(turn) => turn,
                None => match self.turn(turns).await {
                    Some(turn) => turn,
                    None => return Ok(self.hand_back(store, claim, &progress).await),
                },
            };
            let mut batch = scan(
                store,
                &claim.task.app_id,
                shards.clone(),
                &progress,
                self.config.batch_size,
            )
            .await?;
            let count = batch.subscriptions.len() as u64;
            batch
                .subscriptions
                .retain(|subscription| seen.insert(subscription.id));
            let sent = self.send_batch(
                (store, claim, &progress),
                (&prepared, &vapid, sender),
                batch.subscriptions,
                turn_now,
            );
            let counts = match sent.await? {
                Ok((counts, kept)) => {
                    turn = kept;
                    counts
                }
                Err(end) => return Ok(end),
            };
            let Some((shard, cursor)) = batch.next else {
                return self
                    .record_retrying(store, claim, counts, TaskStep::Complete)
                    .await;
            };
            progress = Progress {
                cursor,
                shard,
                processed: progress.processed + count,
            };
            // On shutdown, hand the task back: claimable at once by another instance.
            let stopping = self.stop.is_cancelled();
            let lease = if stopping {
                Duration::ZERO
            } else {
                self.config.lease
            };
            let step = TaskStep::Checkpoint {
                progress: &progress,
                lease,
            };
            match self.record_retrying(store, claim, counts, step).await? {
                TaskEnd::Checkpointed if !stopping => {}
                _ => return Ok(TaskEnd::Stopped),
            }
        }
    }

    /// Sends one batch of the task `claim` (at `progress`, its last checkpoint) with `turn`:
    /// its counts and the turn unless the batch gave it up, or how the task ended (handed back
    /// at shutdown, or its lease lost).
    async fn send_batch(
        &self,
        (store, claim, progress): (&dyn Store, &ClaimedTask, &Progress),
        (prepared, vapid, sender): (&Prepared, &VapidHeaderCache, &Sender),
        subscriptions: Vec<Subscription>,
        turn: OwnedSemaphorePermit,
    ) -> Result<Result<(Recorded, Option<OwnedSemaphorePermit>), TaskEnd>, StoreError> {
        let batch = Batch::new(self.stop.child_token()).holding(turn);
        let delivery = self.deliver_batch(
            (store, &claim.task),
            prepared,
            vapid,
            sender,
            subscriptions,
            &batch,
        );
        Ok(
            match self
                .watched(store, claim, progress, &batch, delivery)
                .await?
            {
                Batched::Done(counts) => Ok((counts, batch.take_turn())),
                Batched::Interrupted => Err(self.hand_back(store, claim, progress).await),
                Batched::LeaseLost => Err(self.lease_lost(claim)),
            },
        )
    }

    /// Runs one batch's `delivery` while keeping the task's lease alive (a heartbeat every
    /// third of the lease saves `progress`, the last checkpoint, again), and ends it early when
    /// the lease is lost or, at shutdown, when most of the grace is over.
    async fn watched(
        &self,
        store: &dyn Store,
        claim: &ClaimedTask,
        progress: &Progress,
        batch: &Batch,
        delivery: impl Future<Output = Result<Recorded, StoreError>>,
    ) -> Result<Batched, StoreError> {
        let heartbeat = async {
            let every = self.config.lease / 3;
            let mut wait = every;
            loop {
                tokio::time::sleep(wait).await;
                let beat = BatchOutcome::step(TaskStep::Checkpoint {
                    progress,
                    lease: self.config.lease,
                });
                match store.record_batch(claim, beat).await {
                    Ok(()) => wait = every,
                    Err(StoreError::LeaseLost) => return,
                    Err(error) => {
                        // One slow answer (a loaded Redis times out at 500 ms) must not cost
                        // the lease: beat again soon, backing off to the usual third.
                        tracing::warn!(task = %claim.task.id, %error, "cannot extend the task's lease; sending on");
                        wait = if wait == every {
                            HEARTBEAT_RETRY.min(every)
                        } else {
                            (wait * 2).min(every)
                        };
                    }
                }
            }
        };
        let mut delivery = std::pin::pin!(delivery);
        let outcome = tokio::select! {
            biased;
            _ = self.hard_stop.cancelled() => Batched::Interrupted,
            counts = &mut delivery => Batched::Done(counts?),
            _ = heartbeat => {
                // Stop the batch's waits and let its requests in flight answer.
                batch.stop();
                let _ = delivery.await;
                Batched::LeaseLost
            }
        };
        Ok(match outcome {
            Batched::Done(_) if batch.was_interrupted() => Batched::Interrupted,
            other => other,
        })
    }

    /// Hands a task back at `progress` (its last checkpoint): claimable at once elsewhere.
    async fn hand_back(
        &self,
        store: &dyn Store,
        claim: &ClaimedTask,
        progress: &Progress,
    ) -> TaskEnd {
        let handed = tokio::time::timeout(
            HAND_BACK_TIMEOUT,
            store.record_batch(
                claim,
                BatchOutcome::step(TaskStep::Checkpoint {
                    progress,
                    lease: Duration::ZERO,
                }),
            ),
        )
        .await;
        match handed {
            Ok(Ok(())) | Ok(Err(StoreError::LeaseLost)) => {}
            Ok(Err(error)) => {
                tracing::warn!(task = %claim.task.id, %error, "cannot hand the task back; it resumes elsewhere after its lease")
            }
            Err(_) => {
                tracing::warn!(task = %claim.task.id, "the store did not take the task back in time; it resumes elsewhere after its lease")
            }
        }
        TaskEnd::Stopped
    }

    /// The task was cancelled or taken over: forget its notification (it may be cancelled).
    pub(super) fn lease_lost(&self, claim: &ClaimedTask) -> TaskEnd {
        self.notifications.invalidate(&claim.task.notification_id);
        TaskEnd::Stopped
    }
}
