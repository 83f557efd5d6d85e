//! HTTPS to push services: hyper over rustls, HTTP/2 when the server offers it.
//!
//! [`PushClient`] owns a connection pool per origin (hyper-util's), so one client is meant to be
//! shared by every sender of the process. Trust comes from the system's roots plus any extra CA
//! certificates the operator names (a loopback mock push service in tests).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// How much of a push service's answer body is kept: enough for its reason, no more.
pub const MAX_REASON_LEN: usize = 512;

/// Why a request did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot read CA certificate file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("no trusted root certificates: install the system's CA certificates or pass --ca-cert")]
    NoRoots,
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("request to the push service failed: {0}")]
    Request(String),
    #[error("the push service did not answer within {0:?}")]
    Timeout(Duration),
}

/// A push service's answer, with its body cut to [`MAX_REASON_LEN`].
#[derive(Debug, Clone)]
pub struct PushResponse {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub reason: String,
}

/// Settings of a [`PushClient`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// PEM files of extra trusted roots, added to the system's.
    pub extra_ca_files: Vec<std::path::PathBuf>,
    /// Whole-request timeout (connect, send, answer).
    pub request_timeout: Duration,
    /// Idle connections kept per origin.
    pub pool_max_idle_per_host: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            extra_ca_files: Vec::new(),
            request_timeout: Duration::from_secs(30),
            pool_max_idle_per_host: 32,
        }
    }
}

/// A pooled HTTPS client for push services.
#[derive(Clone)]
pub struct PushClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    request_timeout: Duration,
}

impl PushClient {
    pub fn new(config: &ClientConfig) -> Result<Self, TransportError> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        for path in &config.extra_ca_files {
            for cert in read_ca_file(path)? {
                roots.add(cert).map_err(|e| TransportError::CaFile {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
            }
        }
        if roots.is_empty() {
            return Err(TransportError::NoRoots);
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(Self {
            client,
            request_timeout: config.request_timeout,
        })
    }

    /// Sends one push request and reads the answer.
    pub async fn send(&self, request: Request<Bytes>) -> Result<PushResponse, TransportError> {
        let request = request.map(Full::new);
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| TransportError::Request(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            // Push services answer with short bodies; a longer one is cut, not an error.
            let reason = match Limited::new(body, 64 * 1024).collect().await {
                Ok(collected) => {
                    let bytes = collected.to_bytes();
                    let cut = &bytes[..bytes.len().min(MAX_REASON_LEN)];
                    String::from_utf8_lossy(cut).into_owned()
                }
                Err(_) => String::new(),
            };
            Ok(PushResponse {
                status: parts.status,
                version: parts.version,
                headers: parts.headers,
                reason,
            })
        };
        tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| TransportError::Timeout(self.request_timeout))?
    }
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let ca_error = |reason: String| TransportError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| ca_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(ca_error("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// hyper's errors hide the useful part (refused, TLS, DNS) in their sources.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
