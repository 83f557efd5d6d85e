//! When to try a message again: exponential backoff with jitter, never sooner than the push
//! service's `Retry-After`, never past the message's TTL.

use std::time::{Duration, Instant};

/// The retry schedule of one message.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// The first delay; each further attempt doubles it.
    pub initial_delay: Duration,
    /// No single wait is longer than this (a `Retry-After` above it is honoured, though).
    pub max_delay: Duration,
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(300),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (after `attempt` failures, counting from 1), or
    /// `None` when the message should be given up: out of attempts, or the retry would land
    /// after `deadline` (the TTL's end).
    pub fn next_delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        now: Instant,
        deadline: Instant,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let exponent = attempt.saturating_sub(1).min(20);
        let ceiling = self
            .initial_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        // "Equal jitter": half fixed, half random, so that retries of a burst spread out but
        // never come back immediately.
        let half = ceiling / 2;
        let jittered = half + half.mul_f64(fastrand::f64());
        let delay = retry_after.map_or(jittered, |wait| wait.max(jittered));
        (now + delay < deadline).then_some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_within_bounds_and_honours_retry_after_and_ttl() {
        let policy = RetryPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_attempts: 5,
        };
        let now = Instant::now();
        let far = now + Duration::from_secs(3600);
        for attempt in 1..5 {
            let ceiling =
                Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(1));
            let delay = policy.next_delay(attempt, None, now, far).unwrap();
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "attempt {attempt}: {delay:?}"
            );
        }
        assert_eq!(
            policy.next_delay(5, None, now, far),
            None,
            "out of attempts"
        );
        assert_eq!(
            policy.next_delay(1, Some(Duration::from_secs(30)), now, far),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            policy.next_delay(
                1,
                Some(Duration::from_secs(30)),
                now,
                now + Duration::from_secs(10)
            ),
            None,
            "a retry after the TTL is pointless"
        );
    }
}
