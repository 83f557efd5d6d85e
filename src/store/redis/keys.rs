//! The Redis key layout. Every key of one atomic unit shares a hash tag (`{…}`), so that the
//! unit lives on one node of a Redis Cluster and one Lua script can change it.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{s:APP:SHARD}` | hash | subscription id (8 raw bytes) → compact record (`model/record.rs`); its length is the shard's count |
//! | `{pr:APP:EXTERNAL_ID}` | hash | `doc` → profile JSON (without its links), `seq` → link counter |
//! | `{pr:APP:EXTERNAL_ID}:subs` | sorted set | linked subscription ids, scored in link order |
//! | `{pr:APP:EXTERNAL_ID}:sends` | hash | `WINDOW_MS:SLOT` → sends in that window |
//! | `{pr:APP:EXTERNAL_ID}:caps`, `{s:APP:SHARD}:caps:ID` | sorted set | `CATEGORY:NOTIFICATION` → when counted against a frequency cap (a profile's; a subscription's without one) |
//! | `{pr:APP:EXTERNAL_ID}:tcaps:TRIGGER`, `{s:APP:SHARD}:tcaps:ID:TRIGGER` | sorted set | the same, against one trigger's own cap (kept apart: each is pruned by its own longest window) |
//! | `{pol:APP}`, `{tb:APP:BUCKET}` | string, hash | the app's delivery policy (JSON); a shared token bucket (`tokens`, `at`) |
//! | `{a}:apps`, `{a}:keys` | hash | apps (JSON); API-key hash → app id |
//! | `{n:ID}:doc`, `{n:ID}:counters`, `{n:ID}:counted` | string, hash, hash | notification document; its counters; task id → how far its batches were counted |
//! | `{n:ID}:life` | hash | `open` (tasks registered and not counted through their end), `sending_at`, `completed_at`, `cancelled_at` (ms) |
//! | `{n:ID}:tasks` | set | its tasks registered in its life (kept once done: a task enqueued again is not open again) |
//! | `{n:ID}:series` | hash | `BUCKET_MS:COUNTER` → what the batches recorded in that bucket counted |
//! | `{n:ID}:once` | set | what was counted once (`TYPE:SUBSCRIPTION` receipts); expires with the receipt window |
//! | `{na:APP}` | sorted set | the app's notification ids by creation time |
//! | `{i:APP}:KEY` | string | idempotency key → notification id |
//! | `{trg:APP}`, `{trg:APP}:c:TRIGGER` | hash | trigger name → rule (JSON); a trigger's counters |
//! | `{pending}:sends`, `{pending}:due`, `{pending}:of:APP:EXTERNAL_ID` | hash, zset, set | pending sends (`ID:send`, `ID:epoch`, `ID:owner`); by due time (or lease end); per person |
//! | `{wh:APP}:hooks`, `:state`, `:cursor`, `:seq`, `:outbox`, `:trimmed`, `:dead:ID` | hash, hash, hash, string, hash, string, list | an app's webhooks (JSON); each one's `LEASE_UNTIL\|OWNER\|STATE` and cursor; the outbox's last number, its entries by number, how far it was trimmed; a webhook's dead letters |
//! | `{ledger}:lane:LANE`, `{ledger}:tasks`, `{ledger}:of:NOTIFICATION` | zset, hash, set | the ledger |
//!
//! The ledger's sorted set scores each task by when it may be claimed: `not_before` for a new
//! task, the lease's end for a claimed one, so a claim is "the first member scored ≤ now" and a
//! takeover needs no separate scan.

use crate::store::Lane;

pub(super) const APPS: &str = "{a}:apps";
pub(super) const API_KEYS: &str = "{a}:keys";
pub(super) const TASKS: &str = "{ledger}:tasks";
/// Written by readiness checks: a Redis that refuses writes is not ready.
pub(super) const READY_PROBE: &str = "{a}:ready";
/// The field of a profile's hash that holds its document.
pub(super) const PROFILE_DOC: &[u8] = b"doc";

