//! How the API tells this process's idle delivery workers that it just enqueued tasks, lane by
//! lane, so that they look at once instead of at their next poll (and a one-to-one push does
//! not wake the broadcast's workers for nothing).
//!
//! A wake-up must not fall between a worker's look that found nothing and its wait: the worker
//! listens before it looks ([`EngineWaker::look_or_wait`]), and `Notify::notify_waiters` reaches
//! every listener that exists when it is called, waiting or not yet.

use std::future::Future;

use tokio::sync::Notify;

use crate::store::{Lane, Task};

/// One signal per lane; shared by the engine (which waits) and the API (which plans).
#[derive(Debug, Default)]
pub struct EngineWaker {
    priority: Notify,
    bulk: Notify,
}

impl EngineWaker {
    /// Wakes the idle workers of each lane that got one of `tasks`.
    pub fn tasks_planned(&self, tasks: &[Task]) {
        for lane in [Lane::Priority, Lane::Bulk] {
            if tasks.iter().any(|task| task.lane == lane) {
                self.lane(lane).notify_waiters();
            }
        }
    }

    /// One idle step of a worker of `lane`: `look` for work; when it found nothing (`None`),
    /// wait for this lane's wake-up or for `other` (a poll tick, shutdown). Listening starts
    /// before the look, so a wake-up while it runs is kept.
    pub(super) async fn look_or_wait<T>(
        &self,
        lane: Lane,
        look: impl Future<Output = Option<T>>,
        other: impl Future<Output = ()>,
    ) -> Option<T> {
        let wakeup = self.lane(lane).notified();
        let mut wakeup = std::pin::pin!(wakeup);
        wakeup.as_mut().enable();
        if let Some(found) = look.await {
            return Some(found);
        }
        tokio::select! {
            _ = wakeup => {}
            _ = other => {}
        }
        None
    }

    fn lane(&self, lane: Lane) -> &Notify {
        match lane {
            Lane::Priority => &self.priority,
            Lane::Bulk => &self.bulk,
        }
    }
}

/// The notification service wakes this process's workers through it.
impl crate::notify::service::TasksPlanned for EngineWaker {
    fn tasks_planned(&self, tasks: &[Task]) {
        EngineWaker::tasks_planned(self, tasks);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::TaskTarget;

    fn task(lane: Lane) -> Task {
        Task {
            id: "n:0".into(),
            app_id: "app".into(),
            notification_id: "n".into(),
            lane,
            target: TaskTarget::Shard(0),
            not_before_ms: 0,
            phase: Default::default(),
        }
    }

    /// An idle step of a bulk worker whose look (an empty claim) overlaps the API planning a
    /// task of `planned`: whether the wait ended within `within`.
    async fn wait_while_planning(planned: Lane, within: Duration) -> bool {
        let waker = EngineWaker::default();
        let look = async {
            waker.tasks_planned(&[task(planned)]);
            None::<()>
        };
        tokio::time::timeout(
            within,
            waker.look_or_wait(Lane::Bulk, look, std::future::pending()),
        )
        .await
        .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_up_between_an_empty_look_and_the_wait_is_not_lost() {
        // The API plans a task while the worker's claim is on its way back empty.
        let woken = wait_while_planning(Lane::Bulk, Duration::from_secs(3600)).await;
        assert!(woken, "the wake-up during the look was lost");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_up_of_the_other_lane_does_not_end_the_wait() {
        let woken = wait_while_planning(Lane::Priority, Duration::from_secs(1)).await;
        assert!(!woken, "a one-to-one push woke the broadcast's workers");
    }
}
