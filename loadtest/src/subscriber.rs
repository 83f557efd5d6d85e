//! Subscribers whose keys the mock holds, so that it can decrypt what it receives and check that
//! Aviso's encryption works with an independent implementation (the `ece` crate, on OpenSSL).
//!
//! A test makes one with [`TestSubscriber::generate`], hands its browser-style subscription to
//! the sender, and later reads the decrypted plaintexts back from the mock. A load test writes
//! the keys as JSON lines ([`SubscriberKeys`]) for the standalone binary's `--verify-keys`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde::{Deserialize, Serialize};

use crate::error::{KeyError, MockError};
use crate::server::MockPushService;

const PRIVATE_KEY_LEN: usize = 32;
const PUBLIC_KEY_LEN: usize = 65;
const AUTH_LEN: usize = 16;

/// A browser stand-in: a P-256 key pair and auth secret made by `ece`, registered with a mock.
#[derive(Clone)]
pub struct TestSubscriber {
    id: String,
    endpoint: String,
    keys: RegisteredKeys,
}

impl std::fmt::Debug for TestSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestSubscriber")
            .field("id", &self.id)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl TestSubscriber {
    /// Makes new keys for endpoint id `id` and registers them with `mock`, which from then on
    /// decrypts every message sent to `mock.endpoint(id)`.
    pub fn generate(mock: &MockPushService, id: &str) -> Result<Self, MockError> {
        let subscriber = Self::generate_unregistered(mock, id)?;
        mock.register(id, subscriber.keys.clone());
        Ok(subscriber)
    }

    /// Makes new keys for endpoint id `id` without telling `mock`: it counts the messages but
    /// does not decrypt them (a load test's many subscribers, where decrypting each message
    /// would make the mock the bottleneck).
    pub fn generate_unregistered(mock: &MockPushService, id: &str) -> Result<Self, MockError> {
        let (key_pair, auth) =
            ece::generate_keypair_and_auth_secret().map_err(KeyError::Generate)?;
        let components = key_pair.raw_components().map_err(KeyError::Generate)?;
        let keys = RegisteredKeys::new(
            components.private_key(),
            Some(components.public_key()),
            &auth,
        )?;
        Ok(Self {
            id: id.to_owned(),
            endpoint: mock.endpoint(id),
            keys,
        })
    }

    /// The endpoint id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The subscription's endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The public key, uncompressed (65 bytes).
    pub fn public_key(&self) -> &[u8; 65] {
        &self.keys.public_key
    }

    /// The auth secret (16 bytes).
    pub fn auth_secret(&self) -> &[u8; 16] {
        &self.keys.auth
    }

    /// `keys.p256dh` as a browser gives it: base64url without padding.
    pub fn p256dh(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.keys.public_key)
    }

    /// `keys.auth` as a browser gives it: base64url without padding.
    pub fn auth(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.keys.auth)
    }

    /// The `PushSubscription.toJSON()` shape: `{"endpoint", "keys": {"p256dh", "auth"}}`.
    pub fn subscription_json(&self) -> serde_json::Value {
        serde_json::json!({
            "endpoint": self.endpoint,
            "keys": { "p256dh": self.p256dh(), "auth": self.auth() },
        })
    }

    /// The keys as one line of a `--verify-keys` file.
    pub fn keys(&self) -> SubscriberKeys {
        SubscriberKeys {
            id: self.id.clone(),
            private_key: URL_SAFE_NO_PAD.encode(self.keys.private_key),
            p256dh: Some(self.p256dh()),
            auth: self.auth(),
        }
    }
}

/// One subscriber's keys, base64url without padding: a line of a `--verify-keys` JSONL file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriberKeys {
    /// Endpoint id (the `{id}` of `/push/{id}`).
    pub id: String,
    /// The 32-byte P-256 private scalar.
    pub private_key: String,
    /// The 65-byte uncompressed public key; derived from `private_key` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p256dh: Option<String>,
    /// The 16-byte auth secret.
    pub auth: String,
}

