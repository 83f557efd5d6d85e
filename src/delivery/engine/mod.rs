//! The fan-out engine: workers that claim ledger tasks, stream their subscribers in batches,
//! deliver concurrently, record outcomes, and checkpoint, in every `aviso serve` instance.
//!
//! Two lanes run side by side, each with its own workers and its own push-service connections:
//! the priority lane (one-to-one pushes) never waits behind a broadcast's tasks or streams.
//! A task's lease is extended at each checkpoint and, while a batch is in flight (in long
//! retries, say), by a heartbeat every third of the lease; a worker that dies stops extending it
//! and another instance takes the task over from the last checkpoint (at-least-once, duplicates
//! bounded by one batch per task in flight). On shutdown a worker stops claiming, ends its
//! messages' retry waits at once, lets the requests in flight answer (until most of the grace
//! has passed), and hands its task back: at the new checkpoint when the batch finished, at the
//! last one when it did not (its next holder sends that batch again, and counts it then).
//!
//! Its parts, each in a file of its own:
//! - `task`: a worker's loop: claim a task, keep its lease alive, checkpoint, hand it back
//!   at shutdown;
//! - `scan`: a broadcast task's next batch of subscribers, across its shards;
//! - `batch`: one batch before it is sent: segment, policy gate, variants, personalisation;
//! - `send`: a batch's messages sealed in runs and sent concurrently, under the rate;
//! - `record`: a batch's outcomes as counters, and their one store write;
//! - `prepared`: the notification and the app's keys, prepared once per process;
//! - `choice`: which variant's payload each subscriber gets.

mod batch;
mod choice;
mod prepared;
mod record;
mod scan;
mod send;
mod task;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use self::prepared::{AppKeys, Prepared};
use super::lifecycle;
use super::sender::Sender;
use super::waker::EngineWaker;
use crate::push::vapid::VapidSubject;
use crate::store::{Lane, Lease, Store};

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Unique per process: names its claims in the ledger.
    pub worker_id: String,
    /// Tasks worked on at once in the bulk lane.
    pub bulk_workers: usize,
    /// Tasks worked on at once in the priority lane.
    pub priority_workers: usize,
    /// Subscriptions read per batch (and lost at most, as duplicates, by a crash).
    pub batch_size: usize,
    /// Deliveries in flight per task.
    pub concurrency: usize,
    /// How long a claim lasts without a checkpoint before another worker may take over.
    pub lease: Duration,
    /// How often the idle bulk lane looks for new tasks.
    pub poll_interval: Duration,
    /// How often the idle priority lane looks for tasks that this process was not told of
    /// (enqueued by other instances, or scheduled for later): tasks planned here wake the
    /// workers at once. With other instances on the store, one-to-one pushes must reach the
    /// push service within tens of milliseconds, so a few milliseconds.
    pub priority_poll_interval: Duration,
    /// The VAPID contact (`mailto:` or `https:`).
    pub vapid_subject: VapidSubject,
    /// Nice value of the bulk lane's threads (0 = the same CPU priority as the rest): a
    /// broadcast then takes the CPU that the API, the priority lane and the store's writer
    /// leave, instead of an equal share beside them, so that a one-to-one push waits less for a
    /// core. When nothing else runs, the broadcast still has every core.
    pub bulk_nice: u8,
    /// From the shutdown signal to the engine's return: retry waits end at once, requests in
    /// flight may answer until [`HARD_STOP_SHARE`] of it has passed (then they are dropped), and
    /// the rest is for handing the tasks back.
    pub shutdown_grace: Duration,
}

impl EngineConfig {
    /// This worker's claim on a task.
    fn lease(&self) -> Lease<'_> {
        Lease {
            worker: &self.worker_id,
            ttl: self.lease,
        }
    }
}
/// The share of the shutdown grace that requests in flight get to answer.
pub const HARD_STOP_SHARE: f64 = 0.8;

