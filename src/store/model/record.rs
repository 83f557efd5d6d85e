//! The compact binary form of a subscription: one record per subscriber, so every byte counts
//! (docs/BENCHMARKS.md). The app and id are in the key, not in the record.

use std::collections::BTreeMap;

use super::endpoint::{self, put_len, split, take_len};
use super::{Activity, MAX_ENDPOINT_LEN, Subscription, SubscriptionId};
use crate::store::StoreError;

/// A record without activity: the common case, and every record an app that does not expire
/// stale subscriptions keeps (its size is the memory budget, docs/BENCHMARKS.md).
const RECORD_VERSION: u8 = 1;
/// A record with its [`Activity`] in the 12 bytes after the version byte, at a fixed offset so
/// that the Redis store's scripts (`redis/lua/activity.lua`) change it in place.
const RECORD_WITH_ACTIVITY: u8 = 2;

impl Subscription {
    /// The compact binary record (without app and id, which are in the key).
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        if self.endpoint.len() > MAX_ENDPOINT_LEN {
            return Err(StoreError::Invalid(format!(
                "endpoint is {} bytes, the limit is {MAX_ENDPOINT_LEN}",
                self.endpoint.len()
            )));
        }
        let short = |what: &str, s: &str| {
            if s.len() > 255 {
                Err(StoreError::Invalid(format!(
                    "{what} `{s:.20}…` is longer than 255 bytes"
                )))
            } else {
                Ok(())
            }
        };
        short("locale", &self.locale)?;
        short("timezone", &self.timezone)?;
        if self.tags.len() > 255 {
            return Err(StoreError::Invalid("more than 255 tags".into()));
        }
        let mut out = Vec::with_capacity(240);
        let activity = self.activity.record_bytes();
        out.push(if activity.is_empty() {
            RECORD_VERSION
        } else {
            RECORD_WITH_ACTIVITY
        });
        out.extend_from_slice(&activity);
        endpoint::encode(&self.endpoint, &mut out);
        out.extend_from_slice(&self.p256dh);
        out.extend_from_slice(&self.auth);
        out.extend_from_slice(&self.created_at.to_be_bytes());
        out.extend_from_slice(&self.last_seen.to_be_bytes());
        put_str(&mut out, &self.locale);
        put_time_zone(&mut out, &self.timezone);
        put_str(&mut out, self.external_id.as_deref().unwrap_or(""));
        out.push(self.tags.len() as u8);
        for (key, value) in &self.tags {
            short("tag", key)?;
            short("tag value", value)?;
            put_str(&mut out, key);
            put_str(&mut out, value);
        }
        Ok(out)
    }

    pub fn decode(app_id: &str, id: SubscriptionId, record: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("subscription {id}: {what}"));
        let (&version, rest) = record.split_first().ok_or_else(|| corrupt("empty"))?;
        let array4 = |b: &[u8]| [b[0], b[1], b[2], b[3]];
        let (activity, rest) = match version {
            RECORD_VERSION => (Activity::default(), rest),
            RECORD_WITH_ACTIVITY => {
                let (times, rest) = split(rest, 12)?;
                let activity = Activity {
                    delivered_at: u32::from_be_bytes(array4(&times[0..4])),
                    receipt_at: u32::from_be_bytes(array4(&times[4..8])),
                    unanswered_since: u32::from_be_bytes(array4(&times[8..12])),
                };
                (activity, rest)
            }
            _ => return Err(corrupt("unknown record version")),
        };
        let (endpoint, rest) = endpoint::decode(rest)?;
        let (p256dh, rest) = split(rest, 65)?;
        let (auth, rest) = split(rest, 16)?;
        let (created, rest) = split(rest, 4)?;
        let (seen, rest) = split(rest, 4)?;
        let (locale, rest) = take_str(rest)?;
        let (timezone, rest) = take_time_zone(rest)?;
        let (external_id, rest) = take_str(rest)?;
        let (&tag_count, mut rest) = rest.split_first().ok_or_else(|| corrupt("no tags"))?;
        let mut tags = BTreeMap::new();
        for _ in 0..tag_count {
            let (key, after) = take_str(rest)?;
            let (value, after) = take_str(after)?;
            tags.insert(key, value);
            rest = after;
        }
        Ok(Self {
            app_id: app_id.to_owned(),
            id,
            endpoint,
            p256dh: p256dh.try_into().map_err(|_| corrupt("p256dh"))?,
            auth: auth.try_into().map_err(|_| corrupt("auth"))?,
            created_at: u32::from_be_bytes(array4(created)),
            last_seen: u32::from_be_bytes(array4(seen)),
            locale,
            timezone,
            tags,
            external_id: (!external_id.is_empty()).then_some(external_id),
            activity,
        })
    }
}

