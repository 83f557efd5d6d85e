//! Per-origin pools of HTTP/2 connections to push services.
//!
//! Built on `h2` rather than hyper's pooled client because the pool needs what hyper hides: each
//! connection's `SETTINGS_MAX_CONCURRENT_STREAMS` (FCM allows ~100) and its live stream count.
//! A request goes to the least-busy connection that has a free stream; when every connection is
//! full, the pool opens another (up to a bound) instead of queueing behind one. A service that
//! does not negotiate HTTP/2 is sent to over hyper's HTTP/1.1 client instead.
//!
//! A cold origin is opened one connection at a time. Until the server's SETTINGS arrive (RFC 9113
//! §3.4: its preface, the first frame it sends) a connection allows one stream, so a burst would
//! otherwise see every early connection "full" and open the whole bound at once: eight TLS
//! handshakes for what one connection carries. Requests wait instead for the first connection's
//! limit to be known, and when that handshake fails, the requests that waited for it fail with
//! its error rather than each trying again in turn.

use std::collections::HashMap;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use http::{Request, Uri, Version};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::client::TlsStream;

use super::coalesce::Coalescing;
use super::{ClientConfig, MAX_REASON_LEN, PushResponse, TransportError, error_chain};

/// The stream limit h2 assumes for a connection until the server's SETTINGS say otherwise.
const INITIAL_MAX_SEND_STREAMS: usize = 1;

/// One HTTP/2 connection and the number of requests this process has on it.
struct Connection {
    send: h2::client::SendRequest<Bytes>,
    in_flight: AtomicUsize,
    status: Arc<ConnectionStatus>,
}

/// What a connection's driver task and its requests learn about it.
#[derive(Default)]
struct ConnectionStatus {
    /// Set when the connection has ended.
    ended: AtomicBool,
    /// Set once the server's stream limit is known: its SETTINGS changed the limit, or an answer
    /// came back (which the server sends only after its SETTINGS).
    settled: AtomicBool,
}

impl ConnectionStatus {
    /// The server's stream limit is known: the requests waiting for it are woken, once. A
    /// cheap load when it already was (every answer on the connection says so again).
    fn settle(&self, origin: &Origin) {
        if !self.settled.load(Ordering::Acquire) && !self.settled.swap(true, Ordering::AcqRel) {
            origin.changed.notify_waiters();
        }
    }
}

impl Connection {
    fn is_alive(&self) -> bool {
        !self.status.ended.load(Ordering::Acquire)
    }

    fn is_settled(&self) -> bool {
        self.status.settled.load(Ordering::Acquire)
    }

    fn has_free_stream(&self) -> bool {
        self.is_alive()
            && self.in_flight.load(Ordering::Acquire) < self.send.current_max_send_streams()
    }
}

#[derive(Default)]
struct OriginState {
    connections: Vec<Arc<Connection>>,
    connecting: usize,
    http1_only: bool,
    /// Failed connection attempts so far, and the reason of the last one.
    failed_connects: u64,
    last_connect_failure: String,
}

/// Everything the pool knows about one push-service origin (`host:port`).
struct Origin {
    host: String,
    port: u16,
    state: Mutex<OriginState>,
    /// Signalled when a stream frees up, a connection opens or one dies.
    changed: Notify,
    /// Bounds the requests in flight to this origin, whatever the connections allow.
    in_flight: Arc<Semaphore>,
}

/// A claimed stream on a connection; gives it back on drop.
pub(super) struct Lease {
    connection: Arc<Connection>,
    origin: Arc<Origin>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.connection.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.origin.changed.notify_waiters();
    }
}

pub(super) enum Route {
    Http2(Lease),
    /// The origin did not negotiate HTTP/2; the permit still bounds its requests in flight.
    Http1(Option<OwnedSemaphorePermit>),
}

/// What a request does next; waiting is `None` (see [`Pools::next`]).
enum Next {
    Route(Route),
    Connect,
    /// The connection it waited for could not be opened.
    Fail(TransportError),
}

/// The pools of all origins, shared by every sender of the process.
pub(super) struct Pools {
    origins: RwLock<HashMap<String, Arc<Origin>>>,
    tls: tokio_rustls::TlsConnector,
    config: ClientConfig,
}

impl Pools {
    pub(super) fn new(tls: Arc<rustls::ClientConfig>, config: ClientConfig) -> Self {
        Self {
            origins: RwLock::new(HashMap::new()),
            tls: tokio_rustls::TlsConnector::from(tls),
            config,
        }
    }

