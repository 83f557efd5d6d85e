//! Planning: a notification becomes tasks in the ledger. Broadcasts and segments get one task
//! per shard in the bulk lane; named recipients are resolved at once and get one task in the
//! priority lane, so a one-to-one push never waits behind a broadcast.
//!
//! A notification with a winner test (`notify::variants`) gets each task twice: as planned, for
//! the test's members (`Phase::Test`, at the send time), and as a follow-up for everyone else
//! (`Phase::Rest`, id `…:rest.SUFFIX`, due when the test ends). The follow-up is in the ledger
//! from the start: durable, claimed once by any instance, resumed from its checkpoint like any
//! task, so the rest get one push whatever restarts in between.

use super::model::{Audience, Notification};
use crate::store::{Lane, Phase, SHARDS, Store, StoreResult, SubscriptionId, Task, TaskTarget};

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
    let mut plan = plan_whole(store, notification).await?;
    if let Some(test) = &notification.winner {
        let rest_at = super::variants::decides_at_ms(notification.send_at_ms, test);
        let rest: Vec<Task> = plan
            .tasks
            .iter()
            .map(|task| Task {
                id: format!(
                    "{}:rest.{}",
                    notification.id,
                    task.id
                        .strip_prefix(&format!("{}:", notification.id))
                        .unwrap_or(&task.id)
                ),
                phase: Phase::Rest,
                not_before_ms: rest_at,
                ..task.clone()
            })
            .collect();
        for task in &mut plan.tasks {
            task.phase = Phase::Test;
        }
        plan.tasks.extend(rest);
    }
    Ok(plan)
}

/// The tasks of a notification's whole audience.
async fn plan_whole(store: &dyn Store, notification: &Notification) -> StoreResult<Plan> {
    let task = |suffix: String, lane: Lane, target: TaskTarget| Task {
        id: format!("{}:{suffix}", notification.id),
        app_id: notification.app_id.clone(),
        notification_id: notification.id.clone(),
        lane,
        target,
        not_before_ms: notification.send_at_ms,
        phase: Phase::Whole,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_winner_test_plans_its_follow_up_with_the_test() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(None, dir.path()).await.unwrap();
        let request: crate::notify::NotificationRequest = serde_json::from_value(serde_json::json!({
            "audience": "all",
            "variants": [{"weight": 1, "content": {"title": "A"}}, {"weight": 1, "content": {"title": "B"}}],
            "winner": {"fraction": 0.2, "metric": "shown", "after_secs": 90},
        }))
        .unwrap();
        let notification = request
            .into_notification("n1".into(), "a".into(), 1_000)
            .unwrap();
        let plan = plan(store.as_ref(), &notification).await.unwrap();
        let shards = usize::from(SHARDS);
        assert_eq!(plan.tasks.len(), 2 * shards);
        let (test, rest) = plan.tasks.split_at(shards);
        for (test, rest) in test.iter().zip(rest) {
            let suffix = test.id.strip_prefix("n1:").unwrap();
            assert_eq!((test.phase, test.not_before_ms), (Phase::Test, 1_000));
            assert_eq!(rest.id, format!("n1:rest.{suffix}"));
            assert_eq!((rest.phase, rest.not_before_ms), (Phase::Rest, 91_000));
            assert_eq!(test.target, rest.target);
        }
        assert_eq!(plan.tasks[0].id, "n1:s0");
    }
}
