//! A notification's life after its creation: where it stands (`queued → sending → completed |
//! cancelled`, each step with its time), whether its counters account for everyone it targeted,
//! and its counters over time for charts. The store keeps the times and the series atomically
//! with the counters (see `store::NotificationStore` and `store::LedgerStore::record_batch`);
//! the rules that read them live here, once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::model::Status;

/// When a notification moved on: each step's time in Unix milliseconds, absent until it
/// happened. Kept by the store beside the notification's counters, not in its document, so
/// that each step is atomic with what causes it (a claim, the last task's count, a cancel).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Life {
    /// When the first of its tasks was claimed (a scheduled or local-time notification stays
    /// `queued` until its time comes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending_at_ms: Option<u64>,
    /// When the last of its tasks was counted through its end: its counters are final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at_ms: Option<u64>,
    /// When it was cancelled (never after it completed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at_ms: Option<u64>,
}

impl Life {
    /// The status these times say, over the one the document was stored with (a notification
    /// cancelled before the store kept times has only its document's `cancelled`).
    pub fn status(&self, stored: Status) -> Status {
        if self.cancelled_at_ms.is_some() || stored == Status::Cancelled {
            Status::Cancelled
        } else if self.completed_at_ms.is_some() {
            Status::Completed
        } else if self.sending_at_ms.is_some() {
            Status::Sending
        } else {
            Status::Queued
        }
    }
}

/// What a cancel found (`store::NotificationStore::cancel_notification`), atomic with the
/// last task's completion: one of the two comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// Cancelled now, at this time.
    Cancelled(u64),
    /// Cancelled before, at this time: nothing changed.
    AlreadyCancelled(u64),
    /// It had completed, at this time: nothing changed.
    Completed(u64),
}

/// The counters that say what finally became of one targeted subscription: each targeted
/// subscription ends in exactly one of them (a `failed.REASON` counter per reason). `sent` is
/// `delivered + expired + failed.*`; `deferred` is not final (the subscription is counted
/// again when its slice runs).
pub const FINAL_OUTCOMES: &[&str] = &[
    "delivered",
    "expired",
    "capped",
    "dropped_quiet_hours",
    "skipped_stale",
    "missing",
    "left_segment",
];
/// The prefix of the per-reason failure counters.
pub const FAILED_PREFIX: &str = "failed.";

/// Whether `counter` is one of the final outcomes of [`FINAL_OUTCOMES`] or a failure.
pub fn is_final_outcome(counter: &str) -> bool {
    FINAL_OUTCOMES.contains(&counter)
        || counter
            .strip_prefix(FAILED_PREFIX)
            .is_some_and(|reason| !reason.is_empty())
}

/// The accounting of a notification's counters: everyone it targeted, how many have a final
/// outcome, how many are still on their way. Once the notification is `completed`,
/// `outstanding` is 0: `targeted = delivered + expired + failed.* + capped +
/// dropped_quiet_hours + skipped_stale + missing + left_segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Accounting {
    /// Subscriptions targeted: for named recipients, known at creation; for `all` and
    /// segments, counted as the shards are read (final once `completed`).
    pub targeted: i64,
    /// Subscriptions with a final outcome.
    pub settled: i64,
    /// `targeted - settled`: waiting in the ledger, deferred to a slice, or being sent.
    pub outstanding: i64,
}

impl Accounting {
    pub fn of(counters: &BTreeMap<String, i64>) -> Self {
        let targeted = counters.get("targeted").copied().unwrap_or(0);
        let settled = counters
            .iter()
            .filter(|(name, _)| is_final_outcome(name))
            .map(|(_, n)| *n)
            .sum();
        Self {
            targeted,
            settled,
            outstanding: targeted - settled,
        }
    }
}

/// Counters go by minute for this long after the notification's `send_at`, then by hour.
pub const MINUTE_SERIES_MS: u64 = 6 * 3600 * 1000;
const MINUTE_MS: u64 = 60 * 1000;
const HOUR_MS: u64 = 3600 * 1000;

