//! The ledger on Redis: every task under the one `{ledger}` hash tag, its claim, checkpoint,
//! completion and cancellation each one Lua script that fences stale claims by epoch.

use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::{RedisStore, keys};
use crate::store::{
    BatchOutcome, ClaimedTask, Lane, Lease, LedgerStore, Progress, StoreError, StoreResult, Task,
    TaskStep, from_json, to_json,
};

fn fenced(done: u8) -> StoreResult<()> {
    if done == 1 {
        Ok(())
    } else {
        Err(StoreError::LeaseLost)
    }
}

#[async_trait]
impl LedgerStore for RedisStore {
    async fn enqueue_tasks(&self, tasks: &[Task]) -> StoreResult<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for task in tasks {
            pipe.hset(keys::TASKS, format!("{}:spec", task.id), to_json(task)?)
                .ignore();
            pipe.hset(keys::TASKS, format!("{}:epoch", task.id), 0)
                .ignore();
            pipe.hset(keys::TASKS, format!("{}:claims", task.id), 0)
                .ignore();
            pipe.zadd(keys::lane(task.lane), &task.id, task.not_before_ms)
                .ignore();
            pipe.sadd(keys::tasks_of(&task.notification_id), &task.id)
                .ignore();
        }
        let mut conn = self.conn().await?;
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    async fn claim_task(&self, lane: Lane, lease: Lease<'_>) -> StoreResult<Option<ClaimedTask>> {
        let Lease { worker, ttl: lease } = lease;
        let mut conn = self.conn().await?;
        let claimed: Option<(String, Vec<u8>, u64, u64, Vec<u8>)> = self
            .scripts
            .claim
            .key(keys::lane(lane))
            .key(keys::TASKS)
            .arg(lease.as_millis() as u64)
            .arg(worker)
            .invoke_async(&mut conn)
            .await?;
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

    async fn record_batch(
        &self,
        claim: &ClaimedTask,
        outcome: BatchOutcome<'_>,
    ) -> StoreResult<()> {
        // One round trip: the deletions, the counters and the ledger's script are all in flight
        // at once on the multiplexed connection (each its own command, as a Cluster refuses a
        // pipeline across hash tags). Not one transaction on a Cluster; each part is
        // idempotent or fenced.
        let conn = self.conn().await?;
        let mut writes = Vec::with_capacity(outcome.gone.len() * 2 + 1);
        for gone in outcome.gone {
            let id = gone.id.to_bytes();
            let mut delete = redis::cmd("HDEL");
            delete
                .arg(keys::shard(&gone.app_id, gone.id.shard()))
                .arg(id.as_slice());
            writes.push(delete);
            if let Some(external_id) = &gone.external_id {
                let mut unlist = redis::cmd("ZREM");
                unlist
                    .arg(keys::profile_links(&gone.app_id, external_id))
                    .arg(id.as_slice());
                writes.push(unlist);
            }
        }
        let recorded = async {
            let deleted = writes.iter().map(|command| {
                let mut conn = conn.clone();
                async move { Ok::<_, StoreError>(command.query_async::<()>(&mut conn).await?) }
            });
            let counted = async {
                if outcome.counters.is_empty() {
                    return Ok(());
                }
                self.add_to_hash(
                    &keys::counters(&claim.task.notification_id),
                    outcome.counters,
                )
                .await
            };
            let activity = self.record_activity(&outcome, &claim.task.notification_id);
            let written = async {
                futures::try_join!(futures::future::try_join_all(deleted), counted)?;
                Ok::<_, StoreError>(())
            };
            futures::try_join!(written, activity)?;
            Ok::<_, StoreError>(())
        };
        let stepped = async {
            match outcome.step {
                TaskStep::Checkpoint { progress, lease } => {
                    self.checkpoint(claim, progress, lease).await
                }
                TaskStep::Complete => self.complete(claim).await,
            }
        };
        let (recorded, stepped) = futures::join!(recorded, stepped);
        recorded?;
        stepped
    }

    async fn cancel_tasks(&self, notification_id: &str) -> StoreResult<u64> {
        let mut conn = self.conn().await?;
        Ok(self
            .scripts
            .cancel
            .key(keys::lane(Lane::Priority))
            .key(keys::lane(Lane::Bulk))
            .key(keys::TASKS)
            .key(keys::tasks_of(notification_id))
            .invoke_async(&mut conn)
            .await?)
    }

    async fn pending_tasks(&self, lane: Lane) -> StoreResult<u64> {
        let mut conn = self.conn().await?;
        Ok(conn.zcard(keys::lane(lane)).await?)
    }
}

/// The ledger's two steps, each one fenced script.
impl RedisStore {
    async fn checkpoint(
        &self,
        claim: &ClaimedTask,
        progress: &Progress,
        lease: Duration,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let saved: u8 = self
            .scripts
            .checkpoint
            .key(keys::lane(claim.task.lane))
            .key(keys::TASKS)
            .arg(&claim.task.id)
            .arg(claim.epoch)
            .arg(&claim.worker)
            .arg(to_json(progress)?)
            .arg(lease.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        fenced(saved)
    }

    async fn complete(&self, claim: &ClaimedTask) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let done: u8 = self
            .scripts
            .complete
            .key(keys::lane(claim.task.lane))
            .key(keys::TASKS)
            .key(keys::tasks_of(&claim.task.notification_id))
            .arg(&claim.task.id)
            .arg(claim.epoch)
            .arg(&claim.worker)
            .invoke_async(&mut conn)
            .await?;
        fenced(done)
    }
}
