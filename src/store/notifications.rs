//! Notifications in the store: the typed [`Notification`] document, its ledger tasks and
//! counters created together, and the idempotency keys that make a retried create safe.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::{StoreResult, Task};
use crate::notify::Notification;
use crate::notify::life::CancelOutcome;

/// A notification's counters over time: bucket start (Unix ms, `notify::life::series_bucket`)
/// → counter → what the batches recorded in that bucket counted.
pub type Series = BTreeMap<u64, BTreeMap<String, i64>>;

/// A notification as it is created: its document, the ledger tasks that deliver it, and its
/// first counters (`targeted`, when the audience is known up front).
#[derive(Debug, Clone, Copy)]
pub struct NewNotification<'a> {
    pub notification: &'a Notification,
    pub tasks: &'a [Task],
    pub counters: &'a [(&'a str, i64)],
}

/// Something counted once per notification: see [`NotificationStore::count_once`].
#[derive(Debug, Clone, Copy)]
pub struct CountOnce<'a> {
    pub notification_id: &'a str,
    /// Who counted what: a receipt's `TYPE:SUBSCRIPTION`, or the winner test's one member.
    pub member: &'a str,
    /// Each gets 1 when `member` is new.
    pub counters: &'a [&'a str],
    /// Until when `member` is remembered (Unix ms).
    pub keep_until_ms: u64,
}

/// An idempotency key of an app, and the notification that holds (or wants) it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyClaim<'a> {
    pub app_id: &'a str,
    pub key: &'a str,
    pub holder: &'a str,
}

/// What becomes of a claimed idempotency key once its create has run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The notification is stored: the key names it for this long.
    Keep(Duration),
    /// The create failed: the key is free again, so a retry creates anew.
    Release,
}

#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Stores a new notification with its ledger tasks and first counters. The document is
    /// written first (a worker that claims a task must find it), then tasks and counters; a
    /// backend that can commit all three at once (the embedded store) does, so that a
    /// one-to-one push waits for one commit between its creation and its claim. Its tasks are
    /// registered as open in its life (as [`super::LedgerStore::enqueue_tasks`] does); a
    /// notification without tasks (named recipients of which none exists) is completed at once.
    async fn create_notification(&self, new: NewNotification<'_>) -> StoreResult<()>;
    /// Replaces a stored notification's document (its status, say). Its life (`life` and a
    /// status other than `cancelled`) is not the document's: it stays as the store keeps it.
    async fn put_notification(&self, notification: &Notification) -> StoreResult<()>;
    /// The document, with its life as the store keeps it: `life` filled in and `status` the
    /// one it says (`notify::life::Life::status`).
    async fn get_notification(&self, id: &str) -> StoreResult<Option<Notification>>;
    /// Newest first, each with its life as [`Self::get_notification`] fills it in.
    async fn list_notifications(
        &self,
        app_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Notification>>;
    async fn add_counters(&self, notification_id: &str, deltas: &[(&str, i64)]) -> StoreResult<()>;
    async fn counters(&self, notification_id: &str) -> StoreResult<BTreeMap<String, i64>>;
    /// Cancels a notification's life unless it completed, atomically with the completion of
    /// its last task (one of the two comes first): sets `cancelled_at_ms` to now unless it is
    /// set already. The ledger's tasks are left to [`super::LedgerStore::cancel_tasks`].
    async fn cancel_notification(&self, notification_id: &str) -> StoreResult<CancelOutcome>;
    /// The notification's counters over time, as its batches recorded them
    /// ([`super::BatchOutcome::series_bucket_ms`]): for every counter a batch adds, the series
    /// sums to the counter's total.
    async fn series(&self, notification_id: &str) -> StoreResult<Series>;
    /// Counts something once per notification: when `once.member` is not yet in the
    /// notification's set, adds it (kept until `once.keep_until_ms`, then forgotten) and adds 1
    /// to each of `once.counters`, in one atomic change. Answers whether it was new (counted).
    async fn count_once(&self, once: CountOnce<'_>) -> StoreResult<bool>;
    /// Records the claim's key → holder for `ttl` unless the key is held by another; returns
    /// that other holder if it is.
    async fn claim_idempotency_key(
        &self,
        claim: KeyClaim<'_>,
        ttl: Duration,
    ) -> StoreResult<Option<String>>;
    /// Keeps or releases a key that the holder claimed (a key held by another is left alone).
    async fn settle_idempotency_key(&self, claim: KeyClaim<'_>, settle: Settle) -> StoreResult<()>;
}
