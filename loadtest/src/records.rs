//! What the mock counts and keeps: totals by status and protocol, per-endpoint delivery counts
//! (to check exactly-once delivery), each delivery's headers and plaintext when asked, and
//! decryption failures.
//!
//! The hot path touches atomics and one sharded-map entry, so the mock can take tens of thousands
//! of requests a second without becoming the bottleneck of a load test.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use http::{StatusCode, Version};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// Status codes are three digits; one counter slot each.
const STATUS_SLOTS: usize = 600;
/// Failures kept with their reason; a broken sender under load would otherwise fill memory.
/// All of them are counted.
const MAX_KEPT_FAILURES: usize = 10_000;
/// The resolution of the request timeline.
pub const TIMELINE_SLOT: Duration = Duration::from_millis(100);
/// Slots of the timeline: one hour; later requests count in the last slot.
const TIMELINE_SLOTS: usize = 36_000;

/// Push requests received per [`TIMELINE_SLOT`], from the service's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTimeline {
    /// When slot 0 began.
    pub started: Instant,
    /// Requests in each slot, up to the last one that had any.
    pub counts: Vec<u64>,
}

impl RequestTimeline {
    /// The longest stretch from `from` to `to` in which no request came, to within a slot
    /// (the slots that `from` and `to` fall in count whole).
    pub fn longest_silence(&self, from: Instant, to: Instant) -> Duration {
        let slot_of = |at: Instant| {
            let nanos = at.saturating_duration_since(self.started).as_nanos();
            (nanos / TIMELINE_SLOT.as_nanos()) as usize
        };
        let (first, last) = (slot_of(from), slot_of(to));
        let mut longest = 0u32;
        let mut run = 0u32;
        for slot in first..=last {
            if self.counts.get(slot).copied().unwrap_or(0) == 0 {
                run += 1;
                longest = longest.max(run);
            } else {
                run = 0;
            }
        }
        TIMELINE_SLOT * longest
    }
}

/// One accepted message, as the push service received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `TTL` header, in seconds.
    pub ttl: u64,
    /// `Urgency` header, if sent.
    pub urgency: Option<String>,
    /// `Topic` header, if sent.
    pub topic: Option<String>,
    /// HTTP version the request came over.
    pub version: Version,
    /// The decrypted body, if the endpoint has a registered [`crate::TestSubscriber`].
    pub plaintext: Option<Vec<u8>>,
    /// When the push service accepted it.
    pub received_at: Instant,
}

/// One accepted message as `GET /messages/{id}` shows it: the headers, and the plaintext as text
/// (lossy UTF-8: the payloads Aviso sends are JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageView {
    pub ttl: u64,
    pub urgency: Option<String>,
    pub topic: Option<String>,
    pub plaintext: Option<String>,
}

impl From<&Delivery> for MessageView {
    fn from(delivery: &Delivery) -> Self {
        MessageView {
            ttl: delivery.ttl,
            urgency: delivery.urgency.clone(),
            topic: delivery.topic.clone(),
            plaintext: delivery
                .plaintext
                .as_deref()
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned()),
        }
    }
}

/// A message for a registered subscriber that did not decrypt (it was answered `400`). The first
/// 10,000 are kept; [`Stats::verification_failures`] counts all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationFailure {
    /// Endpoint id.
    pub id: String,
    /// What the `ece` crate said.
    pub reason: String,
}

/// A snapshot of the counters, also served as JSON by `GET /stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Push requests received (every `/push/…` request, whatever the answer).
    pub requests: u64,
    /// Push requests by the status answered.
    pub by_status: BTreeMap<u16, u64>,
    /// Messages accepted with `201`.
    pub delivered: u64,
    /// Endpoint ids with at least one accepted message.
    pub distinct_endpoints: u64,
    /// Accepted messages beyond the first for their endpoint id. Zero when each endpoint was
    /// sent exactly one notification exactly once.
    pub duplicate_deliveries: u64,
    /// Distinct VAPID JWTs that passed verification.
    pub distinct_jwts: u64,
    /// Messages decrypted successfully for registered subscribers.
    pub decrypted: u64,
    /// Messages for registered subscribers that failed to decrypt.
    pub verification_failures: u64,
    /// TCP connections accepted.
    pub connections: u64,
    /// Connections whose TLS handshake failed or timed out.
    pub tls_handshake_failures: u64,
    /// Push requests over HTTP/1.x.
    pub http1_requests: u64,
    /// Push requests over HTTP/2.
    pub http2_requests: u64,
}

