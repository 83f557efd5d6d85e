//! Errors of the mock push service's library API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::ConfigError;

/// Why the mock could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// The configuration cannot work.
    #[error("invalid mock push service configuration: {0}")]
    Config(#[from] ConfigError),
    /// The listening socket could not be opened.
    #[error("could not listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The self-signed certificate could not be made.
    #[error("could not generate the mock's TLS certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the certificate or the protocol settings.
    #[error("could not configure TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Subscriber keys are unusable.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// A line of a `--verify-keys` file is unusable.
    #[error("{path}, line {line}: {reason}")]
    KeysFile {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
}

/// Why subscriber keys cannot be used to decrypt.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// `ece` (OpenSSL) failed to make keys.
    #[error("could not generate subscriber keys with ece: {0}")]
    Generate(ece::Error),
    /// A field is not base64url.
    #[error("{field} is not base64url")]
    NotBase64 {
        /// Which field.
        field: &'static str,
    },
    /// A field has the wrong length.
    #[error("{field} is {actual} bytes; expected {expected}")]
    Length {
        /// Which field.
        field: &'static str,
        /// Length required.
        expected: usize,
        /// Length given.
        actual: usize,
    },
    /// The private key is not a valid P-256 scalar.
    #[error("private_key is not a valid P-256 private key (zero or not below the group order)")]
    Scalar,
    /// `p256dh` is not the public key of `private_key`.
    #[error("p256dh is not the public key of private_key; drop p256dh to derive it")]
    Mismatch,
}

/// [`crate::MockPushService::wait_for_deliveries`] gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("waited {waited:?} for {expected} deliveries; only {delivered} arrived")]
pub struct WaitTimedOut {
    /// Deliveries waited for.
    pub expected: u64,
    /// Deliveries counted when the wait ended.
    pub delivered: u64,
    /// How long the wait lasted.
    pub waited: Duration,
}
