//! Profiles in the embedded store: `(app, external id)` → profile JSON with its links in link
//! order, and per-window send counts. Each change is one transaction.

use async_trait::async_trait;

use super::EmbeddedStore;
use super::tables::{
    PROFILE_SENDS, PROFILES, get_json, list_in_profile, load_profile, load_subscription,
    put_subscription, remove_subscription, save_profile, unlist,
};
use crate::store::{
    Profile, ProfileRef, ProfileStore, ProfileUpdate, StoreError, StoreResult, SubscriptionId,
    now_ms,
};

#[async_trait]
impl ProfileStore for EmbeddedStore {
    async fn update_profile(&self, app_id: &str, update: &ProfileUpdate) -> StoreResult<Profile> {
        let app_id = app_id.to_owned();
        let update = update.clone();
        self.write(move |txn| {
            let mut profile = load_profile(txn, &app_id, &update.external_id)?
                .unwrap_or_else(|| Profile::new(&update.external_id));
            profile.apply(&update, now_ms() / 1000)?;
            save_profile(txn, &app_id, &profile)?;
            Ok(profile)
        })
        .await
    }

    async fn get_profile(&self, profile: ProfileRef<'_>) -> StoreResult<Option<Profile>> {
        self.read_json(PROFILES, (profile.app_id, profile.external_id), "profile")
            .await
    }

    async fn get_profiles(
        &self,
        app_id: &str,
        external_ids: &[String],
    ) -> StoreResult<Vec<Profile>> {
        let app_id = app_id.to_owned();
        self.read_found(
            PROFILES,
            external_ids.to_vec(),
            move |table, external_id| {
                get_json(table, (app_id.as_str(), external_id.as_str()), "profile")
            },
        )
        .await
    }

    async fn link_subscription(&self, to: ProfileRef<'_>, id: SubscriptionId) -> StoreResult<()> {
        let (app_id, external_id) = (to.app_id.to_owned(), to.external_id.to_owned());
        self.write(move |txn| {
            let mut sub = load_subscription(txn, &app_id, id)?
                .ok_or_else(|| StoreError::NotFound(format!("subscription {id}")))?;
            if let Some(previous) = sub.link_to(&external_id) {
                unlist(txn, &app_id, &previous, id)?;
            }
            put_subscription(txn, &sub)?;
            list_in_profile(txn, &app_id, &external_id, id)
        })
        .await
    }

    async fn erase_profile(&self, profile: ProfileRef<'_>) -> StoreResult<u64> {
        let (app_id, external_id) = (profile.app_id.to_owned(), profile.external_id.to_owned());
        self.write(move |txn| {
            let Some(profile) = load_profile(txn, &app_id, &external_id)? else {
                return Ok(0);
            };
            let mut deleted = 0;
            for id in &profile.subscriptions {
                let linked = load_subscription(txn, &app_id, *id)?
                    .is_some_and(|sub| sub.is_linked_to(&external_id));
                if linked && remove_subscription(txn, &app_id, *id)?.is_some() {
                    deleted += 1;
                }
            }
            txn.open_table(PROFILES)?
                .remove((app_id.as_str(), external_id.as_str()))?;
            // Send counts that versions before the policy's caps kept per profile.
            txn.open_table(PROFILE_SENDS)?.retain_in(
                (app_id.as_str(), external_id.as_str(), 0)
                    ..=(app_id.as_str(), external_id.as_str(), u64::MAX),
                |_, _| false,
            )?;
            Ok(deleted)
        })
        .await
    }
}
