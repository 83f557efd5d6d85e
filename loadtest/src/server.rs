//! The mock push service itself: an HTTPS server (HTTP/2 and HTTP/1.1 by ALPN) on loopback that
//! takes `POST /push/{id}` like FCM, Mozilla or Apple would, checks each request as strictly as
//! they do, and answers with the configured mix of latency and errors.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use dashmap::DashMap;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::config::{Behaviour, ConfigError, MockConfig};
use crate::error::{KeyError, MockError, WaitTimedOut};
use crate::headers::{self, PushHeaders};
use crate::records::{Delivery, Recorder, RequestTimeline, Stats, VerificationFailure};
use crate::rejection::Rejection;
use crate::subscriber::{RegisteredKeys, SubscriberKeys};
use crate::tls::TlsIdentity;
use crate::vapid::VapidVerifier;

/// A client that connects and never finishes its TLS handshake is dropped after this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether endpoint id `id` is among the `fraction` answered `410 Gone`.
///
/// The choice is a stable hash (XXH3) of the id, the same on every machine and in every run,
/// so a test or load driver can tell in advance which subscriptions the sender should prune.
pub fn is_gone(id: &str, fraction: f64) -> bool {
    if fraction <= 0.0 {
        return false;
    }
    if fraction >= 1.0 {
        return true;
    }
    // Scale to the full u64 range; the cast saturates, and fraction < 1 keeps it below u64::MAX.
    let threshold = (fraction * 18_446_744_073_709_551_616.0) as u64;
    xxhash_rust::xxh3::xxh3_64(id.as_bytes()) < threshold
}

/// A running mock push service. Dropping it stops the server at once;
/// [`MockPushService::shutdown`] lets open requests finish first.
pub struct MockPushService {
    shared: Arc<Shared>,
    address: SocketAddr,
    ca_pem: String,
    control: Mutex<Control>,
    /// What a restart of the accept loop needs ([`MockPushService::set_reachable`]).
    acceptor: TlsAcceptor,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shutdown_grace: Duration,
}

/// What stopping the server needs; taken out once.
struct Control {
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// State every connection and request shares.
struct Shared {
    origin: String,
    behaviour: ArcSwap<ActiveBehaviour>,
    recorder: Recorder,
    vapid: VapidVerifier,
    subscribers: DashMap<Box<str>, RegisteredKeys>,
    scripted: Mutex<HashMap<String, VecDeque<StatusCode>>>,
    /// Number of answers queued in `scripted`, so requests skip its lock when there are none.
    scripted_pending: AtomicUsize,
    messages: AtomicU64,
    /// `POST /sink` bodies received (a webhook receiver for the load driver) and their bytes.
    sink_posts: AtomicU64,
    sink_bytes: AtomicU64,
}

/// A behaviour with its own request numbering, which restarts whenever it is replaced.
struct ActiveBehaviour {
    behaviour: Behaviour,
    arrivals: AtomicU64,
    past_outage: AtomicU64,
    /// The periodic bursts' 503s each endpoint got (kept only under
    /// [`crate::Unavailable::at_most_per_endpoint`]).
    burst_refusals: DashMap<String, u32>,
}

impl ActiveBehaviour {
    fn new(behaviour: Behaviour) -> Self {
        Self {
            behaviour,
            arrivals: AtomicU64::new(0),
            past_outage: AtomicU64::new(0),
            burst_refusals: DashMap::new(),
        }
    }

    /// Whether request `arrival`, to endpoint `id`, is answered 503.
    fn unavailable(&self, arrival: u64, id: &str) -> bool {
        let unavailable = &self.behaviour.unavailable;
        if unavailable.in_first_outage(arrival) {
            return true;
        }
        if !unavailable.in_burst(arrival) {
            return false;
        }
        let Some(bound) = unavailable.per_endpoint else {
            return true;
        };
        let mut refused = self.burst_refusals.entry(id.to_owned()).or_insert(0);
        if *refused >= bound {
            return false;
        }
        *refused += 1;
        true
    }
}

/// Opens the listening socket on `address`, naming it when the OS refuses.
async fn bind(address: SocketAddr) -> Result<TcpListener, MockError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| MockError::Bind { address, source })
}

