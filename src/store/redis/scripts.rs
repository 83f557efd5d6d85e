//! The Lua scripts of the Redis store, one `.lua` file each under `lua/` (each file says what
//! it takes and answers). The ledger's scripts read the server's clock (`lua/now.lua`); the
//! compare-and-set ones share one comparison (`lua/unchanged.lua`), the activity ones the
//! record's layout (`lua/activity.lua`); the webhook scripts that move cursors share the outbox
//! trim (`lua/webhook_trim.lua`).

use redis::Script;

pub(super) struct Scripts {
    pub cas_field: Script,
    pub take_field: Script,
    pub list_subscription: Script,
    pub erase_profile: Script,
    pub put_app: Script,
    pub settle_key: Script,
    pub claim: Script,
    pub checkpoint: Script,
    pub complete: Script,
    pub count_batch: Script,
    pub cancel: Script,
    pub schedule_send: Script,
    pub claim_sends: Script,
    pub finish_send: Script,
    pub take_caps: Script,
    pub take_tokens: Script,
    pub webhook_put: Script,
    pub webhook_delete: Script,
    pub webhook_append: Script,
    pub webhook_read: Script,
    pub webhook_lease: Script,
    pub webhook_save: Script,
    pub set_activity: Script,
    pub expire_stale: Script,
    pub count_once: Script,
    pub register_tasks: Script,
    pub cancel_notification: Script,
}

const NOW: &str = include_str!("lua/now.lua");
/// Sent as `EVAL` beside a shard's HSCAN (not a loaded script: it is one line).
pub(super) const RUN_ID: &str = include_str!("lua/run_id.lua");
const UNCHANGED: &str = include_str!("lua/unchanged.lua");
const TRIM: &str = include_str!("lua/webhook_trim.lua");

/// A webhook script that moves cursors, after the outbox trim they share.
fn with_trim(body: &str) -> Script {
    Script::new(&format!("{TRIM}{body}"))
}

const ACTIVITY: &str = include_str!("lua/activity.lua");

/// A script that reads or writes a subscription record's activity, after the helpers.
fn on_activity(body: &str) -> Script {
    Script::new(&format!("{ACTIVITY}{body}"))
}

/// A ledger script, after the server's clock and the application clock's shift
/// ([`crate::store::clock`]; zero but in tests).
fn with_clock(body: &str) -> Script {
    let shift = crate::store::clock::shift_ms();
    Script::new(&format!("{NOW}now = now + ({shift})\n{body}"))
}

/// A compare-and-set script, after the comparison they share.
fn compare_and_set(body: &str) -> Script {
    Script::new(&format!("{UNCHANGED}{body}"))
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            cas_field: compare_and_set(include_str!("lua/cas_field.lua")),
            take_field: Script::new(include_str!("lua/take_field.lua")),
            list_subscription: Script::new(include_str!("lua/list_subscription.lua")),
            erase_profile: Script::new(include_str!("lua/erase_profile.lua")),
            count_batch: Script::new(include_str!("lua/count_batch.lua")),
            put_app: compare_and_set(include_str!("lua/put_app.lua")),
            settle_key: Script::new(include_str!("lua/settle_key.lua")),
            claim: with_clock(include_str!("lua/claim.lua")),
            checkpoint: with_clock(include_str!("lua/checkpoint.lua")),
            complete: Script::new(include_str!("lua/complete.lua")),
            cancel: Script::new(include_str!("lua/cancel.lua")),
            schedule_send: Script::new(include_str!("lua/schedule_send.lua")),
            claim_sends: with_clock(include_str!("lua/claim_sends.lua")),
            finish_send: Script::new(include_str!("lua/finish_send.lua")),
            take_caps: Script::new(include_str!("lua/take_caps.lua")),
            take_tokens: with_clock(include_str!("lua/take_tokens.lua")),
            webhook_put: Script::new(include_str!("lua/webhook_put.lua")),
            webhook_delete: with_trim(include_str!("lua/webhook_delete.lua")),
            webhook_append: Script::new(include_str!("lua/webhook_append.lua")),
            webhook_read: Script::new(include_str!("lua/webhook_read.lua")),
            webhook_lease: with_clock(include_str!("lua/webhook_lease.lua")),
            webhook_save: with_trim(include_str!("lua/webhook_save.lua")),
            set_activity: on_activity(include_str!("lua/set_activity.lua")),
            expire_stale: on_activity(include_str!("lua/expire_stale.lua")),
            count_once: Script::new(include_str!("lua/count_once.lua")),
            register_tasks: Script::new(include_str!("lua/register_tasks.lua")),
            cancel_notification: Script::new(include_str!("lua/cancel_notification.lua")),
        }
    }
}
