//! Delivering one message to one subscriber: encrypt, sign, send, and act on the answer
//! (retry what may be retried, pause the origin when it throttles, report what is gone, alarm
//! on configuration errors), giving up at once when its batch is stopped.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use metrics::{Counter, Histogram, counter, histogram};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::backoff::RetryPolicy;
use super::throttle::{OriginGate, ThrottlePolicy};
use crate::push::{
    EcBackend, Outcome, PushService, PushSubscription, RequestHead, SubscriptionKeys,
    VapidHeaderCache, encrypt, encrypt_batch,
};
use crate::transport::{PushClient, TransportError};

/// Where and how one message goes: its subscriber, headers and signature, and its deadline.
pub struct Message<'a> {
    pub subscription: &'a PushSubscription,
    /// The headers of the notification's requests (its RFC 8030 options), built once.
    pub head: &'a RequestHead,
    pub vapid: &'a VapidHeaderCache,
    /// When the TTL runs out: no attempt is made after it.
    pub expires_at: Instant,
}

/// What finally happened to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The push service accepted it.
    Delivered,
    /// The subscription is gone (404/410): the caller deletes it.
    Expired,
    /// It was given up.
    Failed(Failure),
}

/// Why a message was given up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("the payload cannot be encrypted: {0}")]
    Encryption(String),
    #[error("the personalised content cannot be sent: {0}")]
    Personalisation(crate::notify::template::RenderError),
    #[error("the VAPID header cannot be made: {0}")]
    Vapid(String),
    #[error("the push service refused the payload size (413)")]
    PayloadTooLarge,
    #[error("the push service rejected the request ({status}): {reason}")]
    Rejected { status: u16, reason: String },
    #[error("the push service answered {status}: {reason}")]
    Unexpected { status: u16, reason: String },
    #[error("gave up after {attempts} attempts; last: {last}")]
    RetriesExhausted { attempts: u32, last: String },
    /// Not finished because the sender stopped (shutdown, or its task's lease was lost): the
    /// task's next holder sends it.
    #[error("stopped before it was delivered; the task's next holder sends it")]
    Stopped,
}

impl Failure {
    /// A short, stable label for counters and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Encryption(_) => "encryption",
            Self::Personalisation(error) => error.label(),
            Self::Vapid(_) => "vapid",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Rejected { .. } => "rejected",
            Self::Unexpected { .. } => "unexpected_status",
            Self::RetriesExhausted { .. } => "retries_exhausted",
            Self::Stopped => "stopped",
        }
    }
}

impl Delivery {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Expired => "expired",
            Self::Failed(failure) => failure.label(),
        }
    }
}

/// What the retries of one batch's messages answer to besides their TTL: a stop signal that
/// ends every wait at once (shutdown, or the task's lease lost), and a count of the messages
/// now waiting (for a retry or for their origin's pause), so that the caller keeps other
/// messages going instead of counting the waiting ones as in flight.
#[derive(Debug, Default)]
pub struct Batch {
    stop: CancellationToken,
    parked: AtomicUsize,
    interrupted: AtomicBool,
    /// The lane's turn to start new messages, given up once every message left is waiting.
    turn: std::sync::Mutex<Option<OwnedSemaphorePermit>>,
    lent: AtomicBool,
}

impl Batch {
    /// A batch whose waits end when `stop` is cancelled.
    pub fn new(stop: CancellationToken) -> Self {
        Self {
            stop,
            ..Self::default()
        }
    }

    /// Holds `turn` (a share of the lane's sending tasks) until the batch goes idle.
    pub fn holding(self, turn: OwnedSemaphorePermit) -> Self {
        *self.turn.lock().unwrap_or_else(|p| p.into_inner()) = Some(turn);
        self
    }

    /// Every message left is waiting (for its retry or its origin): the batch gives its turn
    /// back, so that another task of the lane can send meanwhile. Cheap when already done.
    pub fn idle(&self) {
        if !self.lent.swap(true, Ordering::Relaxed) {
            self.turn.lock().unwrap_or_else(|p| p.into_inner()).take();
        }
    }

