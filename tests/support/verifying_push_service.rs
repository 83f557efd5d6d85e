//! A loopback HTTPS push service for tests that checks what it receives the way a strict real
//! one would, with implementations independent of Aviso's: the body is decrypted with the `ece`
//! crate (OpenSSL) and the VAPID JWT verified with `jsonwebtoken` (RustCrypto).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A subscriber whose keys were made by the independent implementation.
pub struct Subscriber {
    pub id: String,
    pub components: ece::EcKeyComponents,
    pub public_key: Vec<u8>,
    pub auth: [u8; 16],
}

/// What the service received and made of one request.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    /// What the service answered.
    pub status: StatusCode,
    /// When the request arrived.
    pub at: std::time::Instant,
    /// The decrypted payload, or why decryption/verification failed.
    pub verdict: Result<Vec<u8>, String>,
}

#[derive(serde::Deserialize)]
struct Claims {
    aud: String,
    exp: u64,
    sub: String,
}

#[derive(Default)]
struct State {
    subscribers: HashMap<String, Subscriber>,
    received: Vec<Received>,
    /// Answers to give per subscriber id, in order, before answering 201 (after verifying).
    answers: HashMap<String, std::collections::VecDeque<(StatusCode, String)>>,
}

/// How the service behaves at the HTTP level.
#[derive(Clone)]
pub struct Options {
    /// Offer HTTP/2 in ALPN (otherwise only HTTP/1.1).
    pub http2: bool,
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`.
    pub max_concurrent_streams: u32,
    /// Time taken before each answer.
    pub latency: std::time::Duration,
    /// Decrypt and verify each message (off: only count, for large runs).
    pub verify: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            http2: true,
            max_concurrent_streams: 100,
            latency: std::time::Duration::ZERO,
            verify: true,
        }
    }
}

pub struct VerifyingPushService {
    addr: SocketAddr,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    ca_pem: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for VerifyingPushService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl VerifyingPushService {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("test certificate");
        let ca_pem = cert.cert.pem();
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("server certificate");
        tls.alpn_protocols = if options.http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State::default()));
        let origin = format!("https://{addr}");
        let task_state = state.clone();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task_connections = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                task_connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let options = options.clone();
                let acceptor = acceptor.clone();
                let state = task_state.clone();
                let origin = origin.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let max_streams = options.max_concurrent_streams;
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        let origin = origin.clone();
                        let options = options.clone();
                        let latency = options.latency;
                        async move {
                            tokio::time::sleep(latency).await;
                            Ok::<_, hyper::Error>(
                                handle(request, &state, &origin, options.verify).await,
                            )
                        }
                    });
                    let mut builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    builder.http2().max_concurrent_streams(max_streams);
                    let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        Self {
            addr,
            connections,
            ca_pem,
            state,
            task,
        }
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn write_ca(&self, path: &Path) {
        std::fs::write(path, &self.ca_pem).expect("write CA certificate");
    }

    /// A new subscriber with keys made by `ece`; returns its browser-style subscription JSON.
    pub fn subscribe(&self, id: &str) -> serde_json::Value {
        let (key_pair, auth) = ece::generate_keypair_and_auth_secret().expect("ece keys");
        let public_key = key_pair.pub_as_raw().expect("public key");
        let json = serde_json::json!({
            "endpoint": format!("https://{}/push/{id}", self.addr),
            "keys": {
                "p256dh": aviso::push::base64url::encode(&public_key),
                "auth": aviso::push::base64url::encode(&auth),
            }
        });
        let subscriber = Subscriber {
            id: id.to_owned(),
            components: key_pair.raw_components().expect("components"),
            public_key,
            auth,
        };
        self.state
            .lock()
            .unwrap()
            .subscribers
            .insert(id.to_owned(), subscriber);
        json
    }

    /// Answer `status` (with `reason` as the body) to the next request for `id`.
    pub fn answer(&self, id: &str, status: StatusCode, reason: &str) {
        self.answer_times(id, status, reason, 1);
    }

    /// Answer `status` to the next `times` requests for `id`.
    pub fn answer_times(&self, id: &str, status: StatusCode, reason: &str, times: usize) {
        let mut state = self.state.lock().unwrap();
        let queue = state.answers.entry(id.to_owned()).or_default();
        queue.extend(std::iter::repeat_n((status, reason.to_owned()), times));
    }

    /// Requests received so far.
    pub fn received_count(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }

    /// Distinct subscribers that got a `201 Created`.
    pub fn distinct_received(&self) -> usize {
        let state = self.state.lock().unwrap();
        state
            .received
            .iter()
            .filter(|r| r.status == StatusCode::CREATED)
            .map(|r| r.id.as_str())
            .collect::<std::collections::HashSet<_>>()
            .len()
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }
}

async fn handle(
    request: Request<hyper::body::Incoming>,
    state: &Mutex<State>,
    origin: &str,
    verify_messages: bool,
) -> Response<Full<Bytes>> {
    let id = request.uri().path().trim_start_matches("/push/").to_owned();
    let version = request.version();
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut state = state.lock().unwrap();
    let verdict = match state.subscribers.get(&id) {
        _ if !verify_messages => Ok(Vec::new()),
        None => Err(format!("unknown subscriber {id}")),
        Some(subscriber) => verify(&parts.headers, &body, subscriber, origin),
    };
    let planned = state
        .answers
        .get_mut(&id)
        .and_then(|queue| queue.pop_front());
    let (status, reason) = match (&verdict, planned) {
        (Err(e), _) => (StatusCode::BAD_REQUEST, e.clone()),
        (Ok(_), Some((status, reason))) => (status, reason),
        (Ok(_), None) => (StatusCode::CREATED, String::new()),
    };
    state.received.push(Received {
        id: id.clone(),
        version,
        headers: parts.headers,
        status,
        at: std::time::Instant::now(),
        verdict,
    });
    let retry_after = if reason.is_empty() { "1" } else { "7" };
    let mut response = Response::new(Full::new(Bytes::from(reason)));
    *response.status_mut() = status;
    if status == StatusCode::CREATED {
        response.headers_mut().insert(
            "location",
            format!("{origin}/message/{id}").parse().unwrap(),
        );
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert("retry-after", retry_after.parse().unwrap());
    }
    response
}

fn verify(
    headers: &http::HeaderMap,
    body: &[u8],
    subscriber: &Subscriber,
    origin: &str,
) -> Result<Vec<u8>, String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(format!("no {name} header"))
    };
    if header("content-encoding")? != "aes128gcm" {
        return Err("content-encoding is not aes128gcm".into());
    }
    header("ttl")?
        .parse::<u32>()
        .map_err(|e| format!("bad TTL: {e}"))?;
    let authorization = header("authorization")?;
    let (jwt, key) = authorization
        .strip_prefix("vapid t=")
        .and_then(|rest| rest.split_once(", k="))
        .ok_or("authorization is not `vapid t=…, k=…`")?;
    let point = aviso::push::base64url::decode(key).map_err(|e| e.to_string())?;
    if point.len() != 65 {
        return Err("k is not an uncompressed P-256 point".into());
    }
    let x = aviso::push::base64url::encode(&point[1..33]);
    let y = aviso::push::base64url::encode(&point[33..]);
    let decoding_key =
        jsonwebtoken::DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[origin]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Claims>(jwt, &decoding_key, &validation)
        .map_err(|e| format!("JWT rejected: {e}"))?
        .claims;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if claims.aud != origin || claims.exp > now + 24 * 3600 {
        return Err("JWT aud or exp out of bounds".into());
    }
    if !(claims.sub.starts_with("mailto:") || claims.sub.starts_with("https:")) {
        return Err("JWT sub is not mailto: or https:".into());
    }
    ece::decrypt(&subscriber.components, &subscriber.auth, body)
        .map_err(|e| format!("decryption failed: {e}"))
}
