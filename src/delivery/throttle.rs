//! Per-origin pauses that follow the push service's own signal: a `429` (or WNS's
//! `406 appthrottled`) pauses this sender's requests to that origin, and only to that origin,
//! for the `Retry-After` it named, or else for a short base pause that doubles while throttles
//! keep coming and decays when they stop. A message's private retry backoff never pauses the
//! origin: it delays that message alone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

// tokio's clock, so that the pause follows the runtime's time (and paused-time tests).
use tokio::time::Instant;

/// How long an origin pauses after a throttle.
#[derive(Debug, Clone)]
pub struct ThrottlePolicy {
    /// The pause after a throttle without `Retry-After`, when no throttle came recently.
    pub base_pause: Duration,
    /// The longest pause that repeated throttles without `Retry-After` grow to.
    pub max_pause: Duration,
    /// The longest `Retry-After` honoured (a push service that asks for a day is waited for
    /// this long, then asked again).
    pub max_retry_after: Duration,
    /// Each such period without a throttle after a pause ends takes one step (a halving) off
    /// the next pause.
    pub decay: Duration,
    /// Throttle answers one message may get before it is given up (they do not use up its
    /// [`super::RetryPolicy::max_attempts`]: the service said "later", not "broken").
    pub max_throttles: u32,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            base_pause: Duration::from_secs(1),
            max_pause: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
            decay: Duration::from_secs(10),
            max_throttles: 50,
        }
    }
}

/// One origin's throttle state.
#[derive(Debug, Clone, Copy)]
struct Origin {
    /// No request to the origin before this.
    paused_until: Instant,
    /// When the last throttle that counted arrived. A throttle counts (grows the pause) only
    /// for a request sent after it and after the last pause ended: the others were in flight,
    /// or in the wave released at the pause's end, and echo the same signal.
    last_signal: Instant,
    /// Throttles in a row (decayed by quiet time): the pause without `Retry-After` is
    /// `base_pause · 2^(level − 1)`.
    level: u32,
}

/// Origins that asked us to wait, and until when.
pub struct OriginGate {
    policy: ThrottlePolicy,
    origins: Mutex<HashMap<String, Origin>>,
    /// When the last pause of any origin ends, in nanoseconds after `epoch` (0: none yet).
    /// Every message asks the gate; outside a pause this answers without the lock, which the
    /// sending threads would otherwise take in turn once a message each.
    all_resume_at: AtomicU64,
    epoch: Instant,
}

impl Default for OriginGate {
    fn default() -> Self {
        Self::new(ThrottlePolicy::default())
    }
}

