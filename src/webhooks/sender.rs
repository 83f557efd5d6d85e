//! The webhook sender: a task in every instance that sends (started by `aviso serve` beside
//! the delivery engine), apart from the engine's lanes so that it never slows a broadcast. It
//! looks at every app's webhooks a few times a second; for each, under a lease (one instance
//! at a time per webhook, taken over after a crash), it posts the outbox entries after the
//! webhook's cursor, in order, signed (`sign.rs`), and moves the cursor past each entry once a
//! 2xx answers it. A failure (no answer, a timeout, any other status, a redirect) is retried
//! with exponential backoff; an entry that kept failing for the retry period (24 h by default)
//! becomes a dead letter and the webhook goes on. At-least-once: an entry posted but not yet
//! recorded as passed (a crash in between) is posted again, under the same `webhook-id`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

use super::model::{AfterFailure, RetryRule};
use super::target::{check_url, is_allowed_host, literal_ip, public_addresses};
use super::{DeadLetter, OutboxEntry, Webhook, WebhookState, sign};
use crate::config::PushHost;
use crate::store::{Lease, StateSave, Store, StoreError, WebhookRef, now_ms};
use crate::transport::TransportError;
use crate::transport::tls::http1_connector;

/// How the sender runs.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Names this process's leases.
    pub worker_id: String,
    /// How often it looks for new entries (rare events reach the CRM within about this).
    pub poll_interval: Duration,
    /// How long a lease on a webhook lasts without renewal.
    pub lease: Duration,
    pub retry: RetryRule,
    /// Hosts and ports allowed although not public (tests' loopback receivers).
    pub allowed_hosts: Vec<PushHost>,
    /// Extra trusted root certificates (PEM files).
    pub extra_ca_files: Vec<std::path::PathBuf>,
    /// How long one POST may take.
    pub request_timeout: Duration,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            worker_id: "webhooks".into(),
            poll_interval: Duration::from_millis(200),
            lease: Duration::from_secs(30),
            retry: RetryRule::default(),
            allowed_hosts: Vec::new(),
            extra_ca_files: Vec::new(),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Entries read from the outbox per look.
const READ_BATCH: usize = 64;
/// Bytes of a receiver's answer read at most (for the error message).
const MAX_ANSWER: usize = 4096;

/// A DNS resolver that answers only public addresses: a name that resolves to loopback or a
/// private network is refused when it is connected to, not only when it is registered.
#[derive(Clone, Default)]
struct PublicOnly;

impl tower::Service<Name> for PublicOnly {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public = public_addresses(resolved);
            if public.is_empty() {
                return Err(std::io::Error::other(format!(
                    "{} resolves to no public address",
                    name.as_str()
                )));
            }
            Ok(public.into_iter())
        })
    }
}

type GuardedClient = Client<HttpsConnector<HttpConnector<PublicOnly>>, Full<Bytes>>;
type OpenClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Posts outbox entries to webhooks.
pub struct WebhookSender {
    store: Arc<dyn Store>,
    config: SenderConfig,
    /// For every target: public addresses only.
    guarded: GuardedClient,
    /// For the hosts the operator allowed.
    open: OpenClient,
}

