//! A mock Web Push service for Aviso's tests and load tests: it stands in for FCM, Mozilla and
//! Apple on loopback.
//!
//! It speaks HTTPS with HTTP/2 (and HTTP/1.1) like the real services, checks every request as
//! strictly as they do (`TTL`, `Urgency`, `Topic`, `Content-Encoding: aes128gcm`, body size, and
//! the VAPID JWT, verified with `jsonwebtoken` on RustCrypto), answers with a configurable mix of
//! latency, `410`, `429` and `503`, and counts what it accepted per endpoint. For subscribers made
//! with [`TestSubscriber`] it also decrypts each message with the independent `ece` crate and
//! keeps the plaintext.
//!
//! ```no_run
//! # async fn demo() -> Result<(), aviso_loadtest::MockError> {
//! use std::time::Duration;
//! use aviso_loadtest::{MockConfig, MockPushService, TestSubscriber};
//!
//! let mock = MockPushService::start(MockConfig::default().gone_fraction(0.1)).await?;
//! let subscriber = TestSubscriber::generate(&mock, "alice")?;
//! // Give `subscriber.subscription_json()` to the sender, trust `mock.ca_cert_pem()`, send...
//! mock.wait_for_deliveries(1, Duration::from_secs(5)).await.ok();
//! println!("{:?}", mock.plaintexts("alice"));
//! mock.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The `aviso-mock-push` binary runs the same service standalone for load tests.

mod config;
mod error;
mod headers;
mod records;
mod rejection;
mod server;
mod subscriber;
mod tls;
mod vapid;

pub use config::{
    Behaviour, ConfigError, DEFAULT_MAX_CONCURRENT_STREAMS, DEFAULT_PAYLOAD_LIMIT, Latency,
    MockConfig, Throttle, Unavailable,
};
pub use error::{KeyError, MockError, WaitTimedOut};
pub use records::{Delivery, RequestTimeline, Stats, TIMELINE_SLOT, VerificationFailure};
pub use server::{MockPushService, is_gone};
pub use subscriber::{SubscriberKeys, TestSubscriber};
pub use tls::issue_server_cert;
