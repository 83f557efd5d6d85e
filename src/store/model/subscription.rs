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

    /// The id as it is written everywhere (its `Display`): 16 lowercase hex digits, on the
    /// stack, as the engine puts it into every payload and receipt token.
    pub fn hex(self) -> [u8; 16] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        std::array::from_fn(|i| DIGITS[((self.0 >> (60 - 4 * i)) & 0xf) as usize])
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
        let hex = self.hex();
        f.write_str(std::str::from_utf8(&hex).map_err(|_| std::fmt::Error)?)
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
    /// What the push services and the browser said lately (kept while the app expires stale
    /// subscriptions; zero otherwise).
    pub activity: Activity,
}

/// A subscription's recent life, for stale expiry: the last successful delivery, the last
/// receipt (`shown`/`clicked`/`closed` from the service worker), and the first successful
/// delivery that no receipt has answered since. Unix seconds, 0 = never.
///
/// The last delivery alone cannot tell a dead browser from one that was offline for a day
/// after a month without pushes: expiry needs pushes delivered *for* the whole window without
/// an answer, which is what `unanswered_since` keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    pub delivered_at: u32,
    pub receipt_at: u32,
    pub unanswered_since: u32,
}

impl Activity {
    /// After a successful delivery sent at `sent_at`: a receipt already newer than the send
    /// answered it, so it does not start the unanswered stretch.
    pub fn delivered(mut self, sent_at: u32) -> Self {
        self.delivered_at = self.delivered_at.max(sent_at);
        if self.unanswered_since == 0 && self.receipt_at < sent_at {
            self.unanswered_since = sent_at;
        }
        self
    }

    /// After a receipt at `at`: the browser is alive.
    pub fn receipted(mut self, at: u32) -> Self {
        self.receipt_at = self.receipt_at.max(at);
        self.unanswered_since = 0;
        self
    }

    /// Whether pushes were delivered for `window_secs` (or longer) with no receipt, at `now`.
    pub fn is_stale(self, now: u32, window_secs: u32) -> bool {
        window_secs > 0
            && self.unanswered_since != 0
            && now.saturating_sub(self.unanswered_since) >= window_secs
    }

    /// The 12 bytes a record keeps (`model/record.rs`), or none for no activity: what the Redis
    /// store compares before it changes a record's activity in place.
    pub fn record_bytes(self) -> Vec<u8> {
        if self == Self::default() {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(12);
        out.extend_from_slice(&self.delivered_at.to_be_bytes());
        out.extend_from_slice(&self.receipt_at.to_be_bytes());
        out.extend_from_slice(&self.unanswered_since.to_be_bytes());
        out
    }

    /// Whether a delivery at `sent_at` changes what is kept enough to write it: the first
    /// unanswered delivery always, the last delivery at most once an hour.
    pub fn needs_write_after_delivery(self, sent_at: u32) -> bool {
        let after = self.delivered(sent_at);
        after.unanswered_since != self.unanswered_since
            || after.delivered_at >= self.delivered_at.saturating_add(3600)
    }
}

/// Why a change of a stored subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The endpoint is stored with other keys and the change brought no proof.
    KeysDiffer,
    /// The proof (the replaced subscription's `auth`) does not match.
    WrongAuth,
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
            activity: Activity::default(),
        }
    }

    /// Whether `auth` is this subscription's auth secret (in constant time: it is a credential).
    pub fn proves(&self, auth: &[u8]) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(auth, &self.auth).is_ok()
    }

    /// What an upsert of `self` over the stored `existing` writes: the tags, locale and time
    /// zone, with the first creation time, the activity and, unless the update names one, the
    /// existing profile link. The keys are the browser's: an upsert that brings other keys is
    /// refused ([`Refused::KeysDiffer`]); changing them takes the current `auth` as proof
    /// ([`Subscription::renewed_from`]), or a stranger who knows an endpoint could blind its
    /// browser. The browser subscribing again is a sign of life: the unanswered stretch ends.
    pub fn merged_over(&self, existing: &Subscription) -> Result<Subscription, Refused> {
        if self.p256dh != existing.p256dh || self.auth != existing.auth {
            return Err(Refused::KeysDiffer);
        }
        let mut merged = self.clone();
        merged.continue_from(existing);
        Ok(merged)
    }

    /// What a write by the browser keeps of the record it follows: the creation time, the
    /// profile link unless the write names one, and the activity, whose unanswered stretch
    /// ends (the browser is alive).
    fn continue_from(&mut self, earlier: &Subscription) {
        self.created_at = earlier.created_at;
        if self.external_id.is_none() {
            self.external_id.clone_from(&earlier.external_id);
        }
        self.activity = Activity {
            unanswered_since: 0,
            ..earlier.activity
        };
    }

    /// What a renewal writes: `self` (the browser's new subscription, maybe the same endpoint
    /// with new keys) takes over `old` — its tags (the request's own tags win), profile link
    /// (unless the request names one), creation time, locale and time zone when the request
    /// has none, and activity — over `existing`, what the new endpoint held already (when it
    /// is another one than `old`). Refused unless `proof` is `old`'s auth secret.
    pub fn renewed_from(
        &self,
        old: &Subscription,
        proof: &[u8],
        existing: Option<&Subscription>,
    ) -> Result<Subscription, Refused> {
        if !old.proves(proof) {
            return Err(Refused::WrongAuth);
        }
        let mut renewed = self.clone();
        let mut tags = old.tags.clone();
        if let Some(existing) = existing.filter(|e| e.id != old.id) {
            tags.extend(existing.tags.clone());
            if renewed.external_id.is_none() {
                renewed.external_id.clone_from(&existing.external_id);
            }
        }
        tags.extend(self.tags.clone());
        renewed.tags = tags;
        renewed.continue_from(old);
        if renewed.locale.is_empty() {
            renewed.locale.clone_from(&old.locale);
        }
        if renewed.timezone.is_empty() {
            renewed.timezone.clone_from(&old.timezone);
        }
        Ok(renewed)
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

#[cfg(test)]
mod tests {
    use super::SubscriptionId;

    #[test]
    fn the_id_is_written_as_sixteen_lowercase_hex_digits() {
        for id in [
            0,
            1,
            0xabc,
            0x0123_4567_89ab_cdef,
            u64::MAX,
            0xf000_0000_0000_000f,
        ] {
            let written = SubscriptionId(id).to_string();
            assert_eq!(written, format!("{id:016x}"));
            assert_eq!(written.as_bytes(), SubscriptionId(id).hex());
            assert_eq!(
                written.parse::<SubscriptionId>().ok(),
                Some(SubscriptionId(id))
            );
        }
    }
}
