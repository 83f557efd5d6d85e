//! Subscriptions: one browser's push subscription, its id, and the rules for changing one
//! (what an upsert keeps, what a link moves). Both backends apply these rules; neither writes
//! its own.

use std::collections::BTreeMap;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// Logical shards per app. Fixed: a subscription's shard is derived from its id.
pub const SHARDS: u16 = 256;
/// Longest endpoint URL accepted; real ones are under 600 characters.
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// A subscription's id: the first 8 bytes of SHA-256(app id, endpoint), so that a browser
/// subscribing again lands on the same record without an endpoint index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SubscriptionId(pub u64);

impl SubscriptionId {
    pub fn for_endpoint(app_id: &str, endpoint: &str) -> Self {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(app_id.as_bytes());
        context.update(&[0]);
        context.update(endpoint.as_bytes());
        let hash = context.finish();
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_ref()[..8]);
        Self(u64::from_be_bytes(first))
    }

    pub fn shard(self) -> u16 {
        (self.0 % u64::from(SHARDS)) as u16
    }

    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let array: [u8; 8] = bytes
            .try_into()
            .map_err(|_| StoreError::Corrupt("subscription id is not 8 bytes".into()))?;
        Ok(Self(u64::from_be_bytes(array)))
    }
}

impl std::fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for SubscriptionId {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Exactly as issued: 16 lowercase hex digits (`from_str_radix` alone takes a sign and
        // uppercase, which the OpenAPI pattern does not).
        if s.len() != 16 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(StoreError::Invalid(format!(
                "subscription id `{s}` is not 16 hex digits"
            )));
        }
        u64::from_str_radix(s, 16)
            .map(Self)
            .map_err(|_| StoreError::Invalid(format!("subscription id `{s}` is not 16 hex digits")))
    }
}

/// One browser's push subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub app_id: String,
    pub id: SubscriptionId,
    pub endpoint: String,
    pub p256dh: [u8; 65],
    pub auth: [u8; 16],
    /// Unix seconds.
    pub created_at: u32,
    pub last_seen: u32,
    pub locale: String,
    pub timezone: String,
    pub tags: BTreeMap<String, String>,
    pub external_id: Option<String>,
}

impl Subscription {
    /// A new subscription; its id comes from the endpoint.
    pub fn new(app_id: &str, endpoint: &str, p256dh: [u8; 65], auth: [u8; 16], now: u32) -> Self {
        Self {
            app_id: app_id.to_owned(),
            id: SubscriptionId::for_endpoint(app_id, endpoint),
            endpoint: endpoint.to_owned(),
            p256dh,
            auth,
            created_at: now,
            last_seen: now,
            locale: String::new(),
            timezone: String::new(),
            tags: BTreeMap::new(),
            external_id: None,
        }
    }

    /// What an upsert of `self` over the stored `existing` writes: the new keys, tags, locale
    /// and time zone, with the first creation time and, unless the update names one, the
    /// existing profile link.
    pub fn merged_over(&self, existing: &Subscription) -> Subscription {
        let mut merged = self.clone();
        merged.created_at = existing.created_at;
        if merged.external_id.is_none() {
            merged.external_id.clone_from(&existing.external_id);
        }
        merged
    }

    /// Links this subscription to `external_id`; answers the profile it was linked to before,
    /// when that was another one (which must then stop listing it).
    pub fn link_to(&mut self, external_id: &str) -> Option<String> {
        let previous = self.external_id.replace(external_id.to_owned());
        previous.filter(|p| p != external_id)
    }

    /// Whether the subscription belongs to this profile: an erasure deletes only those.
    pub fn is_linked_to(&self, external_id: &str) -> bool {
        self.external_id.as_deref() == Some(external_id)
    }
}