impl OriginGate {
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self {
            policy,
            origins: Mutex::new(HashMap::new()),
            all_resume_at: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Until when `origin` is paused, if it is now (one atomic load while no origin is).
    pub fn paused_until(&self, origin: &str) -> Option<Instant> {
        let now = Instant::now();
        if self.nanos_since_epoch(now) >= self.all_resume_at.load(Ordering::Acquire) {
            return None;
        }
        let origins = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        let until = origins.get(origin)?.paused_until;
        (until > now).then_some(until)
    }

    /// `at` on the clock of `all_resume_at`.
    fn nanos_since_epoch(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    /// Waits until `origin` is not paused (returns at once in the common case).
    pub async fn wait(&self, origin: &str) {
        while let Some(until) = self.paused_until(origin) {
            tokio::time::sleep_until(until).await;
        }
    }

    /// Takes a throttle answer to a request sent at `sent_at`: pauses `origin` (extending, never
    /// shortening, a pause) and returns until when.
    pub fn throttled(
        &self,
        origin: &str,
        sent_at: Instant,
        retry_after: Option<Duration>,
    ) -> Instant {
        let now = Instant::now();
        let policy = &self.policy;
        let mut origins = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        // Forget origins whose pause is over and whose level has decayed away.
        origins.retain(|_, o| {
            let quiet = now.saturating_duration_since(o.last_signal.max(o.paused_until));
            o.paused_until > now || quiet < policy.decay.saturating_mul(o.level)
        });
        let known = origins.contains_key(origin);
        let state = origins.entry(origin.to_owned()).or_insert(Origin {
            paused_until: now,
            last_signal: sent_at,
            level: 0,
        });
        // New information only if the request left after the last pause ended; one sent
        // before or during it is part of the wave that pause already answered.
        let fresh = !known || (sent_at >= state.paused_until && sent_at > state.last_signal);
        if fresh {
            // Quiet time runs from the end of the last pause, not from its start.
            let quiet = now.saturating_duration_since(state.last_signal.max(state.paused_until));
            let decayed = quiet.as_nanos() / policy.decay.as_nanos().max(1);
            state.level = state.level.saturating_sub(decayed.min(64) as u32) + 1;
            state.last_signal = now;
        }
        let pause = match retry_after {
            Some(wait) => wait.min(policy.max_retry_after),
            None if fresh => {
                let exponent = state.level.saturating_sub(1).min(16);
                policy
                    .base_pause
                    .saturating_mul(1 << exponent)
                    .min(policy.max_pause)
            }
            // An echo without Retry-After: the pause already set for this signal stands.
            None => Duration::ZERO,
        };
        state.paused_until = state.paused_until.max(now + pause);
        // Under the lock, so that the latest end is never overwritten by an earlier one.
        let resume_at = self.nanos_since_epoch(state.paused_until);
        self.all_resume_at.fetch_max(resume_at, Ordering::Release);
        state.paused_until
    }

    /// Whether `origin` is paused now.
    pub fn is_paused(&self, origin: &str) -> bool {
        self.paused_until(origin).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "https://a.example";
    const B: &str = "https://b.example";

    #[tokio::test(start_paused = true)]
    async fn a_throttle_pauses_that_origin_only_for_its_retry_after() {
        let gate = OriginGate::default();
        let start = Instant::now();
        gate.throttled(A, start, Some(Duration::from_secs(5)));
        // An answer in flight at the same time with a shorter wait never shortens the pause.
        gate.throttled(A, start, Some(Duration::from_secs(1)));
        assert!(gate.is_paused(A));
        assert!(!gate.is_paused(B));
        gate.wait(B).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        gate.wait(A).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(5),
            "the longer pause wins"
        );
        assert!(!gate.is_paused(A));
    }

    #[tokio::test(start_paused = true)]
    async fn without_retry_after_the_pause_grows_with_repeated_throttles_and_decays() {
        let gate = OriginGate::default();
        let pause_after_throttle = |gate: &OriginGate| {
            let now = Instant::now();
            gate.throttled(A, now, None) - now
        };
        assert_eq!(pause_after_throttle(&gate), Duration::from_secs(1));
        // Answers to requests that were in flight when the throttle came are the same signal.
        let before = Instant::now() - Duration::from_millis(1);
        let until = gate.throttled(A, before, None);
        assert_eq!(until - Instant::now(), Duration::from_secs(1));
        // A request that passed the gate just before the pause began and is answered during
        // it echoes the same signal: the pause does not grow.
        tokio::time::advance(Duration::from_millis(100)).await;
        let until = gate.throttled(A, Instant::now(), None);
        assert_eq!(until - Instant::now(), Duration::from_millis(900));
        // Throttled again after resuming (the pause over, a request sent, its 429 back): the
        // pause doubles, up to the maximum.
        let mut pauses = Vec::new();
        for _ in 0..8 {
            let resumed = gate.paused_until(A).expect("paused");
            tokio::time::advance(resumed - Instant::now() + Duration::from_millis(100)).await;
            assert!(!gate.is_paused(A));
            pauses.push(pause_after_throttle(&gate).as_secs());
        }
        assert_eq!(pauses, [2, 4, 8, 16, 32, 60, 60, 60]);
        // Quiet for a while: each decay period takes one step off.
        tokio::time::advance(Duration::from_secs(60 + 65)).await;
        assert_eq!(pause_after_throttle(&gate), Duration::from_secs(8));
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(pause_after_throttle(&gate), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_beyond_the_maximum_is_cut() {
        let gate = OriginGate::default();
        let now = Instant::now();
        let until = gate.throttled(A, now, Some(Duration::from_secs(86_400)));
        assert_eq!(until - now, Duration::from_secs(300));
    }
}
