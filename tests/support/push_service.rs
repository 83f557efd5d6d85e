//! The project's mock push service (`aviso-loadtest`), as the tests use it: every subscriber's
//! keys are made by the `ece` crate (OpenSSL) and registered, so each message is decrypted with
//! `ece` and its VAPID JWT verified with `jsonwebtoken` (RustCrypto): implementations
//! independent of Aviso's own.

use std::path::Path;

pub use aviso_loadtest::{MockConfig, MockPushService, TestSubscriber};

/// Starts a mock on a free loopback port.
pub async fn start(config: MockConfig) -> MockPushService {
    MockPushService::start(config)
        .await
        .expect("start the mock push service")
}

/// What the tests ask of the mock beyond its own API.
pub trait MockExt {
    /// Writes the CA certificate that Aviso must trust to reach the mock.
    fn write_ca(&self, path: &Path);
    /// A new subscriber whose messages the mock decrypts; its browser-style subscription JSON.
    fn subscribe(&self, id: &str) -> serde_json::Value;
    /// Push requests received so far, whatever they were answered.
    fn requests(&self) -> u64;
    /// Endpoints that accepted at least one message.
    fn distinct_delivered(&self) -> usize;
}

impl MockExt for MockPushService {
    fn write_ca(&self, path: &Path) {
        self.write_ca_cert(path).expect("write the CA certificate");
    }

    fn subscribe(&self, id: &str) -> serde_json::Value {
        TestSubscriber::generate(self, id)
            .expect("subscriber keys")
            .subscription_json()
    }

    fn requests(&self) -> u64 {
        self.stats().requests
    }

    fn distinct_delivered(&self) -> usize {
        self.stats().distinct_endpoints as usize
    }
}
