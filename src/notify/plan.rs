//! Planning: a notification becomes tasks in the ledger. Broadcasts and segments get tasks in
//! the bulk lane that fit the audience: one per shard for a large one, and for a smaller one
//! (counted first) about one per [`BULK_TASK_SIZE`] subscribers, each over a range of shards, so that
//! a 2,000-subscriber broadcast is four tasks of a full batch, not 256 of eight messages. The
//! ranges always cover every shard: a subscriber who arrives after the count is not left out.
//! Named recipients are resolved at once and get one task in the priority lane, so a
//! one-to-one push never waits behind a broadcast.
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

/// Subscribers per bulk task a broadcast aims at: one batch of the engine's (`aviso serve`
/// reads 500 a batch), so that a small audience's tasks run side by side on the lane's workers
/// and each still seals and records whole batches. From 64,000 subscribers on, every shard has a
/// task of its own.
pub const BULK_TASK_SIZE: u64 = 500;

/// The shard ranges of a broadcast to `audience` subscribers: a power of two of them, between
/// one (covering every shard) and one per shard, so that each holds at most about
/// [`BULK_TASK_SIZE`] subscribers and all have the same width; in shard order.
pub fn shard_ranges(audience: u64) -> impl Iterator<Item = std::ops::Range<u16>> {
    let tasks = audience
        .div_ceil(BULK_TASK_SIZE)
        .clamp(1, u64::from(SHARDS))
        .next_power_of_two() as u16;
    let width = SHARDS / tasks;
    (0..tasks).map(move |i| i * width..(i + 1) * width)
}

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
            // A segment's members are some of the app's subscribers: the count bounds them.
            let audience = store.count_subscriptions(&notification.app_id).await?;
            let tasks: Vec<Task> = shard_ranges(audience)
                .map(|shards| match shards.len() {
                    1 => task(
                        format!("s{}", shards.start),
                        Lane::Bulk,
                        TaskTarget::Shard(shards.start),
                    ),
                    _ => task(
                        format!("s{}-{}", shards.start, shards.end - 1),
                        Lane::Bulk,
                        TaskTarget::Shards(shards),
                    ),
                })
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
        // No subscribers yet: one task over every shard, and its follow-up.
        assert_eq!(plan.tasks.len(), 2);
        let (test, rest) = plan.tasks.split_at(1);
        for (test, rest) in test.iter().zip(rest) {
            let suffix = test.id.strip_prefix("n1:").unwrap();
            assert_eq!((test.phase, test.not_before_ms), (Phase::Test, 1_000));
            assert_eq!(rest.id, format!("n1:rest.{suffix}"));
            assert_eq!((rest.phase, rest.not_before_ms), (Phase::Rest, 91_000));
            assert_eq!(test.target, rest.target);
        }
        assert_eq!(plan.tasks[0].id, "n1:s0-255");
        assert_eq!(plan.tasks[0].target, TaskTarget::Shards(0..SHARDS));
    }

    #[test]
    fn broadcast_tasks_fit_the_audience_and_cover_every_shard() {
        let widths = |audience: u64| -> Vec<u16> {
            shard_ranges(audience)
                .map(|range| range.len() as u16)
                .collect()
        };
        assert_eq!(widths(0), [256]);
        assert_eq!(widths(1), [256]);
        assert_eq!(widths(500), [256]);
        assert_eq!(widths(2_000), [64; 4]);
        assert_eq!(widths(2_001), [32; 8]);
        assert_eq!(widths(20_000), [4; 64]);
        assert_eq!(widths(100_000), [1; 256]);
        assert_eq!(widths(128_000), [1; 256]);
        assert_eq!(widths(1_000_000), [1; 256]);
        for audience in (0..140_000).step_by(317) {
            let ranges: Vec<_> = shard_ranges(audience).collect();
            assert_eq!(ranges.first().map(|r| r.start), Some(0));
            assert_eq!(ranges.last().map(|r| r.end), Some(SHARDS));
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].end, pair[1].start, "{audience}: contiguous");
            }
            assert!(
                ranges.iter().all(|r| !r.is_empty()),
                "{audience}: no empty range"
            );
            let width = |r: &std::ops::Range<u16>| r.len();
            let (min, max) = (
                ranges.iter().map(width).min().unwrap_or(0),
                ranges.iter().map(width).max().unwrap_or(0),
            );
            assert!(max - min <= 1, "{audience}: even widths");
        }
    }
}
