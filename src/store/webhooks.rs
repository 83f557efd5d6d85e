//! Webhooks in the store: each app's webhooks, its durable outbox of events (numbered in the
//! order they were written), each webhook's delivery state under a lease (so that one instance
//! at a time posts to a webhook, and a crashed one's successor goes on from the last saved
//! cursor), and the dead letters of entries that were retried for too long.
//!
//! An app without webhooks keeps no outbox: its events are dropped at the append, in the same
//! atomic step that checks. A new webhook starts at the end of the outbox (it receives what
//! happens from then on). Entries every webhook of the app has passed are deleted.

use async_trait::async_trait;

use super::{Lease, StoreResult};
use crate::refs::WebhookRef;
use crate::webhooks::{DeadLetter, OutboxEntry, Webhook, WebhookState};

impl<'a> From<&'a Webhook> for WebhookRef<'a> {
    fn from(webhook: &'a Webhook) -> Self {
        Self::new(&webhook.app_id, &webhook.id)
    }
}

/// What [`WebhookStore::save_webhook_state`] writes, and the lease holder it writes for.
#[derive(Debug, Clone, Copy)]
pub struct StateSave<'a> {
    /// The worker that must hold the webhook's lease.
    pub worker: &'a str,
    pub state: &'a WebhookState,
    /// New dead letters, appended after the webhook's others.
    pub dead: &'a [DeadLetter],
}

impl<'a> StateSave<'a> {
    pub const fn new(worker: &'a str, state: &'a WebhookState, dead: &'a [DeadLetter]) -> Self {
        Self {
            worker,
            state,
            dead,
        }
    }
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Creates a webhook (its delivery starts at the outbox's end) or replaces one's document.
    async fn put_webhook(&self, webhook: &Webhook) -> StoreResult<()>;
    /// By id.
    async fn list_webhooks(&self, app_id: &str) -> StoreResult<Vec<Webhook>>;
    /// Whether the app has a webhook, without reading any: the engine asks once a batch, to
    /// build the batch's events only for an app that will keep them.
    async fn has_webhooks(&self, app_id: &str) -> StoreResult<bool>;
    /// Deletes a webhook, its state and its dead letters; `false` when there was none.
    async fn delete_webhook(&self, hook: WebhookRef<'_>) -> StoreResult<bool>;

    /// Appends entries to the app's outbox in one atomic write, unless the app has no webhook
    /// (then nothing is kept). No entries: nothing to write, and the store is not asked.
    async fn append_webhook_events(
        &self,
        app_id: &str,
        entries: &[OutboxEntry],
    ) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.append_nonempty_webhook_events(app_id, entries).await
    }
    /// What [`append_webhook_events`](Self::append_webhook_events) does with one entry or
    /// more: the backends write it, callers call `append_webhook_events`.
    async fn append_nonempty_webhook_events(
        &self,
        app_id: &str,
        entries: &[OutboxEntry],
    ) -> StoreResult<()>;
    /// Up to `limit` entries numbered above `after`, in order.
    async fn read_webhook_events(
        &self,
        app_id: &str,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, OutboxEntry)>>;

    /// Takes (or renews) the lease on delivering to a webhook for `lease`, and answers its
    /// state; `None` when another worker holds an unexpired lease, or the webhook is gone.
    async fn lease_webhook(
        &self,
        hook: WebhookRef<'_>,
        lease: Lease<'_>,
    ) -> StoreResult<Option<WebhookState>>;
    /// Saves a webhook's state and its new dead letters at once, then drops the entries every
    /// webhook of the app has passed. `LeaseLost` (and nothing saved) unless `save.worker`
    /// holds the lease.
    async fn save_webhook_state(
        &self,
        hook: WebhookRef<'_>,
        save: StateSave<'_>,
    ) -> StoreResult<()>;
    /// A webhook's state, whoever holds it (for the API).
    async fn webhook_state(&self, hook: WebhookRef<'_>) -> StoreResult<Option<WebhookState>>;
    /// The newest `limit` dead letters of a webhook, oldest first.
    async fn dead_letters(
        &self,
        hook: WebhookRef<'_>,
        limit: usize,
    ) -> StoreResult<Vec<DeadLetter>>;
}