    /// The turn, unless the batch gave it back.
    pub fn take_turn(&self) -> Option<OwnedSemaphorePermit> {
        self.turn.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Messages waiting now, not sending.
    pub fn parked(&self) -> usize {
        self.parked.load(Ordering::Relaxed)
    }

    /// Whether the stop came: no new attempt starts.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Whether some message was given up because of the stop: the batch did not finish, and
    /// whoever resumes its task sends it again.
    pub fn was_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed)
    }

    /// What ends the batch's waits (for a wait outside the sender: the policy's throttle).
    pub fn stop_token(&self) -> &CancellationToken {
        &self.stop
    }

    /// The batch gave up before sending (a wait ended by the stop): it did not finish.
    pub fn give_up(&self) {
        self.interrupted.store(true, Ordering::Relaxed);
    }

    /// Ends every wait of the batch now.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Waits until `until`, counted as parked; `false` when the stop came first.
    async fn park_until(&self, until: tokio::time::Instant) -> bool {
        struct Parked<'a>(&'a AtomicUsize);
        impl Drop for Parked<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.parked.fetch_add(1, Ordering::Relaxed);
        let _parked = Parked(&self.parked);
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => false,
            _ = tokio::time::sleep_until(until) => true,
        }
    }
}

/// Sends messages through a shared [`PushClient`], retrying per [`RetryPolicy`] and pausing
/// per origin as push services ask ([`ThrottlePolicy`]).
pub struct Sender {
    client: PushClient,
    retry: RetryPolicy,
    max_throttles: u32,
    gate: OriginGate,
    ec: EcBackend,
    metrics: ServiceMetrics,
}

/// The handles of what every message records, per push service, looked up on first use and
/// kept: through the `counter!`/`histogram!` macros each message paid a registry lookup that
/// hashes its labels and, in the Prometheus exporter, builds its key anew (docs/BENCHMARKS.md).
/// The rare outcomes (failures, retries, throttles) still go through the macros.
#[derive(Default)]
struct ServiceMetrics([std::sync::OnceLock<Handles>; PushService::COUNT]);

struct Handles {
    request_seconds: Histogram,
    delivered: Counter,
    expired: Counter,
}

impl ServiceMetrics {
    fn of(&self, service: PushService) -> &Handles {
        self.0[service as usize].get_or_init(|| {
            let label = service.label();
            let sends = |outcome: &'static str| {
                counter!("aviso_sends_total", "service" => label, "outcome" => outcome)
            };
            Handles {
                request_seconds: histogram!("aviso_push_request_seconds", "service" => label),
                delivered: sends(Delivery::Delivered.label()),
                expired: sends(Delivery::Expired.label()),
            }
        })
    }
}

impl Sender {
    pub fn new(client: PushClient, retry: RetryPolicy) -> Self {
        Self::with_throttle(client, retry, ThrottlePolicy::default())
    }

    pub fn with_throttle(client: PushClient, retry: RetryPolicy, throttle: ThrottlePolicy) -> Self {
        Self {
            client,
            retry,
            max_throttles: throttle.max_throttles,
            gate: OriginGate::new(throttle),
            ec: ec_backend(),
            metrics: ServiceMetrics::default(),
        }
    }

    /// Encrypts and delivers one message, retrying transient failures while its TTL lasts.
    pub async fn deliver(&self, message: &Message<'_>, payload: &[u8]) -> Delivery {
        match self.seal(message.subscription, payload) {
            Ok(body) => self.send(message, body).await,
            Err(failed) => failed,
        }
    }

    /// Encrypts a payload for its subscriber: the body of every attempt to send it (a retry
    /// resends the same ciphertext, which is the same message).
    ///
    /// Apart from [`Sender::send`] so that a caller can encrypt a run of messages and then hand
    /// them to the connections together: each connection then writes them in one go.
    pub fn seal(&self, subscription: &PushSubscription, payload: &[u8]) -> Result<Bytes, Delivery> {
        let started = Instant::now();
        match encrypt(subscription.keys(), payload) {
            Ok(body) => {
                histogram!("aviso_encrypt_seconds").record(started.elapsed().as_secs_f64());
                Ok(Bytes::from(body))
            }
            Err(e) => Err(self.finish(
                service_of(subscription),
                Delivery::Failed(Failure::Encryption(e.to_string())),
            )),
        }
    }

