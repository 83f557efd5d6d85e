//! Per-origin pools of HTTP/2 connections to push services.
//!
//! Built on `h2` rather than hyper's pooled client because the pool needs what hyper hides: each
//! connection's `SETTINGS_MAX_CONCURRENT_STREAMS` (FCM allows ~100) and its live stream count.
//! A request goes to the least-busy connection that has a free stream; when every connection is
//! full, the pool opens another (up to a bound) instead of queueing behind one. A service that
//! does not negotiate HTTP/2 is sent to over hyper's HTTP/1.1 client instead.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use http::{Request, Uri, Version};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::coalesce::Coalescing;
use super::{ClientConfig, MAX_REASON_LEN, PushResponse, TransportError, error_chain};

/// One HTTP/2 connection and the number of requests this process has on it.
struct Connection {
    send: h2::client::SendRequest<Bytes>,
    in_flight: AtomicUsize,
    alive: Arc<AtomicBool>,
}

impl Connection {
    fn has_free_stream(&self) -> bool {
        self.alive.load(Ordering::Acquire)
            && self.in_flight.load(Ordering::Acquire) < self.send.current_max_send_streams()
    }
}

#[derive(Default)]
struct OriginState {
    connections: Vec<Arc<Connection>>,
    connecting: usize,
    http1_only: bool,
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

    fn origin(&self, uri: &Uri) -> Result<Arc<Origin>, TransportError> {
        let host = uri
            .host()
            .ok_or_else(|| TransportError::Request(format!("no host in {uri}")))?;
        let port = uri.port_u16().unwrap_or(443);
        let key = format!("{host}:{port}");
        if let Ok(origins) = self.origins.read()
            && let Some(origin) = origins.get(&key)
        {
            return Ok(origin.clone());
        }
        let mut origins = self.origins.write().unwrap_or_else(|p| p.into_inner());
        let origin = origins.entry(key).or_insert_with(|| {
            Arc::new(Origin {
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
                port,
                state: Mutex::new(OriginState::default()),
                changed: Notify::new(),
                in_flight: Arc::new(Semaphore::new(self.config.max_in_flight_per_origin)),
            })
        });
        Ok(origin.clone())
    }

    /// Finds a connection with a free stream, opening one when all are full.
    async fn route(
        &self,
        origin: &Arc<Origin>,
        permit: OwnedSemaphorePermit,
    ) -> Result<Route, TransportError> {
        let mut permit = Some(permit);
        loop {
            // Most requests find a stream at once: they look before registering for a change,
            // and only one that has to wait registers and looks again (so that a stream freed
            // in between is not missed).
            let next = match self.next(origin, &mut permit) {
                Some(next) => next,
                None => {
                    let mut changed = pin!(origin.changed.notified());
                    changed.as_mut().enable();
                    match self.next(origin, &mut permit) {
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
                        Err(error) => Err(error),
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
    fn next(
        &self,
        origin: &Arc<Origin>,
        permit: &mut Option<OwnedSemaphorePermit>,
    ) -> Option<Next> {
        let mut state = origin.state.lock().unwrap_or_else(|p| p.into_inner());
        state
            .connections
            .retain(|c| c.alive.load(Ordering::Acquire));
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
            .initial_max_send_streams(1)
            .initial_window_size(1 << 20)
            .initial_connection_window_size(8 << 20)
            .handshake::<_, Bytes>(Coalescing(tls))
            .await
            .map_err(|e| connect_error(error_chain(&e)))?;
        let alive = Arc::new(AtomicBool::new(true));
        let driver_alive = alive.clone();
        let driver_origin = origin.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(origin = %driver_origin.host, %error, "push service connection ended");
            }
            driver_alive.store(false, Ordering::Release);
            driver_origin.changed.notify_waiters();
        });
        Ok(Some(Arc::new(Connection {
            send,
            in_flight: AtomicUsize::new(0),
            alive,
        })))
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
