//! Webhooks in the embedded store: each change one transaction. The outbox is numbered per
//! app; a webhook's state and lease are one record; dead letters are numbered per webhook.

use async_trait::async_trait;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::EmbeddedStore;
use super::tables::{
    WEBHOOK_DEAD, WEBHOOK_OUTBOX, WEBHOOK_SEQ, WEBHOOK_STATE, WEBHOOKS, get_json, json_values,
    keys_under,
};
use crate::store::{
    Lease, StateSave, StoreError, StoreResult, WebhookRef, WebhookStore, from_json, now_ms, to_json,
};
use crate::webhooks::model::MAX_DEAD_LETTERS;
use crate::webhooks::{DeadLetter, OutboxEntry, Webhook, WebhookState};

/// A webhook's state with its lease.
#[derive(Serialize, Deserialize, Default)]
struct StateRecord {
    state: WebhookState,
    owner: Option<String>,
    lease_until_ms: u64,
}

fn load_state(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    app_id: &str,
    webhook_id: &str,
) -> StoreResult<Option<StateRecord>> {
    get_json(table, (app_id, webhook_id), "webhook state")
}

/// Drops the outbox entries that every webhook of the app has passed.
fn trim(txn: &redb::WriteTransaction, app_id: &str) -> StoreResult<()> {
    let states = txn.open_table(WEBHOOK_STATE)?;
    let records: Vec<StateRecord> =
        json_values(states.range(keys_under(app_id))?, "webhook state")?;
    let lowest = records.iter().map(|record| record.state.cursor).min();
    let mut outbox = txn.open_table(WEBHOOK_OUTBOX)?;
    // No webhook left: nothing will read the outbox again.
    let up_to = lowest.unwrap_or(u64::MAX);
    outbox.retain_in((app_id, 0)..=(app_id, up_to), |_, _| false)?;
    Ok(())
}