/// How long a prepared notification is kept (at most [`crate::cache::CAPACITY`] of them): a
/// cancelled notification's tasks are gone from the ledger, and a worker that loses a task's
/// lease forgets the notification, so a stale entry can only serve a task claimed before its
/// cancellation, until its next heartbeat.
const PREPARED_TTL: Duration = Duration::from_secs(60);
/// How long apps' VAPID signers and receipt keys are kept (a changed key is picked up after
/// this).
const APPS_TTL: Duration = Duration::from_secs(600);

/// Work shared by the lanes' workers.
pub struct Engine {
    store: Arc<dyn Store>,
    /// The priority lane's own store connections: its small requests never wait behind a
    /// broadcast's large scans on a shared (multiplexed) connection.
    priority_store: Arc<dyn Store>,
    config: EngineConfig,
    bulk: Sender,
    priority: Sender,
    apps: moka::sync::Cache<String, Arc<AppKeys>>,
    notifications: moka::sync::Cache<String, Arc<Prepared>>,
    /// The apps' stale-expiry windows.
    expiry: lifecycle::Windows,
    /// Woken when this process enqueues tasks, so its idle workers need not wait for a poll.
    wake: Arc<EngineWaker>,
    /// Caps, quiet hours, local time and rates (`crate::policy`), applied per batch.
    policy: crate::policy::gate::Gate,
    /// Shutdown began: claim nothing more, end retry waits, hand tasks back.
    stop: CancellationToken,
    /// Most of the grace is over: drop the requests still in flight and hand back.
    hard_stop: CancellationToken,
    /// Tasks claimed and not yet finished or handed back.
    held: AtomicUsize,
}

/// Sets the calling thread's nice value (Linux keeps one per thread). Best effort: where it
/// cannot be done the broadcast only competes as an equal.
fn set_this_threads_nice(nice: u8) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on the calling thread, with no pointers involved.
        let outcome = unsafe {
            let thread = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, i32::from(nice))
        };
        if outcome != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the bulk lane's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// Tasks a lane holds per task it sends at once ([`EngineConfig::bulk_workers`]): the others
/// have batches whose messages all wait for their retries. Duplicates after a crash are bounded
/// by one batch per held task.
const IDLE_TASKS_PER_TURN: usize = 4;

