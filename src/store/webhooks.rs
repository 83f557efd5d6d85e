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
use crate::webhooks::{DeadLetter, OutboxEntry, Webhook, WebhookState};

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Creates a webhook (its delivery starts at the outbox's end) or replaces one's document.
    async fn put_webhook(&self, webhook: &Webhook) -> StoreResult<()>;
    /// By id.
    async fn list_webhooks(&self, app_id: &str) -> StoreResult<Vec<Webhook>>;
    /// Deletes a webhook, its state and its dead letters; `false` when there was none.
    async fn delete_webhook(&self, app_id: &str, webhook_id: &str) -> StoreResult<bool>;

    /// Appends entries to the app's outbox in one atomic write, unless the app has no webhook
    /// (then nothing is kept).
    async fn append_webhook_events(&self, app_id: &str, entries: &[OutboxEntry])
    -> StoreResult<()>;
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
        app_id: &str,
        webhook_id: &str,
        lease: Lease<'_>,
    ) -> StoreResult<Option<WebhookState>>;
    /// Saves a webhook's state and its new dead letters at once, then drops the entries every
    /// webhook of the app has passed. `LeaseLost` (and nothing saved) unless `worker` holds the
    /// lease.
    async fn save_webhook_state(
        &self,
        app_id: &str,
        webhook_id: &str,
        worker: &str,
        state: &WebhookState,
        dead: &[DeadLetter],
    ) -> StoreResult<()>;
    /// A webhook's state, whoever holds it (for the API).
    async fn webhook_state(
        &self,
        app_id: &str,
        webhook_id: &str,
    ) -> StoreResult<Option<WebhookState>>;
    /// The newest `limit` dead letters of a webhook, oldest first.
    async fn dead_letters(
        &self,
        app_id: &str,
        webhook_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<DeadLetter>>;
}
