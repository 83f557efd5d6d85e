//! Per-origin pauses: a `429` (or WNS's `406 appthrottled`) slows the whole push service for
//! this sender, not only the request that got it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

// tokio's clock, so that the pause follows the runtime's time (and paused-time tests).
use tokio::time::Instant;

/// Origins that asked us to wait, and until when.
#[derive(Default)]
pub struct OriginGate {
    paused_until: Mutex<HashMap<String, Instant>>,
}

impl OriginGate {
    /// Waits until `origin` is not paused (returns at once in the common case).
    pub async fn wait(&self, origin: &str) {
        loop {
            let until = {
                let paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
                match paused.get(origin) {
                    Some(until) if *until > Instant::now() => *until,
                    _ => return,
                }
            };
            tokio::time::sleep_until(until).await;
        }
    }

    /// Pauses every send to `origin` for `duration` (extending, never shortening, a pause).
    pub fn pause(&self, origin: &str, duration: Duration) {
        let until = Instant::now() + duration;
        let mut paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        paused.retain(|_, t| *t > Instant::now());
        let entry = paused.entry(origin.to_owned()).or_insert(until);
        if *entry < until {
            *entry = until;
        }
    }

    /// Whether `origin` is paused now.
    pub fn is_paused(&self, origin: &str) -> bool {
        let paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        paused.get(origin).is_some_and(|t| *t > Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_send_to_that_origin_only() {
        let gate = OriginGate::default();
        gate.pause("https://a.example", Duration::from_secs(5));
        gate.pause("https://a.example", Duration::from_secs(1));
        assert!(gate.is_paused("https://a.example"));
        assert!(!gate.is_paused("https://b.example"));
        let start = Instant::now();
        gate.wait("https://b.example").await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        gate.wait("https://a.example").await;
        assert!(
            start.elapsed() >= Duration::from_secs(5),
            "the longer pause wins"
        );
    }
}