impl WebhookSender {
    pub fn new(store: Arc<dyn Store>, config: SenderConfig) -> Result<Self, TransportError> {
        let tls = crate::transport::tls::client_config(&config.extra_ca_files)?;
        let mut guarded_http = HttpConnector::new_with_resolver(PublicOnly);
        guarded_http.set_connect_timeout(Some(config.request_timeout));
        let mut open_http = HttpConnector::new();
        open_http.set_connect_timeout(Some(config.request_timeout));
        let guarded =
            Client::builder(TokioExecutor::new()).build(http1_connector(&tls, true, guarded_http));
        let open =
            Client::builder(TokioExecutor::new()).build(http1_connector(&tls, true, open_http));
        Ok(Self {
            store,
            config,
            guarded,
            open,
        })
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let this = Arc::new(self);
        while !*shutdown.borrow() {
            if let Err(error) = this.clone().round(&shutdown).await {
                tracing::warn!(%error, "webhook sender: cannot read the store; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(this.config.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// One look at every webhook of every app, each drained concurrently.
    async fn round(self: Arc<Self>, shutdown: &watch::Receiver<bool>) -> Result<(), StoreError> {
        let mut drains = tokio::task::JoinSet::new();
        for app in self.store.list_apps().await? {
            for webhook in self.store.list_webhooks(&app.id).await? {
                let this = self.clone();
                let shutdown = shutdown.clone();
                drains.spawn(async move {
                    if let Err(error) = this.drain(&webhook, &shutdown).await {
                        tracing::warn!(%error, webhook = %webhook.id, "webhook sender: a store call failed");
                    }
                });
            }
        }
        while drains.join_next().await.is_some() {}
        Ok(())
    }

    /// Posts what waits for one webhook, until the outbox is empty for it or a failure makes it
    /// wait.
    async fn drain(
        &self,
        webhook: &Webhook,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        let (hook, worker) = (WebhookRef::from(webhook), &self.config.worker_id);
        let lease = self.config.lease;
        let held = Lease { worker, ttl: lease };
        let Some(mut state) = self.store.lease_webhook(hook, held).await? else {
            return Ok(());
        };
        let mut leased_at = Instant::now();
        if state.next_attempt_ms > now_ms() {
            return Ok(());
        }
        loop {
            let entries = self
                .store
                .read_webhook_events(hook.app_id, state.cursor, READ_BATCH)
                .await?;
            let Some(last) = entries.last().map(|(seq, _)| *seq) else {
                return Ok(());
            };
            for (seq, entry) in entries {
                if !webhook.wants(&entry) {
                    state.passed(seq);
                    continue;
                }
                match self.post(webhook, &entry).await {
                    Ok(()) => {
                        metrics::counter!("aviso_webhook_posts_total", "result" => "ok")
                            .increment(1);
                        // Saved once per read batch, not per POST: after a crash, at most
                        // one batch is posted again (same webhook-ids).
                        state.passed(seq);
                    }
                    Err(error) => {
                        metrics::counter!("aviso_webhook_posts_total", "result" => "failed")
                            .increment(1);
                        let first_failure = state.failing_since_ms.unwrap_or_else(now_ms);
                        match state.failed(self.config.retry, now_ms(), error.clone()) {
                            AfterFailure::RetryAt(_) => {
                                tracing::debug!(webhook = %webhook.id, %error, attempts = state.attempts, "webhook post failed; retrying later");
                                return self.save(webhook, &state, &[]).await;
                            }
                            AfterFailure::GiveUp => {
                                let dead = DeadLetter {
                                    webhook_id: webhook.id.clone(),
                                    entry,
                                    attempts: state.attempts,
                                    first_failure_ms: first_failure,
                                    dead_at_ms: now_ms(),
                                    last_error: error,
                                };
                                tracing::warn!(webhook = %webhook.id, message = %dead.entry.id, "webhook retried for too long: dead-lettered");
                                metrics::counter!("aviso_webhook_dead_letters_total").increment(1);
                                state.passed(seq);
                                self.save(webhook, &state, &[dead]).await?;
                            }
                        }
                    }
                }
                if *shutdown.borrow() {
                    return self.save(webhook, &state, &[]).await;
                }
                if leased_at.elapsed() > lease / 3 {
                    if self.store.lease_webhook(hook, held).await?.is_none() {
                        return Ok(());
                    }
                    leased_at = Instant::now();
                }
            }
            // Entries skipped by the filter move the cursor too.
            if state.cursor < last {
                state.passed(last);
            }
            self.save(webhook, &state, &[]).await?;
        }
    }

    async fn save(
        &self,
        webhook: &Webhook,
        state: &WebhookState,
        dead: &[DeadLetter],
    ) -> Result<(), StoreError> {
        match self
            .store
            .save_webhook_state(
                webhook.into(),
                StateSave::new(&self.config.worker_id, state, dead),
            )
            .await
        {
            // Another instance took the webhook over: it goes on from the last saved cursor.
            Err(StoreError::LeaseLost) => Ok(()),
            other => other,
        }
    }

    /// One signed POST; `Err` says why it did not count as received.
    async fn post(&self, webhook: &Webhook, entry: &OutboxEntry) -> Result<(), String> {
        let url = check_url(&webhook.url, &self.config.allowed_hosts)?;
        let key = webhook
            .key()
            .ok_or("the webhook's secret is not whsec_ and base64")?;
        let body = entry.body();
        let signed = sign::sign(&key, &entry.id, now_ms() / 1000, &body);
        let request = http::Request::post(url.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "aviso-webhooks")
            .header("webhook-id", &signed.id)
            .header("webhook-timestamp", &signed.timestamp)
            .header("webhook-signature", &signed.signature)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(443);
        let allowed = is_allowed_host(&self.config.allowed_hosts, host, port);
        if !allowed && literal_ip(host).is_some_and(|ip| !super::target::is_public(ip)) {
            return Err(format!("{host} is not a public address"));
        }
        let exchange = async {
            let response = if allowed {
                self.open.request(request).await
            } else {
                self.guarded.request(request).await
            }
            .map_err(|e| format!("no answer: {e}"))?;
            let status = response.status();
            let answer = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if status.is_success() {
                Ok(())
            } else {
                Err(format!(
                    "answered {status}: {}",
                    String::from_utf8_lossy(&answer)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ))
            }
        };
        tokio::time::timeout(self.config.request_timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {:?}", self.config.request_timeout))?
    }
}
