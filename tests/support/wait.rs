//! Bounded waiting for something the server does in its own time.

use std::time::{Duration, Instant};

/// Polls `check` every `every` until it gives `Ok`; past `deadline`, fails with its `Err`.
pub async fn poll_until<T>(
    deadline: Instant,
    every: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    loop {
        match check() {
            Ok(done) => return done,
            Err(why) => assert!(Instant::now() < deadline, "not in time: {why}"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits (for `limit` at most, polling every 200 ms) for `done`.
pub async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let check = || if done() { Ok(()) } else { Err(what.to_owned()) };
    poll_until(Instant::now() + limit, Duration::from_millis(200), check).await
}