#[async_trait]
impl WebhookStore for EmbeddedStore {
    async fn put_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let webhook = webhook.clone();
        self.write(move |txn| {
            let (app_id, id) = (webhook.app_id.as_str(), webhook.id.as_str());
            txn.open_table(WEBHOOKS)?
                .insert((app_id, id), to_json(&webhook)?.as_slice())?;
            let mut states = txn.open_table(WEBHOOK_STATE)?;
            if load_state(&states, app_id, id)?.is_none() {
                let end = txn
                    .open_table(WEBHOOK_SEQ)?
                    .get(app_id)?
                    .map_or(0, |v| v.value());
                let record = StateRecord {
                    state: WebhookState {
                        cursor: end,
                        ..WebhookState::default()
                    },
                    ..StateRecord::default()
                };
                states.insert((app_id, id), to_json(&record)?.as_slice())?;
            }
            Ok(())
        })
        .await
    }

    async fn list_webhooks(&self, app_id: &str) -> StoreResult<Vec<Webhook>> {
        self.list_json(WEBHOOKS, app_id, "webhook").await
    }

    async fn has_webhooks(&self, app_id: &str) -> StoreResult<bool> {
        let app = app_id.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(WEBHOOKS)?;
            Ok(table.range(keys_under(&app))?.next().is_some())
        })
        .await
    }

    async fn delete_webhook(&self, hook: WebhookRef<'_>) -> StoreResult<bool> {
        let (app_id, id) = (hook.app_id.to_owned(), hook.id.to_owned());
        self.write(move |txn| {
            let existed = txn
                .open_table(WEBHOOKS)?
                .remove((app_id.as_str(), id.as_str()))?
                .is_some();
            txn.open_table(WEBHOOK_STATE)?
                .remove((app_id.as_str(), id.as_str()))?;
            txn.open_table(WEBHOOK_DEAD)?.retain_in(
                (app_id.as_str(), id.as_str(), 0)..=(app_id.as_str(), id.as_str(), u64::MAX),
                |_, _| false,
            )?;
            trim(txn, &app_id)?;
            Ok(existed)
        })
        .await
    }

    async fn append_nonempty_webhook_events(
        &self,
        app_id: &str,
        entries: &[OutboxEntry],
    ) -> StoreResult<()> {
        // A read first: most apps have no webhook, and a read costs no commit.
        if !self.has_webhooks(app_id).await? {
            return Ok(());
        }
        let app_id = app_id.to_owned();
        let encoded = entries
            .iter()
            .map(to_json)
            .collect::<StoreResult<Vec<_>>>()?;
        self.write(move |txn| {
            // Checked again inside the transaction: the last webhook may just have gone.
            if txn
                .open_table(WEBHOOKS)?
                .range(keys_under(&app_id))?
                .next()
                .is_none()
            {
                return Ok(());
            }
            let mut seqs = txn.open_table(WEBHOOK_SEQ)?;
            let mut seq = seqs.get(app_id.as_str())?.map_or(0, |v| v.value());
            let mut outbox = txn.open_table(WEBHOOK_OUTBOX)?;
            for entry in &encoded {
                seq += 1;
                outbox.insert((app_id.as_str(), seq), entry.as_slice())?;
            }
            seqs.insert(app_id.as_str(), seq)?;
            Ok(())
        })
        .await
    }

    async fn read_webhook_events(
        &self,
        app_id: &str,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, OutboxEntry)>> {
        let app_id = app_id.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(WEBHOOK_OUTBOX)?;
            let mut out = Vec::new();
            let from = after.saturating_add(1);
            for entry in table
                .range((app_id.as_str(), from)..=(app_id.as_str(), u64::MAX))?
                .take(limit)
            {
                let (key, value) = entry?;
                out.push((key.value().1, from_json(value.value(), "outbox entry")?));
            }
            Ok(out)
        })
        .await
    }

    async fn lease_webhook(
        &self,
        hook: WebhookRef<'_>,
        lease: Lease<'_>,
    ) -> StoreResult<Option<WebhookState>> {
        let Lease { worker, ttl: lease } = lease;
        let (app_id, id) = (hook.app_id.to_owned(), hook.id.to_owned());
        let worker = worker.to_owned();
        self.writer
            .write(false, move |txn| {
                let key = (app_id.as_str(), id.as_str());
                let mut states = txn.open_table(WEBHOOK_STATE)?;
                let Some(mut record) = load_state(&states, key.0, key.1)? else {
                    return Ok(None);
                };
                let now = now_ms();
                if record.lease_until_ms > now && record.owner.as_deref() != Some(worker.as_str()) {
                    return Ok(None);
                }
                record.owner = Some(worker);
                record.lease_until_ms = now + lease.as_millis() as u64;
                states.insert(key, to_json(&record)?.as_slice())?;
                Ok(Some(record.state))
            })
            .await
    }

    async fn save_webhook_state(
        &self,
        hook: WebhookRef<'_>,
        save: StateSave<'_>,
    ) -> StoreResult<()> {
        let (app_id, id) = (hook.app_id.to_owned(), hook.id.to_owned());
        let (worker, state) = (save.worker.to_owned(), save.state.clone());
        let dead = save
            .dead
            .iter()
            .map(to_json)
            .collect::<StoreResult<Vec<_>>>()?;
        self.write(move |txn| {
            let key = (app_id.as_str(), id.as_str());
            {
                let mut states = txn.open_table(WEBHOOK_STATE)?;
                let mut record = match load_state(&states, key.0, key.1)? {
                    Some(record) if record.owner.as_deref() == Some(worker.as_str()) => record,
                    _ => return Err(StoreError::LeaseLost),
                };
                record.state = state;
                states.insert(key, to_json(&record)?.as_slice())?;
            }
            if !dead.is_empty() {
                let mut table = txn.open_table(WEBHOOK_DEAD)?;
                let range = (key.0, key.1, 0)..=(key.0, key.1, u64::MAX);
                let mut next = table
                    .range(range.clone())?
                    .next_back()
                    .transpose()?
                    .map_or(0, |(k, _)| k.value().2 + 1);
                for letter in &dead {
                    table.insert((key.0, key.1, next), letter.as_slice())?;
                    next += 1;
                }
                let kept = MAX_DEAD_LETTERS as u64;
                if next > kept {
                    table
                        .retain_in((key.0, key.1, 0)..(key.0, key.1, next - kept), |_, _| false)?;
                }
            }
            trim(txn, &app_id)?;
            Ok(())
        })
        .await
    }

    async fn webhook_state(&self, hook: WebhookRef<'_>) -> StoreResult<Option<WebhookState>> {
        let record: Option<StateRecord> = self
            .read_json(WEBHOOK_STATE, (hook.app_id, hook.id), "webhook state")
            .await?;
        Ok(record.map(|record| record.state))
    }

    async fn dead_letters(
        &self,
        hook: WebhookRef<'_>,
        limit: usize,
    ) -> StoreResult<Vec<DeadLetter>> {
        let (app_id, id) = (hook.app_id.to_owned(), hook.id.to_owned());
        self.read(move |txn| {
            let table = txn.open_table(WEBHOOK_DEAD)?;
            let range =
                (app_id.as_str(), id.as_str(), 0)..=(app_id.as_str(), id.as_str(), u64::MAX);
            let mut newest: Vec<DeadLetter> =
                json_values(table.range(range)?.rev().take(limit), "dead letter")?;
            newest.reverse();
            Ok(newest)
        })
        .await
    }
}
