//! How the API tells this process's idle delivery workers that it just enqueued tasks, lane by
//! lane, so that they look at once instead of at their next poll (and a one-to-one push does
//! not wake the broadcast's workers for nothing).

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

    /// What a lane's idle workers wait on.
    pub(super) fn lane(&self, lane: Lane) -> &Notify {
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