    /// [`Sender::seal`] for a run of messages at once, in order: the P-256 part of the whole run
    /// goes through one batch call, on the multi-buffer backend where the process has one.
    pub fn seal_batch(
        &self,
        messages: &[(&PushSubscription, &[u8])],
    ) -> Vec<Result<Bytes, Delivery>> {
        let started = Instant::now();
        let batch: Vec<(&SubscriptionKeys, &[u8])> = messages
            .iter()
            .map(|(subscription, payload)| (subscription.keys(), *payload))
            .collect();
        let sealed = encrypt_batch(self.ec, &batch);
        let each = started.elapsed().as_secs_f64() / messages.len().max(1) as f64;
        let mut encrypted = 0;
        let bodies = messages
            .iter()
            .zip(sealed)
            .map(|((subscription, _), sealed)| match sealed {
                Ok(body) => {
                    encrypted += 1;
                    Ok(Bytes::from(body))
                }
                Err(e) => Err(self.finish(
                    service_of(subscription),
                    Delivery::Failed(Failure::Encryption(e.to_string())),
                )),
            })
            .collect();
        // One sample a message, given in one call: each is a push onto the shared histogram.
        histogram!("aviso_encrypt_seconds").record_many(each, encrypted);
        bodies
    }

    /// The run size [`Sender::seal_batch`] does best in multiples of (8 on the multi-buffer backend).
    pub fn batch_lanes(&self) -> usize {
        self.ec.lanes()
    }

    /// Sends a sealed message, retrying transient failures while its TTL lasts.
    pub async fn send(&self, message: &Message<'_>, body: Bytes) -> Delivery {
        self.send_in(message, body, &Batch::default()).await
    }

