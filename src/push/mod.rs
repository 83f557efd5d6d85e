//! The Web Push protocol core: everything needed to turn a payload and a browser's
//! `PushSubscription` into one HTTP request a push service accepts.
//!
//! - [`subscription`]: parse and validate the browser's subscription JSON.
//! - [`encryption`]: RFC 8291 message encryption (`aes128gcm`, RFC 8188), one record; a batch
//!   of messages at once, its P-256 part on a multi-buffer backend where there is one.
//! - [`vapid`]: RFC 8292 application-server keys, ES256 JWTs and the per-audience cache.
//! - [`outcome`]: what a push service's answer means (deliver, delete, retry, alarm).
//! - [`service`]: which push service (FCM, Mozilla, Apple, WNS) an endpoint belongs to.
//! - [`request`]: RFC 8030 request options (`TTL`, `Urgency`, `Topic`) and the request itself.
//!
//! This module knows nothing of servers, stores or configuration: it does no I/O.

pub mod base64url;
pub mod encryption;
mod hkdf;
#[cfg(feature = "crypto-mb")]
mod multibuffer;
pub mod outcome;
pub mod request;
pub mod service;
pub mod subscription;
pub mod vapid;

pub use encryption::{EcBackend, EncryptError, MAX_PLAINTEXT_LEN, encrypt, encrypt_batch};
pub use outcome::Outcome;
pub use request::{PushOptions, RequestError, RequestHead, Topic, Ttl, Urgency, build_request};
pub use service::PushService;
pub use subscription::{PushSubscription, SubscriptionError, SubscriptionKeys};
pub use vapid::{VapidError, VapidHeaderCache, VapidKey};
