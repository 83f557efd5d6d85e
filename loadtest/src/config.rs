//! How the mock push service behaves: where it listens, how slow it is, and which requests it
//! answers with an error instead of `201 Created`.
//!
//! [`MockConfig`] is fixed at start; its [`Behaviour`] can also be replaced while the service
//! runs ([`crate::MockPushService::set_behaviour`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The largest body real push services accept (RFC 8291 §4 recommends at least this much).
pub const DEFAULT_PAYLOAD_LIMIT: usize = 4096;

/// FCM's `SETTINGS_MAX_CONCURRENT_STREAMS`.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;

/// Everything [`crate::MockPushService::start`] needs.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Address to listen on; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS` announced on every connection.
    pub max_concurrent_streams: u32,
    /// Keep each delivery's headers (and decrypted plaintext) per endpoint id. On by default; a
    /// load test with millions of deliveries turns it off and keeps only the per-id counts.
    pub record_details: bool,
    /// How long [`crate::MockPushService::shutdown`] lets open requests finish.
    pub shutdown_grace: Duration,
    /// Offer only HTTP/1.1 in ALPN, like a push service without HTTP/2. Default off.
    pub http1_only: bool,
    /// Latency and error mix; replaceable at runtime.
    pub behaviour: Behaviour,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            record_details: true,
            shutdown_grace: Duration::from_secs(5),
            http1_only: false,
            behaviour: Behaviour::default(),
        }
    }
}

impl MockConfig {
    /// Sets [`MockConfig::listen`].
    pub fn listen(mut self, address: SocketAddr) -> Self {
        self.listen = address;
        self
    }

    /// Sets [`MockConfig::max_concurrent_streams`].
    pub fn max_concurrent_streams(mut self, streams: u32) -> Self {
        self.max_concurrent_streams = streams;
        self
    }

    /// Sets [`MockConfig::record_details`].
    pub fn record_details(mut self, record: bool) -> Self {
        self.record_details = record;
        self
    }

    /// Sets [`Behaviour::latency`].
    pub fn latency(mut self, fixed: Duration, jitter: Duration) -> Self {
        self.behaviour.latency = Latency { fixed, jitter };
        self
    }

    /// Sets [`Behaviour::gone_fraction`].
    pub fn gone_fraction(mut self, fraction: f64) -> Self {
        self.behaviour.gone_fraction = fraction;
        self
    }

    /// Sets [`Behaviour::throttle`].
    pub fn throttle(mut self, throttle: Throttle) -> Self {
        self.behaviour.throttle = throttle;
        self
    }

    /// Sets [`Behaviour::unavailable`].
    pub fn unavailable(mut self, unavailable: Unavailable) -> Self {
        self.behaviour.unavailable = unavailable;
        self
    }

    /// Sets [`Behaviour::payload_limit`].
    pub fn payload_limit(mut self, bytes: usize) -> Self {
        self.behaviour.payload_limit = bytes;
        self
    }

    /// Sets [`MockConfig::http1_only`].
    pub fn http1_only(mut self, http1_only: bool) -> Self {
        self.http1_only = http1_only;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_concurrent_streams == 0 {
            return Err(ConfigError::NoStreams);
        }
        self.behaviour.validate()
    }
}

/// The part of the configuration that may change while the service runs.
///
/// Requests go through these checks in order, and the first that applies answers:
/// `503` ([`Behaviour::unavailable`]), `429` ([`Behaviour::throttle`]), `413`
/// ([`Behaviour::payload_limit`]), `400`/`415` (headers), `401`/`403` (VAPID), an answer queued
/// with [`crate::MockPushService::answer_next`], `410` ([`Behaviour::gone_fraction`]), `400`
/// (a registered subscriber's body does not decrypt), and finally `201 Created`.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// Time taken before every answer to a push request.
    pub latency: Latency,
    /// Fraction (0 to 1) of endpoint ids answered `410 Gone`, chosen by a stable hash of the id
    /// (see [`crate::is_gone`]), so the same ids are gone in every run.
    pub gone_fraction: f64,
    /// Answers `429 Too Many Requests`.
    pub throttle: Throttle,
    /// Answers `503 Service Unavailable`.
    pub unavailable: Unavailable,
    /// Largest accepted body in bytes; larger ones are answered `413 Payload Too Large`.
    pub payload_limit: usize,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            latency: Latency::default(),
            gone_fraction: 0.0,
            throttle: Throttle::default(),
            unavailable: Unavailable::default(),
            payload_limit: DEFAULT_PAYLOAD_LIMIT,
        }
    }
}

