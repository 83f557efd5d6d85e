//! A store that fails on purpose: it hands every call to a real backend, except the next
//! `create_notification`s it was told to fail, which fail as an unreachable store would. For
//! testing what callers do when a write fails halfway through a use case.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aviso::notify::Notification;
use aviso::store::ClaimedSend;
use aviso::store::{
    App, AppStore, BatchOutcome, ClaimedTask, Lane, LedgerStore, NewNotification,
    NotificationStore, Profile, ProfileStore, ProfileUpdate, Progress, Replaced, ScanBatch,
    ScanCursor, Scheduled, Settle, Store, StoreError, StoreResult, Subscription, SubscriptionId,
    SubscriptionStore, Task, TaskStep, TriggerStore, Upserted,
};
use aviso::triggers::model::{PendingSend, Repeat, Trigger};

pub struct FaultyStore {
    inner: Arc<dyn Store>,
    failing_creates: AtomicUsize,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            failing_creates: AtomicUsize::new(0),
        }
    }

    /// The next `n` notification creates fail.
    pub fn fail_next_creates(&self, n: usize) {
        self.failing_creates.store(n, Ordering::SeqCst);
    }
}

#[async_trait]
impl NotificationStore for FaultyStore {
    async fn create_notification(&self, new: NewNotification<'_>) -> StoreResult<()> {
        let fail = self
            .failing_creates
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(StoreError::Unavailable("injected fault".into()));
        }
        self.inner.create_notification(new).await
    }
    async fn put_notification(&self, notification: &Notification) -> StoreResult<()> {
        self.inner.put_notification(notification).await
    }
    async fn get_notification(&self, id: &str) -> StoreResult<Option<Notification>> {
        self.inner.get_notification(id).await
    }
    async fn list_notifications(&self, app: &str, limit: usize) -> StoreResult<Vec<Notification>> {
        self.inner.list_notifications(app, limit).await
    }
    async fn add_counters(&self, id: &str, deltas: &[(&str, i64)]) -> StoreResult<()> {
        self.inner.add_counters(id, deltas).await
    }
    async fn counters(&self, id: &str) -> StoreResult<BTreeMap<String, i64>> {
        self.inner.counters(id).await
    }
    async fn claim_idempotency_key(
        &self,
        app: &str,
        key: &str,
        id: &str,
        ttl: Duration,
    ) -> StoreResult<Option<String>> {
        self.inner.claim_idempotency_key(app, key, id, ttl).await
    }
    async fn settle_idempotency_key(
        &self,
        app: &str,
        key: &str,
        id: &str,
        settle: Settle,
    ) -> StoreResult<()> {
        self.inner
            .settle_idempotency_key(app, key, id, settle)
            .await
    }
}

#[async_trait]
impl AppStore for FaultyStore {
    async fn put_app(&self, app: &App) -> StoreResult<()> {
        self.inner.put_app(app).await
    }
    async fn get_app(&self, id: &str) -> StoreResult<Option<App>> {
        self.inner.get_app(id).await
    }
    async fn list_apps(&self) -> StoreResult<Vec<App>> {
        self.inner.list_apps().await
    }
    async fn app_by_api_key(&self, hash: &[u8; 32]) -> StoreResult<Option<App>> {
        self.inner.app_by_api_key(hash).await
    }
    async fn delete_app(&self, id: &str) -> StoreResult<bool> {
        self.inner.delete_app(id).await
    }
}

#[async_trait]
impl SubscriptionStore for FaultyStore {
    async fn upsert_subscription(&self, sub: &Subscription) -> StoreResult<Upserted> {
        self.inner.upsert_subscription(sub).await
    }
    async fn replace_subscription(
        &self,
        old: SubscriptionId,
        proof: &[u8; 16],
        new: &Subscription,
    ) -> StoreResult<Replaced> {
        self.inner.replace_subscription(old, proof, new).await
    }
    async fn record_receipt(&self, app: &str, id: SubscriptionId, at: u32) -> StoreResult<bool> {
        self.inner.record_receipt(app, id, at).await
    }
    async fn insert_subscriptions(&self, subs: &[Subscription]) -> StoreResult<()> {
        self.inner.insert_subscriptions(subs).await
    }
    async fn get_subscription(
        &self,
        app: &str,
        id: SubscriptionId,
    ) -> StoreResult<Option<Subscription>> {
        self.inner.get_subscription(app, id).await
    }
    async fn get_subscriptions(
        &self,
        app: &str,
        ids: &[SubscriptionId],
    ) -> StoreResult<Vec<Subscription>> {
        self.inner.get_subscriptions(app, ids).await
    }
    async fn delete_subscription(&self, app: &str, id: SubscriptionId) -> StoreResult<bool> {
        self.inner.delete_subscription(app, id).await
    }
    async fn count_subscriptions(&self, app: &str) -> StoreResult<u64> {
        self.inner.count_subscriptions(app).await
    }
    async fn scan_shard(
        &self,
        app: &str,
        shard: u16,
        cursor: &ScanCursor,
        limit: usize,
    ) -> StoreResult<ScanBatch> {
        self.inner.scan_shard(app, shard, cursor, limit).await
    }
}