impl MockPushService {
    /// Starts listening on `config.listen` (HTTPS, ALPN `h2` and `http/1.1`) with a fresh
    /// certificate; see [`MockPushService::ca_cert_pem`] for what to trust.
    pub async fn start(config: MockConfig) -> Result<Self, MockError> {
        config.validate()?;
        let listener = bind(config.listen).await?;
        let bound = listener.local_addr().map_err(|source| MockError::Bind {
            address: config.listen,
            source,
        })?;
        let address = if bound.ip().is_unspecified() {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), bound.port())
        } else {
            bound
        };
        let tls = TlsIdentity::generate(address.ip(), config.http1_only)?;
        let shared = Arc::new(Shared {
            origin: format!("https://{address}"),
            behaviour: ArcSwap::from_pointee(ActiveBehaviour::new(config.behaviour.clone())),
            recorder: Recorder::new(config.record_details),
            vapid: VapidVerifier::new(),
            subscribers: DashMap::new(),
            scripted: Mutex::new(HashMap::new()),
            scripted_pending: AtomicUsize::new(0),
            messages: AtomicU64::new(0),
            sink_posts: AtomicU64::new(0),
            sink_bytes: AtomicU64::new(0),
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new());
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(config.max_concurrent_streams);
        let service = Self {
            shared,
            address,
            ca_pem: tls.ca_pem,
            control: Mutex::new(Control {
                stop: None,
                server: None,
            }),
            acceptor: TlsAcceptor::from(tls.server_config),
            builder: Arc::new(builder),
            shutdown_grace: config.shutdown_grace,
        };
        service.serve(listener);
        Ok(service)
    }

    fn serve(&self, listener: TcpListener) {
        let (stop, stopped) = oneshot::channel();
        let server = tokio::spawn(accept_loop(
            listener,
            self.acceptor.clone(),
            self.builder.clone(),
            self.shared.clone(),
            stopped,
            self.shutdown_grace,
        ));
        *lock(&self.control) = Control {
            stop: Some(stop),
            server: Some(server),
        };
    }

    /// Takes the service off the network (`false`): its port is closed, so connections are
    /// refused, and every open connection is cut, as when a push service is unreachable. With
    /// `true` it listens again on the same address with the same certificate; counters and
    /// behaviour carry on. Does nothing when already so.
    pub async fn set_reachable(&self, reachable: bool) -> Result<(), MockError> {
        let running = lock(&self.control).server.take();
        match (running, reachable) {
            (Some(server), false) => {
                // Aborting the accept loop drops the listener and every connection's task.
                server.abort();
                let _ = server.await;
                Ok(())
            }
            (Some(server), true) => {
                lock(&self.control).server = Some(server);
                Ok(())
            }
            (None, false) => Ok(()),
            (None, true) => {
                let listener = bind(self.address).await?;
                self.serve(listener);
                Ok(())
            }
        }
    }

    /// When the service started; [`MockPushService::request_timeline`] counts from it.
    pub fn started_at(&self) -> Instant {
        self.shared.recorder.started_at()
    }

    /// Push requests received per [`crate::TIMELINE_SLOT`] since the start, whatever
    /// the answer: when the sender sent, and when it was silent.
    pub fn request_timeline(&self) -> RequestTimeline {
        self.shared.recorder.timeline()
    }

    /// The service's origin, e.g. `https://127.0.0.1:43117`; VAPID JWTs name it as `aud`.
    pub fn base_url(&self) -> &str {
        &self.shared.origin
    }

    /// The address clients connect to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The subscription endpoint URL for endpoint id `id`.
    pub fn endpoint(&self, id: &str) -> String {
        format!("{}/push/{id}", self.shared.origin)
    }

    /// PEM of the CA that signed the server certificate: what clients must trust.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes [`MockPushService::ca_cert_pem`] to `path`.
    pub fn write_ca_cert(&self, path: impl AsRef<Path>) -> Result<(), MockError> {
        let path = path.as_ref();
        std::fs::write(path, &self.ca_pem).map_err(|source| MockError::File {
            path: path.to_owned(),
            source,
        })
    }

    /// The current latency and error mix.
    pub fn behaviour(&self) -> Behaviour {
        self.shared.behaviour.load().behaviour.clone()
    }

    /// Replaces the latency and error mix. Request numbering for
    /// [`crate::Throttle`] and [`crate::Unavailable`] restarts from 0.
    pub fn set_behaviour(&self, behaviour: Behaviour) -> Result<(), ConfigError> {
        behaviour.validate()?;
        self.shared
            .behaviour
            .store(Arc::new(ActiveBehaviour::new(behaviour)));
        Ok(())
    }

    /// Changes part of the behaviour, e.g. `mock.update_behaviour(|b| b.gone_fraction = 0.1)`.
    pub fn update_behaviour(&self, change: impl FnOnce(&mut Behaviour)) -> Result<(), ConfigError> {
        let mut behaviour = self.behaviour();
        change(&mut behaviour);
        self.set_behaviour(behaviour)
    }

    /// Whether endpoint id `id` is answered `410 Gone` under the current behaviour.
    pub fn is_gone(&self, id: &str) -> bool {
        is_gone(id, self.shared.behaviour.load().behaviour.gone_fraction)
    }

    /// Answers the next `times` valid requests for `id` with `status` instead of going on to the
    /// gone check and `201` (requests still have to pass the header and VAPID checks first).
    /// A queued `429` or `503` carries the throttle's `Retry-After`.
    pub fn answer_next(&self, id: &str, status: StatusCode, times: usize) {
        let mut scripted = lock(&self.shared.scripted);
        scripted
            .entry(id.to_owned())
            .or_default()
            .extend(std::iter::repeat_n(status, times));
        self.shared
            .scripted_pending
            .fetch_add(times, Ordering::SeqCst);
    }

    /// Registers a subscriber's keys so that messages to `id` are decrypted and checked.
    pub fn register_keys(&self, keys: &SubscriberKeys) -> Result<(), KeyError> {
        let decoded = keys.decode()?;
        self.register(&keys.id, decoded);
        Ok(())
    }

    /// Registers every subscriber in a JSON-lines file of [`SubscriberKeys`]; blank lines are
    /// skipped. Returns how many were registered.
    pub fn load_verify_keys(&self, path: impl AsRef<Path>) -> Result<usize, MockError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| MockError::File {
            path: path.to_owned(),
            source,
        })?;
        let mut registered = 0;
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad_line = |reason: String| MockError::KeysFile {
                path: path.to_owned(),
                line: index + 1,
                reason,
            };
            let keys: SubscriberKeys = serde_json::from_str(line).map_err(|e| {
                bad_line(format!(
                    "expected {{\"id\", \"private_key\", \"auth\", \"p256dh\"?}}: {e}"
                ))
            })?;
            self.register_keys(&keys)
                .map_err(|e| bad_line(e.to_string()))?;
            registered += 1;
        }
        Ok(registered)
    }

    pub(crate) fn register(&self, id: &str, keys: RegisteredKeys) {
        self.shared.subscribers.insert(id.into(), keys);
    }

    /// A snapshot of all counters (also served by `GET /stats`).
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// The URL of a sink: any `POST` to it is read whole and answered `204`, counted apart from
    /// push requests (a webhook receiver on the same TLS identity, for load runs).
    pub fn sink_url(&self) -> String {
        format!("{}/sink", self.shared.origin)
    }

    /// `POST /sink` requests so far, and the bytes of their bodies.
    pub fn sink_received(&self) -> (u64, u64) {
        (
            self.shared.sink_posts.load(Ordering::Relaxed),
            self.shared.sink_bytes.load(Ordering::Relaxed),
        )
    }

    /// Push requests answered with `status` so far.
    pub fn count_for(&self, status: StatusCode) -> u64 {
        self.shared.recorder.count_for(status)
    }

    /// Messages accepted with `201` so far, over all endpoints.
    pub fn delivered(&self) -> u64 {
        self.shared.recorder.delivered_total()
    }

    /// Push requests for endpoint id `id` so far, whatever they were answered (retries too).
    pub fn requests_for(&self, id: &str) -> u64 {
        self.shared.recorder.requests_for(id)
    }

    /// Messages accepted for endpoint id `id`.
    pub fn delivered_count(&self, id: &str) -> u64 {
        self.shared.recorder.delivered_count(id)
    }

    /// Accepted-message count of every endpoint id that received one.
    pub fn delivery_counts(&self) -> BTreeMap<String, u64> {
        self.shared.recorder.delivery_counts()
    }

    /// The messages accepted for `id`, oldest first (empty unless details are recorded).
    pub fn deliveries(&self, id: &str) -> Vec<Delivery> {
        self.shared.recorder.deliveries(id)
    }

    /// The decrypted payloads accepted for a registered subscriber, oldest first.
    pub fn plaintexts(&self, id: &str) -> Vec<Vec<u8>> {
        self.deliveries(id)
            .into_iter()
            .filter_map(|delivery| delivery.plaintext)
            .collect()
    }

    /// Messages for registered subscribers that failed to decrypt.
    pub fn verification_failures(&self) -> Vec<VerificationFailure> {
        self.shared.recorder.verification_failures()
    }

    /// Distinct VAPID JWTs accepted so far.
    pub fn distinct_jwts(&self) -> usize {
        self.shared.vapid.distinct_tokens()
    }

    /// Waits until at least `expected` messages have been accepted in total, at most `timeout`.
    pub async fn wait_for_deliveries(
        &self,
        expected: u64,
        timeout: Duration,
    ) -> Result<(), WaitTimedOut> {
        let started = tokio::time::Instant::now();
        self.shared
            .recorder
            .wait_for_delivered(expected, started + timeout)
            .await
            .map_err(|delivered| WaitTimedOut {
                expected,
                delivered,
                waited: started.elapsed(),
            })
    }

    /// Stops accepting connections, lets open requests finish (up to the configured grace
    /// period), and returns. Counters stay readable afterwards; calling it again does nothing.
    pub async fn shutdown(&self) {
        let (stop, server) = {
            let mut control = lock(&self.control);
            (control.stop.take(), control.server.take())
        };
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        if let Some(server) = server {
            let _ = server.await;
        }
    }
}

