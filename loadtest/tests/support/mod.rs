//! A stand-in sender for the mock's tests, built only from libraries independent of the mock's
//! request handling: hyper-util's client over hyper-rustls (trusting the mock's CA), `ece` to
//! encrypt and `jsonwebtoken` to sign VAPID JWTs.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_rustls::builderstates::WantsProtocols1;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Every request in these tests is bounded by this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS client settings trusting only `ca_pem`, offering `alpn`.
pub fn tls_config(ca_pem: &str, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    config
}

/// TCP without Nagle: HEADERS and DATA go out as separate writes, and Nagle would hold the
/// second until the server's delayed ACK, about 40 ms per request.
fn tcp_connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http
}

/// What came back from the mock.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// The `reason` member of a rejection's JSON body.
    pub fn reason(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|json| json["reason"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// A Web Push sender: an HTTP client trusting the mock's CA and one VAPID key.
pub struct Sender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    vapid: VapidKey,
}

/// HTTPS only, trusting only `ca_pem`; the caller picks the HTTP versions offered.
fn https_to(ca_pem: &str) -> HttpsConnectorBuilder<WantsProtocols1> {
    HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(ca_pem, &[]))
        .https_only()
}

impl Sender {
    /// Offers both `h2` and `http/1.1`, as Aviso does.
    pub fn new(ca_pem: &str) -> Self {
        Self::over(
            https_to(ca_pem)
                .enable_all_versions()
                .wrap_connector(tcp_connector()),
        )
    }

    /// Offers no ALPN at all, like an HTTP/1.1-only client.
    pub fn http1_only(ca_pem: &str) -> Self {
        Self::over(
            https_to(ca_pem)
                .enable_http1()
                .wrap_connector(tcp_connector()),
        )
    }

    /// A sender over `connector`, with a VAPID key of its own.
    fn over(connector: HttpsConnector<HttpConnector>) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            vapid: VapidKey::generate(),
        }
    }

    pub fn vapid(&self) -> &VapidKey {
        &self.vapid
    }

    /// A valid `Authorization` header for pushes to `origin`.
    pub fn authorization(&self, origin: &str) -> String {
        self.vapid
            .authorization(origin, unix_now() + 12 * 3600, "mailto:ops@example.com")
    }

    /// A valid push of `body` with `TTL: 60`, plus `extra` headers (which replace defaults).
    pub async fn push(&self, endpoint: &str, body: Vec<u8>, extra: &[(&str, &str)]) -> Answer {
        let origin = origin_of(endpoint);
        let authorization = self.authorization(&origin);
        let mut headers = vec![
            ("ttl", "60"),
            ("content-encoding", "aes128gcm"),
            ("authorization", authorization.as_str()),
        ];
        for (name, value) in extra {
            headers.retain(|(existing, _)| existing != name);
            headers.push((name, value));
        }
        self.send(Method::POST, endpoint, &headers, body).await
    }

    /// Sends exactly the given headers.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .expect("the mock answered in time")
            .expect("the request reached the mock");
        let status = response.status();
        let version = response.version();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            version,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

/// A VAPID key pair (P-256) and JWT signing with `jsonwebtoken`.
pub struct VapidKey {
    encoding_key: EncodingKey,
    public_key: Vec<u8>,
}

impl VapidKey {
    pub fn generate() -> Self {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        Self {
            encoding_key: EncodingKey::from_ec_der(&key_pair.serialize_der()),
            public_key: key_pair.public_key_raw().to_vec(),
        }
    }

    /// `k`: the public key, base64url.
    pub fn k(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.public_key)
    }

    /// A signed ES256 JWT with these claims.
    pub fn jwt(&self, aud: &str, exp: u64, sub: &str) -> String {
        let claims = serde_json::json!({ "aud": aud, "exp": exp, "sub": sub });
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.encoding_key).unwrap()
    }

    /// `vapid t=<jwt>, k=<key>` with these claims.
    pub fn authorization(&self, aud: &str, exp: u64, sub: &str) -> String {
        format!("vapid t={}, k={}", self.jwt(aud, exp, sub), self.k())
    }
}

/// `https://host:port` of a URL.
pub fn origin_of(url: &str) -> String {
    let parsed = url::Url::parse(url).unwrap();
    parsed.origin().ascii_serialization()
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
