//! Apps: creating one (keys and secrets), its API keys (issue, rotate with an overlap, revoke),
//! the origins it allows, and checking identity hashes. Used by the admin API, the `aviso apps`
//! commands and `aviso serve` on first start.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use std::time::Duration;

use crate::push::{VapidError, VapidKey, base64url};
use crate::store::{ApiKey, App, Scope, hash_api_key, now_ms};

/// How long a rotated key keeps working unless told otherwise: long enough to roll the new one
/// out to every client.
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(3600);

/// A new app and the secrets shown once to its owner.
pub struct NewApp {
    pub app: App,
    /// The API key in clear: only its hash is stored.
    pub api_key: String,
    pub vapid_public_key: String,
}

fn random_bytes<const N: usize>() -> Result<[u8; N], VapidError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| VapidError::Random)?;
    Ok(bytes)
}

/// A new API key: `av_` and 32 random base64url characters (192 bits).
pub fn new_api_key() -> Result<String, VapidError> {
    Ok(format!("av_{}", base64url::encode(&random_bytes::<24>()?)))
}

/// Makes an app with a fresh VAPID key pair, identity secret and API key.
pub fn create_app(name: &str, origins: Vec<String>) -> Result<NewApp, VapidError> {
    let vapid = VapidKey::generate()?;
    let id_bytes = random_bytes::<9>()?;
    let api_key = new_api_key()?;
    let app = App {
        id: base64url::encode(&id_bytes)
            .to_ascii_lowercase()
            .replace(['-', '_'], "x"),
        name: name.to_owned(),
        origins,
        vapid_private_key: vapid.private_scalar()?,
        identity_secret: random_bytes::<32>()?.to_vec(),
        receipt_secret: random_bytes::<32>()?.to_vec(),
        api_keys: vec![key_record(&api_key, Scope::Send, now_ms())],
        created_at: now_ms() / 1000,
        demo: false,
        expire_after_secs: 0,
    };
    Ok(NewApp {
        app,
        api_key,
        vapid_public_key: vapid.public_key_base64url().to_owned(),
    })
}

fn key_record(api_key: &str, scope: Scope, now_ms: u64) -> ApiKey {
    ApiKey {
        hash: hash_api_key(api_key),
        scope,
        expires_at_ms: None,
        created_at_ms: now_ms,
    }
}

/// A key's public name: the first 12 hex digits of its hash (the key itself is never stored).
pub fn key_id(hash: &[u8; 32]) -> String {
    hex(&hash[..6])
}

/// Adds a new key with `scope` to `app`; returns it in clear (shown once).
pub fn issue_key(app: &mut App, scope: Scope, now_ms: u64) -> Result<String, VapidError> {
    let api_key = new_api_key()?;
    app.api_keys.retain(|k| k.is_live(now_ms));
    app.api_keys.push(key_record(&api_key, scope, now_ms));
    Ok(api_key)
}

/// Replaces the app's keys of `scope` with a new one: the old ones keep working for `overlap`
/// (so that every client can switch over), then stop. Returns the new key in clear.
pub fn rotate_key(
    app: &mut App,
    scope: Scope,
    overlap: Duration,
    now_ms: u64,
) -> Result<String, VapidError> {
    let end = now_ms.saturating_add(overlap.as_millis() as u64);
    for key in app.api_keys.iter_mut().filter(|k| k.scope == scope) {
        key.expires_at_ms = Some(key.expires_at_ms.map_or(end, |e| e.min(end)));
    }
    issue_key(app, scope, now_ms)
}

/// Removes the key named `id` (see [`key_id`]) at once; `false` when the app has none such.
pub fn revoke_key(app: &mut App, id: &str) -> bool {
    let before = app.api_keys.len();
    app.api_keys.retain(|k| key_id(&k.hash) != id);
    app.api_keys.len() != before
}

/// An origin as apps store it (`scheme://host[:port]`, no path), or what is wrong with it.
pub fn normalize_origin(origin: &str) -> Result<String, String> {
    let url = url::Url::parse(origin)
        .map_err(|e| format!("`{origin}` is not a URL ({e}): use e.g. https://shop.example"))?;
    let normalized = url.origin().ascii_serialization();
    if normalized == "null" || !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{origin}` must be an http(s) origin like https://shop.example"
        ));
    }
    Ok(normalized)
}

/// The identity hash a site's backend computes for `external_id`: hex HMAC-SHA256.
pub fn identity_hash(secret: &[u8], external_id: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hex(hmac::sign(&key, external_id.as_bytes()).as_ref())
}

/// Checks an identity hash in constant time.
pub fn verify_identity_hash(secret: &[u8], external_id: &str, hash_hex: &str) -> bool {
    let Some(tag) = unhex(hash_hex) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, external_id.as_bytes(), &tag).is_ok()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_hashes_verify_and_nothing_else_does() {
        let secret = [7u8; 32];
        let hash = identity_hash(&secret, "crm-42");
        assert_eq!(hash.len(), 64);
        assert!(verify_identity_hash(&secret, "crm-42", &hash));
        assert!(verify_identity_hash(
            &secret,
            "crm-42",
            &hash.to_uppercase()
        ));
        assert!(!verify_identity_hash(&secret, "crm-43", &hash));
        assert!(!verify_identity_hash(&secret, "crm-42", "zz"));
        assert!(!verify_identity_hash(&secret, "crm-42", "é"));
    }

    #[test]
    fn a_new_app_has_working_keys() {
        let new = create_app("Shop", vec!["https://shop.example".into()]).unwrap();
        assert_eq!(
            new.app.key_scope(&hash_api_key(&new.api_key), now_ms()),
            Some(Scope::Send)
        );
        let vapid = VapidKey::from_private_scalar(&new.app.vapid_private_key).unwrap();
        assert_eq!(vapid.public_key_base64url(), new.vapid_public_key);
        assert_eq!(new.app.id.len(), 12);
        assert!(new.api_key.starts_with("av_"));
    }

    #[test]
    fn a_rotated_key_works_through_its_overlap_then_stops() {
        let mut app = create_app("Shop", vec![]).unwrap().app;
        let old = app.api_keys[0].hash;
        let read = issue_key(&mut app, Scope::Read, 1_000).unwrap();
        let new = rotate_key(&mut app, Scope::Send, Duration::from_secs(60), 1_000).unwrap();
        assert_eq!(app.key_scope(&old, 60_999), Some(Scope::Send));
        assert_eq!(app.key_scope(&old, 61_000), None);
        assert_eq!(
            app.key_scope(&hash_api_key(&new), 10_000_000),
            Some(Scope::Send)
        );
        assert_eq!(
            app.key_scope(&hash_api_key(&read), 10_000_000),
            Some(Scope::Read),
            "other scopes' keys are left alone"
        );
        // A later issue drops keys that have expired.
        issue_key(&mut app, Scope::Admin, 61_000).unwrap();
        assert!(app.api_keys.iter().all(|k| k.hash != old));
        assert!(revoke_key(&mut app, &key_id(&hash_api_key(&read))));
        assert_eq!(app.key_scope(&hash_api_key(&read), 61_000), None);
        assert!(!revoke_key(&mut app, "nope"));
    }

    #[test]
    fn origins_are_normalized_or_refused() {
        assert_eq!(
            normalize_origin("https://Shop.example/path?q").unwrap(),
            "https://shop.example"
        );
        assert_eq!(
            normalize_origin("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(normalize_origin("shop.example").is_err());
        assert!(normalize_origin("ftp://shop.example").is_err());
        assert!(normalize_origin("data:text/plain,x").is_err());
    }
}