impl Drop for MockPushService {
    fn drop(&mut self) {
        if let Some(server) = lock(&self.control).server.take() {
            // Aborting the accept loop drops its connection set, which aborts every connection.
            server.abort();
        }
    }
}

impl std::fmt::Debug for MockPushService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockPushService")
            .field("base_url", &self.shared.origin)
            .finish_non_exhaustive()
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (each critical section
/// is a single push or take).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    shared.recorder.connection_accepted();
                    connections.spawn(serve_connection(
                        tcp,
                        acceptor.clone(),
                        builder.clone(),
                        shared.clone(),
                        graceful.watcher(),
                    ));
                }
                // Out of file descriptors or similar: give the system a moment, keep serving.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = &mut stopped => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
    connections.shutdown().await;
}

async fn serve_connection(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shared: Arc<Shared>,
    watcher: Watcher,
) {
    // Nagle would hold back small HTTP/2 frames and add latency the config did not ask for.
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        _ => {
            shared.recorder.handshake_failed();
            return;
        }
    };
    let service = service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(shared.handle(request).await) }
    });
    let connection = builder
        .serve_connection(TokioIo::new(tls), service)
        .into_owned();
    // Errors here are the client going away mid-connection: nothing to answer.
    let _ = watcher.watch(connection).await;
}

