//! What a batch leaves to record (its outcomes counted by counter name, the subscriptions gone,
//! its webhook events and activity), and the one store write that records it with the
//! checkpoint or completion that follows.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Engine;
use super::lifecycle::BatchActivity;
use super::task::TaskEnd;
use crate::store::{BatchOutcome, ClaimedTask, Store, StoreError, Subscription, TaskStep};

/// What one batch leaves to record: counts by counter name (`sent`, `delivered`, `expired`,
/// `failed.REASON`) and the subscriptions the push service said are gone.
#[derive(Default)]
pub(super) struct Recorded {
    pub(super) counts: Counts,
    pub(super) gone: Vec<Subscription>,
    /// The batch's webhook events (`webhooks::events::of_batch`).
    pub(super) webhook_events: Vec<crate::webhooks::OutboxEntry>,
    pub(super) activity: BatchActivity,
    /// The notification's series bucket the batch counts in (`notify::life::series_bucket`).
    pub(super) series_bucket_ms: u64,
}

impl Recorded {
    /// Adds `n` to `counter` (nothing when `n` is 0: no counter of nothing).
    pub(super) fn count(&mut self, counter: &str, n: usize) {
        if n > 0 {
            *self.counts.entry(counter.to_owned()).or_default() += n as i64;
        }
    }
}

/// Stores a batch's counters and deletions with the checkpoint (or completion) that follows it,
/// in one store write.
async fn record(
    store: &dyn Store,
    claim: &ClaimedTask,
    recorded: &Recorded,
    step: TaskStep<'_>,
) -> Result<TaskEnd, StoreError> {
    // Before the batch's record: a crash in between repeats events, never loses them.
    store
        .append_webhook_events(&claim.task.app_id, &recorded.webhook_events)
        .await?;
    let counters: Vec<(&str, i64)> = recorded
        .counts
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    let outcome = BatchOutcome {
        counters: &counters,
        gone: &recorded.gone,
        delivered: &recorded.activity.delivered,
        delivered_at: recorded.activity.at,
        stale: &recorded.activity.stale,
        step,
        series_bucket_ms: recorded.series_bucket_ms,
    };
    match store.record_batch(claim, outcome).await {
        Err(StoreError::LeaseLost) => Ok(TaskEnd::Stopped),
        Err(error) => Err(error),
        Ok(()) if matches!(step, TaskStep::Complete) => Ok(TaskEnd::Done),
        Ok(()) => Ok(TaskEnd::Checkpointed),
    }
}

/// A batch's outcomes, by counter name (`sent`, `delivered`, `expired`, `failed.REASON`).
type Counts = HashMap<String, i64>;

impl Engine {
    /// Records a batch, trying again while the store is unavailable (a restarting Redis) for
    /// up to one lease: the batch went out, and recording it spares its resending.
    pub(super) async fn record_retrying(
        &self,
        store: &dyn Store,
        claim: &ClaimedTask,
        counts: Recorded,
        step: TaskStep<'_>,
    ) -> Result<TaskEnd, StoreError> {
        let give_up = Instant::now() + self.config.lease;
        let mut wait = Duration::from_millis(100);
        loop {
            match record(store, claim, &counts, step).await {
                Err(StoreError::Unavailable(reason)) if Instant::now() + wait < give_up => {
                    tracing::warn!(task = %claim.task.id, %reason, "cannot record a batch; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.hard_stop.cancelled() => return Err(StoreError::Unavailable(reason)),
                    }
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Ok(TaskEnd::Stopped) => return Ok(self.lease_lost(claim)),
                other => return other,
            }
        }
    }
}
