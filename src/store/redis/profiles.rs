//! Profiles on Redis. One profile is one unit under one hash tag: its document (a hash field,
//! changed by compare-and-set), its links (a sorted set in link order) and its send counts.
//!
//! A link changes two units, the subscription's shard and the profile, in this order:
//! 1. the subscription's record names the profile (compare-and-set on the record);
//! 2. the profile lists the subscription (`lua/list_subscription.lua`), and a profile it was
//!    linked to before stops listing it.
//!
//! An erasure takes the profile away whole in one script, then deletes each subscription it
//! listed that still names it. Whatever the interleaving, the result reads as the link before
//! the erasure (the subscription is deleted) or after it (the profile is created again, with
//! that subscription): never a subscription naming a profile that does not list it.

use async_trait::async_trait;
use redis::AsyncCommands;

use super::cas::Change;
use super::{RedisStore, keys};
use crate::store::{
    Profile, ProfileRef, ProfileStore, ProfileUpdate, StoreError, StoreResult, Subscription,
    SubscriptionId, from_json, now_ms, to_json,
};

/// A profile's document as stored: everything but its links, which have a key of their own.
fn document(profile: &Profile) -> StoreResult<Vec<u8>> {
    let mut stored = profile.clone();
    stored.subscriptions.clear();
    to_json(&stored)
}

impl RedisStore {
    /// The profile stops listing `id`.
    pub(super) async fn unlist(
        &self,
        app_id: &str,
        external_id: &str,
        id: SubscriptionId,
    ) -> StoreResult<()> {
        let mut conn = self.conn();
        let _: u64 = conn
            .zrem(
                keys::profile_links(app_id, external_id),
                id.to_bytes().as_slice(),
            )
            .await?;
        Ok(())
    }

    /// The profile lists `id` (`lua/list_subscription.lua`; linking creates the profile).
    pub(super) async fn list(
        &self,
        app_id: &str,
        external_id: &str,
        id: SubscriptionId,
    ) -> StoreResult<()> {
        let new_profile = Profile {
            updated_at: now_ms() / 1000,
            ..Profile::new(external_id)
        };
        let _: u8 = self
            .run_script(
                self.scripts
                    .list_subscription
                    .key(keys::profile(app_id, external_id))
                    .key(keys::profile_links(app_id, external_id))
                    .arg(id.to_bytes().as_slice())
                    .arg(document(&new_profile)?),
            )
            .await?;
        Ok(())
    }

    async fn links(&self, app_id: &str, external_id: &str) -> StoreResult<Vec<SubscriptionId>> {
        let mut conn = self.conn();
        let ids: Vec<Vec<u8>> = conn
            .zrange(keys::profile_links(app_id, external_id), 0, -1)
            .await?;
        ids.iter()
            .map(|id| SubscriptionId::from_bytes(id))
            .collect()
    }
}

#[async_trait]
impl ProfileStore for RedisStore {
    async fn update_profile(&self, app_id: &str, update: &ProfileUpdate) -> StoreResult<Profile> {
        let key = keys::profile(app_id, &update.external_id);
        let what = format!("profile {}", update.external_id);
        let now = now_ms() / 1000;
        let mut profile = self
            .change_field(&key, keys::PROFILE_DOC, &what, |current| {
                let mut profile = match current {
                    Some(doc) => from_json::<Profile>(doc, "profile")?,
                    None => Profile::new(&update.external_id),
                };
                profile.apply(update, now)?;
                Ok(Change::Write(document(&profile)?, profile))
            })
            .await?;
        profile.subscriptions = self.links(app_id, &update.external_id).await?;
        Ok(profile)
    }

    async fn get_profile(&self, profile: ProfileRef<'_>) -> StoreResult<Option<Profile>> {
        let (app_id, external_id) = (profile.app_id, profile.external_id);
        let mut conn = self.conn();
        let (doc, ids): (Option<Vec<u8>>, Vec<Vec<u8>>) = redis::pipe()
            .hget(keys::profile(app_id, external_id), keys::PROFILE_DOC)
            .zrange(keys::profile_links(app_id, external_id), 0, -1)
            .query_async(&mut conn)
            .await?;
        let mut profile = match doc {
            Some(doc) => from_json::<Profile>(&doc, "profile")?,
            None if ids.is_empty() => return Ok(None),
            None => Profile::new(external_id),
        };
        profile.subscriptions = ids
            .iter()
            .map(|id| SubscriptionId::from_bytes(id))
            .collect::<StoreResult<_>>()?;
        Ok(Some(profile))
    }

    async fn get_profiles(
        &self,
        app_id: &str,
        external_ids: &[String],
    ) -> StoreResult<Vec<Profile>> {
        let reads = external_ids
            .iter()
            .map(|external_id| self.get_profile(ProfileRef::new(app_id, external_id)));
        let found = futures::future::try_join_all(reads).await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn link_subscription(&self, to: ProfileRef<'_>, id: SubscriptionId) -> StoreResult<()> {
        let (app_id, external_id) = (to.app_id, to.external_id);
        let shard = keys::shard(app_id, id.shard());
        let what = format!("subscription {id}");
        let previous = self
            .change_field(&shard, &id.to_bytes(), &what, |current| {
                let record = current.ok_or_else(|| StoreError::NotFound(what.clone()))?;
                let mut sub = Subscription::decode(app_id, id, record)?;
                if sub.is_linked_to(external_id) {
                    return Ok(Change::Keep(None));
                }
                let previous = sub.link_to(external_id);
                Ok(Change::Write(sub.encode()?, previous))
            })
            .await?;
        if let Some(previous) = previous {
            self.unlist(app_id, &previous, id).await?;
        }
        self.list(app_id, external_id, id).await
    }

    async fn erase_profile(&self, profile: ProfileRef<'_>) -> StoreResult<u64> {
        let (app_id, external_id) = (profile.app_id, profile.external_id);
        let (_existed, ids): (u8, Vec<Vec<u8>>) = self
            .run_script(
                self.scripts
                    .erase_profile
                    .key(keys::profile(app_id, external_id))
                    .key(keys::profile_links(app_id, external_id))
                    // Send counts that versions before the policy's caps kept.
                    .key(keys::profile_sends(app_id, external_id))
                    .key(keys::profile_caps(app_id, external_id)),
            )
            .await?;
        let deletions = ids.iter().map(|id| async move {
            let id = SubscriptionId::from_bytes(id)?;
            let what = format!("subscription {id}");
            let shard = keys::shard(app_id, id.shard());
            self.change_field(&shard, &id.to_bytes(), &what, |current| {
                let Some(record) = current else {
                    return Ok(Change::Keep(0));
                };
                // Linked to someone else since: not this person's to erase.
                if Subscription::decode(app_id, id, record)?.is_linked_to(external_id) {
                    Ok(Change::Delete(1))
                } else {
                    Ok(Change::Keep(0))
                }
            })
            .await
        });
        Ok(futures::future::try_join_all(deletions).await?.iter().sum())
    }
}
