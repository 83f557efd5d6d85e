//! A store that fails on purpose: it hands every call to a real backend, except the next
//! `create_notification`s it was told to fail, which fail as an unreachable store would. For
//! testing what callers do when a write fails halfway through a use case.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aviso::notify::Notification;
use aviso::notify::life::CancelOutcome;
use aviso::policy::Policy;
use aviso::store::ClaimedSend;
use aviso::store::Series;
use aviso::store::{
    App, AppStore, BatchOutcome, ClaimedTask, CountOnce, KeyClaim, Lane, Lease, LedgerStore,
    NewNotification, NotificationStore, Profile, ProfileStore, ProfileUpdate, Replaced, ScanBatch,
    Scheduled, Settle, Store, StoreError, StoreResult, Subscription, SubscriptionId,
    SubscriptionStore, Task, TriggerStore, Upserted, WebhookStore,
};
use aviso::store::{Bucket, CapCheck, CapHolder, PolicyStore, TokenGrant};
use aviso::store::{ProfileRef, Replacing, ShardAt, StateSave, WebhookRef};
use aviso::triggers::model::{PendingSend, Repeat, SendRef, Trigger, TriggerRef};
use aviso::webhooks::{DeadLetter, OutboxEntry, Webhook, WebhookState};

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

/// Implements a store trait for [`FaultyStore`] by handing each listed method to `inner`;
/// methods written out after `;;` are the ones that inject faults.
macro_rules! delegate {
    ($trait:ident { $(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)* } $(;; $($own:item)*)?) => {
        #[async_trait]
        impl $trait for FaultyStore {
            $(async fn $name(&self $(, $arg: $ty)*) -> $ret {
                self.inner.$name($($arg),*).await
            })*
            $($($own)*)?
        }
    };
}

