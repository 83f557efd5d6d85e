//! Notifications in the store: the typed [`Notification`] document, its ledger tasks and
//! counters created together, and the idempotency keys that make a retried create safe.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::{StoreResult, Task};
use crate::notify::Notification;

/// A notification as it is created: its document, the ledger tasks that deliver it, and its
/// first counters (`targeted`, when the audience is known up front).
#[derive(Debug, Clone, Copy)]
pub struct NewNotification<'a> {
    pub notification: &'a Notification,
    pub tasks: &'a [Task],
    pub counters: &'a [(&'a str, i64)],
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
    /// one-to-one push waits for one commit between its creation and its claim.
    async fn create_notification(&self, new: NewNotification<'_>) -> StoreResult<()>;
    /// Replaces a stored notification's document (its status, say).
    async fn put_notification(&self, notification: &Notification) -> StoreResult<()>;
    async fn get_notification(&self, id: &str) -> StoreResult<Option<Notification>>;
    /// Newest first.
    async fn list_notifications(
        &self,
        app_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Notification>>;
    async fn add_counters(&self, notification_id: &str, deltas: &[(&str, i64)]) -> StoreResult<()>;
    async fn counters(&self, notification_id: &str) -> StoreResult<BTreeMap<String, i64>>;
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
