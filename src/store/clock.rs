//! The application's clock: the one place the Rust side reads the time of day (due times,
//! slices, quiet hours, caps' windows, pending sends), and the shift the Redis ledger scripts
//! add to Redis `TIME` (`lua/now.lua`), so that both sides read the same clock.
//!
//! Debug builds (the ones tests run) take a shift in milliseconds from the hidden setting
//! `AVISO_TEST_CLOCK_SHIFT_MS`: a test starts `aviso serve` with the clock hours ahead, as if
//! it were a later time of day, and restarts it on the same store with a larger shift to jump
//! forward. Release builds ignore the setting: their clock is the system's. What signs or
//! checks against the outside world (VAPID tokens, `Retry-After` dates) keeps the system
//! clock in every build.

use std::sync::LazyLock;

/// The hidden setting (debug builds only).
pub const SHIFT_VARIABLE: &str = "AVISO_TEST_CLOCK_SHIFT_MS";

static SHIFT_MS: LazyLock<i64> = LazyLock::new(read_shift);

#[cfg(debug_assertions)]
fn read_shift() -> i64 {
    let Ok(text) = std::env::var(SHIFT_VARIABLE) else {
        return 0;
    };
    match text.trim().parse::<i64>() {
        Ok(shift) => {
            tracing::warn!(
                shift_ms = shift,
                "the clock is shifted ({SHIFT_VARIABLE}, a test setting)"
            );
            shift
        }
        Err(_) => {
            tracing::warn!(value = %text, "{SHIFT_VARIABLE} is not a whole number of milliseconds; ignored");
            0
        }
    }
}

#[cfg(not(debug_assertions))]
fn read_shift() -> i64 {
    0
}

/// Milliseconds the application's clock is ahead of the system's (zero but in tests).
pub fn shift_ms() -> i64 {
    *SHIFT_MS
}

/// Milliseconds since the Unix epoch, by the application's clock.
pub fn now_ms() -> u64 {
    let system = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    u64::try_from(system.saturating_add(shift_ms())).unwrap_or(0)
}
