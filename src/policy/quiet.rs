//! Quiet hours and local-time delivery, in each subscriber's time zone (the app's default when
//! the browser did not say), with no I/O and the time as an argument.
//!
//! A subscriber is due *now*, *at* a later instant, or dropped. The instants are the same for
//! every subscriber of one UTC offset (local 10:00 in `+09:00` is one instant), so the engine
//! defers the subscribers of a batch into one *slice* per distinct instant: a ledger task
//! due then, not a timer per subscriber. A notification with `send_at_local` is first planned
//! at the earliest instant any time zone reaches that local time ([`earliest`]); each
//! subscriber is then sent at once or deferred into the slice of their offset.

use jiff::civil::{DateTime, Time};
use jiff::tz::{Offset, TimeZone};
use jiff::{Timestamp, Zoned};

use super::model::{Quiet, Rules};

/// The largest UTC offset in use (`+14:00`, Kiribati): the first zone to reach a local time.
const LARGEST_OFFSET_HOURS: i8 = 14;

/// When one subscriber is to get a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Now,
    /// At this instant (Unix ms): the notification waits in a slice.
    At(u64),
    /// Its quiet hours last beyond the notification's TTL.
    DroppedQuietHours,
}

fn to_ms(timestamp: Timestamp) -> u64 {
    u64::try_from(timestamp.as_millisecond()).unwrap_or(0)
}

fn zoned(tz: &TimeZone, at_ms: u64) -> Option<Zoned> {
    let at = Timestamp::from_millisecond(i64::try_from(at_ms).ok()?).ok()?;
    Some(at.to_zoned(tz.clone()))
}

/// The instant a local civil time happens in `tz` (a time skipped by a DST change is taken
/// as the one after the gap, a repeated one as the first).
pub fn local_instant(local: DateTime, tz: &TimeZone) -> Option<u64> {
    let zoned = tz.to_ambiguous_zoned(local).compatible().ok()?;
    Some(to_ms(zoned.timestamp()))
}

/// The earliest instant at which any time zone reaches `local`.
pub fn earliest(local: DateTime) -> u64 {
    Offset::constant(LARGEST_OFFSET_HOURS)
        .to_timestamp(local)
        .map_or(0, to_ms)
}

/// When quiet hours that hold at `at_ms` end, or `None` outside them.
pub fn quiet_end(quiet: &Quiet, tz: &TimeZone, at_ms: u64) -> Option<u64> {
    let now = zoned(tz, at_ms)?;
    let time: Time = now.time();
    let date = now.date();
    let end_date = if quiet.start < quiet.end {
        if !(quiet.start <= time && time < quiet.end) {
            return None;
        }
        date
    } else if time >= quiet.start {
        date.tomorrow().ok()?
    } else if time < quiet.end {
        date
    } else {
        return None;
    };
    local_instant(end_date.to_datetime(quiet.end), tz)
}

/// When a subscriber in `tz` gets a notification: at `local` (its `send_at_local`) or now,
/// then after the quiet hours unless `exempt`, dropped when that is past `expires_ms`.
pub fn decide(
    rules: &Rules,
    exempt: bool,
    local: Option<DateTime>,
    tz: &TimeZone,
    now_ms: u64,
    expires_ms: u64,
) -> When {
    let mut due = local
        .and_then(|local| local_instant(local, tz))
        .map_or(now_ms, |at| at.max(now_ms));
    if !exempt
        && let Some(quiet) = &rules.quiet
        && let Some(end) = quiet_end(quiet, tz, due)
    {
        if end > expires_ms {
            return When::DroppedQuietHours;
        }
        due = end;
    }
    if due <= now_ms {
        When::Now
    } else {
        When::At(due)
    }
}

