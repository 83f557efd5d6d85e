//! Planning: a notification becomes tasks in the ledger. Broadcasts and segments get one task
//! per shard in the bulk lane; named recipients are resolved at once and get one task in the
//! priority lane, so a one-to-one push never waits behind a broadcast.

use super::model::{Audience, Notification};
use crate::store::{Lane, SHARDS, Store, StoreResult, SubscriptionId, Task, TaskTarget};

/// Recipients per priority task: small enough to finish quickly, large enough to batch.
const DIRECT_TASK_SIZE: usize = 500;

/// A notification's tasks, and how many subscriptions they target when that is known up front
/// (named recipients; `None` for broadcasts and segments).
pub struct Plan {
    pub tasks: Vec<Task>,
    pub targeted: Option<u64>,
}

/// Works out the notification's tasks (reading profiles for `external_ids`, and which named
/// subscriptions exist); the caller
/// enqueues them, after the notification document is stored.
pub async fn plan(store: &dyn Store, notification: &Notification) -> StoreResult<Plan> {
    let task = |suffix: String, lane: Lane, target: TaskTarget| Task {
        id: format!("{}:{suffix}", notification.id),
        app_id: notification.app_id.clone(),
        notification_id: notification.id.clone(),
        lane,
        target,
        not_before_ms: notification.send_at_ms,
    };
    let direct: Vec<SubscriptionId> = match &notification.audience {
        Audience::All | Audience::Segment(_) => {
            let tasks: Vec<Task> = (0..SHARDS)
                .map(|shard| task(format!("s{shard}"), Lane::Bulk, TaskTarget::Shard(shard)))
                .collect();
            return Ok(Plan {
                tasks,
                targeted: None,
            });
        }
        Audience::SubscriptionIds(ids) => ids.iter().filter_map(|id| id.parse().ok()).collect(),
        Audience::ExternalIds(external_ids) => store
            .get_profiles(&notification.app_id, external_ids)
            .await?
            .into_iter()
            .flat_map(|profile| profile.subscriptions)
            .collect(),
    };
    let mut ids = direct;
    ids.sort_unstable();
    ids.dedup();
    // Only real recipients: ids of other apps, or of subscriptions gone since, target nobody.
    let ids: Vec<SubscriptionId> = store
        .get_subscriptions(&notification.app_id, &ids)
        .await?
        .into_iter()
        .map(|subscription| subscription.id)
        .collect();
    let tasks: Vec<Task> = ids
        .chunks(DIRECT_TASK_SIZE)
        .enumerate()
        .map(|(i, chunk)| {
            task(
                format!("p{i}"),
                Lane::Priority,
                TaskTarget::Subscriptions(chunk.to_vec()),
            )
        })
        .collect();
    Ok(Plan {
        tasks,
        targeted: Some(ids.len() as u64),
    })
}
