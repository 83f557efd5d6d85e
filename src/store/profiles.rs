//! CRM profiles in the store: attribute updates, links between profiles and subscriptions,
//! GDPR erasure, and per-profile send counts.
//!
//! Every change here is atomic on every backend against concurrent requests (the conformance
//! suite runs them at once): no update or link is lost, and an erasure leaves no subscription
//! linked to the erased person.

use std::time::Duration;

use async_trait::async_trait;

use super::{Profile, ProfileUpdate, StoreResult, SubscriptionId};
use crate::refs::ProfileRef;

#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// Applies `update` by [`Profile::apply`] (creating the profile if needed).
    async fn update_profile(&self, app_id: &str, update: &ProfileUpdate) -> StoreResult<Profile>;
    async fn get_profile(&self, app_id: &str, external_id: &str) -> StoreResult<Option<Profile>>;
    /// The ones of `external_ids` that exist (templates and segments read them per batch).
    async fn get_profiles(
        &self,
        app_id: &str,
        external_ids: &[String],
    ) -> StoreResult<Vec<Profile>>;
    /// Links a subscription to a profile (creating the profile if needed); a profile it was
    /// linked to before stops listing it. `NotFound` when the subscription does not exist.
    async fn link_subscription(&self, to: ProfileRef<'_>, id: SubscriptionId) -> StoreResult<()>;
    /// Erases a profile and every subscription linked to it; returns how many were deleted.
    async fn erase_profile(&self, app_id: &str, external_id: &str) -> StoreResult<u64>;
    /// Counts one send to a profile in the current window of `window`; returns the count.
    async fn count_profile_send(&self, to: ProfileRef<'_>, window: Duration) -> StoreResult<u64>;
}
