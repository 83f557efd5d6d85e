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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use metrics::{gauge, histogram};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;

use super::lifecycle::{self, BatchActivity};
use super::sender::{Batch, Delivery, Failure, Message, Sender};
use super::waker::EngineWaker;
use crate::notify::Notification;
use crate::notify::model::{Audience, Status};
use crate::notify::payload::{PayloadTemplate, context_for};
use crate::notify::segment::Filter;
use crate::notify::template::EventProperties;
use crate::notify::variants::{self, Split};
use crate::policy::gate::Pace;
use crate::push::vapid::{DEFAULT_VALIDITY, VapidSubject};
use crate::push::{
    PushOptions, PushSubscription, SubscriptionKeys, Topic, Ttl, Urgency, VapidHeaderCache,
    VapidKey,
};
use crate::store::{
    BatchOutcome, ClaimedTask, Lane, Lease, Phase, Progress, Store, StoreError, Subscription,
    SubscriptionId, TaskStep, TaskTarget, now_ms,
};

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

/// Prepared notifications kept, and for how long: a cancelled notification's tasks are gone
/// from the ledger, and a worker that loses a task's lease forgets the notification, so a stale
/// entry can only serve a task claimed before its cancellation, until its next heartbeat.
const PREPARED_CAPACITY: u64 = 10_000;
const PREPARED_TTL: Duration = Duration::from_secs(60);
/// Apps' VAPID signers and receipt keys kept, and for how long (a changed key is picked up
/// after this).
const APPS_CAPACITY: u64 = 10_000;
const APPS_TTL: Duration = Duration::from_secs(600);
/// How long a hand-back at shutdown may take before the task is left to its lease.
const HAND_BACK_TIMEOUT: Duration = Duration::from_secs(2);
/// How soon a heartbeat that failed is tried again (doubling up to a third of the lease).
const HEARTBEAT_RETRY: Duration = Duration::from_millis(100);

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

/// How often an idle worker refreshes the queue-depth gauge.
const QUEUE_DEPTH_INTERVAL: Duration = Duration::from_secs(1);

/// A notification ready to send: parsed once per process, not once per message.
struct Prepared {
    notification: Notification,
    /// One payload per A/B variant, in their order (one without variants): each variant's
    /// templates compiled once.
    templates: Vec<PayloadTemplate>,
    /// How the audience splits over the variants (`None` without variants).
    split: Option<Split>,
    /// The winner of its winner test, once this process has read or decided it (it never
    /// changes after).
    winner: std::sync::OnceLock<usize>,
    options: PushOptions,
    /// A triggered push's event properties, converted once for all its renderings.
    event: Option<EventProperties>,
}

/// Which payload each subscriber of one task gets: a pure function of the subscription id
/// (`notify::variants::Split`), asked again when the outcomes are counted, without allocating.
#[derive(Clone, Copy)]
struct Choice<'a> {
    split: Option<&'a Split>,
    phase: Phase,
    /// The decided winner, for a follow-up task (`Phase::Rest`).
    winner: Option<usize>,
}

impl Choice<'_> {
    /// The index of the subscriber's payload, or `None` when this task is not for it.
    fn of(&self, subscription: SubscriptionId) -> Option<usize> {
        match self.split {
            None => Some(0),
            Some(split) => split.pick(self.phase, self.winner, subscription),
        }
    }
}

enum TaskEnd {
    Done,
    /// Saved its progress and goes on.
    Checkpointed,
    /// Cancelled, taken over, or handed back at shutdown.
    Stopped,
}

/// How one batch's delivery ended.
enum Batched {
    /// Every message has its outcome.
    Done(Recorded),
    /// Shutdown came first: some messages have none. Nothing is recorded; the task is handed
    /// back at its last checkpoint.
    Interrupted,
    /// The heartbeat found the lease gone (cancelled, or taken over): stop without a word.
    LeaseLost,
}

/// What one batch leaves to record: counts by counter name (`sent`, `delivered`, `expired`,
/// `failed.REASON`) and the subscriptions the push service said are gone.
#[derive(Default, Clone)]
struct Recorded {
    counts: Counts,
    gone: Vec<Subscription>,
    /// The batch's webhook events (`webhooks::events::of_batch`).
    webhook_events: Vec<crate::webhooks::OutboxEntry>,
    activity: BatchActivity,
    /// The notification's series bucket the batch counts in (`notify::life::series_bucket`).
    series_bucket_ms: u64,
}

impl Recorded {
    /// Adds `n` to `counter` (nothing when `n` is 0: no counter of nothing).
    fn count(&mut self, counter: &str, n: usize) {
        if n > 0 {
            *self.counts.entry(counter.to_owned()).or_default() += n as i64;
        }
    }
}

