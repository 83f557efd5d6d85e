//! Apps: one site or product with its own keys and subscribers; its API keys, each with a
//! scope and, while a rotation overlaps, an expiry.

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

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
    /// Secret for the receipt tokens in each payload (`notify/receipt.rs`).
    pub receipt_secret: Vec<u8>,
    /// The app's API keys (their hashes, scopes and expiries); keys themselves are never stored.
    pub api_keys: Vec<ApiKey>,
    pub created_at: u64,
    /// Whether the demo page's "send me a test push" is enabled.
    pub demo: bool,
    /// Stale expiry: a subscription to which pushes were delivered for this long with no
    /// receipt is deleted (counted `expired_stale`); 0 = never (and no activity is kept).
    pub expire_after_secs: u32,
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
    receipt_secret: Vec<u8>,
    #[serde(default)]
    api_keys: Vec<ApiKey>,
    #[serde(default)]
    api_key_hashes: Vec<[u8; 32]>,
    created_at: u64,
    #[serde(default)]
    demo: bool,
    #[serde(default)]
    expire_after_secs: u32,
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
        // An app stored before receipt tokens: its secret derived from the identity secret
        // (stable across restarts and instances, never the identity secret itself).
        let receipt_secret = if record.receipt_secret.is_empty() {
            let key =
                aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &record.identity_secret);
            aws_lc_rs::hmac::sign(&key, b"aviso receipt secret")
                .as_ref()
                .to_vec()
        } else {
            record.receipt_secret
        };
        Self {
            id: record.id,
            name: record.name,
            origins: record.origins,
            vapid_private_key: record.vapid_private_key,
            identity_secret: record.identity_secret,
            receipt_secret,
            api_keys,
            created_at: record.created_at,
            demo: record.demo,
            expire_after_secs: record.expire_after_secs,
        }
    }
}

/// SHA-256 of an API key, as stored.
pub fn hash_api_key(key: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, key.as_bytes()).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
