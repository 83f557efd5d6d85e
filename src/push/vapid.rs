//! VAPID (RFC 8292): the application server's key pair and the `Authorization` header.
//!
//! A VAPID JWT depends only on (key, audience, expiry), so [`VapidHeaderCache`] signs once per
//! push-service origin and hands the same header out until shortly before it expires: sending to
//! a million FCM endpoints costs one signature, not a million.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::agreement::{ECDH_P256, PrivateKey};
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use http::HeaderValue;
use url::Url;

use super::base64url;
use super::subscription::PushSubscription;

/// The longest JWT lifetime RFC 8292 §2 allows.
pub const MAX_VALIDITY: Duration = Duration::from_secs(24 * 3600);
/// Apple refuses JWTs refreshed more often than hourly; a 2 h floor keeps refreshes ≥ 1.5 h apart.
pub const MIN_VALIDITY: Duration = Duration::from_secs(2 * 3600);
/// The default JWT lifetime.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(12 * 3600);

/// Why a VAPID key, subject or JWT could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VapidError {
    #[error("VAPID private key is neither PEM nor a base64url 32-byte P-256 scalar: {0}")]
    KeyFormat(String),
    #[error("VAPID private key is not a valid P-256 key: {0}")]
    KeyRejected(String),
    #[error(
        "VAPID subject `{0}` must be a `mailto:` address (mailto:you@example.com) or an \
         `https:` URL; push services (Apple in particular) reject anything else"
    )]
    Subject(String),
    #[error("VAPID JWT validity must be between {min} and {max} seconds, got {0} s", min = MIN_VALIDITY.as_secs(), max = MAX_VALIDITY.as_secs())]
    Validity(u64),
    #[error("VAPID audience `{0}` is not an origin like https://push.example.com")]
    Audience(String),
    #[error("the system random generator failed")]
    Random,
}

/// The application server's P-256 key pair.
pub struct VapidKey {
    key_pair: EcdsaKeyPair,
    public_key_base64url: String,
}

impl std::fmt::Debug for VapidKey {
    // Never print the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public_key", &self.public_key_base64url)
            .finish_non_exhaustive()
    }
}

impl VapidKey {
    /// Generates a new key pair.
    pub fn generate() -> Result<Self, VapidError> {
        let key_pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| VapidError::Random)?;
        Ok(Self::from_key_pair(key_pair))
    }

    /// Loads a private key written as PEM (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`) or as
    /// the raw base64url scalar that the npm `web-push` tool prints.
    pub fn from_text(text: &str) -> Result<Self, VapidError> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            let pem = pem::parse(text).map_err(|e| VapidError::KeyFormat(e.to_string()))?;
            let key_pair = EcdsaKeyPair::from_private_key_der(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                pem.contents(),
            )
            .map_err(|e| VapidError::KeyRejected(e.to_string()))?;
            return Ok(Self::from_key_pair(key_pair));
        }
        let scalar = base64url::decode(text).map_err(|e| VapidError::KeyFormat(e.to_string()))?;
        Self::from_private_scalar(&scalar)
    }

    /// Loads a raw 32-byte big-endian private scalar.
    pub fn from_private_scalar(scalar: &[u8]) -> Result<Self, VapidError> {
        if scalar.len() != 32 {
            return Err(VapidError::KeyFormat(format!(
                "expected 32 bytes, got {}",
                scalar.len()
            )));
        }
        let public = PrivateKey::from_private_key(&ECDH_P256, scalar)
            .map_err(|e| VapidError::KeyRejected(e.to_string()))?
            .compute_public_key()
            .map_err(|e| VapidError::KeyRejected(e.to_string()))?;
        let key_pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            scalar,
            public.as_ref(),
        )
        .map_err(|e| VapidError::KeyRejected(e.to_string()))?;
        Ok(Self::from_key_pair(key_pair))
    }

    fn from_key_pair(key_pair: EcdsaKeyPair) -> Self {
        let public_key_base64url = base64url::encode(key_pair.public_key().as_ref());
        Self {
            key_pair,
            public_key_base64url,
        }
    }

    /// The public key as the uncompressed point in base64url: a page's `applicationServerKey`.
    pub fn public_key_base64url(&self) -> &str {
        &self.public_key_base64url
    }

    /// The public key's raw bytes (65-byte uncompressed point).
    pub fn public_key_bytes(&self) -> &[u8] {
        self.key_pair.public_key().as_ref()
    }

    /// The private key as PKCS#8 PEM, for writing to a key file.
    pub fn to_pem(&self) -> Result<String, VapidError> {
        let der = self
            .key_pair
            .to_pkcs8v1()
            .map_err(|e| VapidError::KeyRejected(e.to_string()))?;
        Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref())))
    }

    /// The raw 32-byte private scalar, for compact storage.
    pub fn private_scalar(&self) -> Result<Vec<u8>, VapidError> {
        let bin: aws_lc_rs::encoding::EcPrivateKeyBin<'_> = self
            .key_pair
            .private_key()
            .as_be_bytes()
            .map_err(|e| VapidError::KeyRejected(e.to_string()))?;
        Ok(bin.as_ref().to_vec())
    }

    /// Signs a JWT for `audience` (an origin) expiring at `expires_at` (Unix seconds).
    pub fn sign_jwt(
        &self,
        audience: &str,
        subject: &VapidSubject,
        expires_at: u64,
    ) -> Result<String, VapidError> {
        // {"typ":"JWT","alg":"ES256"}, fixed, so encoded once by hand.
        const HEADER: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9";
        let claims = serde_json::json!({"aud": audience, "exp": expires_at, "sub": subject.0});
        let mut jwt = String::with_capacity(256);
        jwt.push_str(HEADER);
        jwt.push('.');
        jwt.push_str(&base64url::encode(claims.to_string().as_bytes()));
        let signature = self
            .key_pair
            .sign(&SystemRandom::new(), jwt.as_bytes())
            .map_err(|_| VapidError::Random)?;
        jwt.push('.');
        jwt.push_str(&base64url::encode(signature.as_ref()));
        Ok(jwt)
    }
}

