//! Delivery policies on Redis: the policy document (`{pol:APP}`), frequency-cap counts in the
//! holder's own unit (a profile's under `{pr:APP:EXT}`, beside its links and send counts; a
//! subscription's under its shard's tag; a trigger's own cap in a key of its own beside them),
//! and token buckets (`{tb:APP:BUCKET}`).
//!
//! A batch's caps are one script (`lua/take_caps.lua`) on a single Redis; on a Cluster one
//! script per hash-tag unit, the units' scripts sent at once.

use std::collections::BTreeMap;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::{Connection, RedisStore, keys};
use crate::policy::model::Policy;
use crate::store::{
    Bucket, CapCheck, CapHolder, CapScope, PolicyStore, StoreResult, TokenGrant, from_json, to_json,
};

fn cap_key(app_id: &str, scope: CapScope<'_>, holder: &CapHolder) -> String {
    match (scope, holder) {
        (CapScope::Policy, CapHolder::Profile(external_id)) => {
            keys::profile_caps(app_id, external_id)
        }
        (CapScope::Policy, CapHolder::Subscription(id)) => keys::subscription_caps(app_id, *id),
        (CapScope::Trigger(name), CapHolder::Profile(external_id)) => {
            keys::profile_trigger_caps(app_id, external_id, name)
        }
        (CapScope::Trigger(name), CapHolder::Subscription(id)) => {
            keys::subscription_trigger_caps(app_id, *id, name)
        }
    }
}

/// The hash tag of a key (`{…}` at its start, as every key here has).
fn tag(key: &str) -> &str {
    key.find('}').map_or(key, |end| &key[..=end])
}

impl RedisStore {
    /// One `take_caps.lua` over `keys`.
    async fn take_caps_of(&self, check: &CapCheck<'_>, keys: &[&str]) -> StoreResult<Vec<bool>> {
        let longest = check.windows.iter().map(|w| w.per_ms).max().unwrap_or(0);
        let mut invocation = self.scripts.take_caps.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        invocation
            .arg(check.now_ms)
            .arg(check.category.as_str())
            .arg(check.notification_id)
            .arg(longest);
        for window in check.windows {
            invocation.arg(window.per_ms).arg(window.max);
        }
        let answers: Vec<u8> = self.run_script(&invocation).await?;
        Ok(answers.into_iter().map(|a| a == 1).collect())
    }
}

#[async_trait]
impl PolicyStore for RedisStore {
    async fn get_policy(&self, app_id: &str) -> StoreResult<Option<Policy>> {
        let mut conn = self.conn();
        let doc: Option<Vec<u8>> = conn.get(keys::policy(app_id)).await?;
        doc.map(|doc| from_json(&doc, "policy")).transpose()
    }

    async fn put_policy(&self, app_id: &str, policy: &Policy) -> StoreResult<()> {
        let mut conn = self.conn();
        let _: () = conn.set(keys::policy(app_id), to_json(policy)?).await?;
        Ok(())
    }

    async fn take_caps(
        &self,
        check: CapCheck<'_>,
        holders: &[CapHolder],
    ) -> StoreResult<Vec<bool>> {
        if holders.is_empty() || check.windows.is_empty() {
            return Ok(vec![true; holders.len()]);
        }
        let keys: Vec<String> = holders
            .iter()
            .map(|h| cap_key(check.app_id, check.scope, h))
            .collect();
        if matches!(self.connection, Connection::Single(_)) {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            return self.take_caps_of(&check, &keys).await;
        }
        // A Cluster runs a script on one node, over keys of one slot: one per hash tag.
        let mut units: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, key) in keys.iter().enumerate() {
            units.entry(tag(key)).or_default().push(i);
        }
        let runs = units.values().map(|indices| {
            let unit: Vec<&str> = indices.iter().map(|&i| keys[i].as_str()).collect();
            let check = &check;
            async move { self.take_caps_of(check, &unit).await }
        });
        let answered = futures::future::try_join_all(runs).await?;
        let mut answers = vec![false; holders.len()];
        for (indices, unit_answers) in units.values().zip(answered) {
            for (&i, answer) in indices.iter().zip(unit_answers) {
                answers[i] = answer;
            }
        }
        Ok(answers)
    }

    async fn take_tokens(&self, bucket: Bucket<'_>, wanted: u32) -> StoreResult<TokenGrant> {
        let per_minute = bucket.per_minute;
        let (granted, retry_after_ms): (u32, u64) = self
            .run_script(
                self.scripts
                    .take_tokens
                    .key(keys::token_bucket(bucket.app_id, bucket.name))
                    .arg(per_minute)
                    .arg(wanted)
                    .arg(crate::policy::bucket::capacity(per_minute)),
            )
            .await?;
        Ok(TokenGrant {
            granted,
            retry_after_ms,
        })
    }
}