    /// Where a request to `uri` goes: a stream on an HTTP/2 connection, or the HTTP/1.1 client.
    /// Waits while the origin is at its in-flight bound or all its connections are full.
    pub(super) async fn acquire(&self, uri: &Uri) -> Result<Route, TransportError> {
        let origin = self.origin(uri)?;
        let permit = origin
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| TransportError::Request("the client is shutting down".into()))?;
        self.route(&origin, permit).await
    }

    /// The pool of `uri`'s origin, made on its first request.
    ///
    /// Looked up by the authority as the URI spells it, which every request of an endpoint
    /// repeats, so that the lookup borrows it instead of formatting a key per request; a new
    /// spelling of a known origin (`host` and `host:443`) becomes another name of its pool.
    fn origin(&self, uri: &Uri) -> Result<Arc<Origin>, TransportError> {
        let (Some(authority), Some(host)) = (uri.authority(), uri.host()) else {
            return Err(TransportError::Request(format!("no host in {uri}")));
        };
        if let Ok(origins) = self.origins.read()
            && let Some(origin) = origins.get(authority.as_str())
        {
            return Ok(origin.clone());
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(443);
        let mut origins = self.origins.write().unwrap_or_else(|p| p.into_inner());
        let known = origins
            .values()
            .find(|origin| origin.host == host && origin.port == port)
            .cloned();
        let origin = known.unwrap_or_else(|| {
            Arc::new(Origin {
                host: host.to_owned(),
                port,
                state: Mutex::new(OriginState::default()),
                changed: Notify::new(),
                in_flight: Arc::new(Semaphore::new(self.config.max_in_flight_per_origin)),
            })
        });
        origins.insert(authority.as_str().to_owned(), origin.clone());
        Ok(origin)
    }

    /// Finds a connection with a free stream, opening one when all are full.
    async fn route(
        &self,
        origin: &Arc<Origin>,
        permit: OwnedSemaphorePermit,
    ) -> Result<Route, TransportError> {
        let mut permit = Some(permit);
        let failed_before = origin
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failed_connects;
        loop {
            // Most requests find a stream at once: they look before registering for a change,
            // and only one that has to wait registers and looks again (so that a stream freed
            // in between is not missed).
            let next = match self.next(origin, &mut permit, failed_before) {
                Some(next) => next,
                None => {
                    let mut changed = pin!(origin.changed.notified());
                    changed.as_mut().enable();
                    match self.next(origin, &mut permit, failed_before) {
                        Some(next) => next,
                        None => {
                            changed.await;
                            continue;
                        }
                    }
                }
            };
            match next {
                Next::Route(route) => return Ok(route),
                Next::Fail(error) => return Err(error),
                Next::Connect => {
                    // Boxed: a connection's handshake state (rustls, h2's codec) is kilobytes,
                    // and every request's future would otherwise carry room for it.
                    let connected = Box::pin(self.connect(origin)).await;
                    let mut state = origin.state.lock().unwrap_or_else(|p| p.into_inner());
                    state.connecting -= 1;
                    let result = match connected {
                        Ok(Some(connection)) => {
                            state.connections.push(connection);
                            Ok(())
                        }
                        Ok(None) => {
                            state.http1_only = true;
                            Ok(())
                        }
                        Err(error) => {
                            state.failed_connects += 1;
                            state.last_connect_failure = connect_reason(&error);
                            Err(error)
                        }
                    };
                    drop(state);
                    origin.changed.notify_waiters();
                    result?;
                }
            }
        }
    }

    /// What a request to `origin` does now: takes a stream on the least-busy connection that
    /// has one, or opens a connection when all are full and the bound allows; `None`: it waits.
    /// `failed_before` is the origin's count of failed connects when the request arrived.
    fn next(
        &self,
        origin: &Arc<Origin>,
        permit: &mut Option<OwnedSemaphorePermit>,
        failed_before: u64,
    ) -> Option<Next> {
        let mut state = origin.state.lock().unwrap_or_else(|p| p.into_inner());
        state.connections.retain(|c| c.is_alive());
        if state.http1_only {
            return Some(Next::Route(Route::Http1(permit.take())));
        }
        // The least busy first: asking a connection for its stream limit takes h2's lock, so
        // only when that one is full are the others asked.
        let least_busy = state
            .connections
            .iter()
            .min_by_key(|c| c.in_flight.load(Ordering::Acquire))
            .filter(|c| c.has_free_stream());
        let free = least_busy.or_else(|| {
            state
                .connections
                .iter()
                .filter(|c| c.has_free_stream())
                .min_by_key(|c| c.in_flight.load(Ordering::Acquire))
        });
        if let Some(connection) = free {
            connection.in_flight.fetch_add(1, Ordering::AcqRel);
            Some(Next::Route(Route::Http2(Lease {
                connection: connection.clone(),
                origin: origin.clone(),
                _permit: permit.take(),
            })))
        } else if state.connections.is_empty() && state.failed_connects > failed_before {
            // It waited for a connection that could not be opened: it gets that error.
            Some(Next::Fail(TransportError::Connect {
                origin: format!("{}:{}", origin.host, origin.port),
                reason: state.last_connect_failure.clone(),
            }))
        } else if (state.connecting > 0 || !state.connections.is_empty())
            && !state.connections.iter().any(|c| c.is_settled())
        {
            // The stream limit is not known yet: the connection coming up may carry them all.
            None
        } else if state.connections.len() + state.connecting
            < self.config.max_connections_per_origin
        {
            state.connecting += 1;
            Some(Next::Connect)
        } else {
            None
        }
    }

    /// Opens a TLS connection; `None` when the server did not choose HTTP/2.
    async fn connect(
        &self,
        origin: &Arc<Origin>,
    ) -> Result<Option<Arc<Connection>>, TransportError> {
        let connect_error = |reason: String| TransportError::Connect {
            origin: format!("{}:{}", origin.host, origin.port),
            reason,
        };
        let server_name =
            ServerName::try_from(origin.host.clone()).map_err(|e| connect_error(e.to_string()))?;
        let handshake = async {
            let tcp = TcpStream::connect((origin.host.as_str(), origin.port))
                .await
                .map_err(|e| connect_error(e.to_string()))?;
            // Push requests are small and latency-bound: do not wait to coalesce them.
            tcp.set_nodelay(true)
                .map_err(|e| connect_error(e.to_string()))?;
            self.tls
                .connect(server_name, tcp)
                .await
                .map_err(|e| connect_error(e.to_string()))
        };
        let tls = tokio::time::timeout(self.config.connect_timeout, handshake)
            .await
            .map_err(|_| {
                connect_error(format!(
                    "no TLS connection within {:?}",
                    self.config.connect_timeout
                ))
            })??;
        if tls.get_ref().1.alpn_protocol() != Some(super::tls::ALPN_H2) {
            return Ok(None);
        }
        let (send, connection) = h2::client::Builder::new()
            // Until the server's SETTINGS arrive its stream limit is unknown: assume one stream
            // so that a burst cannot overrun it (it would answer REFUSED_STREAM).
            .initial_max_send_streams(INITIAL_MAX_SEND_STREAMS)
            .initial_window_size(1 << 20)
            .initial_connection_window_size(8 << 20)
            .handshake::<_, Bytes>(Coalescing(tls))
            .await
            .map_err(|e| connect_error(error_chain(&e)))?;
        let status = Arc::new(ConnectionStatus::default());
        tokio::spawn(drive(connection, status.clone(), origin.clone()));
        Ok(Some(Arc::new(Connection {
            send,
            in_flight: AtomicUsize::new(0),
            status,
        })))
    }
}

