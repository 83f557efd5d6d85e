//! The embedded store's tables, how their JSON rows are read, and the helpers that several
//! concerns share inside one transaction (a subscription's record and count, a profile's
//! document).

use std::borrow::Borrow;
use std::ops::RangeInclusive;

use redb::{
    AccessGuard, Database, Key, ReadableDatabase, ReadableTable, StorageError, TableDefinition,
    TableError,
};
use serde::de::DeserializeOwned;

use crate::store::{
    Profile, StoreError, StoreResult, Subscription, SubscriptionId, from_json, to_json,
};

pub(super) const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
pub(super) const APPS: TableDefinition<&str, &[u8]> = TableDefinition::new("apps");
pub(super) const API_KEYS: TableDefinition<&[u8], &str> = TableDefinition::new("api_keys");
pub(super) const SUBSCRIPTIONS: TableDefinition<(&str, u16, u64), &[u8]> =
    TableDefinition::new("subscriptions");
pub(super) const SUBSCRIPTION_COUNTS: TableDefinition<&str, u64> =
    TableDefinition::new("subscription_counts");
pub(super) const PROFILES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("profiles");
pub(super) const NOTIFICATIONS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("notifications");
/// (app, created ms, id): lists an app's notifications newest first.
pub(super) const NOTIFICATIONS_BY_APP: TableDefinition<(&str, u64, &str), ()> =
    TableDefinition::new("notifications_by_app");
pub(super) const COUNTERS: TableDefinition<(&str, &str), i64> = TableDefinition::new("counters");
/// Task id → how far into the task its batches were counted (`TaskStep::reaches`).
pub(super) const COUNTED: TableDefinition<&str, u64> = TableDefinition::new("counted");
/// Notification id → its life (JSON: `notifications::LifeRecord`).
pub(super) const LIFE: TableDefinition<&str, &[u8]> = TableDefinition::new("notification_life");
/// Task id → (): the tasks registered in their notifications' lives, done or not.
pub(super) const LIFE_TASKS: TableDefinition<&str, ()> = TableDefinition::new("notification_tasks");
/// (notification, bucket start ms, counter) → count: its counters over time.
pub(super) const SERIES: TableDefinition<(&str, u64, &str), i64> =
    TableDefinition::new("notification_series");
/// (notification, member) → until when it is kept (ms): what was counted once.
pub(super) const COUNTED_ONCE: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("counted_once");
/// (app, key) → (notification id, expiry ms).
pub(super) const IDEMPOTENCY: TableDefinition<(&str, &str), (&str, u64)> =
    TableDefinition::new("idempotency");
pub(super) const PROFILE_SENDS: TableDefinition<(&str, &str, u64), u64> =
    TableDefinition::new("profile_sends");
pub(super) const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
/// (lane, claimable-from ms, task id): the ready queue and the lease expiries in one index.
pub(super) const LANE_INDEX: TableDefinition<(&str, u64, &str), ()> =
    TableDefinition::new("lane_index");

/// (app, trigger name) → rule (JSON).
pub(super) const TRIGGERS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("triggers");
/// Pending send id → its record (JSON).
pub(super) const PENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("pending_sends");
/// (claimable-from ms, pending send id): due time, or a claim's lease end.
pub(super) const PENDING_DUE: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("pending_due");
/// (app, external id, pending send id): a person's pending sends.
pub(super) const PENDING_OF: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("pending_of");
/// (app, trigger, counter) → count.
pub(super) const TRIGGER_COUNTERS: TableDefinition<(&str, &str, &str), i64> =
    TableDefinition::new("trigger_counters");

/// (app, webhook id) → webhook (JSON).
pub(super) const WEBHOOKS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("webhooks");
/// (app, sequence number) → outbox entry (JSON).
pub(super) const WEBHOOK_OUTBOX: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("webhook_outbox");
/// app → the last outbox sequence number given out.
pub(super) const WEBHOOK_SEQ: TableDefinition<&str, u64> = TableDefinition::new("webhook_seq");
/// (app, webhook id) → delivery state and lease (JSON).
pub(super) const WEBHOOK_STATE: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("webhook_state");
/// (app, webhook id, number) → dead letter (JSON).
pub(super) const WEBHOOK_DEAD: TableDefinition<(&str, &str, u64), &[u8]> =
    TableDefinition::new("webhook_dead");