#[async_trait]
impl ProfileStore for FaultyStore {
    async fn update_profile(&self, app: &str, update: &ProfileUpdate) -> StoreResult<Profile> {
        self.inner.update_profile(app, update).await
    }
    async fn get_profile(&self, app: &str, id: &str) -> StoreResult<Option<Profile>> {
        self.inner.get_profile(app, id).await
    }
    async fn get_profiles(&self, app: &str, ids: &[String]) -> StoreResult<Vec<Profile>> {
        self.inner.get_profiles(app, ids).await
    }
    async fn link_subscription(&self, app: &str, id: &str, sub: SubscriptionId) -> StoreResult<()> {
        self.inner.link_subscription(app, id, sub).await
    }
    async fn erase_profile(&self, app: &str, id: &str) -> StoreResult<u64> {
        self.inner.erase_profile(app, id).await
    }
    async fn count_profile_send(&self, app: &str, id: &str, window: Duration) -> StoreResult<u64> {
        self.inner.count_profile_send(app, id, window).await
    }
}

#[async_trait]
impl LedgerStore for FaultyStore {
    async fn enqueue_tasks(&self, tasks: &[Task]) -> StoreResult<()> {
        self.inner.enqueue_tasks(tasks).await
    }
    async fn claim_task(
        &self,
        lane: Lane,
        worker: &str,
        lease: Duration,
    ) -> StoreResult<Option<ClaimedTask>> {
        self.inner.claim_task(lane, worker, lease).await
    }
    async fn checkpoint_task(
        &self,
        claim: &ClaimedTask,
        progress: &Progress,
        lease: Duration,
    ) -> StoreResult<()> {
        self.inner.checkpoint_task(claim, progress, lease).await
    }
    async fn complete_task(&self, claim: &ClaimedTask) -> StoreResult<()> {
        self.inner.complete_task(claim).await
    }
    async fn record_batch(
        &self,
        claim: &ClaimedTask,
        outcome: BatchOutcome<'_>,
        step: TaskStep<'_>,
    ) -> StoreResult<()> {
        self.inner.record_batch(claim, outcome, step).await
    }
    async fn cancel_tasks(&self, id: &str) -> StoreResult<u64> {
        self.inner.cancel_tasks(id).await
    }
    async fn pending_tasks(&self, lane: Lane) -> StoreResult<u64> {
        self.inner.pending_tasks(lane).await
    }
}

#[async_trait]
impl TriggerStore for FaultyStore {
    async fn put_trigger(&self, trigger: &Trigger) -> StoreResult<()> {
        self.inner.put_trigger(trigger).await
    }
    async fn get_trigger(&self, app: &str, name: &str) -> StoreResult<Option<Trigger>> {
        self.inner.get_trigger(app, name).await
    }
    async fn list_triggers(&self, app: &str) -> StoreResult<Vec<Trigger>> {
        self.inner.list_triggers(app).await
    }
    async fn delete_trigger(&self, app: &str, name: &str) -> StoreResult<bool> {
        self.inner.delete_trigger(app, name).await
    }
    async fn schedule_send(&self, send: &PendingSend, repeat: Repeat) -> StoreResult<Scheduled> {
        self.inner.schedule_send(send, repeat).await
    }
    async fn cancel_send(&self, app: &str, t: &str, id: &str, key: &str) -> StoreResult<bool> {
        self.inner.cancel_send(app, t, id, key).await
    }
    async fn claim_due_sends(
        &self,
        worker: &str,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedSend>> {
        self.inner.claim_due_sends(worker, lease, limit).await
    }
    async fn finish_send(&self, claim: &ClaimedSend) -> StoreResult<()> {
        self.inner.finish_send(claim).await
    }
    async fn next_due_ms(&self) -> StoreResult<Option<u64>> {
        self.inner.next_due_ms().await
    }
    async fn pending_sends_of(&self, app: &str, id: &str) -> StoreResult<Vec<PendingSend>> {
        self.inner.pending_sends_of(app, id).await
    }
    async fn add_trigger_counters(&self, app: &str, t: &str, d: &[(&str, i64)]) -> StoreResult<()> {
        self.inner.add_trigger_counters(app, t, d).await
    }
    async fn trigger_counters(&self, app: &str, t: &str) -> StoreResult<BTreeMap<String, i64>> {
        self.inner.trigger_counters(app, t).await
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }
    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }
}
