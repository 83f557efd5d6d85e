//! Delivery policies in the store: each app's [`Policy`] document, the frequency-cap counts
//! (checked and counted in one atomic step per batch, across instances), and the shared token
//! buckets that hold a broadcast's rate over every instance.
//!
//! Caps count *notifications*, not messages: a holder (a profile, or a subscription without
//! one) is counted once per notification however many of its browsers get it, and asking again
//! for a notification already counted answers "allowed" without counting it twice (a batch
//! redone after a crash, or a person's second browser in another shard).

use async_trait::async_trait;

use super::{StoreResult, SubscriptionId};
use crate::policy::model::{Category, Policy, Window};

/// Who a frequency cap counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CapHolder {
    /// A CRM profile, by external id: all its browsers share its counts.
    Profile(String),
    /// A subscription linked to no profile.
    Subscription(SubscriptionId),
}

/// Whose counts a cap check reads and adds to. Each scope keeps its own counts per holder,
/// pruned by its own longest window: a trigger's cap (say one a week) never shares a record
/// with the policy's caps (say three a day), whose pruning would forget the trigger's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapScope<'a> {
    /// The app policy's frequency caps, across notifications of a category.
    Policy,
    /// One trigger's own cap (`once_per_hours`), by trigger name.
    Trigger(&'a str),
}

/// One check-and-count of a batch: see [`PolicyStore::take_caps`].
#[derive(Debug, Clone, Copy)]
pub struct CapCheck<'a> {
    pub scope: CapScope<'a>,
    pub app_id: &'a str,
    pub category: &'a Category,
    pub notification_id: &'a str,
    pub windows: &'a [Window],
    /// The time the windows end at (Unix ms), from the caller's clock.
    pub now_ms: u64,
}

/// A token bucket shared by every instance on the store: `name` of `app_id` (a notification's
/// own send rate is the bucket named by its id), filling at `per_minute` tokens a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket<'a> {
    pub app_id: &'a str,
    pub name: &'a str,
    pub per_minute: u32,
}

impl<'a> Bucket<'a> {
    pub const fn new(app_id: &'a str, name: &'a str, per_minute: u32) -> Self {
        Self {
            app_id,
            name,
            per_minute,
        }
    }
}

/// What a token bucket granted: see [`PolicyStore::take_tokens`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenGrant {
    pub granted: u32,
    /// When nothing was granted: how long until a token is there (ms).
    pub retry_after_ms: u64,
}

#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// The app's policy, `None` when it never set one.
    async fn get_policy(&self, app_id: &str) -> StoreResult<Option<Policy>>;
    /// Replaces the app's policy (checked by the caller).
    async fn put_policy(&self, app_id: &str, policy: &Policy) -> StoreResult<()>;
    /// For each holder, in one atomic step per holder and in as few round trips as the backend
    /// allows (one script per batch on a single Redis, one per hash-tag unit on a Cluster):
    /// forgets counts older than the longest window; answers `true` when the holder was
    /// already counted for this notification, or when every window holds fewer than its `max`
    /// notifications of this category (and then counts this one); `false` (capped) otherwise.
    async fn take_caps(&self, check: CapCheck<'_>, holders: &[CapHolder])
    -> StoreResult<Vec<bool>>;
    /// Takes up to `wanted` tokens from `bucket`, which holds a twentieth of a second's worth
    /// at most (at least one token; `policy::bucket`). Refills follow the store's own clock
    /// where it has one.
    async fn take_tokens(&self, bucket: Bucket<'_>, wanted: u32) -> StoreResult<TokenGrant>;
}
