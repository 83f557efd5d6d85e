//! What the store holds: apps, subscriptions, profiles, and the compact binary form of a
//! subscription (one per subscriber, so every byte counts: see docs/BENCHMARKS.md).

use std::collections::BTreeMap;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::endpoint::{self, put_len, split, take_len};

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
        if s.len() != 16 {
            return Err(StoreError::Invalid(format!(
                "subscription id `{s}` is not 16 hex digits"
            )));
        }
        u64::from_str_radix(s, 16)
            .map(Self)
            .map_err(|_| StoreError::Invalid(format!("subscription id `{s}` is not 16 hex digits")))
    }
}

/// An application: one site or product with its own keys and subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "AppRecord")]
pub struct App {
    pub id: String,
    pub name: String,
    /// Origins allowed to call the public API (CORS), e.g. `https://shop.example`.
    pub origins: Vec<String>,
    /// The VAPID private key as its raw 32-byte scalar.
    pub vapid_private_key: Vec<u8>,
    /// Secret for the identity hash (HMAC-SHA256 of an external id).
    pub identity_secret: Vec<u8>,
    /// The app's API keys (their hashes, scopes and expiries); keys themselves are never stored.
    pub api_keys: Vec<ApiKey>,
    pub created_at: u64,
    /// Whether the demo page's "send me a test push" is enabled.
    pub demo: bool,
}

/// What an API key may do; each scope includes the ones before it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read profiles, notifications and statistics of its app.
    Read,
    /// Also send notifications and change profiles of its app.
    Send,
    /// Also manage apps and their keys (the admin API).
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Send => "send",
            Self::Admin => "admin",
        }
    }
}

/// One API key of an app, as stored: the SHA-256 of the key, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub hash: [u8; 32],
    pub scope: Scope,
    /// Unix milliseconds after which the key stops working (a rotated key's overlap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    #[serde(default)]
    pub created_at_ms: u64,
}

impl ApiKey {
    /// Whether the key still works at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|end| now_ms < end)
    }
}

impl App {
    /// Every key hash that may authenticate (the stores index them).
    pub fn key_hashes(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.api_keys.iter().map(|k| &k.hash)
    }

    /// The scope of the key with `hash`, if it is the app's and has not expired at `now_ms`.
    pub fn key_scope(&self, hash: &[u8; 32], now_ms: u64) -> Option<Scope> {
        self.api_keys
            .iter()
            .find(|k| &k.hash == hash && k.is_live(now_ms))
            .map(|k| k.scope)
    }
}

/// An app as stored, before scoped keys too: a bare `api_key_hashes` list was keys with the
/// `send` scope (everything but the admin API, which did not exist) and no expiry.
#[derive(Deserialize)]
struct AppRecord {
    id: String,
    name: String,
    origins: Vec<String>,
    vapid_private_key: Vec<u8>,
    identity_secret: Vec<u8>,
    #[serde(default)]
    api_keys: Vec<ApiKey>,
    #[serde(default)]
    api_key_hashes: Vec<[u8; 32]>,
    created_at: u64,
    #[serde(default)]
    demo: bool,
}

impl From<AppRecord> for App {
    fn from(record: AppRecord) -> Self {
        let mut api_keys = record.api_keys;
        for hash in record.api_key_hashes {
            if !api_keys.iter().any(|k| k.hash == hash) {
                api_keys.push(ApiKey {
                    hash,
                    scope: Scope::Send,
                    expires_at_ms: None,
                    created_at_ms: record.created_at.saturating_mul(1000),
                });
            }
        }
        Self {
            id: record.id,
            name: record.name,
            origins: record.origins,
            vapid_private_key: record.vapid_private_key,
            identity_secret: record.identity_secret,
            api_keys,
            created_at: record.created_at,
            demo: record.demo,
        }
    }
}

/// SHA-256 of an API key, as stored.
pub fn hash_api_key(key: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, key.as_bytes()).as_ref());
    out
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

