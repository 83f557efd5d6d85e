//! The embedded store's readers: a fixed set of threads that run read transactions, so that
//! reads stay off the async runtimes' threads without starting a thread each.
//!
//! Reads used to go to a runtime's blocking pool, which starts a thread for every blocking task
//! that finds no idle one (up to 512 per runtime, and the engine runs three runtimes). A
//! broadcast's scans (16 shards at once per task) and a burst of API requests started one
//! each: 215 threads for a 2,000-subscriber broadcast. A semaphore in front of the pool bounds
//! the reads, not the threads (a permit comes back just before its thread is idle again, and
//! the next read then starts another: 8–17 threads for 4 permits, 400 reads at once). redb
//! reads are short and mostly CPU on cached pages, so about twice the cores of them at once is
//! enough; the rest wait in the queue.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};

use crossbeam_channel::{Receiver, Sender};
use redb::{Database, ReadableDatabase};

use crate::store::{StoreError, StoreResult};

/// One read, run on a reader thread with the database (which it upgrades for the read only).
type ReadJob = Box<dyn FnOnce(&Weak<Database>) + Send>;

/// How many reader threads: twice the cores, at least 4.
pub(super) fn count() -> usize {
    std::thread::available_parallelism().map_or(4, |n| (2 * n.get()).max(4))
}

/// The handle reads are sent through; the threads end when the last handle is dropped.
#[derive(Clone)]
pub(super) struct Readers {
    jobs: Sender<ReadJob>,
}

impl Readers {
    /// Starts [`count`] reader threads over `db`.
    pub(super) fn start(db: &Arc<Database>) -> StoreResult<Self> {
        let (jobs, queue) = crossbeam_channel::unbounded::<ReadJob>();
        for i in 0..count() {
            let (db, queue) = (Arc::downgrade(db), queue.clone());
            std::thread::Builder::new()
                .name(format!("aviso-store-reader-{i}"))
                .spawn(move || run(&db, &queue))
                .map_err(|e| StoreError::Embedded(format!("cannot start a reader thread: {e}")))?;
        }
        Ok(Self { jobs })
    }

    /// Runs `work` in a read transaction on a reader thread.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&redb::ReadTransaction) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: ReadJob = Box::new(move |db| {
            let out = match db.upgrade() {
                Some(db) => std::panic::catch_unwind(AssertUnwindSafe(|| work(&db.begin_read()?)))
                    .unwrap_or_else(|_| Err(StoreError::Embedded("a store read panicked".into()))),
                None => Err(StoreError::Embedded("the store is closed".into())),
            };
            // The database (upgraded above) is let go before the answer: a caller that drops
            // the store on it and opens the same file again finds it closed.
            let _ = reply.send(out);
        });
        super::answer_of(
            self.jobs.send(job),
            answer,
            "the store's readers have stopped",
            "a store read was dropped unanswered",
        )
        .await
    }
}

/// A reader thread: runs jobs until every handle is gone.
fn run(db: &Weak<Database>, queue: &Receiver<ReadJob>) {
    while let Ok(job) = queue.recv() {
        // Upgraded inside each job, so that a thread never keeps the file open after its
        // store is dropped (reopening the same directory must work at once).
        job(db);
    }
}