delegate!(NotificationStore {
    fn put_notification(&self, notification: &Notification) -> StoreResult<()>;
    fn get_notification(&self, id: &str) -> StoreResult<Option<Notification>>;
    fn list_notifications(&self, app: &str, limit: usize) -> StoreResult<Vec<Notification>>;
    fn add_counters(&self, id: &str, deltas: &[(&str, i64)]) -> StoreResult<()>;
    fn counters(&self, id: &str) -> StoreResult<BTreeMap<String, i64>>;
    fn cancel_notification(&self, id: &str) -> StoreResult<CancelOutcome>;
    fn series(&self, id: &str) -> StoreResult<Series>;
    fn count_once(&self, once: CountOnce<'_>) -> StoreResult<bool>;
    fn claim_idempotency_key(&self, claim: KeyClaim<'_>, ttl: Duration) -> StoreResult<Option<String>>;
    fn settle_idempotency_key(&self, claim: KeyClaim<'_>, settle: Settle) -> StoreResult<()>;
};;
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
);

delegate!(AppStore {
    fn put_app(&self, app: &App) -> StoreResult<()>;
    fn get_app(&self, id: &str) -> StoreResult<Option<App>>;
    fn list_apps(&self) -> StoreResult<Vec<App>>;
    fn app_by_api_key(&self, hash: &[u8; 32]) -> StoreResult<Option<App>>;
    fn delete_app(&self, id: &str) -> StoreResult<bool>;
});

delegate!(SubscriptionStore {
    fn upsert_subscription(&self, sub: &Subscription) -> StoreResult<Upserted>;
    fn replace_subscription(&self, old: Replacing<'_>, new: &Subscription) -> StoreResult<Replaced>;
    fn record_receipt(&self, app: &str, id: SubscriptionId, at: u32) -> StoreResult<bool>;
    fn insert_subscriptions(&self, subs: &[Subscription]) -> StoreResult<()>;
    fn get_subscription(&self, app: &str, id: SubscriptionId) -> StoreResult<Option<Subscription>>;
    fn get_subscriptions(&self, app: &str, ids: &[SubscriptionId]) -> StoreResult<Vec<Subscription>>;
    fn delete_subscription(&self, app: &str, id: SubscriptionId) -> StoreResult<bool>;
    fn count_subscriptions(&self, app: &str) -> StoreResult<u64>;
    fn scan_shard(&self, at: ShardAt<'_>, limit: usize) -> StoreResult<ScanBatch>;
});

delegate!(ProfileStore {
    fn update_profile(&self, app: &str, update: &ProfileUpdate) -> StoreResult<Profile>;
    fn get_profile(&self, profile: ProfileRef<'_>) -> StoreResult<Option<Profile>>;
    fn get_profiles(&self, app: &str, ids: &[String]) -> StoreResult<Vec<Profile>>;
    fn link_subscription(&self, to: ProfileRef<'_>, sub: SubscriptionId) -> StoreResult<()>;
    fn erase_profile(&self, profile: ProfileRef<'_>) -> StoreResult<u64>;
});

delegate!(LedgerStore {
    fn enqueue_tasks(&self, tasks: &[Task]) -> StoreResult<()>;
    fn claim_task(&self, lane: Lane, lease: Lease<'_>) -> StoreResult<Option<ClaimedTask>>;
    fn record_batch(&self, claim: &ClaimedTask, outcome: BatchOutcome<'_>) -> StoreResult<()>;
    fn cancel_tasks(&self, id: &str) -> StoreResult<u64>;
    fn pending_tasks(&self, lane: Lane) -> StoreResult<u64>;
});

delegate!(TriggerStore {
    fn put_trigger(&self, trigger: &Trigger) -> StoreResult<()>;
    fn get_trigger(&self, trigger: TriggerRef<'_>) -> StoreResult<Option<Trigger>>;
    fn list_triggers(&self, app: &str) -> StoreResult<Vec<Trigger>>;
    fn delete_trigger(&self, trigger: TriggerRef<'_>) -> StoreResult<bool>;
    fn schedule_send(&self, send: &PendingSend, repeat: Repeat) -> StoreResult<Scheduled>;
    fn cancel_send(&self, send: SendRef<'_>) -> StoreResult<bool>;
    fn claim_due_sends(&self, lease: Lease<'_>, limit: usize) -> StoreResult<Vec<ClaimedSend>>;
    fn finish_send(&self, claim: &ClaimedSend) -> StoreResult<()>;
    fn next_due_ms(&self) -> StoreResult<Option<u64>>;
    fn pending_sends_of(&self, person: ProfileRef<'_>) -> StoreResult<Vec<PendingSend>>;
    fn add_trigger_counters(&self, t: TriggerRef<'_>, d: &[(&str, i64)]) -> StoreResult<()>;
    fn trigger_counters(&self, t: TriggerRef<'_>) -> StoreResult<BTreeMap<String, i64>>;
});

delegate!(PolicyStore {
    fn get_policy(&self, app: &str) -> StoreResult<Option<Policy>>;
    fn put_policy(&self, app: &str, policy: &Policy) -> StoreResult<()>;
    fn take_caps(&self, check: CapCheck<'_>, holders: &[CapHolder]) -> StoreResult<Vec<bool>>;
    fn take_tokens(&self, bucket: Bucket<'_>, wanted: u32) -> StoreResult<TokenGrant>;
});

delegate!(WebhookStore {
    fn put_webhook(&self, webhook: &Webhook) -> StoreResult<()>;
    fn list_webhooks(&self, app: &str) -> StoreResult<Vec<Webhook>>;
    fn has_webhooks(&self, app: &str) -> StoreResult<bool>;
    fn delete_webhook(&self, hook: WebhookRef<'_>) -> StoreResult<bool>;
    fn append_nonempty_webhook_events(&self, app: &str, entries: &[OutboxEntry]) -> StoreResult<()>;
    fn read_webhook_events(&self, app: &str, after: u64, limit: usize) -> StoreResult<Vec<(u64, OutboxEntry)>>;
    fn lease_webhook(&self, hook: WebhookRef<'_>, lease: Lease<'_>) -> StoreResult<Option<WebhookState>>;
    fn save_webhook_state(&self, hook: WebhookRef<'_>, save: StateSave<'_>) -> StoreResult<()>;
    fn webhook_state(&self, hook: WebhookRef<'_>) -> StoreResult<Option<WebhookState>>;
    fn dead_letters(&self, hook: WebhookRef<'_>, limit: usize) -> StoreResult<Vec<DeadLetter>>;
});

delegate!(Store {
    fn ping(&self) -> StoreResult<()>;
};;
    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }
);
