//! Webhooks on Redis: every key of one app's webhooks under one hash tag (`{wh:APP}`, see
//! `keys.rs`), each change one Lua script, so that an append, a lease and a save are atomic on
//! a Redis Cluster too.

use std::collections::BTreeMap;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::{RedisStore, keys};
use crate::store::{
    Lease, StateSave, StoreError, StoreResult, WebhookRef, WebhookStore, from_json, to_json,
};
use crate::webhooks::model::MAX_DEAD_LETTERS;
use crate::webhooks::{DeadLetter, OutboxEntry, Webhook, WebhookState};

fn dead_key(hook: WebhookRef<'_>) -> String {
    keys::webhooks(hook.app_id, &format!("dead:{}", hook.id))
}

/// The keys a webhook's state is kept and trimmed under, in the order `lua/webhook_save.lua`
/// names them (and `lua/webhook_delete.lua` after the webhooks): states, cursors, the
/// webhook's dead letters, outbox, trimmed-to, sequence.
fn state_keys(hook: WebhookRef<'_>) -> [String; 6] {
    let app_id = hook.app_id;
    [
        keys::webhooks(app_id, "state"),
        keys::webhooks(app_id, "cursor"),
        dead_key(hook),
        keys::webhooks(app_id, "outbox"),
        keys::webhooks(app_id, "trimmed"),
        keys::webhooks(app_id, "seq"),
    ]
}

/// The state part of a `LEASE_UNTIL|OWNER|STATE` record.
fn state_of(record: &[u8]) -> StoreResult<WebhookState> {
    let mut parts = record.splitn(3, |b| *b == b'|');
    let state = parts
        .nth(2)
        .ok_or_else(|| StoreError::Corrupt("webhook state: not LEASE_UNTIL|OWNER|STATE".into()))?;
    from_json(state, "webhook state")
}

#[async_trait]
impl WebhookStore for RedisStore {
    async fn put_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let app = &webhook.app_id;
        let fresh = to_json(&WebhookState::default())?;
        let _: u8 = self
            .run_script(
                self.scripts
                    .webhook_put
                    .key(keys::webhooks(app, "hooks"))
                    .key(keys::webhooks(app, "seq"))
                    .key(keys::webhooks(app, "state"))
                    .key(keys::webhooks(app, "cursor"))
                    .arg(&webhook.id)
                    .arg(to_json(webhook)?)
                    .arg(fresh),
            )
            .await?;
        Ok(())
    }

    async fn list_webhooks(&self, app_id: &str) -> StoreResult<Vec<Webhook>> {
        let mut conn = self.conn();
        let raw: BTreeMap<String, Vec<u8>> = conn.hgetall(keys::webhooks(app_id, "hooks")).await?;
        raw.values().map(|r| from_json(r, "webhook")).collect()
    }

    async fn has_webhooks(&self, app_id: &str) -> StoreResult<bool> {
        // Redis removes a hash with its last field: the key exists while a webhook does.
        let mut conn = self.conn();
        Ok(conn.exists(keys::webhooks(app_id, "hooks")).await?)
    }

    async fn delete_webhook(&self, hook: WebhookRef<'_>) -> StoreResult<bool> {
        let mut invocation = self.scripts.webhook_delete.prepare_invoke();
        invocation.key(keys::webhooks(hook.app_id, "hooks"));
        for key in state_keys(hook) {
            invocation.key(key);
        }
        invocation.arg(hook.id);
        let existed: u8 = self.run_script(&invocation).await?;
        Ok(existed == 1)
    }

    async fn append_nonempty_webhook_events(
        &self,
        app_id: &str,
        entries: &[OutboxEntry],
    ) -> StoreResult<()> {
        let mut invocation = self.scripts.webhook_append.prepare_invoke();
        invocation
            .key(keys::webhooks(app_id, "hooks"))
            .key(keys::webhooks(app_id, "seq"))
            .key(keys::webhooks(app_id, "outbox"));
        for entry in entries {
            invocation.arg(to_json(entry)?);
        }
        let _: u64 = self.run_script(&invocation).await?;
        Ok(())
    }

    async fn read_webhook_events(
        &self,
        app_id: &str,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, OutboxEntry)>> {
        let flat: Vec<(u64, Vec<u8>)> = self
            .run_script(
                self.scripts
                    .webhook_read
                    .key(keys::webhooks(app_id, "seq"))
                    .key(keys::webhooks(app_id, "outbox"))
                    .arg(after)
                    .arg(limit),
            )
            .await?;
        flat.into_iter()
            .map(|(seq, raw)| Ok((seq, from_json(&raw, "outbox entry")?)))
            .collect()
    }

    async fn lease_webhook(
        &self,
        hook: WebhookRef<'_>,
        lease: Lease<'_>,
    ) -> StoreResult<Option<WebhookState>> {
        let Lease { worker, ttl: lease } = lease;
        if worker.contains('|') {
            return Err(StoreError::Invalid(format!(
                "worker `{worker}`: must not contain `|`"
            )));
        }
        let state: Option<Vec<u8>> = self
            .run_script(
                self.scripts
                    .webhook_lease
                    .key(keys::webhooks(hook.app_id, "hooks"))
                    .key(keys::webhooks(hook.app_id, "state"))
                    .arg(hook.id)
                    .arg(worker)
                    .arg(lease.as_millis() as u64),
            )
            .await?;
        state.map(|s| from_json(&s, "webhook state")).transpose()
    }

    async fn save_webhook_state(
        &self,
        hook: WebhookRef<'_>,
        save: StateSave<'_>,
    ) -> StoreResult<()> {
        let StateSave {
            worker,
            state,
            dead,
        } = save;
        let mut invocation = self.scripts.webhook_save.prepare_invoke();
        for key in state_keys(hook) {
            invocation.key(key);
        }
        invocation
            .arg(hook.id)
            .arg(worker)
            .arg(state.cursor)
            .arg(to_json(state)?)
            .arg(MAX_DEAD_LETTERS);
        for letter in dead {
            invocation.arg(to_json(letter)?);
        }
        let saved: u8 = self.run_script(&invocation).await?;
        if saved == 1 {
            Ok(())
        } else {
            Err(StoreError::LeaseLost)
        }
    }

    async fn webhook_state(&self, hook: WebhookRef<'_>) -> StoreResult<Option<WebhookState>> {
        let mut conn = self.conn();
        let record: Option<Vec<u8>> = conn
            .hget(keys::webhooks(hook.app_id, "state"), hook.id)
            .await?;
        record.map(|r| state_of(&r)).transpose()
    }

    async fn dead_letters(
        &self,
        hook: WebhookRef<'_>,
        limit: usize,
    ) -> StoreResult<Vec<DeadLetter>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn();
        let raw: Vec<Vec<u8>> = conn.lrange(dead_key(hook), -(limit as isize), -1).await?;
        raw.iter().map(|r| from_json(r, "dead letter")).collect()
    }
}