/// The contact a push service may use to reach the sender: `mailto:` or `https:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VapidSubject(String);

impl VapidSubject {
    pub fn parse(subject: &str) -> Result<Self, VapidError> {
        let invalid = || VapidError::Subject(subject.to_owned());
        let url = Url::parse(subject).map_err(|_| invalid())?;
        let valid = match url.scheme() {
            "mailto" => {
                let address = url.path();
                matches!(address.split_once('@'), Some((user, host)) if !user.is_empty() && host.contains('.'))
            }
            "https" => url.host_str().is_some_and(|h| !h.is_empty()),
            _ => false,
        };
        if valid {
            Ok(Self(subject.to_owned()))
        } else {
            Err(invalid())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

struct CachedHeader {
    value: HeaderValue,
    refresh_at: u64,
}

/// Hands out the `Authorization: vapid t=…, k=…` header per audience, signing again only when
/// the cached JWT is close to its expiry.
pub struct VapidHeaderCache {
    key: VapidKey,
    subject: VapidSubject,
    validity: Duration,
    refresh_margin: Duration,
    entries: RwLock<HashMap<String, CachedHeader>>,
    signatures: AtomicU64,
}

impl VapidHeaderCache {
    /// `validity` is the JWT lifetime (between [`MIN_VALIDITY`] and [`MAX_VALIDITY`]).
    pub fn new(
        key: VapidKey,
        subject: VapidSubject,
        validity: Duration,
    ) -> Result<Self, VapidError> {
        if !(MIN_VALIDITY..=MAX_VALIDITY).contains(&validity) {
            return Err(VapidError::Validity(validity.as_secs()));
        }
        Ok(Self {
            key,
            subject,
            validity,
            // Re-sign with a quarter of the lifetime left (at most an hour): requests in flight
            // and clock skew at the push service never see an expired token.
            refresh_margin: (validity / 4).min(Duration::from_secs(3600)),
            entries: RwLock::new(HashMap::new()),
            signatures: AtomicU64::new(0),
        })
    }

    pub fn key(&self) -> &VapidKey {
        &self.key
    }

    /// The header for `audience` (an endpoint's origin, e.g. `https://fcm.googleapis.com`).
    pub fn authorization(&self, audience: &str) -> Result<HeaderValue, VapidError> {
        self.authorization_at(audience, unix_now())
    }

    /// As [`Self::authorization`], at a given time (Unix seconds).
    pub fn authorization_at(&self, audience: &str, now: u64) -> Result<HeaderValue, VapidError> {
        // Every audience this takes is `https://` and an authority (`validate_audience`).
        let authority = audience
            .strip_prefix(HTTPS)
            .ok_or_else(|| VapidError::Audience(audience.to_owned()))?;
        self.header_for(authority, now)
    }

    /// The header for `subscription`'s push service, with no allocation once cached: the cache
    /// is keyed by the endpoint's authority, the audience written out only to sign.
    pub fn authorization_for(
        &self,
        subscription: &PushSubscription,
    ) -> Result<HeaderValue, VapidError> {
        self.header_for(subscription.authority(), unix_now())
    }

    /// The cached header of the origin `https://{authority}`, signed anew when due.
    fn header_for(&self, authority: &str, now: u64) -> Result<HeaderValue, VapidError> {
        if let Ok(entries) = self.entries.read()
            && let Some(cached) = entries.get(authority)
            && now < cached.refresh_at
        {
            return Ok(cached.value.clone());
        }
        // Sign under the write lock so that a burst of first requests signs once, not once each.
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(cached) = entries.get(authority)
            && now < cached.refresh_at
        {
            return Ok(cached.value.clone());
        }
        let audience = format!("{HTTPS}{authority}");
        validate_audience(&audience)?;
        let expires_at = now + self.validity.as_secs();
        let jwt = self.key.sign_jwt(&audience, &self.subject, expires_at)?;
        self.signatures.fetch_add(1, Ordering::Relaxed);
        let header = format!("vapid t={jwt}, k={}", self.key.public_key_base64url());
        let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(header))
            .map_err(|_| VapidError::Audience(audience))?;
        entries.insert(
            authority.to_owned(),
            CachedHeader {
                value: value.clone(),
                refresh_at: expires_at - self.refresh_margin.as_secs(),
            },
        );
        Ok(value)
    }

    /// How many JWTs this cache has signed since it was made.
    pub fn signatures_made(&self) -> u64 {
        self.signatures.load(Ordering::Relaxed)
    }
}

const HTTPS: &str = "https://";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn validate_audience(audience: &str) -> Result<(), VapidError> {
    let invalid = || VapidError::Audience(audience.to_owned());
    let url = Url::parse(audience).map_err(|_| invalid())?;
    if url.origin().ascii_serialization() == audience && url.scheme() == "https" {
        Ok(())
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> VapidHeaderCache {
        VapidHeaderCache::new(
            VapidKey::generate().unwrap(),
            VapidSubject::parse("mailto:ops@example.com").unwrap(),
            DEFAULT_VALIDITY,
        )
        .unwrap()
    }

    #[test]
    fn key_round_trips_through_pem_and_raw_scalar() {
        let key = VapidKey::generate().unwrap();
        let from_pem = VapidKey::from_text(&key.to_pem().unwrap()).unwrap();
        assert_eq!(from_pem.public_key_base64url(), key.public_key_base64url());
        let scalar = base64url::encode(&key.private_scalar().unwrap());
        let from_raw = VapidKey::from_text(&scalar).unwrap();
        assert_eq!(from_raw.public_key_base64url(), key.public_key_base64url());
        assert_eq!(key.public_key_bytes().len(), 65);
        assert!(matches!(
            VapidKey::from_text("AAAA"),
            Err(VapidError::KeyFormat(_))
        ));
        assert!(matches!(
            VapidKey::from_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"),
            Err(VapidError::KeyRejected(_))
        ));
        assert!(!format!("{key:?}").contains(&scalar));
    }

    #[test]
    fn subject_must_be_mailto_or_https() {
        assert!(VapidSubject::parse("mailto:you@example.com").is_ok());
        assert!(VapidSubject::parse("https://example.com/contact").is_ok());
        for bad in [
            "you@example.com",
            "mailto:",
            "mailto:nobody",
            "http://example.com",
            "",
            "https://",
        ] {
            assert!(VapidSubject::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn validity_is_bounded() {
        let make = |secs| {
            VapidHeaderCache::new(
                VapidKey::generate().unwrap(),
                VapidSubject::parse("mailto:a@b.example").unwrap(),
                Duration::from_secs(secs),
            )
        };
        assert!(matches!(make(25 * 3600), Err(VapidError::Validity(_))));
        assert!(matches!(make(60), Err(VapidError::Validity(_))));
        assert!(make(24 * 3600).is_ok());
    }

    #[test]
    fn signs_once_per_audience_until_close_to_expiry() {
        let cache = cache();
        let now = 1_800_000_000;
        let first = cache
            .authorization_at("https://fcm.googleapis.com", now)
            .unwrap();
        assert_eq!(
            cache
                .authorization_at("https://fcm.googleapis.com", now + 3600)
                .unwrap(),
            first
        );
        assert_eq!(cache.signatures_made(), 1);
        cache
            .authorization_at("https://updates.push.services.mozilla.com", now)
            .unwrap();
        assert_eq!(cache.signatures_made(), 2);
        // With an hour or less left, a new token is signed.
        let later = cache
            .authorization_at("https://fcm.googleapis.com", now + 11 * 3600)
            .unwrap();
        assert_ne!(later, first);
        assert_eq!(cache.signatures_made(), 3);
        let text = later.to_str().unwrap();
        assert!(text.starts_with("vapid t=ey"));
        assert!(text.ends_with(&format!(", k={}", cache.key().public_key_base64url())));
    }

    #[test]
    fn refuses_an_audience_that_is_not_an_origin() {
        let cache = cache();
        for bad in [
            "fcm.googleapis.com",
            "https://fcm.googleapis.com/fcm/send",
            "http://a.example",
        ] {
            assert!(matches!(
                cache.authorization_at(bad, 0),
                Err(VapidError::Audience(_))
            ));
        }
    }
}
