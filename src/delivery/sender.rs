//! Delivering one message to one subscriber: encrypt, sign, send, and act on the answer
//! (retry what may be retried, report what is gone, alarm on configuration errors).

use std::time::{Duration, Instant};

use bytes::Bytes;
use metrics::{counter, histogram};

use super::backoff::RetryPolicy;
use super::throttle::OriginGate;
use crate::push::{
    EcBackend, Outcome, PushOptions, PushService, PushSubscription, SubscriptionKeys,
    VapidHeaderCache, build_request, encrypt, encrypt_batch,
};
use crate::transport::{PushClient, TransportError};

/// Where and how one message goes: its subscriber, headers and signature, and its deadline.
pub struct Message<'a> {
    pub subscription: &'a PushSubscription,
    pub options: &'a PushOptions,
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

/// Sends messages through a shared [`PushClient`], retrying per [`RetryPolicy`].
pub struct Sender {
    client: PushClient,
    retry: RetryPolicy,
    gate: OriginGate,
    ec: EcBackend,
}

impl Sender {
    pub fn new(client: PushClient, retry: RetryPolicy) -> Self {
        Self {
            client,
            retry,
            gate: OriginGate::default(),
            ec: ec_backend(),
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
                service_label(subscription),
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
        messages
            .iter()
            .zip(sealed)
            .map(|((subscription, _), sealed)| match sealed {
                Ok(body) => {
                    histogram!("aviso_encrypt_seconds").record(each);
                    Ok(Bytes::from(body))
                }
                Err(e) => Err(self.finish(
                    service_label(subscription),
                    Delivery::Failed(Failure::Encryption(e.to_string())),
                )),
            })
            .collect()
    }

    /// The run size [`Sender::seal_batch`] does best in multiples of (8 on the multi-buffer backend).
    pub fn batch_lanes(&self) -> usize {
        self.ec.lanes()
    }

    /// Sends a sealed message, retrying transient failures while its TTL lasts.
    pub async fn send(&self, message: &Message<'_>, body: Bytes) -> Delivery {
        let subscription = message.subscription;
        let service = service_label(subscription);
        let audience = subscription.audience();
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.gate.wait(&audience).await;
            let authorization = match message.vapid.authorization(&audience) {
                Ok(header) => header,
                Err(e) => {
                    return self.finish(service, Delivery::Failed(Failure::Vapid(e.to_string())));
                }
            };
            let request = build_request(subscription, body.clone(), authorization, message.options);
            let sent_at = Instant::now();
            let answer = self.client.send(request).await;
            histogram!("aviso_push_request_seconds", "service" => service)
                .record(sent_at.elapsed().as_secs_f64());

            let (retry_after, throttled, last) = match answer {
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
                            counter!("aviso_push_config_errors_total", "service" => service, "status" => status.to_string())
                                .increment(1);
                            tracing::error!(service, status, reason = %response.reason, "push service rejected our request: check the VAPID keys and subject");
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
                            counter!("aviso_push_throttled_total", "service" => service)
                                .increment(1);
                            (retry_after, true, format!("{status} (throttled)"))
                        }
                        Outcome::Unavailable { retry_after } => {
                            (retry_after, false, status.to_string())
                        }
                    }
                }
                Err(error) => (None, false, transport_label(&error)),
            };
            counter!("aviso_push_retries_total", "service" => service).increment(1);
            let Some(delay) =
                self.retry
                    .next_delay(attempt, retry_after, Instant::now(), message.expires_at)
            else {
                return self.finish(
                    service,
                    Delivery::Failed(Failure::RetriesExhausted {
                        attempts: attempt,
                        last,
                    }),
                );
            };
            if throttled {
                // The whole origin waits, so the other in-flight messages stop hammering it too.
                self.gate
                    .pause(&audience, delay.max(retry_after.unwrap_or(Duration::ZERO)));
            }
            tokio::time::sleep(delay).await;
        }
    }

    fn finish(&self, service: &'static str, delivery: Delivery) -> Delivery {
        counter!("aviso_sends_total", "service" => service, "outcome" => delivery.label())
            .increment(1);
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

fn service_label(subscription: &PushSubscription) -> &'static str {
    subscription
        .endpoint()
        .host()
        .map_or(PushService::Other, PushService::from_host)
        .label()
}

fn transport_label(error: &TransportError) -> String {
    match error {
        TransportError::Timeout(_) => "timeout".into(),
        other => other.to_string(),
    }
}