const RECORD_VERSION: u8 = 1;

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

    /// The compact binary record (without app and id, which are in the key).
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        if self.endpoint.len() > MAX_ENDPOINT_LEN {
            return Err(StoreError::Invalid(format!(
                "endpoint is {} bytes, the limit is {MAX_ENDPOINT_LEN}",
                self.endpoint.len()
            )));
        }
        let short = |what: &str, s: &str| {
            if s.len() > 255 {
                Err(StoreError::Invalid(format!(
                    "{what} `{s:.20}…` is longer than 255 bytes"
                )))
            } else {
                Ok(())
            }
        };
        short("locale", &self.locale)?;
        short("timezone", &self.timezone)?;
        if self.tags.len() > 255 {
            return Err(StoreError::Invalid("more than 255 tags".into()));
        }
        let mut out = Vec::with_capacity(224);
        out.push(RECORD_VERSION);
        endpoint::encode(&self.endpoint, &mut out);
        out.extend_from_slice(&self.p256dh);
        out.extend_from_slice(&self.auth);
        out.extend_from_slice(&self.created_at.to_be_bytes());
        out.extend_from_slice(&self.last_seen.to_be_bytes());
        put_str(&mut out, &self.locale);
        put_time_zone(&mut out, &self.timezone);
        put_str(&mut out, self.external_id.as_deref().unwrap_or(""));
        out.push(self.tags.len() as u8);
        for (key, value) in &self.tags {
            short("tag", key)?;
            short("tag value", value)?;
            put_str(&mut out, key);
            put_str(&mut out, value);
        }
        Ok(out)
    }

    pub fn decode(app_id: &str, id: SubscriptionId, record: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("subscription {id}: {what}"));
        let (&version, rest) = record.split_first().ok_or_else(|| corrupt("empty"))?;
        if version != RECORD_VERSION {
            return Err(corrupt("unknown record version"));
        }
        let (endpoint, rest) = endpoint::decode(rest)?;
        let (p256dh, rest) = split(rest, 65)?;
        let (auth, rest) = split(rest, 16)?;
        let (created, rest) = split(rest, 4)?;
        let (seen, rest) = split(rest, 4)?;
        let (locale, rest) = take_str(rest)?;
        let (timezone, rest) = take_time_zone(rest)?;
        let (external_id, rest) = take_str(rest)?;
        let (&tag_count, mut rest) = rest.split_first().ok_or_else(|| corrupt("no tags"))?;
        let mut tags = BTreeMap::new();
        for _ in 0..tag_count {
            let (key, after) = take_str(rest)?;
            let (value, after) = take_str(after)?;
            tags.insert(key, value);
            rest = after;
        }
        let array4 = |b: &[u8]| [b[0], b[1], b[2], b[3]];
        Ok(Self {
            app_id: app_id.to_owned(),
            id,
            endpoint,
            p256dh: p256dh.try_into().map_err(|_| corrupt("p256dh"))?,
            auth: auth.try_into().map_err(|_| corrupt("auth"))?,
            created_at: u32::from_be_bytes(array4(created)),
            last_seen: u32::from_be_bytes(array4(seen)),
            locale,
            timezone,
            tags,
            external_id: (!external_id.is_empty()).then_some(external_id),
        })
    }
}

/// The time zones of most of the world's web users, stored as one byte (index + 1). Append
/// only: the codes are on disk.
const COMMON_TIME_ZONES: &[&str] = &[
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Phoenix",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Toronto",
    "America/Vancouver",
    "America/Mexico_City",
    "America/Bogota",
    "America/Lima",
    "America/Santiago",
    "America/Argentina/Buenos_Aires",
    "America/Sao_Paulo",
    "America/Caracas",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Madrid",
    "Europe/Paris",
    "Europe/Brussels",
    "Europe/Amsterdam",
    "Europe/Berlin",
    "Europe/Zurich",
    "Europe/Rome",
    "Europe/Vienna",
    "Europe/Stockholm",
    "Europe/Oslo",
    "Europe/Copenhagen",
    "Europe/Warsaw",
    "Europe/Prague",
    "Europe/Budapest",
    "Europe/Athens",
    "Europe/Bucharest",
    "Europe/Helsinki",
    "Europe/Kiev",
    "Europe/Kyiv",
    "Europe/Istanbul",
    "Europe/Moscow",
    "Africa/Casablanca",
    "Africa/Lagos",
    "Africa/Cairo",
    "Africa/Johannesburg",
    "Africa/Nairobi",
    "Asia/Dubai",
    "Asia/Riyadh",
    "Asia/Tehran",
    "Asia/Karachi",
    "Asia/Kolkata",
    "Asia/Calcutta",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Jakarta",
    "Asia/Ho_Chi_Minh",
    "Asia/Singapore",
    "Asia/Kuala_Lumpur",
    "Asia/Manila",
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Taipei",
    "Asia/Seoul",
    "Asia/Tokyo",
    "Australia/Perth",
    "Australia/Adelaide",
    "Australia/Brisbane",
    "Australia/Sydney",
    "Australia/Melbourne",
    "Pacific/Auckland",
    "UTC",
    "Etc/UTC",
];
const TIME_ZONE_LITERAL: u8 = 0xff;

fn put_time_zone(out: &mut Vec<u8>, time_zone: &str) {
    if time_zone.is_empty() {
        out.push(0);
    } else if let Some(index) = COMMON_TIME_ZONES.iter().position(|z| *z == time_zone) {
        out.push(index as u8 + 1);
    } else {
        out.push(TIME_ZONE_LITERAL);
        put_str(out, time_zone);
    }
}