/// Runs a connection until it ends, telling the waiting requests when the server's stream limit
/// arrives and when the connection is gone.
async fn drive(
    mut connection: h2::client::Connection<Coalescing<TlsStream<TcpStream>>, Bytes>,
    status: Arc<ConnectionStatus>,
    origin: Arc<Origin>,
) {
    let ended = std::future::poll_fn(|cx| {
        let poll = Pin::new(&mut connection).poll(cx);
        if !status.settled.load(Ordering::Relaxed)
            && connection.max_concurrent_send_streams() != INITIAL_MAX_SEND_STREAMS
        {
            status.settle(&origin);
        }
        poll
    })
    .await;
    if let Err(error) = ended {
        tracing::debug!(origin = %origin.host, %error, "push service connection ended");
    }
    status.ended.store(true, Ordering::Release);
    origin.changed.notify_waiters();
}

/// The reason of a failed connect, for the requests that waited for it.
fn connect_reason(error: &TransportError) -> String {
    match error {
        TransportError::Connect { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

impl Lease {
    /// Sends the request on the leased stream and reads the answer.
    pub(super) async fn send(
        self,
        request: Request<Bytes>,
    ) -> Result<PushResponse, TransportError> {
        let h2_error = |e: h2::Error| {
            if e.reason() == Some(h2::Reason::REFUSED_STREAM) {
                TransportError::StreamRefused
            } else {
                TransportError::Request(error_chain(&e))
            }
        };
        let (parts, body) = request.into_parts();
        let mut send = self
            .connection
            .send
            .clone()
            .ready()
            .await
            .map_err(h2_error)?;
        let (response, mut stream) = send
            .send_request(Request::from_parts(parts, ()), body.is_empty())
            .map_err(h2_error)?;
        if !body.is_empty() {
            stream.send_data(body, true).map_err(h2_error)?;
        }
        let (parts, mut body) = response.await.map_err(h2_error)?.into_parts();
        // The server sent its SETTINGS before this answer: its stream limit is known now.
        self.connection.status.settle(&self.origin);
        let mut reason = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(h2_error)?;
            let _ = body.flow_control().release_capacity(chunk.len());
            let room = MAX_REASON_LEN.saturating_sub(reason.len());
            reason.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        Ok(PushResponse {
            status: parts.status,
            version: Version::HTTP_2,
            headers: parts.headers,
            reason: String::from_utf8_lossy(&reason).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_spellings_of_one_origin_share_its_pool() {
        let config = ClientConfig::default();
        let tls = super::super::tls::client_config(&config.extra_ca_files).expect("TLS config");
        let pools = Pools::new(tls, config);
        let pool = |uri: &str| pools.origin(&uri.parse().expect("URI")).expect("an origin");
        let first = pool("https://push.example/a");
        assert!(Arc::ptr_eq(&first, &pool("https://push.example:443/b")));
        assert!(Arc::ptr_eq(&first, &pool("https://push.example/c")));
        assert!(!Arc::ptr_eq(&first, &pool("https://push.example:8443/a")));
        assert!(!Arc::ptr_eq(&first, &pool("https://other.example/a")));
        assert!(pools.origin(&"/no/host".parse().expect("URI")).is_err());
    }
}