impl Engine {
    /// `bulk` and `priority` should use separate `PushClient`s so that the lanes never share
    /// connections or in-flight limits.
    pub fn new(
        store: Arc<dyn Store>,
        priority_store: Arc<dyn Store>,
        config: EngineConfig,
        bulk: Sender,
        priority: Sender,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            priority_store,
            config,
            bulk,
            priority,
            apps: crate::cache::bounded(APPS_TTL),
            notifications: crate::cache::bounded(PREPARED_TTL),
            expiry: lifecycle::Windows::default(),
            wake: Arc::new(EngineWaker::default()),
            policy: Default::default(),
            stop: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            held: AtomicUsize::new(0),
        })
    }

    fn store_for(&self, lane: Lane) -> &dyn Store {
        match lane {
            Lane::Priority => self.priority_store.as_ref(),
            Lane::Bulk => self.store.as_ref(),
        }
    }

    /// Notify it after enqueueing tasks in this process: idle workers look at once.
    pub fn waker(&self) -> Arc<EngineWaker> {
        self.wake.clone()
    }

    /// Tasks claimed here and not yet finished or handed back.
    pub fn tasks_held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Begins the shutdown: no more claims, retry waits end, and after
    /// [`HARD_STOP_SHARE`] of the grace the requests still in flight are dropped.
    fn begin_stop(&self) {
        if self.stop.is_cancelled() {
            return;
        }
        self.stop.cancel();
        let hard_stop = self.hard_stop.clone();
        let after = self.config.shutdown_grace.mul_f64(HARD_STOP_SHARE);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            hard_stop.cancel();
        });
    }

    /// Runs the workers of both lanes until `shutdown` turns true; returns when they have
    /// finished or handed back their tasks (within [`EngineConfig::shutdown_grace`], unless
    /// the store does not answer).
    ///
    /// Each lane gets a tokio runtime (and OS threads) of its own, apart from the runtime that
    /// serves the API. A broadcast keeps every core busy encrypting, and a tokio worker that
    /// polls a batch of encryptions does not yield for milliseconds: sharing its runtime, a
    /// one-to-one push (or any API request) would queue behind those batches at each step.
    /// Apart, the OS scheduler gives the threads that were waiting their turn within a
    /// time slice.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        {
            let engine = self.clone();
            tokio::spawn(async move {
                // A dropped sender stops the engine too.
                while !*shutdown.borrow_and_update() && shutdown.changed().await.is_ok() {}
                engine.begin_stop();
            });
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let lanes = [(Lane::Priority, 1), (Lane::Bulk, cores)].map(|(lane, threads)| {
            let engine = self.clone();
            // Told when the lane is done. Not `JoinHandle::join` on the blocking pool: the
            // runtime's shutdown waits for its blocking tasks, so a lane that outlives the grace
            // would keep the process alive.
            let (done, finished) = tokio::sync::oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("aviso-{}", lane.as_str()))
                .spawn(move || {
                    let mut builder = tokio::runtime::Builder::new_multi_thread();
                    builder
                        .worker_threads(threads)
                        .thread_name(format!("aviso-{}-rt", lane.as_str()))
                        .enable_all();
                    let nice = engine.config.bulk_nice;
                    if lane == Lane::Bulk && nice > 0 {
                        builder.on_thread_start(move || set_this_threads_nice(nice));
                    }
                    let runtime = builder.build();
                    match runtime {
                        Ok(runtime) => runtime.block_on(engine.run_lane(lane)),
                        Err(error) => {
                            tracing::error!(%error, lane = lane.as_str(), "cannot start a lane's runtime")
                        }
                    }
                    drop(done);
                })
                .map(|_| finished)
                .map_err(|error| (lane, error))
        });
        for lane in lanes {
            match lane {
                Ok(finished) => {
                    let _ = finished.await;
                }
                Err((lane, error)) => {
                    tracing::error!(%error, lane = lane.as_str(), "cannot start a lane's thread")
                }
            }
        }
    }

    async fn run_lane(self: Arc<Self>, lane: Lane) {
        let (count, poll) = match lane {
            Lane::Priority => (
                self.config.priority_workers,
                self.config.priority_poll_interval,
            ),
            Lane::Bulk => (self.config.bulk_workers, self.config.poll_interval),
        };
        // The lane looks for tasks of other instances once per `poll`, whatever its number of
        // workers: each tick wakes one idle worker. (Each worker on its own timer made the
        // priority lane look 800 times a second, 2.4% of a core on an idle server.)
        let tick = Arc::new(tokio::sync::Notify::new());
        // `count` tasks send at once; a task whose batch has only waiting messages left (in
        // their retry backoff) gives its turn to another, up to IDLE_TASKS_PER_TURN per turn.
        let turns = Arc::new(Semaphore::new(count.max(1)));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..count.max(1) * IDLE_TASKS_PER_TURN {
            workers.spawn(self.clone().work(lane, tick.clone(), turns.clone()));
        }
        let ticker = {
            let stop = self.stop.clone();
            async move {
                let mut interval = tokio::time::interval(poll);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = interval.tick() => tick.notify_one(),
                        _ = stop.cancelled() => return,
                    }
                }
            }
        };
        // On the lane's runtime with its workers (not on the thread that drives `run_lane`), so
        // that a tick wakes a worker without a switch between threads.
        let ticker = tokio::spawn(ticker);
        while workers.join_next().await.is_some() {}
        let _ = ticker.await;
        tracing::info!(lane = lane.as_str(), "lane stopped");
    }
}
