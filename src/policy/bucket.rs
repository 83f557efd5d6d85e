//! A token bucket's arithmetic, for a store to apply atomically (the embedded store calls
//! these; the Redis store's `lua/take_tokens.lua` does the same sums in the script that holds
//! the bucket). Tokens are counted in thousandths so that a slow rate still refills between
//! two takes a millisecond apart.
//!
//! The bucket fills at `per_minute` a minute, holds a second's worth at most (one token at
//! least), and starts full. Every instance takes from the same bucket, so their sum holds the
//! rate; a take grants what is there (up to what was asked) and, when nothing is, says how long
//! until a token is.

use crate::store::TokenGrant;

const MILLI: u64 = 1000;

/// The bucket's size, in thousandths of a token.
pub fn capacity(per_minute: u32) -> u64 {
    (u64::from(per_minute) * MILLI / 60).max(MILLI)
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
pub fn take(tokens: u64, per_minute: u32, wanted: u32) -> (TokenGrant, u64) {
    let granted = (tokens / MILLI).min(u64::from(wanted)) as u32;
    let left = tokens - u64::from(granted) * MILLI;
    let retry_after_ms = if granted == 0 && wanted > 0 {
        // (MILLI - left) thousandths at per_minute/60 thousandths a millisecond.
        ((MILLI - left) * 60).div_ceil(u64::from(per_minute.max(1)))
    } else {
        0
    };
    (
        TokenGrant {
            granted,
            retry_after_ms,
        },
        left,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_rate() {
        // 60,000 a minute: 1,000 a second, a full bucket of 1,000.
        let (tokens, at) = refill(None, 60_000, 0);
        let (grant, left) = take(tokens, 60_000, 1500);
        assert_eq!(grant.granted, 1000);
        let (grant, left) = take(left, 60_000, 10);
        assert_eq!((grant.granted, grant.retry_after_ms), (0, 1));
        // 250 ms later, 250 tokens.
        let (tokens, _) = refill(Some((left, at)), 60_000, 250);
        assert_eq!(take(tokens, 60_000, 1000).0.granted, 250);
        // A slow rate: 6 a minute is one token each 10 s.
        let (grant, _) = take(500, 6, 1);
        assert_eq!((grant.granted, grant.retry_after_ms), (0, 5000));
        // Never above a second's worth, however long idle.
        assert_eq!(refill(Some((0, 0)), 60_000, 1_000_000).0, 1_000_000);
    }
}