impl Behaviour {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        check_fraction("gone_fraction", self.gone_fraction)?;
        check_fraction("throttle.fraction", self.throttle.fraction)?;
        let Unavailable { every, burst, .. } = self.unavailable;
        if burst > 0 && every == 0 {
            return Err(ConfigError::BurstWithoutPeriod { burst });
        }
        if burst > every {
            return Err(ConfigError::BurstLongerThanPeriod { burst, every });
        }
        if self.payload_limit == 0 {
            return Err(ConfigError::NoPayload);
        }
        Ok(())
    }
}

fn check_fraction(name: &'static str, value: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::Fraction { name, value })
    }
}

/// A fixed delay plus a uniformly distributed extra in `0..=jitter`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// Always waited.
    pub fixed: Duration,
    /// Upper bound of the random extra.
    pub jitter: Duration,
}

impl Latency {
    /// One draw of the delay.
    pub(crate) fn sample(&self) -> Duration {
        if self.jitter.is_zero() {
            return self.fixed;
        }
        let jitter_nanos = u64::try_from(self.jitter.as_nanos()).unwrap_or(u64::MAX);
        self.fixed + Duration::from_nanos(fastrand::u64(0..=jitter_nanos))
    }
}

/// Which requests are answered `429 Too Many Requests`.
///
/// Requests are numbered from 0 in the order they reach this check (those answered `503` do not
/// count), restarting whenever the behaviour is replaced. A request is throttled if its number is
/// below [`Throttle::first`], or if it falls on the evenly spread [`Throttle::fraction`] of the
/// rest (deterministic: a fraction of 0.25 throttles every fourth request).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttle {
    /// Throttle this many requests first.
    pub first: u64,
    /// Then throttle this fraction (0 to 1) of the requests that follow.
    pub fraction: f64,
    /// Value of the `Retry-After` header, in seconds.
    pub retry_after_secs: u32,
}

impl Default for Throttle {
    fn default() -> Self {
        Self {
            first: 0,
            fraction: 0.0,
            retry_after_secs: 1,
        }
    }
}

impl Throttle {
    /// Throttles the first `count` requests.
    pub fn first(count: u64) -> Self {
        Self {
            first: count,
            ..Self::default()
        }
    }

    /// Throttles an evenly spread `fraction` of requests.
    pub fn fraction(fraction: f64) -> Self {
        Self {
            fraction,
            ..Self::default()
        }
    }

    /// Sets the `Retry-After` value.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_secs = seconds;
        self
    }

    pub(crate) fn applies_to(&self, number: u64) -> bool {
        if number < self.first {
            return true;
        }
        if self.fraction <= 0.0 {
            return false;
        }
        // Request n is throttled when the running quota floor(n·f) steps up: exactly a fraction f
        // of any long run, spread evenly, and the same in every run.
        let n = (number - self.first) as f64;
        ((n + 1.0) * self.fraction).floor() > (n * self.fraction).floor()
    }
}

/// Which requests are answered `503 Service Unavailable`, as if the service had an outage.
///
/// Requests are numbered from 0 in arrival order, restarting whenever the behaviour is replaced.
/// A request is answered `503` if its number is below [`Unavailable::first`], or if it is among
/// the last [`Unavailable::burst`] of each run of [`Unavailable::every`] requests (with
/// `every = 100, burst = 10`, requests 90–99, 190–199, … fail).
///
/// The periodic bursts are counted in requests, not in time: once a broadcast is over, a message
/// still retrying is the only traffic, and alone it would walk through a burst one request at a
/// time, its backoff doubling each time (ten 503s in a row, minutes of waiting, then given up).
/// [`Unavailable::at_most_per_endpoint`] bounds how many of the bursts' 503s one endpoint gets,
/// as a real service's transient errors are: a retry gets through after a few.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unavailable {
    /// Fail this many requests first.
    pub first: u64,
    /// Length of the repeating period, in requests (0: no periodic outage).
    pub every: u64,
    /// How many requests at the end of each period fail.
    pub burst: u64,
    /// At most this many of the periodic bursts' 503s per endpoint (`None`: no bound); the
    /// outage of [`Unavailable::first`] is not bounded by it.
    pub per_endpoint: Option<u32>,
    /// Value of a `Retry-After` header on the `503`, in seconds, if any.
    pub retry_after_secs: Option<u32>,
}