/// How a push request is answered.
enum Answer {
    Created,
    Refused {
        rejection: Rejection,
        retry_after: Option<u32>,
    },
}

impl From<Rejection> for Answer {
    fn from(rejection: Rejection) -> Self {
        Answer::Refused {
            rejection,
            retry_after: None,
        }
    }
}

impl Shared {
    fn stats(&self) -> Stats {
        self.recorder.snapshot(self.vapid.distinct_tokens())
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        if path == "/stats" {
            return self.read_only(request.method(), "GET /stats", || self.stats());
        }
        if path == "/sink" && request.method() == Method::POST {
            let body = request
                .into_body()
                .collect()
                .await
                .map(|body| body.to_bytes());
            self.sink_posts.fetch_add(1, Ordering::Relaxed);
            self.sink_bytes
                .fetch_add(body.map_or(0, |body| body.len() as u64), Ordering::Relaxed);
            let mut response = Response::new(Full::default());
            *response.status_mut() = StatusCode::NO_CONTENT;
            return response;
        }
        if let Some(id) = path.strip_prefix("/messages/") {
            let messages = self.recorder.messages(id);
            return self.read_only(request.method(), "GET /messages/{id}", || messages);
        }
        let id = match path.strip_prefix("/push/") {
            Some(id) if !id.is_empty() && !id.contains('/') => id.to_owned(),
            _ => {
                return json_response(
                    &Rejection::new(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        "subscription endpoints are POST /push/{id}",
                    ),
                    None,
                );
            }
        };
        self.recorder.request(&id, request.version());
        let active = self.behaviour.load_full();
        let answer = if request.method() == Method::POST {
            self.answer(&id, request, &active).await
        } else {
            Answer::from(Rejection::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "push messages are sent with POST (RFC 8030 §5)",
            ))
        };
        let latency = active.behaviour.latency.sample();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match answer {
            Answer::Created => {
                self.recorder.answered(StatusCode::CREATED);
                let message = self.messages.fetch_add(1, Ordering::Relaxed);
                let mut response = Response::new(Full::default());
                *response.status_mut() = StatusCode::CREATED;
                if let Ok(location) =
                    HeaderValue::from_str(&format!("{}/message/{message}", self.origin))
                {
                    response.headers_mut().insert(header::LOCATION, location);
                }
                response
            }
            Answer::Refused {
                rejection,
                retry_after,
            } => {
                self.recorder.answered(rejection.status);
                let mut response = json_response(&rejection, retry_after);
                if rejection.status == StatusCode::METHOD_NOT_ALLOWED {
                    response
                        .headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static("POST"));
                }
                response
            }
        }
    }

    /// Runs the checks in the order documented on [`Behaviour`].
    async fn answer(
        &self,
        id: &str,
        request: Request<Incoming>,
        active: &ActiveBehaviour,
    ) -> Answer {
        let behaviour = &active.behaviour;
        let arrival = active.arrivals.fetch_add(1, Ordering::Relaxed);
        let (parts, body) = request.into_parts();
        let body = read_body(&parts.headers, body, behaviour.payload_limit).await;

        if active.unavailable(arrival, id) {
            return Answer::Refused {
                rejection: Rejection::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "the push service is unavailable (configured outage); retry later",
                ),
                retry_after: behaviour.unavailable.retry_after_secs,
            };
        }
        let past_outage = active.past_outage.fetch_add(1, Ordering::Relaxed);
        if behaviour.throttle.applies_to(past_outage) {
            return Answer::Refused {
                rejection: Rejection::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "too many requests (configured throttle); honour Retry-After",
                ),
                retry_after: Some(behaviour.throttle.retry_after_secs),
            };
        }
        let body = match body {
            Ok(body) => body,
            Err(rejection) => return rejection.into(),
        };
        let push_headers = match headers::check(&parts.headers, &body) {
            Ok(push_headers) => push_headers,
            Err(rejection) => return rejection.into(),
        };
        let authority = parts
            .uri
            .authority()
            .map(|authority| authority.as_str())
            .or_else(|| parts.headers.get(header::HOST)?.to_str().ok())
            .unwrap_or_else(|| self.origin.trim_start_matches("https://"));
        if let Err(rejection) = self.vapid.check(&parts.headers, authority) {
            return rejection.into();
        }
        if let Some(status) = self.scripted_answer(id) {
            let retry_after = matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            )
            .then_some(behaviour.throttle.retry_after_secs);
            return Answer::Refused {
                rejection: Rejection::new(status, "Scripted", "answer queued by the test"),
                retry_after,
            };
        }
        if is_gone(id, behaviour.gone_fraction) {
            return Rejection::new(
                StatusCode::GONE,
                "Unsubscribed",
                "this subscription has expired or been unsubscribed; delete it",
            )
            .into();
        }
        let plaintext = match self.decrypt(id, &body) {
            Ok(plaintext) => plaintext,
            Err(rejection) => return rejection.into(),
        };
        let PushHeaders {
            ttl,
            urgency,
            topic,
        } = push_headers;
        let version = parts.version;
        self.recorder.delivered(id, move || Delivery {
            ttl,
            urgency,
            topic,
            version,
            plaintext,
            received_at: Instant::now(),
        });
        Answer::Created
    }

    fn scripted_answer(&self, id: &str) -> Option<StatusCode> {
        if self.scripted_pending.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let mut scripted = lock(&self.scripted);
        let queue = scripted.get_mut(id)?;
        let status = queue.pop_front()?;
        if queue.is_empty() {
            scripted.remove(id);
        }
        self.scripted_pending.fetch_sub(1, Ordering::SeqCst);
        Some(status)
    }

    /// Decrypts the body when `id` has registered keys; `None` when it has not.
    fn decrypt(&self, id: &str, body: &[u8]) -> Result<Option<Vec<u8>>, Rejection> {
        // Cloned out so the map's shard lock is not held during the ECDH.
        let Some(keys) = self.subscribers.get(id).map(|keys| keys.clone()) else {
            return Ok(None);
        };
        if body.is_empty() {
            return Ok(Some(Vec::new()));
        }
        match keys.decrypt(body) {
            Ok(plaintext) => {
                self.recorder.decrypted();
                Ok(self.recorder.records_details().then_some(plaintext))
            }
            Err(error) => {
                let reason = format!("ece could not decrypt the body: {error}");
                self.recorder.verification_failed(id, reason.clone());
                Err(Rejection::bad_request("DecryptionFailed", reason))
            }
        }
    }

    /// Answers a GET on one of the mock's own resources with `value` as JSON, anything else with
    /// `405`: the counters (`/stats`) and, for the browser tests, what was accepted for one
    /// endpoint (`/messages/{id}`).
    fn read_only<T: Serialize>(
        &self,
        method: &Method,
        allowed: &'static str,
        value: impl FnOnce() -> T,
    ) -> Response<Full<Bytes>> {
        if method != Method::GET {
            let mut response = json_response(
                &Rejection::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", allowed),
                None,
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            return response;
        }
        let body = serde_json::to_vec(&value()).unwrap_or_default();
        let mut response = Response::new(Full::new(Bytes::from(body)));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// Reads the whole body, refusing one larger than `limit` with `413`.
async fn read_body(
    headers: &http::HeaderMap,
    body: Incoming,
    limit: usize,
) -> Result<Bytes, Rejection> {
    let too_large = |size: String| {
        Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("the body is {size} bytes; this push service accepts at most {limit}"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if let Some(declared) = declared
        && declared > limit as u64
    {
        return Err(too_large(declared.to_string()));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(too_large("more than that".to_owned()))
        }
        Err(error) => Err(Rejection::bad_request(
            "BadBody",
            format!("the request body could not be read: {error}"),
        )),
    }
}

fn json_response(rejection: &Rejection, retry_after: Option<u32>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(rejection.body())));
    *response.status_mut() = rejection.status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_ids_are_stable_and_close_to_the_fraction() {
        let gone = (0..10_000)
            .filter(|i| is_gone(&format!("sub-{i}"), 0.1))
            .count();
        assert!((800..1200).contains(&gone), "{gone} of 10000 gone at 0.1");
        assert_eq!(is_gone("sub-1", 0.1), is_gone("sub-1", 0.1));
        assert!(!is_gone("anything", 0.0));
        assert!(is_gone("anything", 1.0));
        // A larger fraction keeps every id a smaller one chose.
        assert!(
            (0..1000)
                .map(|i| format!("sub-{i}"))
                .filter(|id| is_gone(id, 0.1))
                .all(|id| is_gone(&id, 0.5))
        );
    }
}
