//! HTTPS to push services: HTTP/2 connection pools per origin, HTTP/1.1 where a service
//! offers nothing else, rustls for TLS.
//!
//! One [`PushClient`] is meant to be shared by every sender of the process: it owns the pools.
//! Trust comes from the system's roots plus any extra CA certificates the operator names (a
//! loopback mock push service in tests).

mod coalesce;
mod pool;
pub mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use pool::{Pools, Route};

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
    #[error("cannot connect to push service {origin}: {reason}")]
    Connect { origin: String, reason: String },
    #[error("request to the push service failed: {0}")]
    Request(String),
    #[error("the push service refused the stream before processing it")]
    StreamRefused,
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
    pub extra_ca_files: Vec<PathBuf>,
    /// Whole-request timeout (waiting for a stream, sending, reading the answer).
    pub request_timeout: Duration,
    /// TCP + TLS + HTTP/2 handshake timeout.
    pub connect_timeout: Duration,
    /// HTTP/2 connections opened to one origin at most.
    pub max_connections_per_origin: usize,
    /// Requests in flight to one origin at most, across its connections.
    pub max_in_flight_per_origin: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            extra_ca_files: Vec::new(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_connections_per_origin: 8,
            max_in_flight_per_origin: 800,
        }
    }
}

/// A shared HTTPS client for push services.
#[derive(Clone)]
pub struct PushClient {
    inner: Arc<Inner>,
}

struct Inner {
    pools: Pools,
    http1: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    request_timeout: Duration,
}

impl PushClient {
    pub fn new(config: &ClientConfig) -> Result<Self, TransportError> {
        let tls = tls::client_config(&config.extra_ca_files)?;
        let connector = tls::http1_connector(&tls, true, HttpConnector::new());
        let http1 = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(Self {
            inner: Arc::new(Inner {
                pools: Pools::new(tls, config.clone()),
                http1,
                request_timeout: config.request_timeout,
            }),
        })
    }

    /// Sends one push request and reads the answer, within the request timeout.
    pub async fn send(&self, request: Request<Bytes>) -> Result<PushResponse, TransportError> {
        self.send_with(|| request.clone()).await
    }

    /// [`PushClient::send`] with the request made by `make` for each attempt. A stream the push
    /// service refuses is sent again, and making the request anew spares the copy of every
    /// request that [`PushClient::send`] keeps for that.
    pub async fn send_with(
        &self,
        make: impl Fn() -> Request<Bytes>,
    ) -> Result<PushResponse, TransportError> {
        let timeout = self.inner.request_timeout;
        tokio::time::timeout(timeout, self.exchange(make))
            .await
            .map_err(|_| TransportError::Timeout(timeout))?
    }

    async fn exchange(
        &self,
        make: impl Fn() -> Request<Bytes>,
    ) -> Result<PushResponse, TransportError> {
        // A refused stream was never processed (RFC 9113 §8.7), so sending it again is safe.
        const ATTEMPTS_ON_REFUSAL: usize = 3;
        for _ in 1..ATTEMPTS_ON_REFUSAL {
            match self.exchange_once(make()).await {
                Err(TransportError::StreamRefused) => continue,
                other => return other,
            }
        }
        self.exchange_once(make()).await
    }

    async fn exchange_once(&self, request: Request<Bytes>) -> Result<PushResponse, TransportError> {
        match self.inner.pools.acquire(request.uri()).await? {
            Route::Http2(lease) => lease.send(request).await,
            // Boxed for the same reason as the pool's handshake: rare, and large.
            Route::Http1(_permit) => Box::pin(self.send_http1(request)).await,
        }
    }

    async fn send_http1(&self, request: Request<Bytes>) -> Result<PushResponse, TransportError> {
        let response = self
            .inner
            .http1
            .request(request.map(Full::new))
            .await
            .map_err(|e| TransportError::Request(error_chain(&e)))?;
        let (parts, body) = response.into_parts();
        // Push services answer with short bodies; a longer one is cut, not an error.
        let reason = match Limited::new(body, 64 * 1024).collect().await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_REASON_LEN)]).into_owned()
            }
            Err(_) => String::new(),
        };
        Ok(PushResponse {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            reason,
        })
    }
}

/// hyper's and h2's errors hide the useful part (refused, TLS, reset) in their sources.
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