/// Stores a batch's counters and deletions with the checkpoint (or completion) that follows it,
/// in one store write.
async fn record(
    store: &dyn Store,
    claim: &ClaimedTask,
    recorded: Recorded,
    step: TaskStep<'_>,
) -> Result<TaskEnd, StoreError> {
    // Before the batch's record: a crash in between repeats events, never loses them.
    store
        .append_webhook_events(&claim.task.app_id, &recorded.webhook_events)
        .await?;
    let counters: Vec<(&str, i64)> = recorded
        .counts
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    let outcome = BatchOutcome {
        counters: &counters,
        gone: &recorded.gone,
        delivered: &recorded.activity.delivered,
        delivered_at: recorded.activity.at,
        stale: &recorded.activity.stale,
        step,
        series_bucket_ms: recorded.series_bucket_ms,
    };
    match store.record_batch(claim, outcome).await {
        Err(StoreError::LeaseLost) => Ok(TaskEnd::Stopped),
        Err(error) => Err(error),
        Ok(()) if matches!(step, TaskStep::Complete) => Ok(TaskEnd::Done),
        Ok(()) => Ok(TaskEnd::Checkpointed),
    }
}

/// A batch's outcomes, by counter name (`sent`, `delivered`, `expired`, `failed.REASON`).
type Counts = HashMap<String, i64>;

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
            apps: moka::sync::Cache::builder()
                .max_capacity(APPS_CAPACITY)
                .time_to_live(APPS_TTL)
                .build(),
            notifications: moka::sync::Cache::builder()
                .max_capacity(PREPARED_CAPACITY)
                .time_to_live(PREPARED_TTL)
                .build(),
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

    /// The lane's turn to start sending, or `None` at shutdown.
    async fn turn(&self, turns: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
        tokio::select! {
            turn = turns.clone().acquire_owned() => turn.ok(),
            _ = self.stop.cancelled() => None,
        }
    }

    async fn work(
        self: Arc<Self>,
        lane: Lane,
        tick: Arc<tokio::sync::Notify>,
        turns: Arc<Semaphore>,
    ) {
        // The queue-depth gauge costs a count of the lane's tasks: at most once per interval,
        // not on every idle poll (the priority lane polls every few milliseconds).
        let mut depth_measured: Option<Instant> = None;
        let store = self.store_for(lane);
        while !self.stop.is_cancelled() {
            let Some(turn) = self.turn(&turns).await else {
                break;
            };
            // The turn is held while looking and, when a task is found, while running it; never
            // while idle (idle workers holding every turn would keep a task whose batch gave its
            // turn up from getting one back).
            let look = async {
                let turn = turn;
                match store.claim_task(lane, self.config.lease()).await {
                    Ok(None) => {
                        drop(turn);
                        if depth_measured.is_none_or(|at| at.elapsed() >= QUEUE_DEPTH_INTERVAL) {
                            depth_measured = Some(Instant::now());
                            if let Ok(depth) = store.pending_tasks(lane).await {
                                gauge!("aviso_queue_depth", "lane" => lane.as_str())
                                    .set(depth as f64);
                            }
                        }
                        None
                    }
                    found => Some((found, turn)),
                }
            };
            let tick_or_stop = async {
                tokio::select! {
                    _ = tick.notified() => {}
                    _ = self.stop.cancelled() => {}
                }
            };
            match self.wake.look_or_wait(lane, look, tick_or_stop).await {
                None | Some((Ok(None), _)) => {}
                Some((Ok(Some(task)), turn)) => {
                    self.held.fetch_add(1, Ordering::SeqCst);
                    let lag = now_ms().saturating_sub(task.task.not_before_ms) as f64 / 1000.0;
                    histogram!("aviso_task_lag_seconds", "lane" => lane.as_str()).record(lag);
                    if let Err(error) = self.run_task(&task, &turns, turn).await {
                        tracing::warn!(task = %task.task.id, %error, "task interrupted; it will be resumed after its lease");
                    }
                    self.held.fetch_sub(1, Ordering::SeqCst);
                }
                Some((Err(error), turn)) => {
                    drop(turn);
                    tracing::warn!(%error, "cannot claim tasks; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.poll_interval * 5) => {}
                        _ = self.stop.cancelled() => {}
                    }
                }
            }
        }
    }

    async fn run_task(
        &self,
        claim: &ClaimedTask,
        turns: &Arc<Semaphore>,
        turn: OwnedSemaphorePermit,
    ) -> Result<TaskEnd, StoreError> {
        let store = self.store_for(claim.task.lane);
        if self.stop.is_cancelled() {
            // Claimed as the shutdown began: straight back.
            return Ok(self.hand_back(store, claim, &claim.progress).await);
        }
        let Some(prepared) = self.prepare(store, &claim.task.notification_id).await? else {
            store
                .record_batch(claim, BatchOutcome::step(TaskStep::Complete))
                .await?;
            return Ok(TaskEnd::Done);
        };
        if prepared.notification.status == Status::Cancelled {
            store
                .record_batch(claim, BatchOutcome::step(TaskStep::Complete))
                .await?;
            return Ok(TaskEnd::Done);
        }
        let vapid = self
            .app_keys(store, &claim.task.app_id)
            .await?
            .vapid
            .clone();
        let sender = match claim.task.lane {
            Lane::Priority => &self.priority,
            Lane::Bulk => &self.bulk,
        };
        let mut progress = claim.progress.clone();
        match &claim.task.target {
            TaskTarget::Subscriptions(ids) => {
                let subscriptions = store.get_subscriptions(&claim.task.app_id, ids).await?;
                // Gone since they were planned (or deferred): a final outcome of their own.
                let missing = ids.len().saturating_sub(subscriptions.len());
                let sent = self.send_batch(
                    (store, claim, &progress),
                    (&prepared, &vapid, sender),
                    subscriptions,
                    turn,
                );
                let (mut counts, _) = match sent.await? {
                    Ok(sent) => sent,
                    Err(end) => return Ok(end),
                };
                counts.count("missing", missing);
                self.record_retrying(store, claim, counts, TaskStep::Complete)
                    .await
            }
            TaskTarget::Shard(shard) => {
                // A scan may hand out a subscription twice (Redis' HSCAN does when the hash is
                // resized under it, e.g. as 410s delete subscriptions during the broadcast): a
                // subscriber is sent to once per claim. 8 bytes per subscriber of one shard.
                let mut seen: HashSet<SubscriptionId> = HashSet::new();
                let mut turn = Some(turn);
                loop {
                    let turn_now = match turn.take() {
                        Some(turn) => turn,
                        None => match self.turn(turns).await {
                            Some(turn) => turn,
                            None => return Ok(self.hand_back(store, claim, &progress).await),
                        },
                    };
                    let mut batch = store
                        .scan_shard(
                            &claim.task.app_id,
                            *shard,
                            &progress.cursor,
                            self.config.batch_size,
                        )
                        .await?;
                    let count = batch.subscriptions.len() as u64;
                    batch
                        .subscriptions
                        .retain(|subscription| seen.insert(subscription.id));
                    let sent = self.send_batch(
                        (store, claim, &progress),
                        (&prepared, &vapid, sender),
                        batch.subscriptions,
                        turn_now,
                    );
                    let counts = match sent.await? {
                        Ok((counts, kept)) => {
                            turn = kept;
                            counts
                        }
                        Err(end) => return Ok(end),
                    };
                    let Some(next) = batch.next else {
                        return self
                            .record_retrying(store, claim, counts, TaskStep::Complete)
                            .await;
                    };
                    progress = Progress {
                        cursor: next,
                        processed: progress.processed + count,
                    };
                    // On shutdown, hand the task back: claimable at once by another instance.
                    let stopping = self.stop.is_cancelled();
                    let lease = if stopping {
                        Duration::ZERO
                    } else {
                        self.config.lease
                    };
                    let step = TaskStep::Checkpoint {
                        progress: &progress,
                        lease,
                    };
                    match self.record_retrying(store, claim, counts, step).await? {
                        TaskEnd::Checkpointed if !stopping => {}
                        _ => return Ok(TaskEnd::Stopped),
                    }
                }
            }
        }
    }

    /// Sends one batch of the task `claim` (at `progress`, its last checkpoint) with `turn`:
    /// its counts and the turn unless the batch gave it up, or how the task ended (handed back
    /// at shutdown, or its lease lost).
    async fn send_batch(
        &self,
        (store, claim, progress): (&dyn Store, &ClaimedTask, &Progress),
        (prepared, vapid, sender): (&Prepared, &VapidHeaderCache, &Sender),
        subscriptions: Vec<Subscription>,
        turn: OwnedSemaphorePermit,
    ) -> Result<Result<(Recorded, Option<OwnedSemaphorePermit>), TaskEnd>, StoreError> {
        let batch = Batch::new(self.stop.child_token()).holding(turn);
        let delivery = self.deliver_batch(
            (store, &claim.task),
            prepared,
            vapid,
            sender,
            subscriptions,
            &batch,
        );
        Ok(
            match self
                .watched(store, claim, progress, &batch, delivery)
                .await?
            {
                Batched::Done(counts) => Ok((counts, batch.take_turn())),
                Batched::Interrupted => Err(self.hand_back(store, claim, progress).await),
                Batched::LeaseLost => Err(self.lease_lost(claim)),
            },
        )
    }

    /// Runs one batch's `delivery` while keeping the task's lease alive (a heartbeat every
    /// third of the lease saves `progress`, the last checkpoint, again), and ends it early when
    /// the lease is lost or, at shutdown, when most of the grace is over.
    async fn watched(
        &self,
        store: &dyn Store,
        claim: &ClaimedTask,
        progress: &Progress,
        batch: &Batch,
        delivery: impl Future<Output = Result<Recorded, StoreError>>,
    ) -> Result<Batched, StoreError> {
        let heartbeat = async {
            let every = self.config.lease / 3;
            let mut wait = every;
            loop {
                tokio::time::sleep(wait).await;
                let beat = BatchOutcome::step(TaskStep::Checkpoint {
                    progress,
                    lease: self.config.lease,
                });
                match store.record_batch(claim, beat).await {
                    Ok(()) => wait = every,
                    Err(StoreError::LeaseLost) => return,
                    Err(error) => {
                        // One slow answer (a loaded Redis times out at 500 ms) must not cost
                        // the lease: beat again soon, backing off to the usual third.
                        tracing::warn!(task = %claim.task.id, %error, "cannot extend the task's lease; sending on");
                        wait = if wait == every {
                            HEARTBEAT_RETRY.min(every)
                        } else {
                            (wait * 2).min(every)
                        };
                    }
                }
            }
        };
        let mut delivery = std::pin::pin!(delivery);
        let outcome = tokio::select! {
            biased;
            _ = self.hard_stop.cancelled() => Batched::Interrupted,
            counts = &mut delivery => Batched::Done(counts?),
            _ = heartbeat => {
                // Stop the batch's waits and let its requests in flight answer.
                batch.stop();
                let _ = delivery.await;
                Batched::LeaseLost
            }
        };
        Ok(match outcome {
            Batched::Done(_) if batch.was_interrupted() => Batched::Interrupted,
            other => other,
        })
    }

    /// Records a batch, trying again while the store is unavailable (a restarting Redis) for
    /// up to one lease: the batch went out, and recording it spares its resending.
    async fn record_retrying(
        &self,
        store: &dyn Store,
        claim: &ClaimedTask,
        counts: Recorded,
        step: TaskStep<'_>,
    ) -> Result<TaskEnd, StoreError> {
        let give_up = Instant::now() + self.config.lease;
        let mut wait = Duration::from_millis(100);
        loop {
            match record(store, claim, counts.clone(), step).await {
                Err(StoreError::Unavailable(reason)) if Instant::now() + wait < give_up => {
                    tracing::warn!(task = %claim.task.id, %reason, "cannot record a batch; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.hard_stop.cancelled() => return Err(StoreError::Unavailable(reason)),
                    }
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Ok(TaskEnd::Stopped) => return Ok(self.lease_lost(claim)),
                other => return other,
            }
        }
    }

    /// Hands a task back at `progress` (its last checkpoint): claimable at once elsewhere.
    async fn hand_back(
        &self,
        store: &dyn Store,
        claim: &ClaimedTask,
        progress: &Progress,
    ) -> TaskEnd {
        let handed = tokio::time::timeout(
            HAND_BACK_TIMEOUT,
            store.record_batch(
                claim,
                BatchOutcome::step(TaskStep::Checkpoint {
                    progress,
                    lease: Duration::ZERO,
                }),
            ),
        )
        .await;
        match handed {
            Ok(Ok(())) | Ok(Err(StoreError::LeaseLost)) => {}
            Ok(Err(error)) => {
                tracing::warn!(task = %claim.task.id, %error, "cannot hand the task back; it resumes elsewhere after its lease")
            }
            Err(_) => {
                tracing::warn!(task = %claim.task.id, "the store did not take the task back in time; it resumes elsewhere after its lease")
            }
        }
        TaskEnd::Stopped
    }

    /// The task was cancelled or taken over: forget its notification (it may be cancelled).
    fn lease_lost(&self, claim: &ClaimedTask) -> TaskEnd {
        self.notifications.invalidate(&claim.task.notification_id);
        TaskEnd::Stopped
    }

    async fn deliver_batch(
        &self,
        (store, task): (&dyn Store, &crate::store::Task),
        prepared: &Prepared,
        vapid: &VapidHeaderCache,
        sender: &Sender,
        subscriptions: Vec<Subscription>,
        batch: &Batch,
    ) -> Result<Recorded, StoreError> {
        let notification = &prepared.notification;
        let read = subscriptions.len();
        let targeted = match &notification.audience {
            Audience::Segment(filter) => {
                self.filter(store, notification, filter, subscriptions)
                    .await?
            }
            _ => subscriptions,
        };
        let choice = self.choice(store, task.phase, prepared).await?;
        let mut targeted = targeted;
        if prepared.split.is_some() && task.phase != Phase::Whole {
            // Each task of a winner test is for its part of the audience only.
            targeted.retain(|subscription| choice.of(subscription.id).is_some());
        }
        let window = self.expiry.of(store, &notification.app_id).await?;
        let matched = targeted.len();
        let (targeted, activity) = BatchActivity::split(window, (now_ms() / 1000) as u32, targeted);
        let mut recorded = Recorded {
            series_bucket_ms: crate::notify::life::series_bucket(notification.send_at_ms, now_ms()),
            ..Recorded::default()
        };
        // Who the batch targets, each to end in one final outcome (`notify::life`): a
        // broadcast's or a segment's subscribers as they are read (named recipients were
        // counted when planned, a slice's by the task that deferred them, of which those that
        // no longer match the segment end here).
        if crate::policy::gate::is_slice(task) {
            recorded.count("left_segment", read - matched);
        } else if matches!(notification.audience, Audience::All | Audience::Segment(_)) {
            recorded.count("targeted", matched);
        }
        recorded.count("skipped_stale", activity.stale.len());
        recorded.activity = activity;
        let admitted = self
            .policy
            .admit(store, task, notification, targeted)
            .await?;
        if !admitted.slices.is_empty() {
            store.enqueue_tasks(&admitted.slices).await?;
        }
        // Added, not inserted: a batch deferred into several slices counts `deferred` once each.
        for (counter, n) in admitted.counts {
            *recorded.counts.entry(counter).or_default() += n;
        }
        let targeted = admitted.send;
        if targeted.is_empty() {
            return Ok(recorded);
        }
        let expires_at = Instant::now()
            + Duration::from_millis(
                (notification.send_at_ms + u64::from(notification.ttl) * 1000)
                    .saturating_sub(now_ms()),
            );
        let (ready, mut outcomes) = self.personalise(store, prepared, choice, targeted).await?;
        let mut pace = self
            .policy
            .pace(store, notification, ready.len(), batch.stop_token())
            .await?;
        outcomes.extend(
            self.send_all(
                (prepared, vapid, sender),
                expires_at,
                ready,
                batch,
                pace.as_mut(),
            )
            .await,
        );
        let waited = pace.map_or(Duration::ZERO, |pace| pace.waited());
        if !waited.is_zero() {
            recorded
                .counts
                .insert("throttled_ms".to_owned(), waited.as_millis() as i64);
        }
        // Counted when the batch's answers are in (its retries may take minutes).
        recorded.series_bucket_ms =
            crate::notify::life::series_bucket(notification.send_at_ms, now_ms());

        recorded.webhook_events = crate::webhooks::events::for_deliveries(notification, &outcomes);
        *recorded.counts.entry("sent".to_owned()).or_default() += outcomes.len() as i64;
        let mut per_variant = [0i64; variants::MAX_VARIANTS];
        for (subscription, delivery) in outcomes {
            let key = match delivery {
                Delivery::Delivered => {
                    if prepared.split.is_some()
                        && let Some(slot) = choice
                            .of(subscription.id)
                            .and_then(|i| per_variant.get_mut(i))
                    {
                        *slot += 1;
                    }
                    recorded.activity.delivered(subscription);
                    "delivered".to_owned()
                }
                Delivery::Expired => {
                    // The push service says this subscription is gone for good: deleted with
                    // the batch's record.
                    recorded.gone.push(subscription);
                    "expired".to_owned()
                }
                // One counter per reason, named after the sender's own label.
                Delivery::Failed(failure) => format!("failed.{}", failure.label()),
            };
            *recorded.counts.entry(key).or_default() += 1;
        }
        for (i, delivered) in per_variant.into_iter().enumerate() {
            if delivered > 0 {
                recorded
                    .counts
                    .insert(variants::counter(i, "delivered"), delivered);
            }
        }
        Ok(recorded)
    }

    /// How one task of `phase` picks each subscriber's payload; a follow-up of a winner test
    /// first reads the decided winner, or decides it (see [`Engine::winner`]).
    async fn choice<'p>(
        &self,
        store: &dyn Store,
        phase: Phase,
        prepared: &'p Prepared,
    ) -> Result<Choice<'p>, StoreError> {
        let winner = match (phase, &prepared.split) {
            (Phase::Rest, Some(_)) => Some(self.winner(store, prepared).await?),
            _ => None,
        };
        Ok(Choice {
            split: prepared.split.as_ref(),
            phase,
            winner,
        })
    }

    /// The winner of a notification's test: the one recorded in its counters, or, the first
    /// time any instance asks (when the first follow-up task runs, after the test's time), the
    /// best by the test's metric, recorded with `count_once` so that exactly one decision
    /// counts however many instances race to it; a loser reads the recorded one.
    async fn winner(&self, store: &dyn Store, prepared: &Prepared) -> Result<usize, StoreError> {
        if let Some(winner) = prepared.winner.get() {
            return Ok(*winner);
        }
        let notification = &prepared.notification;
        let counters = store.counters(&notification.id).await?;
        let winner = match variants::decided(&counters) {
            Some(winner) => winner,
            None => {
                let metric = notification
                    .winner
                    .as_ref()
                    .map_or(variants::Metric::Clicked, |test| test.metric);
                let best = variants::best(notification.variants.len(), metric, &counters);
                let name = variants::winner_counter(best);
                let until = crate::notify::receipt::counted_until_ms(notification);
                let first = store
                    .count_once(crate::store::CountOnce {
                        notification_id: &notification.id,
                        member: variants::WINNER_MEMBER,
                        counters: &[&name],
                        keep_until_ms: until,
                    })
                    .await?;
                if first {
                    tracing::info!(notification = %notification.id, winner = best, "winner test decided");
                    best
                } else {
                    variants::decided(&store.counters(&notification.id).await?).ok_or_else(
                        || {
                            StoreError::Corrupt(format!(
                                "notification {}: a winner was counted but none is recorded",
                                notification.id
                            ))
                        },
                    )?
                }
            }
        };
        let winner = winner.min(prepared.templates.len().saturating_sub(1));
        Ok(*prepared.winner.get_or_init(|| winner))
    }

    /// Each subscriber's payload: the notification's, with its id spliced in, or — when the
    /// content has template variables — rendered from the subscriber's profile, the batch's
    /// profiles read in one store call. A rendering that cannot be sent (too large for Web Push)
    /// is that subscriber's outcome, never the batch's.
    async fn personalise(
        &self,
        store: &dyn Store,
        prepared: &Prepared,
        choice: Choice<'_>,
        subscriptions: Vec<Subscription>,
    ) -> Result<(Vec<(Subscription, Vec<u8>)>, Vec<(Subscription, Delivery)>), StoreError> {
        let templates = &prepared.templates;
        // Only subscribers the task is for reach here: `choice` names a payload for each.
        let template_of = |subscription: &Subscription| {
            let index = choice.of(subscription.id).unwrap_or(0);
            templates.get(index).unwrap_or(&templates[0])
        };
        if !templates.iter().any(PayloadTemplate::uses_variables) {
            let ready = subscriptions
                .into_iter()
                .map(|subscription| {
                    let payload = template_of(&subscription).render(subscription.id);
                    (subscription, payload)
                })
                .collect();
            return Ok((ready, Vec::new()));
        }
        let mut external_ids: Vec<String> = subscriptions
            .iter()
            .filter_map(|subscription| subscription.external_id.clone())
            .collect();
        external_ids.sort_unstable();
        external_ids.dedup();
        let profiles: HashMap<String, crate::store::Profile> = store
            .get_profiles(&prepared.notification.app_id, &external_ids)
            .await?
            .into_iter()
            .map(|profile| (profile.external_id.clone(), profile))
            .collect();
        let mut ready = Vec::with_capacity(subscriptions.len());
        let mut failed = Vec::new();
        for subscription in subscriptions {
            let context = context_for(&subscription, &profiles, prepared.event.as_ref());
            match template_of(&subscription).render_for(subscription.id, &context) {
                Ok(payload) => ready.push((subscription, payload)),
                Err(error) => failed.push((
                    subscription,
                    Delivery::Failed(Failure::Personalisation(error)),
                )),
            }
        }
        Ok((ready, failed))
    }

    /// Sends to each subscriber, [`EngineConfig::concurrency`] messages in flight at most.
    ///
    /// Messages are encrypted and handed to the connections in runs of a quarter of that window,
    /// not one per answer received: each connection's task then writes a run's requests with one
    /// system call and one TLS record instead of one each, which costs less CPU per message
    /// (docs/BENCHMARKS.md has the figures).
    ///
    /// A message waiting for its retry or for its origin's pause does not count as in flight:
    /// the rest of the batch keeps going meanwhile (at most the batch is waiting, which bounds
    /// the memory). Under a rate (`pace`), a message starts only on a token of the shared
    /// bucket; tokens are asked for ahead while the others send, one grant ahead.
    ///
    /// Once `batch` is stopping no message starts; those never started are given up as
    /// [`Failure::Stopped`] and the batch as interrupted (its task's next holder sends it
    /// again). So are they when the store cannot grant the rate's tokens.
    async fn send_all(
        &self,
        (prepared, vapid, sender): (&Prepared, &VapidHeaderCache, &Sender),
        expires_at: Instant,
        subscriptions: Vec<(Subscription, Vec<u8>)>,
        batch: &Batch,
        mut pace: Option<&mut Pace<'_>>,
    ) -> Vec<(Subscription, Delivery)> {
        let window = self.config.concurrency.max(1);
        let run = (window / 4).max(1);
        let mut outcomes = Vec::with_capacity(subscriptions.len());
        let mut waiting = subscriptions.into_iter();
        let mut in_flight = FuturesUnordered::new();
        // Messages that may start: all without a rate, else the tokens granted and not used.
        let mut allowed = if pace.is_some() { 0 } else { usize::MAX };
        loop {
            let granting = pace.is_some();
            if waiting.len() > 0 && (batch.is_stopping() || (!granting && allowed == 0)) {
                batch.give_up();
                outcomes.extend(
                    waiting
                        .by_ref()
                        .map(|(s, _)| (s, Delivery::Failed(Failure::Stopped))),
                );
            }
            let sending = in_flight.len() - batch.parked().min(in_flight.len());
            // A whole run, or what the rate allows now (a slow rate never grants a run).
            if sending + run.min(allowed) <= window && allowed > 0 {
                let room = (window - sending).min(allowed);
                // Whole multiples of the batch backend's lanes, so that no lane is wasted.
                let room = if room == allowed {
                    room
                } else {
                    room - room % sender.batch_lanes().min(room)
                };
                let before = waiting.len();
                let mut run_of = Vec::with_capacity(room.min(before));
                for (subscription, payload) in waiting.by_ref().take(room) {
                    let keys =
                        SubscriptionKeys::from_validated(subscription.p256dh, subscription.auth);
                    let push_subscription =
                        match PushSubscription::from_stored(&subscription.endpoint, keys) {
                            Ok(push_subscription) => push_subscription,
                            Err(error) => {
                                let failure = Failure::Encryption(error.to_string());
                                outcomes.push((subscription, Delivery::Failed(failure)));
                                continue;
                            }
                        };
                    run_of.push((subscription, push_subscription, payload));
                }
                if allowed != usize::MAX {
                    allowed -= before - waiting.len();
                }
                // The run's encryption is one batch (docs/BENCHMARKS.md, batched cryptography).
                let sealing: Vec<_> = run_of.iter().map(|(_, s, p)| (s, p.as_slice())).collect();
                let sealed = sender.seal_batch(&sealing);
                drop(sealing);
                for ((subscription, push_subscription, _), sealed) in run_of.into_iter().zip(sealed)
                {
                    match sealed {
                        Ok(body) => in_flight.push(async move {
                            let message = Message {
                                subscription: &push_subscription,
                                options: &prepared.options,
                                vapid,
                                expires_at,
                            };
                            let delivery = sender.send_in(&message, body, batch).await;
                            (subscription, delivery)
                        }),
                        Err(failed) => outcomes.push((subscription, failed)),
                    }
                }
            }
            if waiting.len() == 0 && in_flight.is_empty() {
                return outcomes;
            }
            // The next answer, a grant of tokens, or room in the window: a message that began
            // to wait while the others were polled leaves room for one more.
            let parked_before = batch.parked();
            // An answer, or `None`: room to start more.
            let answer = futures::future::poll_fn(|cx| {
                if let Some(granting) = pace.as_deref_mut().filter(|pace| allowed < pace.ahead()) {
                    match granting.poll_grant(cx) {
                        Poll::Ready(Some(Ok(granted))) => {
                            allowed += granted as usize;
                            return Poll::Ready(None);
                        }
                        Poll::Ready(Some(Err(error))) => {
                            tracing::warn!(%error, "cannot take the rate's tokens; the batch is sent again later");
                            pace = None;
                            return Poll::Ready(None);
                        }
                        Poll::Ready(None) => {
                            pace = None;
                            return Poll::Ready(None);
                        }
                        Poll::Pending => {}
                    }
                }
                if in_flight.is_empty() {
                    // Nothing to answer: start more if tokens are left, else wait for a grant.
                    return if allowed > 0 {
                        Poll::Ready(None)
                    } else {
                        Poll::Pending
                    };
                }
                let polled = in_flight.poll_next_unpin(cx);
                if waiting.len() == 0 && batch.parked() >= in_flight.len() {
                    batch.idle();
                }
                match polled {
                    Poll::Ready(Some(outcome)) => Poll::Ready(Some(outcome)),
                    Poll::Pending if waiting.len() > 0 && batch.parked() > parked_before => {
                        Poll::Ready(None)
                    }
                    Poll::Ready(None) | Poll::Pending => Poll::Pending,
                }
            })
            .await;
            outcomes.extend(answer);
        }
    }

    /// Keeps the subscriptions that match a segment, loading profiles only when needed.
    async fn filter(
        &self,
        store: &dyn Store,
        notification: &Notification,
        filter: &Filter,
        subscriptions: Vec<Subscription>,
    ) -> Result<Vec<Subscription>, StoreError> {
        let mut kept = Vec::with_capacity(subscriptions.len());
        let mut profiles = HashMap::new();
        for subscription in subscriptions {
            let profile = match (&subscription.external_id, filter.needs_profiles()) {
                (Some(external_id), true) => {
                    if !profiles.contains_key(external_id) {
                        let profile = store.get_profile(&notification.app_id, external_id).await?;
                        profiles.insert(external_id.clone(), profile);
                    }
                    profiles.get(external_id).cloned().flatten()
                }
                _ => None,
            };
            if filter.matches(&subscription, profile.as_ref()) {
                kept.push(subscription);
            }
        }
        Ok(kept)
    }

    async fn prepare(
        &self,
        store: &dyn Store,
        notification_id: &str,
    ) -> Result<Option<Arc<Prepared>>, StoreError> {
        if let Some(prepared) = self.notifications.get(notification_id) {
            return Ok(Some(prepared));
        }
        let Some(notification) = store.get_notification(notification_id).await? else {
            return Ok(None);
        };
        let options = PushOptions {
            ttl: Ttl::from_secs(u64::from(notification.ttl)).unwrap_or(PushOptions::default().ttl),
            urgency: notification
                .urgency
                .as_deref()
                .and_then(|u| u.parse::<Urgency>().ok())
                .or_else(|| crate::policy::gate::default_urgency(&notification)),
            topic: notification
                .topic
                .as_deref()
                .and_then(|t| t.parse::<Topic>().ok()),
        };
        // The app's receipt secret signs each payload's token.
        let key = self
            .app_keys(store, &notification.app_id)
            .await?
            .receipt
            .clone();
        let split = (!notification.variants.is_empty()).then(|| {
            let weights: Vec<u32> = notification.variants.iter().map(|v| v.weight).collect();
            Split::new(&notification.id, &weights, notification.winner.as_ref())
        });
        let prepared = Arc::new(Prepared {
            templates: PayloadTemplate::all(&notification, key),
            split,
            winner: std::sync::OnceLock::new(),
            event: notification.event.as_ref().map(EventProperties::new),
            notification,
            options,
        });
        // A cancelled one is not kept: its next task (if any) reads it again.
        if prepared.notification.status != Status::Cancelled {
            self.notifications
                .insert(notification_id.to_owned(), prepared.clone());
        }
        Ok(Some(prepared))
    }

    /// The app's VAPID signer and receipt key, read from the store once per [`APPS_TTL`].
    async fn app_keys(&self, store: &dyn Store, app_id: &str) -> Result<Arc<AppKeys>, StoreError> {
        if let Some(keys) = self.apps.get(app_id) {
            return Ok(keys);
        }
        let app = store
            .get_app(app_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("app {app_id}")))?;
        let key = VapidKey::from_private_scalar(&app.vapid_private_key)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let vapid = Arc::new(
            VapidHeaderCache::new(key, self.config.vapid_subject.clone(), DEFAULT_VALIDITY)
                .map_err(|e| StoreError::Invalid(e.to_string()))?,
        );
        let keys = Arc::new(AppKeys {
            vapid,
            receipt: crate::notify::receipt::ReceiptKey::new(&app.receipt_secret),
        });
        self.apps.insert(app_id.to_owned(), keys.clone());
        Ok(keys)
    }
}

/// What the engine keeps of an app: it signs every push request and every receipt token.
struct AppKeys {
    vapid: Arc<VapidHeaderCache>,
    receipt: crate::notify::receipt::ReceiptKey,
}