impl Unavailable {
    /// Fails the first `count` requests.
    pub fn first(count: u64) -> Self {
        Self {
            first: count,
            ..Self::default()
        }
    }

    /// Fails `burst` requests out of every `every`.
    pub fn bursts(every: u64, burst: u64) -> Self {
        Self {
            every,
            burst,
            ..Self::default()
        }
    }

    /// Sets the `Retry-After` value.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_secs = Some(seconds);
        self
    }

    /// Gives one endpoint at most `count` of the periodic bursts' 503s; its requests that fall
    /// in a burst after that are answered as if there were none.
    pub fn at_most_per_endpoint(mut self, count: u32) -> Self {
        self.per_endpoint = Some(count);
        self
    }

    /// Whether request `number` falls in the first outage.
    pub(crate) fn in_first_outage(&self, number: u64) -> bool {
        number < self.first
    }

    /// Whether request `number` falls in a periodic burst.
    pub(crate) fn in_burst(&self, number: u64) -> bool {
        self.burst > 0 && number % self.every >= self.every - self.burst
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A fraction outside 0..=1.
    #[error("{name} must be between 0 and 1, got {value}")]
    Fraction {
        /// Which setting.
        name: &'static str,
        /// What it was set to.
        value: f64,
    },
    /// `unavailable.burst` set without a period.
    #[error("unavailable burst of {burst} requests needs a period (`every`) of at least {burst}")]
    BurstWithoutPeriod {
        /// Requests failed per period.
        burst: u64,
    },
    /// `unavailable.burst` longer than its period.
    #[error(
        "unavailable burst ({burst}) is longer than its period ({every}); lower it or raise `every`"
    )]
    BurstLongerThanPeriod {
        /// Requests failed per period.
        burst: u64,
        /// Period length.
        every: u64,
    },
    /// `payload_limit` of 0.
    #[error("payload_limit must be at least 1 byte (real push services accept 4096)")]
    NoPayload,
    /// `max_concurrent_streams` of 0.
    #[error("max_concurrent_streams must be at least 1 (FCM announces 100)")]
    NoStreams,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_fraction_is_exact_and_spread() {
        let throttle = Throttle::fraction(0.25);
        let hits: Vec<u64> = (0..12).filter(|&n| throttle.applies_to(n)).collect();
        assert_eq!(hits, vec![3, 7, 11]);
    }

    #[test]
    fn throttle_first_then_fraction() {
        let throttle = Throttle {
            first: 2,
            fraction: 0.5,
            retry_after_secs: 1,
        };
        let hits: Vec<u64> = (0..8).filter(|&n| throttle.applies_to(n)).collect();
        assert_eq!(hits, vec![0, 1, 3, 5, 7]);
    }

    #[test]
    fn unavailable_bursts_fall_at_the_end_of_each_period() {
        let outage = Unavailable {
            first: 1,
            every: 5,
            burst: 2,
            ..Unavailable::default()
        };
        let hits: Vec<u64> = (0..12)
            .filter(|&n| outage.in_first_outage(n) || outage.in_burst(n))
            .collect();
        assert_eq!(hits, vec![0, 3, 4, 8, 9]);
    }

    #[test]
    fn impossible_settings_are_refused_with_the_setting_named() {
        let bad = MockConfig::default().gone_fraction(1.5);
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("gone_fraction")
        );
        let bad = MockConfig::default().unavailable(Unavailable::bursts(0, 3));
        assert_eq!(
            bad.validate(),
            Err(ConfigError::BurstWithoutPeriod { burst: 3 })
        );
        let bad = MockConfig::default().unavailable(Unavailable::bursts(2, 3));
        assert!(bad.validate().is_err());
        assert!(
            MockConfig::default()
                .max_concurrent_streams(0)
                .validate()
                .is_err()
        );
        assert!(MockConfig::default().validate().is_ok());
    }

    #[test]
    fn latency_stays_within_its_bounds() {
        let latency = Latency {
            fixed: Duration::from_millis(2),
            jitter: Duration::from_millis(3),
        };
        for _ in 0..100 {
            let d = latency.sample();
            assert!(d >= Duration::from_millis(2) && d <= Duration::from_millis(5));
        }
    }
}
