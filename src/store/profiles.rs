//! CRM profiles in the store: attribute updates, links between profiles and subscriptions,
//! GDPR erasure, and per-profile send counts.
//!
//! Every change here is atomic on every backend against concurrent requests (the conformance
//! suite runs them at once): no update or link is lost, and an erasure leaves no subscription
//! linked to the erased person.

use std::collections::HashMap;

use async_trait::async_trait;

use super::{Profile, ProfileUpdate, Store, StoreResult, Subscription, SubscriptionId};
use crate::refs::ProfileRef;

/// Profiles read through the store at most once a person, a batch of subscriptions in one
/// store call, for matching many subscriptions against a segment and rendering their payloads
/// (a person's several devices share one read): the engine's batches and the API's reach
/// estimate. On Redis one call is one pipelined round trip where a read a person was one each.
pub struct ProfileReads<'a> {
    store: &'a dyn Store,
    app_id: &'a str,
    /// Every person asked for so far, `None` for one without a profile.
    read: HashMap<String, Option<Profile>>,
}

impl<'a> ProfileReads<'a> {
    pub fn new(store: &'a dyn Store, app_id: &'a str) -> Self {
        Self {
            store,
            app_id,
            read: HashMap::new(),
        }
    }

    /// Reads, in one store call, the profiles of the people `subscriptions` are linked to that
    /// were not read before (none: no call).
    pub async fn load(&mut self, subscriptions: &[Subscription]) -> StoreResult<()> {
        let mut unread: Vec<String> = subscriptions
            .iter()
            .filter_map(|subscription| subscription.external_id.as_ref())
            .filter(|external_id| !self.read.contains_key(*external_id))
            .cloned()
            .collect();
        if unread.is_empty() {
            return Ok(());
        }
        unread.sort_unstable();
        unread.dedup();
        let found = self.store.get_profiles(self.app_id, &unread).await?;
        for external_id in unread {
            self.read.insert(external_id, None);
        }
        for profile in found {
            self.read.insert(profile.external_id.clone(), Some(profile));
        }
        Ok(())
    }

    /// The profile `subscription` is linked to, if it is linked and the profile exists; `None`
    /// also for a subscription that was not in a [`ProfileReads::load`] before.
    pub fn of(&self, subscription: &Subscription) -> Option<&Profile> {
        let external_id = subscription.external_id.as_ref()?;
        self.read.get(external_id)?.as_ref()
    }
}

#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// Applies `update` by [`Profile::apply`] (creating the profile if needed).
    async fn update_profile(&self, app_id: &str, update: &ProfileUpdate) -> StoreResult<Profile>;
    async fn get_profile(&self, profile: ProfileRef<'_>) -> StoreResult<Option<Profile>>;
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
    async fn erase_profile(&self, profile: ProfileRef<'_>) -> StoreResult<u64>;
}
