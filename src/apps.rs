//! Apps: creating one (keys and secrets), rotating its API key, and checking identity hashes.
//! Used by the `aviso apps` commands and by `aviso serve` on first start.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::push::{VapidError, VapidKey, base64url};
use crate::store::{App, hash_api_key, now_ms};

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
        api_key_hashes: vec![hash_api_key(&api_key)],
        created_at: now_ms() / 1000,
        demo: false,
    };
    Ok(NewApp {
        app,
        api_key,
        vapid_public_key: vapid.public_key_base64url().to_owned(),
    })
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
        assert_eq!(new.app.api_key_hashes, vec![hash_api_key(&new.api_key)]);
        let vapid = VapidKey::from_private_scalar(&new.app.vapid_private_key).unwrap();
        assert_eq!(vapid.public_key_base64url(), new.vapid_public_key);
        assert_eq!(new.app.id.len(), 12);
        assert!(new.api_key.starts_with("av_"));
    }
}