#[derive(Default)]
struct EndpointRecord {
    /// Push requests, whatever the answer.
    requests: u64,
    delivered: u64,
    details: Vec<Delivery>,
}

/// The counters and records behind [`Stats`].
pub(crate) struct Recorder {
    record_details: bool,
    requests: AtomicU64,
    by_status: Box<[AtomicU64]>,
    http1_requests: AtomicU64,
    http2_requests: AtomicU64,
    connections: AtomicU64,
    tls_handshake_failures: AtomicU64,
    delivered: AtomicU64,
    /// Endpoint ids with at least one accepted message (`endpoints` also holds ids that only
    /// got refusals).
    distinct_endpoints: AtomicU64,
    duplicate_deliveries: AtomicU64,
    decrypted: AtomicU64,
    verification_failures: AtomicU64,
    endpoints: DashMap<Box<str>, EndpointRecord>,
    failures: Mutex<Vec<VerificationFailure>>,
    delivered_changed: Notify,
    /// Tasks in `wait_for_deliveries`; deliveries skip the wake-up when there are none.
    waiters: AtomicUsize,
    started: Instant,
    timeline: Box<[AtomicU32]>,
}

impl Recorder {
    pub(crate) fn new(record_details: bool) -> Self {
        Self {
            record_details,
            requests: AtomicU64::new(0),
            by_status: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            http1_requests: AtomicU64::new(0),
            http2_requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            tls_handshake_failures: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            distinct_endpoints: AtomicU64::new(0),
            duplicate_deliveries: AtomicU64::new(0),
            decrypted: AtomicU64::new(0),
            verification_failures: AtomicU64::new(0),
            endpoints: DashMap::new(),
            failures: Mutex::new(Vec::new()),
            delivered_changed: Notify::new(),
            waiters: AtomicUsize::new(0),
            started: Instant::now(),
            timeline: (0..TIMELINE_SLOTS).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    pub(crate) fn started_at(&self) -> Instant {
        self.started
    }

    pub(crate) fn timeline(&self) -> RequestTimeline {
        let mut counts: Vec<u64> = self
            .timeline
            .iter()
            .map(|count| u64::from(count.load(Ordering::Relaxed)))
            .collect();
        let used = counts
            .iter()
            .rposition(|&count| count > 0)
            .map_or(0, |i| i + 1);
        counts.truncate(used);
        RequestTimeline {
            started: self.started,
            counts,
        }
    }

    pub(crate) fn records_details(&self) -> bool {
        self.record_details
    }

    pub(crate) fn connection_accepted(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn handshake_failed(&self) {
        self.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn request(&self, id: &str, version: Version) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let slot = (self.started.elapsed().as_nanos() / TIMELINE_SLOT.as_nanos()) as usize;
        self.timeline[slot.min(TIMELINE_SLOTS - 1)].fetch_add(1, Ordering::Relaxed);
        match self.endpoints.get_mut(id) {
            Some(mut record) => record.requests += 1,
            None => self.endpoints.entry(id.into()).or_default().requests += 1,
        }
        let by_version = if version == Version::HTTP_2 {
            &self.http2_requests
        } else {
            &self.http1_requests
        };
        by_version.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn answered(&self, status: StatusCode) {
        let slot = usize::from(status.as_u16()).min(STATUS_SLOTS - 1);
        self.by_status[slot].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn decrypted(&self) {
        self.decrypted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn verification_failed(&self, id: &str, reason: String) {
        self.verification_failures.fetch_add(1, Ordering::Relaxed);
        let failure = VerificationFailure {
            id: id.to_owned(),
            reason,
        };
        // A poisoned lock only means another request panicked mid-push; the list is still usable.
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if failures.len() < MAX_KEPT_FAILURES {
            failures.push(failure);
        }
    }

    /// Counts an accepted message for `id`; `details` is only built when details are recorded.
    pub(crate) fn delivered(&self, id: &str, details: impl FnOnce() -> Delivery) {
        let update = |record: &mut EndpointRecord| {
            record.delivered += 1;
            if self.record_details {
                record.details.push(details());
            }
            record.delivered
        };
        let count = match self.endpoints.get_mut(id) {
            Some(mut record) => update(&mut record),
            None => update(&mut self.endpoints.entry(id.into()).or_default()),
        };
        if count > 1 {
            self.duplicate_deliveries.fetch_add(1, Ordering::Relaxed);
        } else {
            self.distinct_endpoints.fetch_add(1, Ordering::Relaxed);
        }
        self.delivered.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.delivered_changed.notify_waiters();
        }
    }

    pub(crate) fn delivered_total(&self) -> u64 {
        self.delivered.load(Ordering::SeqCst)
    }

    /// Waits until at least `expected` messages were accepted, or `deadline` passes.
    pub(crate) async fn wait_for_delivered(
        &self,
        expected: u64,
        deadline: tokio::time::Instant,
    ) -> Result<(), u64> {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiters);
        loop {
            // Registered before the count is read, so a delivery in between still wakes us.
            let changed = self.delivered_changed.notified();
            let delivered = self.delivered_total();
            if delivered >= expected {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(self.delivered_total());
            }
        }
    }

    pub(crate) fn requests_for(&self, id: &str) -> u64 {
        self.endpoints.get(id).map_or(0, |record| record.requests)
    }

    pub(crate) fn delivered_count(&self, id: &str) -> u64 {
        self.endpoints.get(id).map_or(0, |record| record.delivered)
    }

    pub(crate) fn deliveries(&self, id: &str) -> Vec<Delivery> {
        self.endpoints
            .get(id)
            .map_or_else(Vec::new, |record| record.details.clone())
    }

    pub(crate) fn messages(&self, id: &str) -> Vec<MessageView> {
        self.endpoints.get(id).map_or_else(Vec::new, |record| {
            record.details.iter().map(MessageView::from).collect()
        })
    }

    pub(crate) fn delivery_counts(&self) -> BTreeMap<String, u64> {
        self.endpoints
            .iter()
            .filter(|entry| entry.value().delivered > 0)
            .map(|entry| (entry.key().to_string(), entry.value().delivered))
            .collect()
    }

    pub(crate) fn verification_failures(&self) -> Vec<VerificationFailure> {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub(crate) fn count_for(&self, status: StatusCode) -> u64 {
        let slot = usize::from(status.as_u16()).min(STATUS_SLOTS - 1);
        self.by_status[slot].load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self, distinct_jwts: usize) -> Stats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let by_status = self
            .by_status
            .iter()
            .enumerate()
            .filter_map(|(code, counter)| {
                let count = load(counter);
                let code = u16::try_from(code).ok()?;
                (count > 0).then_some((code, count))
            })
            .collect();
        Stats {
            requests: load(&self.requests),
            by_status,
            delivered: self.delivered_total(),
            distinct_endpoints: load(&self.distinct_endpoints),
            duplicate_deliveries: load(&self.duplicate_deliveries),
            distinct_jwts: distinct_jwts as u64,
            decrypted: load(&self.decrypted),
            verification_failures: load(&self.verification_failures),
            connections: load(&self.connections),
            tls_handshake_failures: load(&self.tls_handshake_failures),
            http1_requests: load(&self.http1_requests),
            http2_requests: load(&self.http2_requests),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_silence_is_the_longest_run_of_empty_slots_between_two_instants() {
        let started = Instant::now();
        let timeline = RequestTimeline {
            started,
            counts: vec![3, 0, 0, 1, 0, 0, 0, 2],
        };
        let at = |slot: u32| started + TIMELINE_SLOT * slot;
        assert_eq!(timeline.longest_silence(at(0), at(7)), TIMELINE_SLOT * 3);
        assert_eq!(timeline.longest_silence(at(0), at(3)), TIMELINE_SLOT * 2);
        // After the last request the silence goes on.
        assert_eq!(timeline.longest_silence(at(7), at(12)), TIMELINE_SLOT * 5);
    }
}
