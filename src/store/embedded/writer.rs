//! The embedded store's writer: one thread that runs every waiting write in one `redb`
//! transaction and commits once (group commit). A committed transaction costs an fsync; under
//! load, hundreds of callers share it. A write is acknowledged only after the commit that holds
//! it.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Weak};

use redb::Database;

use crate::store::{StoreError, StoreResult};

/// Called with the commit's outcome once the transaction it wrote into is committed.
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// One caller's writes, run inside a shared transaction.
struct WriteJob {
    run: Box<dyn FnOnce(&redb::WriteTransaction) -> Completion + Send>,
    /// Whether the caller needs the write on disk before it is acknowledged. Only ledger claims
    /// do not: a claim lost in a crash leaves its task claimable again, which is what the
    /// restarted process (the only one on this file) wants anyway. Skipping their fsync keeps a
    /// one-to-one push from waiting on the disk between its creation and its send.
    durable: bool,
}

/// Most writes one transaction groups.
const MAX_GROUP: usize = 512;

/// The handle callers write through; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub(super) struct Writer {
    jobs: Sender<WriteJob>,
}

impl Writer {
    /// Starts the writer thread over `db`.
    pub(super) fn start(db: &Arc<Database>) -> StoreResult<Self> {
        let (jobs, queue) = std::sync::mpsc::channel();
        let db = Arc::downgrade(db);
        std::thread::Builder::new()
            .name("aviso-store-writer".into())
            .spawn(move || run(db, queue))
            .map_err(|e| StoreError::Embedded(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `work` in the writer's next transaction; answers once it is committed (and on
    /// disk, when `durable`).
    pub(super) async fn write<T: Send + 'static>(
        &self,
        durable: bool,
        work: impl FnOnce(&redb::WriteTransaction) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = WriteJob {
            run: Box::new(move |txn| {
                let out = work(txn);
                Box::new(move |committed: Result<(), String>| {
                    let _ = reply.send(committed.map_err(StoreError::Embedded).and(out));
                })
            }),
            durable,
        };
        super::answer_of(
            self.jobs.send(job),
            answer,
            "the writer thread has stopped",
            "the write was not committed (see the log)",
        )
        .await
    }
}

/// The writer thread. Jobs validate before they mutate, so one caller's error never leaves
/// half a write in another's transaction.
fn run(db: Weak<Database>, jobs: Receiver<WriteJob>) {
    // A weak reference: dropping the last `EmbeddedStore` closes the file at once (a reopen in
    // the same process must not find it locked), and ends this thread.
    while let Ok(first) = jobs.recv() {
        let Some(db) = db.upgrade() else { return };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut txn = match db.begin_write() {
            Ok(txn) => txn,
            // Dropping the jobs drops their reply channels: each caller gets an error.
            Err(e) => {
                tracing::error!(error = %e, "embedded store cannot begin a write");
                continue;
            }
        };
        if !group.iter().any(|job| job.durable)
            && let Err(e) = txn.set_durability(redb::Durability::None)
        {
            // Still correct, only slower: the group is committed durably.
            tracing::debug!(error = %e, "embedded store: a non-durable commit was refused");
        }
        let completions: Vec<Completion> = group.into_iter().map(|job| (job.run)(&txn)).collect();
        let committed = txn.commit().map_err(|e| e.to_string());
        // Let go of the database before answering, so that a caller who then drops the store
        // really closes the file.
        drop(db);
        for completion in completions {
            completion(committed.clone());
        }
    }
}
