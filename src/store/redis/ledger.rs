//! The ledger on Redis: every task under the one `{ledger}` hash tag, its claim, checkpoint,
//! completion and cancellation each one Lua script that fences stale claims by epoch.

use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::{RedisStore, keys};
use crate::store::{
    BatchOutcome, ClaimedTask, Lane, Lease, LedgerStore, Progress, StoreError, StoreResult, Task,
    TaskStep, from_json, now_ms, to_json,
};

/// `script` run for `claim`: its lane and the tasks hash as KEYS[1..2], the task, the claim's
/// epoch and worker as ARGV[1..3] (the fence every claimed-task script checks first).
fn fenced_call<'a>(script: &'a redis::Script, claim: &ClaimedTask) -> redis::ScriptInvocation<'a> {
    let mut invocation = script.key(keys::lane(claim.task.lane));
    invocation
        .key(keys::TASKS)
        .arg(&claim.task.id)
        .arg(claim.epoch)
        .arg(&claim.worker);
    invocation
}

/// What a fenced script answered: 1 done, 0 the claim was not the task's any more.
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
        // Registered in their notifications' lives first (each notification's under its own
        // hash tag): a crash in between leaves a task open that is enqueued again with the
        // batch that defers it, never a task in the ledger that its notification ignores.
        futures::future::try_join_all(
            crate::store::task_ids_by_notification(tasks)
                .iter()
                .map(|(notification, ids)| self.register_tasks(notification, ids)),
        )
        .await?;
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
        let mut conn = self.conn();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    async fn claim_task(&self, lane: Lane, lease: Lease<'_>) -> StoreResult<Option<ClaimedTask>> {
        let Lease { worker, ttl: lease } = lease;
        let mut conn = self.conn();
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
        let task: Task = from_json(&spec, "task")?;
        // Its own command (the life is under the notification's hash tag, the claim under the
        // ledger's). The task is claimed whatever it answers: a failure here must not leave
        // the claim unknown to its worker until the lease runs out, so it is only logged (the
        // next claim of one of the notification's tasks sets the time).
        let sending: redis::RedisResult<u8> = conn
            .hset_nx(keys::life(&task.notification_id), "sending_at", now_ms())
            .await;
        if let Err(error) = sending {
            tracing::warn!(task = %task.id, %error, "cannot note that the notification began sending");
        }
        Ok(Some(ClaimedTask {
            task,
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
        // Two round trips: first the deletions, the counters and the activity, all in flight
        // at once on the multiplexed connection (each its own command, as a Cluster refuses a
        // pipeline across hash tags; each idempotent, the counters once per task and position),
        // then the ledger's fenced step. A crash in between repeats the batch (counted once),
        // where a step landing first would have lost its counts.
        let conn = self.conn();
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
        let deleted = futures::future::try_join_all(writes.iter().map(|command| {
            let mut conn = conn.clone();
            async move { Ok::<_, StoreError>(command.query_async::<()>(&mut conn).await?) }
        }));
        let counted = self.count_batch(claim, &outcome);
        let activity = self.record_activity(&outcome, &claim.task.notification_id);
        futures::try_join!(deleted, counted, activity)?;
        match outcome.step {
            TaskStep::Checkpoint { progress, lease } => {
                self.checkpoint(claim, progress, lease).await
            }
            TaskStep::Complete => self.complete(claim).await,
        }
    }

    async fn cancel_tasks(&self, notification_id: &str) -> StoreResult<u64> {
        self.run_script(
            self.scripts
                .cancel
                .key(keys::lane(Lane::Priority))
                .key(keys::lane(Lane::Bulk))
                .key(keys::TASKS)
                .key(keys::tasks_of(notification_id)),
        )
        .await
    }

    async fn pending_tasks(&self, lane: Lane) -> StoreResult<u64> {
        let mut conn = self.conn();
        Ok(conn.zcard(keys::lane(lane)).await?)
    }
}

/// A batch's counters, and the ledger's two steps, each one script.
impl RedisStore {
    /// Adds `outcome`'s counters unless a batch of the task that reached as far was counted.
    /// A completing step always runs it: the task closes in its notification's life.
    async fn count_batch(
        &self,
        claim: &ClaimedTask,
        outcome: &BatchOutcome<'_>,
    ) -> StoreResult<()> {
        let completes = matches!(outcome.step, TaskStep::Complete);
        if outcome.counters.is_empty() && !completes {
            return Ok(());
        }
        let notification = &claim.task.notification_id;
        let mut invocation = self.scripts.count_batch.prepare_invoke();
        invocation
            .key(keys::counters(notification))
            .key(keys::counted(notification))
            .key(keys::life(notification))
            .key(keys::series(notification))
            .key(keys::life_tasks(notification))
            .arg(&claim.task.id)
            .arg(outcome.step.reaches())
            .arg(u8::from(completes))
            .arg(now_ms())
            .arg(outcome.series_bucket_ms);
        for (field, delta) in outcome.counters {
            invocation.arg(*field).arg(*delta);
        }
        let _counted: u8 = self.run_script(&invocation).await?;
        Ok(())
    }

    /// Registers tasks of one notification as open in its life (none: it has no task, and
    /// completes at once).
    pub(super) async fn register_tasks(&self, notification: &str, ids: &[&str]) -> StoreResult<()> {
        let mut invocation = self.scripts.register_tasks.prepare_invoke();
        invocation
            .key(keys::life(notification))
            .key(keys::life_tasks(notification))
            .arg(now_ms());
        for id in ids {
            invocation.arg(*id);
        }
        let _registered: u64 = self.run_script(&invocation).await?;
        Ok(())
    }

    async fn checkpoint(
        &self,
        claim: &ClaimedTask,
        progress: &Progress,
        lease: Duration,
    ) -> StoreResult<()> {
        let saved: u8 = self
            .run_script(
                fenced_call(&self.scripts.checkpoint, claim)
                    .arg(to_json(progress)?)
                    .arg(lease.as_millis() as u64),
            )
            .await?;
        fenced(saved)
    }

    async fn complete(&self, claim: &ClaimedTask) -> StoreResult<()> {
        let done: u8 = self
            .run_script(
                fenced_call(&self.scripts.complete, claim)
                    .key(keys::tasks_of(&claim.task.notification_id)),
            )
            .await?;
        fenced(done)
    }
}
