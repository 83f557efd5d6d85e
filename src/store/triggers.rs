//! Triggers in the store: the rules of each app, and the pending sends between an event and its
//! push — durable, indexed by due time, claimed by any instance exactly once under a lease,
//! cancellable by (trigger, person, key) in O(1), listed per person.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{Lease, ProfileRef, StoreResult};
use crate::triggers::model::{PendingSend, Repeat, SendRef, Trigger, TriggerRef};

/// What scheduling a send did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduled {
    /// Nothing was pending for this trigger, person and key: now something is.
    New,
    /// One was pending, and starts again from this event (`Repeat::Rearm`).
    Rearmed,
    /// One was pending and stays as it was (`Repeat::Ignore`).
    AlreadyPending,
}

/// A pending send claimed by a runner; `epoch` fences it (a re-armed or cancelled send's old
/// claim cannot finish it).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedSend {
    pub send: PendingSend,
    pub worker: String,
    pub epoch: u64,
}

#[async_trait]
pub trait TriggerStore: Send + Sync {
    async fn put_trigger(&self, trigger: &Trigger) -> StoreResult<()>;
    async fn get_trigger(&self, trigger: TriggerRef<'_>) -> StoreResult<Option<Trigger>>;
    /// By name.
    async fn list_triggers(&self, app_id: &str) -> StoreResult<Vec<Trigger>>;
    /// `false` when there was none. Its pending sends are dropped when they come due.
    async fn delete_trigger(&self, trigger: TriggerRef<'_>) -> StoreResult<bool>;

    /// Schedules a send, unless one of the same trigger, person and key is pending: then it is
    /// left (`Ignore`) or replaced and its claim fenced (`Rearm`). Atomic.
    async fn schedule_send(&self, send: &PendingSend, repeat: Repeat) -> StoreResult<Scheduled>;
    /// Cancels a pending send, whatever its claim; `false` when none was pending.
    async fn cancel_send(&self, send: SendRef<'_>) -> StoreResult<bool>;
    /// Claims up to `limit` sends due now (or whose claim's lease ran out), for `lease`.
    async fn claim_due_sends(
        &self,
        lease: Lease<'_>,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedSend>>;
    /// Removes a claimed send once its push is made; `LeaseLost` when it was re-armed,
    /// cancelled or taken over since.
    async fn finish_send(&self, claim: &ClaimedSend) -> StoreResult<()>;
    /// When the next pending send comes due (or a claim's lease runs out), if any.
    async fn next_due_ms(&self) -> StoreResult<Option<u64>>;
    /// A person's pending sends, soonest first.
    async fn pending_sends_of(&self, person: ProfileRef<'_>) -> StoreResult<Vec<PendingSend>>;

    /// Adds to a trigger's counters (`matched`, `scheduled`, `cancelled`, `sent`, …).
    async fn add_trigger_counters(
        &self,
        trigger: TriggerRef<'_>,
        deltas: &[(&str, i64)],
    ) -> StoreResult<()>;
    async fn trigger_counters(&self, trigger: TriggerRef<'_>)
    -> StoreResult<BTreeMap<String, i64>>;
}