/// The JSON document stored at `key`, decoded; `what` names it in a `Corrupt` error.
pub(super) fn get_json<'k, K: Key + 'static, T: DeserializeOwned>(
    table: &impl ReadableTable<K, &'static [u8]>,
    key: impl Borrow<K::SelfType<'k>>,
    what: &str,
) -> StoreResult<Option<T>> {
    let value = table.get(key)?;
    value.map(|v| from_json(v.value(), what)).transpose()
}

/// The JSON documents of some rows (a range, or part of one), decoded in their order.
pub(super) fn json_values<'a, K: Key + 'static, T: DeserializeOwned>(
    rows: impl Iterator<
        Item = Result<(AccessGuard<'a, K>, AccessGuard<'a, &'static [u8]>), StorageError>,
    >,
    what: &str,
) -> StoreResult<Vec<T>> {
    rows.map(|row| from_json(row?.1.value(), what)).collect()
}

/// Every key `(first, _)` of a table keyed by two strings (no string sorts after U+10FFFF).
pub(super) fn keys_under(first: &str) -> RangeInclusive<(&str, &str)> {
    (first, "")..=(first, "\u{10FFFF}")
}

/// Checks that an existing file is Aviso's (its `meta` table names the format; a store from
/// before the table existed is known by its `apps` table), then creates every table, so that
/// readers never meet a missing one. `Invalid` when the file is not Aviso's.
pub(super) fn prepare(db: &Database, existing: bool, format: &str) -> StoreResult<()> {
    if existing {
        let txn = db.begin_read()?;
        let recorded = match txn.open_table(META) {
            Ok(meta) => meta.get("format")?.map(|v| v.value().to_owned()),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        match recorded {
            Some(recorded) if recorded == format => {}
            Some(other) => {
                return Err(StoreError::Invalid(format!(
                    "its format is `{other}`, this Aviso reads `{format}`"
                )));
            }
            None => match txn.open_table(APPS) {
                Ok(_) => {}
                Err(TableError::TableDoesNotExist(_)) => {
                    return Err(StoreError::Invalid("it has no Aviso tables".into()));
                }
                Err(e) => return Err(e.into()),
            },
        }
    }
    let txn = db.begin_write()?;
    {
        txn.open_table(META)?.insert("format", format)?;
        txn.open_table(APPS)?;
        txn.open_table(API_KEYS)?;
        txn.open_table(SUBSCRIPTIONS)?;
        txn.open_table(SUBSCRIPTION_COUNTS)?;
        txn.open_table(PROFILES)?;
        txn.open_table(NOTIFICATIONS)?;
        txn.open_table(NOTIFICATIONS_BY_APP)?;
        txn.open_table(COUNTERS)?;
        txn.open_table(COUNTED)?;
        txn.open_table(LIFE)?;
        txn.open_table(LIFE_TASKS)?;
        txn.open_table(SERIES)?;
        txn.open_table(IDEMPOTENCY)?;
        txn.open_table(COUNTED_ONCE)?;
        txn.open_table(PROFILE_SENDS)?;
        txn.open_table(TASKS)?;
        txn.open_table(LANE_INDEX)?;
        txn.open_table(TRIGGERS)?;
        txn.open_table(PENDING)?;
        txn.open_table(PENDING_DUE)?;
        txn.open_table(PENDING_OF)?;
        txn.open_table(TRIGGER_COUNTERS)?;
        txn.open_table(WEBHOOKS)?;
        txn.open_table(WEBHOOK_OUTBOX)?;
        txn.open_table(WEBHOOK_SEQ)?;
        txn.open_table(WEBHOOK_STATE)?;
        txn.open_table(WEBHOOK_DEAD)?;
    }
    txn.commit()?;
    Ok(())
}

/// Writes a subscription's record; counts it when it is new. Answers whether it was.
pub(super) fn put_subscription(
    txn: &redb::WriteTransaction,
    sub: &Subscription,
) -> StoreResult<bool> {
    let record = sub.encode()?;
    let mut table = txn.open_table(SUBSCRIPTIONS)?;
    let existed = table
        .insert(
            (sub.app_id.as_str(), sub.id.shard(), sub.id.0),
            record.as_slice(),
        )?
        .is_some();
    if !existed {
        add_to_count(txn, &sub.app_id, 1)?;
    }
    Ok(!existed)
}

fn add_to_count(txn: &redb::WriteTransaction, app_id: &str, delta: i64) -> StoreResult<()> {
    let mut counts = txn.open_table(SUBSCRIPTION_COUNTS)?;
    let count = counts.get(app_id)?.map_or(0, |v| v.value());
    counts.insert(app_id, count.saturating_add_signed(delta))?;
    Ok(())
}

pub(super) fn read_subscription(
    table: &impl ReadableTable<(&'static str, u16, u64), &'static [u8]>,
    app_id: &str,
    id: SubscriptionId,
) -> StoreResult<Option<Subscription>> {
    match table.get((app_id, id.shard(), id.0))? {
        Some(record) => Ok(Some(Subscription::decode(app_id, id, record.value())?)),
        None => Ok(None),
    }
}

/// A subscription as the write transaction sees it.
pub(super) fn load_subscription(
    txn: &redb::WriteTransaction,
    app_id: &str,
    id: SubscriptionId,
) -> StoreResult<Option<Subscription>> {
    read_subscription(&txn.open_table(SUBSCRIPTIONS)?, app_id, id)
}

/// Deletes a subscription's record and count, and its profile's listing of it.
pub(super) fn remove_subscription(
    txn: &redb::WriteTransaction,
    app_id: &str,
    id: SubscriptionId,
) -> StoreResult<Option<Subscription>> {
    let removed = {
        let mut table = txn.open_table(SUBSCRIPTIONS)?;
        match table.remove((app_id, id.shard(), id.0))? {
            Some(record) => Some(Subscription::decode(app_id, id, record.value())?),
            None => None,
        }
    };
    if let Some(sub) = &removed {
        add_to_count(txn, app_id, -1)?;
        if let Some(external_id) = &sub.external_id {
            unlist(txn, app_id, external_id, id)?;
        }
    }
    Ok(removed)
}

pub(super) fn load_profile(
    txn: &redb::WriteTransaction,
    app_id: &str,
    external_id: &str,
) -> StoreResult<Option<Profile>> {
    get_json(&txn.open_table(PROFILES)?, (app_id, external_id), "profile")
}

pub(super) fn save_profile(
    txn: &redb::WriteTransaction,
    app_id: &str,
    profile: &Profile,
) -> StoreResult<()> {
    let mut table = txn.open_table(PROFILES)?;
    table.insert(
        (app_id, profile.external_id.as_str()),
        to_json(profile)?.as_slice(),
    )?;
    Ok(())
}

/// The profile lists `id` (created when it does not exist yet).
pub(super) fn list_in_profile(
    txn: &redb::WriteTransaction,
    app_id: &str,
    external_id: &str,
    id: SubscriptionId,
) -> StoreResult<()> {
    let mut profile = load_profile(txn, app_id, external_id)?.unwrap_or_else(|| Profile {
        updated_at: crate::store::now_ms() / 1000,
        ..Profile::new(external_id)
    });
    profile.list_subscription(id);
    save_profile(txn, app_id, &profile)
}

/// The profile stops listing `id`.
pub(super) fn unlist(
    txn: &redb::WriteTransaction,
    app_id: &str,
    external_id: &str,
    id: SubscriptionId,
) -> StoreResult<()> {
    if let Some(mut profile) = load_profile(txn, app_id, external_id)? {
        profile.unlist_subscription(id);
        save_profile(txn, app_id, &profile)?;
    }
    Ok(())
}
