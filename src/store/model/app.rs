//! Apps: one site or product with its own keys and subscribers.

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

/// An application: one site or product with its own keys and subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub id: String,
    pub name: String,
    /// Origins allowed to call the public API (CORS), e.g. `https://shop.example`.
    pub origins: Vec<String>,
    /// The VAPID private key as its raw 32-byte scalar.
    pub vapid_private_key: Vec<u8>,
    /// Secret for the identity hash (HMAC-SHA256 of an external id).
    pub identity_secret: Vec<u8>,
    /// SHA-256 of each API key; keys themselves are never stored.
    pub api_key_hashes: Vec<[u8; 32]>,
    pub created_at: u64,
    /// Whether the demo page's "send me a test push" is enabled.
    #[serde(default)]
    pub demo: bool,
}

/// SHA-256 of an API key, as stored.
pub fn hash_api_key(key: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, key.as_bytes()).as_ref());
    out
}