    /// Sends a sealed message of `batch`, retrying transient failures while its TTL lasts and
    /// the batch is not stopped.
    ///
    /// Two kinds of waits, never mixed: a `5xx` or a failed connection delays this message
    /// alone, by its own backoff ([`RetryPolicy`]); a throttle pauses the origin for every
    /// message of this sender, as long as the push service asked ([`OriginGate`]), and does
    /// not use up the message's attempts (it has its own bound, `max_throttles`).
    pub async fn send_in(&self, message: &Message<'_>, body: Bytes, batch: &Batch) -> Delivery {
        let subscription = message.subscription;
        let service = service_of(subscription);
        // The origin's key for its pause and its VAPID header, borrowed: no String a message.
        let origin = subscription.authority();
        let expires_at = tokio::time::Instant::from_std(message.expires_at);
        let mut failures = 0;
        let mut throttles = 0;
        loop {
            // The pause in force now, then this message goes: the messages that waited for a
            // pause leave together when it ends, and the answers to that wave start the next.
            // (Re-checking after the wake would let the first throttle of the wave hold the
            // rest back: a service that throttles a share of all requests would then get a
            // handful per pause.)
            if let Some(until) = self.gate.paused_until(origin) {
                if until >= expires_at {
                    let last = "throttled until after the TTL".to_owned();
                    return self.exhausted(service, failures + throttles, last);
                }
                if !batch.park_until(until).await {
                    return self.stopped(service, batch);
                }
            }
            let authorization = match message.vapid.authorization_for(subscription) {
                Ok(header) => header,
                Err(e) => {
                    return self.finish(service, Delivery::Failed(Failure::Vapid(e.to_string())));
                }
            };
            let request = || {
                message
                    .head
                    .request(subscription, body.clone(), authorization.clone())
            };
            let sent_at = tokio::time::Instant::now();
            let answer = self.client.send_with(request).await;
            self.metrics
                .of(service)
                .request_seconds
                .record(sent_at.elapsed().as_secs_f64());

            let (retry_after, last) = match answer {
                Ok(response) => {
                    let outcome = Outcome::classify(response.status, &response.headers);
                    let status = response.status.as_u16();
                    match outcome {
                        Outcome::Delivered => return self.finish(service, Delivery::Delivered),
                        Outcome::Gone => return self.finish(service, Delivery::Expired),
                        Outcome::PayloadTooLarge => {
                            return self
                                .finish(service, Delivery::Failed(Failure::PayloadTooLarge));
                        }
                        Outcome::Rejected { .. } => {
                            // Keys or JWT are wrong for this service: every message will fail alike.
                            counter!("aviso_push_config_errors_total", "service" => service.label(), "status" => status.to_string())
                                .increment(1);
                            tracing::error!(service = service.label(), status, reason = %response.reason, "push service rejected our request: check the VAPID keys and subject");
                            return self.finish(
                                service,
                                Delivery::Failed(Failure::Rejected {
                                    status,
                                    reason: response.reason,
                                }),
                            );
                        }
                        Outcome::Unexpected { .. } => {
                            return self.finish(
                                service,
                                Delivery::Failed(Failure::Unexpected {
                                    status,
                                    reason: response.reason,
                                }),
                            );
                        }
                        Outcome::Throttled { retry_after } => {
                            counter!("aviso_push_throttled_total", "service" => service.label())
                                .increment(1);
                            throttles += 1;
                            if throttles >= self.max_throttles {
                                let last = format!("{status} (throttled)");
                                return self.exhausted(service, failures + throttles, last);
                            }
                            // The whole origin waits (at the top of the loop), so the other
                            // messages stop hammering it too; this message waits no longer.
                            self.gate.throttled(origin, sent_at, retry_after);
                            continue;
                        }
                        Outcome::Unavailable { retry_after } => (retry_after, status.to_string()),
                    }
                }
                Err(error) => (None, transport_label(&error)),
            };
            failures += 1;
            counter!("aviso_push_retries_total", "service" => service.label()).increment(1);
            let Some(delay) =
                self.retry
                    .next_delay(failures, retry_after, Instant::now(), message.expires_at)
            else {
                return self.exhausted(service, failures + throttles, last);
            };
            if !batch.park_until(tokio::time::Instant::now() + delay).await {
                return self.stopped(service, batch);
            }
        }
    }

    fn exhausted(&self, service: PushService, attempts: u32, last: String) -> Delivery {
        self.finish(
            service,
            Delivery::Failed(Failure::RetriesExhausted { attempts, last }),
        )
    }

    fn stopped(&self, service: PushService, batch: &Batch) -> Delivery {
        batch.give_up();
        self.finish(service, Delivery::Failed(Failure::Stopped))
    }

    fn finish(&self, service: PushService, delivery: Delivery) -> Delivery {
        match delivery {
            Delivery::Delivered => self.metrics.of(service).delivered.increment(1),
            Delivery::Expired => self.metrics.of(service).expired.increment(1),
            Delivery::Failed(ref failure) => counter!(
                "aviso_sends_total",
                "service" => service.label(),
                "outcome" => failure.label()
            )
            .increment(1),
        }
        delivery
    }
}

/// The P-256 backend of [`Sender::seal_batch`]: chosen once per process, and said in the log.
fn ec_backend() -> EcBackend {
    static CHOSEN: std::sync::OnceLock<EcBackend> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let (backend, fallback_reason) = EcBackend::detect();
        match fallback_reason {
            None => tracing::info!(backend = backend.name(), "P-256 backend of the batch encryption"),
            Some(reason) => tracing::info!(backend = backend.name(), %reason, "P-256 backend of the batch encryption (multi-buffer not in use)"),
        }
        backend
    })
}

fn service_of(subscription: &PushSubscription) -> PushService {
    subscription
        .endpoint()
        .host()
        .map_or(PushService::Other, PushService::from_host)
}

fn transport_label(error: &TransportError) -> String {
    match error {
        TransportError::Timeout(_) => "timeout".into(),
        other => other.to_string(),
    }
}