/// A slice's name in the notification's counters (`slice.2026-12-02T01:00:00Z.sent`).
pub fn slice_name(due_ms: u64) -> String {
    let at = i64::try_from(due_ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH);
    format!("slice.{}", at.strftime("%Y-%m-%dT%H:%M:%SZ"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::compile_json;

    fn rules(json: serde_json::Value) -> Rules {
        compile_json(json).unwrap()
    }

    fn ms(text: &str) -> u64 {
        to_ms(text.parse::<Timestamp>().unwrap())
    }

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    /// Must-show 2's planning: subscribers over 24 time zones each get the push at their
    /// local 10:00, one in quiet hours at their end; one slice per distinct instant (offset).
    #[test]
    fn each_time_zone_gets_its_local_time_in_one_slice_per_offset() {
        // The list the integration tests (`tests/policy.rs`) use too.
        let zones = include_str!("../../tests/support/must_show_zones.txt").lines();
        let rules = rules(serde_json::json!({}));
        let local: DateTime = "2026-12-02T10:00".parse().unwrap();
        let start = earliest(local);
        assert_eq!(start, ms("2026-12-01T20:00:00Z"));
        let mut slices = std::collections::BTreeSet::new();
        for name in zones {
            let zone = tz(name);
            let When::At(due) = decide(&rules, false, Some(local), &zone, start, u64::MAX) else {
                // Kiritimati is the first: due at once.
                assert_eq!(name, "Pacific/Kiritimati");
                continue;
            };
            let shown = zoned(&zone, due).unwrap();
            assert_eq!(shown.time(), jiff::civil::time(10, 0, 0, 0), "{name}");
            assert_eq!(shown.date(), jiff::civil::date(2026, 12, 2), "{name}");
            slices.insert(due);
            // At its instant the subscriber is due now: the slice sends, never defers again.
            assert_eq!(
                decide(&rules, false, Some(local), &zone, due, u64::MAX),
                When::Now
            );
        }
        // 23 zones after the first, 23 distinct offsets in December.
        assert_eq!(slices.len(), 23);

        // Quiet hours 21:00 to 11:00 hold at 10:00 local: delivered at 11:00 instead.
        let quiet =
            self::rules(serde_json::json!({"quiet_hours": {"start": "21:00", "end": "11:00"}}));
        let paris = tz("Europe/Paris");
        assert_eq!(
            decide(&quiet, false, Some(local), &paris, start, u64::MAX),
            When::At(ms("2026-12-02T10:00:00Z"))
        );
        // Transactional (exempt) ones are not held.
        assert_eq!(
            decide(&quiet, true, Some(local), &paris, start, u64::MAX),
            When::At(ms("2026-12-02T09:00:00Z"))
        );
        // Past the TTL: dropped.
        assert_eq!(
            decide(
                &quiet,
                false,
                Some(local),
                &paris,
                start,
                ms("2026-12-02T09:30:00Z")
            ),
            When::DroppedQuietHours
        );
    }

    #[test]
    fn quiet_hours_wrap_over_midnight_in_the_subscribers_zone() {
        let quiet = Quiet {
            start: jiff::civil::time(21, 0, 0, 0),
            end: jiff::civil::time(8, 0, 0, 0),
        };
        let tokyo = tz("Asia/Tokyo");
        // 23:30 in Tokyo: quiet until 08:00 next morning.
        assert_eq!(
            quiet_end(&quiet, &tokyo, ms("2026-12-02T14:30:00Z")),
            Some(ms("2026-12-02T23:00:00Z"))
        );
        // 05:00 in Tokyo: quiet until 08:00 the same day.
        assert_eq!(
            quiet_end(&quiet, &tokyo, ms("2026-12-01T20:00:00Z")),
            Some(ms("2026-12-01T23:00:00Z"))
        );
        // 12:00 in Tokyo: not quiet.
        assert_eq!(quiet_end(&quiet, &tokyo, ms("2026-12-02T03:00:00Z")), None);
        // Day-time quiet hours (13:00 to 14:00) do not wrap.
        let lunch = Quiet {
            start: jiff::civil::time(13, 0, 0, 0),
            end: jiff::civil::time(14, 0, 0, 0),
        };
        assert_eq!(
            quiet_end(&lunch, &TimeZone::UTC, ms("2026-12-02T13:15:00Z")),
            Some(ms("2026-12-02T14:00:00Z"))
        );
        assert_eq!(
            quiet_end(&lunch, &TimeZone::UTC, ms("2026-12-02T14:00:00Z")),
            None
        );
        assert_eq!(
            slice_name(ms("2026-12-02T01:00:00Z")),
            "slice.2026-12-02T01:00:00Z"
        );
    }
}
