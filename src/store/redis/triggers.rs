//! Triggers on Redis: rules per app (`{trg:APP}`), and the pending sends under one hash tag
//! (`{pending}`, like the ledger), each change one Lua script fenced by epoch.

use std::collections::BTreeMap;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::{RedisStore, keys};
use crate::store::{
    ClaimedSend, Lease, ProfileRef, Scheduled, StoreError, StoreResult, TriggerStore, from_json,
    to_json,
};
use crate::triggers::model::{PendingSend, Repeat, SendRef, Trigger, TriggerRef};

/// A script on one pending send, its keys and id given (as `lua/schedule_send.lua` and
/// `lua/finish_send.lua` take them): KEYS send fields, due index, the person's pending sends;
/// ARGV[1] the send's id. The caller adds the rest of its arguments.
fn on_send<'a>(script: &'a redis::Script, send: SendRef<'_>) -> redis::ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    invocation
        .key(keys::PENDING_SENDS)
        .key(keys::PENDING_DUE)
        .key(keys::pending_of(send.trigger.app_id, send.external_id))
        .arg(send.id());
    invocation
}

impl RedisStore {
    /// Removes a pending send: fenced by `claim`, or whatever its claim (a cancel).
    async fn remove_send(
        &self,
        send: SendRef<'_>,
        claim: Option<(&str, u64)>,
    ) -> StoreResult<bool> {
        let (worker, epoch) = match claim {
            Some((worker, epoch)) => (worker, epoch.to_string()),
            None => ("", String::new()),
        };
        let removed: u8 = self
            .run_script(
                on_send(&self.scripts.finish_send, send)
                    .arg(epoch)
                    .arg(worker),
            )
            .await?;
        Ok(removed == 1)
    }
}

#[async_trait]
impl TriggerStore for RedisStore {
    async fn put_trigger(&self, trigger: &Trigger) -> StoreResult<()> {
        let mut conn = self.conn();
        let _: () = conn
            .hset(
                keys::triggers(&trigger.app_id),
                &trigger.name,
                to_json(trigger)?,
            )
            .await?;
        Ok(())
    }

    async fn get_trigger(&self, trigger: TriggerRef<'_>) -> StoreResult<Option<Trigger>> {
        let mut conn = self.conn();
        let raw: Option<Vec<u8>> = conn
            .hget(keys::triggers(trigger.app_id), trigger.name)
            .await?;
        raw.map(|r| from_json(&r, "trigger")).transpose()
    }

    async fn list_triggers(&self, app_id: &str) -> StoreResult<Vec<Trigger>> {
        let mut conn = self.conn();
        let raw: BTreeMap<String, Vec<u8>> = conn.hgetall(keys::triggers(app_id)).await?;
        raw.values().map(|r| from_json(r, "trigger")).collect()
    }

    async fn delete_trigger(&self, trigger: TriggerRef<'_>) -> StoreResult<bool> {
        let mut conn = self.conn();
        let removed: u64 = conn
            .hdel(keys::triggers(trigger.app_id), trigger.name)
            .await?;
        Ok(removed > 0)
    }

    async fn schedule_send(&self, send: &PendingSend, repeat: Repeat) -> StoreResult<Scheduled> {
        let outcome: u8 = self
            .run_script(
                on_send(&self.scripts.schedule_send, send.send_ref())
                    .arg(to_json(send)?)
                    .arg(send.due_ms)
                    .arg(match repeat {
                        Repeat::Ignore => "ignore",
                        Repeat::Rearm => "rearm",
                    }),
            )
            .await?;
        Ok(match outcome {
            1 => Scheduled::New,
            2 => Scheduled::Rearmed,
            _ => Scheduled::AlreadyPending,
        })
    }

    async fn cancel_send(&self, send: SendRef<'_>) -> StoreResult<bool> {
        self.remove_send(send, None).await
    }

    async fn claim_due_sends(
        &self,
        lease: Lease<'_>,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedSend>> {
        let Lease { worker, ttl: lease } = lease;
        let claimed: Vec<(Vec<u8>, u64)> = self
            .run_script(
                self.scripts
                    .claim_sends
                    .key(keys::PENDING_SENDS)
                    .key(keys::PENDING_DUE)
                    .arg(lease.as_millis() as u64)
                    .arg(worker)
                    .arg(limit.max(1)),
            )
            .await?;
        claimed
            .into_iter()
            .map(|(send, epoch)| {
                Ok(ClaimedSend {
                    send: from_json(&send, "pending send")?,
                    worker: worker.to_owned(),
                    epoch,
                })
            })
            .collect()
    }

    async fn finish_send(&self, claim: &ClaimedSend) -> StoreResult<()> {
        if self
            .remove_send(claim.send.send_ref(), Some((&claim.worker, claim.epoch)))
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::LeaseLost)
        }
    }

    async fn next_due_ms(&self) -> StoreResult<Option<u64>> {
        let mut conn = self.conn();
        let first: Vec<(String, u64)> = conn.zrange_withscores(keys::PENDING_DUE, 0, 0).await?;
        Ok(first.first().map(|(_, due)| *due))
    }

    async fn pending_sends_of(&self, person: ProfileRef<'_>) -> StoreResult<Vec<PendingSend>> {
        let mut conn = self.conn();
        let ids: Vec<String> = conn
            .smembers(keys::pending_of(person.app_id, person.external_id))
            .await?;
        let mut sends = Vec::with_capacity(ids.len());
        for id in ids {
            let raw: Option<Vec<u8>> = conn.hget(keys::PENDING_SENDS, format!("{id}:send")).await?;
            if let Some(raw) = raw {
                sends.push(from_json::<PendingSend>(&raw, "pending send")?);
            }
        }
        sends.sort_by_key(|send| send.due_ms);
        Ok(sends)
    }

    async fn add_trigger_counters(
        &self,
        trigger: TriggerRef<'_>,
        deltas: &[(&str, i64)],
    ) -> StoreResult<()> {
        self.add_to_hash(
            &keys::trigger_counters(trigger.app_id, trigger.name),
            deltas,
        )
        .await
    }

    async fn trigger_counters(
        &self,
        trigger: TriggerRef<'_>,
    ) -> StoreResult<BTreeMap<String, i64>> {
        let mut conn = self.conn();
        Ok(conn
            .hgetall(keys::trigger_counters(trigger.app_id, trigger.name))
            .await?)
    }
}