fn take_time_zone(input: &[u8]) -> Result<(String, &[u8]), StoreError> {
    let (&code, rest) = input
        .split_first()
        .ok_or_else(|| StoreError::Corrupt("no time zone".into()))?;
    match code {
        0 => Ok((String::new(), rest)),
        TIME_ZONE_LITERAL => take_str(rest),
        n => COMMON_TIME_ZONES
            .get(usize::from(n) - 1)
            .map(|z| ((*z).to_owned(), rest))
            .ok_or_else(|| StoreError::Corrupt("unknown time zone code".into())),
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn take_str(input: &[u8]) -> Result<(String, &[u8]), StoreError> {
    let (len, input) = take_len(input)?;
    let (bytes, rest) = split(input, len)?;
    let s =
        std::str::from_utf8(bytes).map_err(|_| StoreError::Corrupt("text is not UTF-8".into()))?;
    Ok((s.to_owned(), rest))
}

/// A value of a CRM profile attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttributeValue {
    Bool(bool),
    Number(f64),
    Text(String),
}

/// A CRM profile: a person known to the site, with any number of subscriptions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Profile {
    pub external_id: String,
    pub attributes: BTreeMap<String, AttributeValue>,
    pub tags: BTreeMap<String, String>,
    pub subscriptions: Vec<SubscriptionId>,
    pub updated_at: u64,
}

/// A change to a profile: attributes and tags set (a `None` removes the key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileUpdate {
    pub external_id: String,
    pub attributes: BTreeMap<String, Option<AttributeValue>>,
    pub tags: BTreeMap<String, Option<String>>,
}

impl Profile {
    pub fn apply(&mut self, update: &ProfileUpdate, now: u64) {
        for (key, value) in &update.attributes {
            match value {
                Some(value) => self.attributes.insert(key.clone(), value.clone()),
                None => self.attributes.remove(key),
            };
        }
        for (key, value) in &update.tags {
            match value {
                Some(value) => self.tags.insert(key.clone(), value.clone()),
                None => self.tags.remove(key),
            };
        }
        self.updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Subscription {
        let mut sub = Subscription::new(
            "app1",
            &format!(
                "https://fcm.googleapis.com/fcm/send/dK9x:APA91b{}",
                "x".repeat(140)
            ),
            [4; 65],
            [7; 16],
            1_700_000_000,
        );
        sub.locale = "pt-BR".into();
        sub.timezone = "Europe/Lisbon".into();
        sub.tags.insert("plan".into(), "pro".into());
        sub.external_id = Some("crm-42".into());
        sub
    }

    #[test]
    fn records_round_trip_and_stay_small() {
        let sub = sample();
        let record = sub.encode().unwrap();
        assert_eq!(Subscription::decode("app1", sub.id, &record).unwrap(), sub);
        let mut typical = Subscription::new("app1", &sub.endpoint, [4; 65], [7; 16], 1);
        typical.locale = "en-US".into();
        typical.timezone = "America/New_York".into();
        // ≤ 220 bytes keeps Redis's allocation in jemalloc's 224-byte class (docs/BENCHMARKS.md).
        assert!(
            typical.encode().unwrap().len() <= 220,
            "{}",
            typical.encode().unwrap().len()
        );
        let mut rare = typical.clone();
        rare.timezone = "Antarctica/Troll".into();
        assert_eq!(
            Subscription::decode("app1", rare.id, &rare.encode().unwrap()).unwrap(),
            rare
        );
        assert_eq!(sub.id, SubscriptionId::for_endpoint("app1", &sub.endpoint));
        assert_ne!(sub.id, SubscriptionId::for_endpoint("app2", &sub.endpoint));
        assert_eq!(
            sub.id.to_string().parse::<SubscriptionId>().unwrap(),
            sub.id
        );
    }

    #[test]
    fn apps_stored_before_scoped_keys_read_as_send_keys() {
        let hash = hash_api_key("old");
        let stored = serde_json::json!({"id": "a", "name": "A", "origins": [], "vapid_private_key": [1],
            "identity_secret": [2], "api_key_hashes": [hash], "created_at": 7});
        let app: App = serde_json::from_value(stored).unwrap();
        assert_eq!(app.key_scope(&hash, u64::MAX), Some(Scope::Send));
        assert!(!app.demo);
        let again: App = serde_json::from_slice(&serde_json::to_vec(&app).unwrap()).unwrap();
        assert_eq!(again, app);
        assert!(Scope::Read < Scope::Send && Scope::Send < Scope::Admin);
    }

    proptest! {
        #[test]
        fn corrupt_records_are_errors_not_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = Subscription::decode("a", SubscriptionId(1), &bytes);
        }

        #[test]
        fn truncated_records_are_errors(cut in 0usize..200) {
            let record = sample().encode().unwrap();
            let cut = cut.min(record.len() - 1);
            prop_assert!(Subscription::decode("app1", SubscriptionId(1), &record[..cut]).is_err());
        }
    }
}