pub(super) fn shard(app_id: &str, shard: u16) -> String {
    format!("{{s:{app_id}:{shard}}}")
}

pub(super) fn profile(app_id: &str, external_id: &str) -> String {
    format!("{{pr:{app_id}:{external_id}}}")
}

pub(super) fn profile_links(app_id: &str, external_id: &str) -> String {
    format!("{{pr:{app_id}:{external_id}}}:subs")
}

pub(super) fn profile_sends(app_id: &str, external_id: &str) -> String {
    format!("{{pr:{app_id}:{external_id}}}:sends")
}

pub(super) fn notification(id: &str) -> String {
    format!("{{n:{id}}}:doc")
}

pub(super) fn counters(notification_id: &str) -> String {
    format!("{{n:{notification_id}}}:counters")
}

pub(super) fn counted(notification_id: &str) -> String {
    format!("{{n:{notification_id}}}:counted")
}

pub(super) fn life(notification_id: &str) -> String {
    format!("{{n:{notification_id}}}:life")
}

pub(super) fn life_tasks(notification_id: &str) -> String {
    format!("{{n:{notification_id}}}:tasks")
}

pub(super) fn series(notification_id: &str) -> String {
    format!("{{n:{notification_id}}}:series")
}

pub(super) fn counted_once(notification_id: &str) -> String {
    format!("{{n:{notification_id}}}:once")
}

pub(super) fn app_notifications(app_id: &str) -> String {
    format!("{{na:{app_id}}}")
}

pub(super) fn idempotency(app_id: &str, key: &str) -> String {
    format!("{{i:{app_id}}}:{key}")
}

pub(super) fn lane(lane: Lane) -> String {
    format!("{{ledger}}:lane:{}", lane.as_str())
}

pub(super) fn tasks_of(notification_id: &str) -> String {
    format!("{{ledger}}:of:{notification_id}")
}

pub(super) const PENDING_SENDS: &str = "{pending}:sends";
pub(super) const PENDING_DUE: &str = "{pending}:due";

pub(super) fn pending_of(app_id: &str, external_id: &str) -> String {
    format!("{{pending}}:of:{}:{app_id}{external_id}", app_id.len())
}

pub(super) fn triggers(app_id: &str) -> String {
    format!("{{trg:{app_id}}}")
}

pub(super) fn trigger_counters(app_id: &str, trigger: &str) -> String {
    format!("{{trg:{app_id}}}:c:{trigger}")
}

pub(super) fn profile_caps(app_id: &str, external_id: &str) -> String {
    format!("{{pr:{app_id}:{external_id}}}:caps")
}

/// A profile's counts against one trigger's own cap, beside its policy counts (same tag).
pub(super) fn profile_trigger_caps(app_id: &str, external_id: &str, trigger: &str) -> String {
    format!("{{pr:{app_id}:{external_id}}}:tcaps:{trigger}")
}

/// A subscription's counts against one trigger's own cap.
pub(super) fn subscription_trigger_caps(
    app_id: &str,
    id: crate::store::SubscriptionId,
    trigger: &str,
) -> String {
    format!("{{s:{app_id}:{}}}:tcaps:{id}:{trigger}", id.shard())
}

pub(super) fn subscription_caps(app_id: &str, id: crate::store::SubscriptionId) -> String {
    format!("{{s:{app_id}:{}}}:caps:{id}", id.shard())
}

pub(super) fn policy(app_id: &str) -> String {
    format!("{{pol:{app_id}}}")
}

pub(super) fn token_bucket(app_id: &str, bucket: &str) -> String {
    format!("{{tb:{app_id}:{bucket}}}")
}

/// One of an app's webhook keys (`{wh:APP}:PART`): all under one hash tag, so each webhook
/// change is one script on one Cluster node.
pub(super) fn webhooks(app_id: &str, part: &str) -> String {
    format!("{{wh:{app_id}}}:{part}")
}
