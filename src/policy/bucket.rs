//! A token bucket's arithmetic, for a store to apply atomically (the embedded store calls
//! these; the Redis store's `lua/take_tokens.lua` does the same sums in the script that holds
//! the bucket). Tokens are counted in thousandths so that a slow rate still refills between
//! two takes a millisecond apart.
//!
//! The bucket fills at `per_minute` a minute, holds a twentieth of a second's worth at most
//! (one token at least), and starts full: so that no second sees more than the rate and a
//! twentieth, however the sends came before (a bucket of a second's worth lets a sender that
//! fell behind send two seconds' worth in one). Every instance takes from the same bucket, so their sum holds the
//! rate; a take grants what is there (up to what was asked) and, when nothing is, says how long
//! until a token is.

use crate::store::TokenGrant;

const MILLI: u64 = 1000;

/// The part of a second the bucket holds.
const BURST_SECONDS_DIVISOR: u64 = 20;

/// Tokens a sender asks for at once: half of what the bucket holds (one at least). The other
/// half is headroom: the bucket overflows, and the rate is lost, only when every taker wakes
/// later than that half takes to refill (a loaded machine's timers are late by milliseconds).
pub fn chunk(per_minute: u32) -> u32 {
    (per_minute / 60 / (2 * BURST_SECONDS_DIVISOR as u32)).max(1)
}

/// The bucket's size, in thousandths of a token (the Redis script is handed it).
pub fn capacity(per_minute: u32) -> u64 {
    (u64::from(per_minute) * MILLI / 60 / BURST_SECONDS_DIVISOR).max(MILLI)
}

/// The bucket at `now_ms`, from its stored `(tokens, last refill)` (full when new).
pub fn refill(state: Option<(u64, u64)>, per_minute: u32, now_ms: u64) -> (u64, u64) {
    let capacity = capacity(per_minute);
    match state {
        None => (capacity, now_ms),
        Some((tokens, at)) if now_ms > at => {
            let added = (now_ms - at).saturating_mul(u64::from(per_minute)) / 60;
            (tokens.saturating_add(added).min(capacity), now_ms)
        }
        Some(state) => state,
    }
}

/// Takes up to `wanted` whole tokens from `tokens`; answers the grant and what is left.
///
/// A take is granted only once the bucket holds what was asked (or all it can hold): a taker
/// is never handed one token at a time, and when it must wait it is told how long until the
/// bucket holds its share, not until the next token. So the takers of a busy bucket ask a few
/// times a second, not at every refill of a token.
pub fn take(tokens: u64, per_minute: u32, wanted: u32) -> (TokenGrant, u64) {
    let need = (u64::from(wanted) * MILLI).min(capacity(per_minute) / MILLI * MILLI);
    if tokens >= need {
        let granted = (tokens / MILLI).min(u64::from(wanted)) as u32;
        let left = tokens - u64::from(granted) * MILLI;
        let grant = TokenGrant {
            granted,
            retry_after_ms: 0,
        };
        return (grant, left);
    }
    // (need - tokens) thousandths at per_minute/60 thousandths a millisecond.
    let retry_after_ms = ((need - tokens) * 60).div_ceil(u64::from(per_minute.max(1)));
    (
        TokenGrant {
            granted: 0,
            retry_after_ms,
        },
        tokens,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_rate() {
        // 60,000 a minute: 1,000 a second, a full bucket of 50.
        let (tokens, at) = refill(None, 60_000, 0);
        let (grant, left) = take(tokens, 60_000, 1500);
        assert_eq!(grant.granted, 50);
        // Empty: 10 tokens are 10 ms away.
        let (grant, left) = take(left, 60_000, 10);
        assert_eq!((grant.granted, grant.retry_after_ms), (0, 10));
        // 30 ms later, 30 tokens: not the 50 a large take waits for (20 ms more), but 10.
        let (tokens, at) = refill(Some((left, at)), 60_000, 30);
        assert_eq!(
            take(tokens, 60_000, 1000).0,
            TokenGrant {
                granted: 0,
                retry_after_ms: 20
            }
        );
        let (grant, left) = take(tokens, 60_000, 10);
        assert_eq!(grant.granted, 10);
        // 250 ms later, never more than the 50 it holds.
        let (tokens, _) = refill(Some((left, at)), 60_000, 280);
        assert_eq!(take(tokens, 60_000, 1000).0.granted, 50);
        // A slow rate: 6 a minute is one token each 10 s.
        let (grant, _) = take(500, 6, 1);
        assert_eq!((grant.granted, grant.retry_after_ms), (0, 5000));
        // Never above a twentieth of a second's worth, however long idle; one token at least.
        assert_eq!(refill(Some((0, 0)), 60_000, 1_000_000).0, 50_000);
        assert_eq!(refill(Some((0, 0)), 60, 1_000_000).0, 1_000);
    }
}