/// The series bucket that counts what happens at `now_ms` for a notification due at
/// `send_at_ms`: its start (Unix milliseconds). Buckets are a minute long for the first
/// [`MINUTE_SERIES_MS`] from `send_at_ms`, an hour after, aligned to `send_at_ms`, so that they
/// never overlap; a time before `send_at_ms` (a clock a little behind) counts in the first.
pub fn series_bucket(send_at_ms: u64, now_ms: u64) -> u64 {
    let since = now_ms.saturating_sub(send_at_ms);
    if since < MINUTE_SERIES_MS {
        send_at_ms + since - since % MINUTE_MS
    } else {
        let after = since - MINUTE_SERIES_MS;
        send_at_ms + MINUTE_SERIES_MS + after - after % HOUR_MS
    }
}

/// How long the bucket starting at `start_ms` is (see [`series_bucket`]).
pub fn bucket_width_ms(send_at_ms: u64, start_ms: u64) -> u64 {
    if start_ms.saturating_sub(send_at_ms) < MINUTE_SERIES_MS {
        MINUTE_MS
    } else {
        HOUR_MS
    }
}

/// One bucket of a notification's counters over time.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// The bucket's start, Unix milliseconds.
    pub at_ms: u64,
    /// 60 for the first 6 hours after `send_at_ms`, 3600 after.
    pub width_s: u64,
    /// What the batches recorded in it counted (`sent`, `delivered`, `failed.REASON`, …).
    pub counters: BTreeMap<String, i64>,
}

/// The series as the store keeps it (bucket start → counter → count), as points in time order.
pub fn series_points(
    send_at_ms: u64,
    buckets: BTreeMap<u64, BTreeMap<String, i64>>,
) -> Vec<SeriesPoint> {
    buckets
        .into_iter()
        .map(|(at_ms, counters)| SeriesPoint {
            at_ms,
            width_s: bucket_width_ms(send_at_ms, at_ms) / 1000,
            counters,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_times() {
        let mut life = Life::default();
        assert_eq!(life.status(Status::Queued), Status::Queued);
        assert_eq!(life.status(Status::Cancelled), Status::Cancelled);
        life.sending_at_ms = Some(1);
        assert_eq!(life.status(Status::Queued), Status::Sending);
        life.completed_at_ms = Some(2);
        assert_eq!(life.status(Status::Queued), Status::Completed);
        let cancelled = Life {
            sending_at_ms: Some(1),
            completed_at_ms: None,
            cancelled_at_ms: Some(3),
        };
        assert_eq!(cancelled.status(Status::Queued), Status::Cancelled);
    }

    #[test]
    fn buckets_are_minutes_then_hours_and_never_overlap() {
        let send = 1_000_000_123;
        assert_eq!(series_bucket(send, send - 5), send);
        assert_eq!(series_bucket(send, send + 59_999), send);
        assert_eq!(series_bucket(send, send + 60_000), send + 60_000);
        let last_minute = send + MINUTE_SERIES_MS - 1;
        assert_eq!(
            series_bucket(send, last_minute),
            send + MINUTE_SERIES_MS - MINUTE_MS
        );
        assert_eq!(
            bucket_width_ms(send, series_bucket(send, last_minute)),
            60_000
        );
        let first_hour = series_bucket(send, send + MINUTE_SERIES_MS + 10);
        assert_eq!(first_hour, send + MINUTE_SERIES_MS);
        assert_eq!(bucket_width_ms(send, first_hour), HOUR_MS);
        assert_eq!(
            series_bucket(send, send + MINUTE_SERIES_MS + HOUR_MS + 7),
            send + MINUTE_SERIES_MS + HOUR_MS
        );
    }

    #[test]
    fn accounting_counts_final_outcomes_only() {
        let counters: BTreeMap<String, i64> = [
            ("targeted", 10),
            ("sent", 8),
            ("delivered", 5),
            ("expired", 1),
            ("failed.rejected", 2),
            ("capped", 1),
            ("deferred", 4),
            ("slice.x.deferred", 4),
            ("throttled_ms", 900),
            ("clicked", 3),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let accounting = Accounting::of(&counters);
        assert_eq!(accounting.settled, 9);
        assert_eq!(accounting.outstanding, 1);
    }
}