/// The time zones of most of the world's web users, stored as one byte (index + 1). Append
/// only: the codes are on disk.
const COMMON_TIME_ZONES: &[&str] = &[
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Phoenix",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Toronto",
    "America/Vancouver",
    "America/Mexico_City",
    "America/Bogota",
    "America/Lima",
    "America/Santiago",
    "America/Argentina/Buenos_Aires",
    "America/Sao_Paulo",
    "America/Caracas",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Madrid",
    "Europe/Paris",
    "Europe/Brussels",
    "Europe/Amsterdam",
    "Europe/Berlin",
    "Europe/Zurich",
    "Europe/Rome",
    "Europe/Vienna",
    "Europe/Stockholm",
    "Europe/Oslo",
    "Europe/Copenhagen",
    "Europe/Warsaw",
    "Europe/Prague",
    "Europe/Budapest",
    "Europe/Athens",
    "Europe/Bucharest",
    "Europe/Helsinki",
    "Europe/Kiev",
    "Europe/Kyiv",
    "Europe/Istanbul",
    "Europe/Moscow",
    "Africa/Casablanca",
    "Africa/Lagos",
    "Africa/Cairo",
    "Africa/Johannesburg",
    "Africa/Nairobi",
    "Asia/Dubai",
    "Asia/Riyadh",
    "Asia/Tehran",
    "Asia/Karachi",
    "Asia/Kolkata",
    "Asia/Calcutta",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Jakarta",
    "Asia/Ho_Chi_Minh",
    "Asia/Singapore",
    "Asia/Kuala_Lumpur",
    "Asia/Manila",
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Taipei",
    "Asia/Seoul",
    "Asia/Tokyo",
    "Australia/Perth",
    "Australia/Adelaide",
    "Australia/Brisbane",
    "Australia/Sydney",
    "Australia/Melbourne",
    "Pacific/Auckland",
    "UTC",
    "Etc/UTC",
];
const TIME_ZONE_LITERAL: u8 = 0xff;

fn put_time_zone(out: &mut Vec<u8>, time_zone: &str) {
    if time_zone.is_empty() {
        out.push(0);
    } else if let Some(index) = COMMON_TIME_ZONES.iter().position(|z| *z == time_zone) {
        out.push(index as u8 + 1);
    } else {
        out.push(TIME_ZONE_LITERAL);
        put_str(out, time_zone);
    }
}

fn take_time_zone(input: &[u8]) -> Result<(String, &[u8]), StoreError> {
    let (&code, rest) = input
        .split_first()
        .ok_or_else(|| StoreError::Corrupt("no time zone".into()))?;
    match code {
        0 => Ok((String::new(), rest)),
        TIME_ZONE_LITERAL => take_str(rest),
        n => COMMON_TIME_ZONES
            .get(usize::from(n) - 1)
            .map(|z| ((*z).to_owned(), rest))
            .ok_or_else(|| StoreError::Corrupt("unknown time zone code".into())),
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn take_str(input: &[u8]) -> Result<(String, &[u8]), StoreError> {
    let (len, input) = take_len(input)?;
    let (bytes, rest) = split(input, len)?;
    let s =
        std::str::from_utf8(bytes).map_err(|_| StoreError::Corrupt("text is not UTF-8".into()))?;
    Ok((s.to_owned(), rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Subscription {
        let mut sub = Subscription::new(
            "app1",
            &format!(
                "https://fcm.googleapis.com/fcm/send/dK9x:APA91b{}",
                "x".repeat(140)
            ),
            [4; 65],
            [7; 16],
            1_700_000_000,
        );
        sub.locale = "pt-BR".into();
        sub.timezone = "Europe/Lisbon".into();
        sub.tags.insert("plan".into(), "pro".into());
        sub.external_id = Some("crm-42".into());
        sub
    }

    #[test]
    fn records_round_trip_and_stay_small() {
        let sub = sample();
        let record = sub.encode().unwrap();
        assert_eq!(Subscription::decode("app1", sub.id, &record).unwrap(), sub);
        let mut typical = Subscription::new("app1", &sub.endpoint, [4; 65], [7; 16], 1);
        typical.locale = "en-US".into();
        typical.timezone = "America/New_York".into();
        // ≤ 220 bytes keeps Redis's allocation in jemalloc's 224-byte class (docs/BENCHMARKS.md).
        assert!(
            typical.encode().unwrap().len() <= 220,
            "{}",
            typical.encode().unwrap().len()
        );
        let mut rare = typical.clone();
        rare.timezone = "Antarctica/Troll".into();
        assert_eq!(
            Subscription::decode("app1", rare.id, &rare.encode().unwrap()).unwrap(),
            rare
        );
        // Activity only where it is kept: 12 bytes at a fixed offset, read back exactly.
        let mut active = sub.clone();
        active.activity = Activity {
            delivered_at: 1_700_000_100,
            receipt_at: 1_700_000_050,
            unanswered_since: 1_700_000_100,
        };
        let with_activity = active.encode().unwrap();
        assert_eq!(with_activity.len(), record.len() + 12);
        assert_eq!(with_activity[0], RECORD_WITH_ACTIVITY);
        assert_eq!(&with_activity[13..], &record[1..]);
        assert_eq!(
            Subscription::decode("app1", sub.id, &with_activity).unwrap(),
            active
        );
        assert_eq!(sub.id, SubscriptionId::for_endpoint("app1", &sub.endpoint));
        assert_ne!(sub.id, SubscriptionId::for_endpoint("app2", &sub.endpoint));
        assert_eq!(
            sub.id.to_string().parse::<SubscriptionId>().unwrap(),
            sub.id
        );
    }

    proptest! {
        #[test]
        fn corrupt_records_are_errors_not_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = Subscription::decode("a", SubscriptionId(1), &bytes);
        }

        #[test]
        fn truncated_records_are_errors(cut in 0usize..200) {
            let record = sample().encode().unwrap();
            let cut = cut.min(record.len() - 1);
            prop_assert!(Subscription::decode("app1", SubscriptionId(1), &record[..cut]).is_err());
        }
    }
}