impl SubscriberKeys {
    pub(crate) fn decode(&self) -> Result<RegisteredKeys, KeyError> {
        let decode = |field: &'static str, text: &str| {
            URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|_| KeyError::NotBase64 { field })
        };
        let private_key = decode("private_key", &self.private_key)?;
        let public_key = self
            .p256dh
            .as_deref()
            .map(|text| decode("p256dh", text))
            .transpose()?;
        let auth = decode("auth", &self.auth)?;
        RegisteredKeys::new(&private_key, public_key.as_deref(), &auth)
    }
}

/// Keys checked to be a consistent P-256 pair, so that decryption can only fail on the message.
#[derive(Clone)]
pub(crate) struct RegisteredKeys {
    private_key: [u8; PRIVATE_KEY_LEN],
    public_key: [u8; PUBLIC_KEY_LEN],
    auth: [u8; AUTH_LEN],
}

impl RegisteredKeys {
    pub(crate) fn new(
        private_key: &[u8],
        public_key: Option<&[u8]>,
        auth: &[u8],
    ) -> Result<Self, KeyError> {
        // OpenSSL drops leading zero bytes of the scalar; put them back.
        let mut scalar = [0u8; PRIVATE_KEY_LEN];
        let offset = PRIVATE_KEY_LEN
            .checked_sub(private_key.len())
            .ok_or(KeyError::Length {
                field: "private_key",
                expected: PRIVATE_KEY_LEN,
                actual: private_key.len(),
            })?;
        scalar[offset..].copy_from_slice(private_key);
        let secret = p256::SecretKey::from_bytes(&scalar.into()).map_err(|_| KeyError::Scalar)?;
        let derived = secret.public_key().to_encoded_point(false);
        let derived = derived.as_bytes();
        if let Some(given) = public_key
            && given != derived
        {
            return Err(KeyError::Mismatch);
        }
        let public_key: [u8; PUBLIC_KEY_LEN] =
            derived.try_into().map_err(|_| KeyError::Length {
                field: "p256dh",
                expected: PUBLIC_KEY_LEN,
                actual: derived.len(),
            })?;
        let auth: [u8; AUTH_LEN] = auth.try_into().map_err(|_| KeyError::Length {
            field: "auth",
            expected: AUTH_LEN,
            actual: auth.len(),
        })?;
        Ok(Self {
            private_key: scalar,
            public_key,
            auth,
        })
    }

    /// Decrypts an `aes128gcm` body with `ece` (OpenSSL).
    pub(crate) fn decrypt(&self, body: &[u8]) -> Result<Vec<u8>, ece::Error> {
        let components = ece::EcKeyComponents::new(&self.private_key[..], &self.public_key[..]);
        ece::decrypt(&components, &self.auth, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ece_keys() -> (Vec<u8>, Vec<u8>, [u8; 16]) {
        let (pair, auth) = ece::generate_keypair_and_auth_secret().unwrap();
        let components = pair.raw_components().unwrap();
        (
            components.private_key().to_vec(),
            components.public_key().to_vec(),
            auth,
        )
    }

    #[test]
    fn derives_the_public_key_and_decrypts_what_ece_encrypts() {
        let (private_key, public_key, auth) = ece_keys();
        let keys = SubscriberKeys {
            id: "a".into(),
            private_key: URL_SAFE_NO_PAD.encode(&private_key),
            p256dh: None,
            auth: URL_SAFE_NO_PAD.encode(auth),
        }
        .decode()
        .unwrap();
        assert_eq!(keys.public_key.as_slice(), public_key.as_slice());
        let body = ece::encrypt(&public_key, &auth, b"hello").unwrap();
        assert_eq!(keys.decrypt(&body).unwrap(), b"hello");
    }

    #[test]
    fn refuses_inconsistent_or_malformed_keys() {
        let (private_key, _, auth) = ece_keys();
        let (_, other_public, _) = ece_keys();
        assert!(matches!(
            RegisteredKeys::new(&private_key, Some(&other_public), &auth),
            Err(KeyError::Mismatch)
        ));
        assert!(matches!(
            RegisteredKeys::new(&private_key, None, &auth[..15]),
            Err(KeyError::Length { field: "auth", .. })
        ));
        assert!(matches!(
            RegisteredKeys::new(&[0u8; 32], None, &auth),
            Err(KeyError::Scalar)
        ));
        assert!(matches!(
            RegisteredKeys::new(&[1u8; 33], None, &auth),
            Err(KeyError::Length { .. })
        ));
    }
}
