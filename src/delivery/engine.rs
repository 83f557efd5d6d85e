//! The fan-out engine: workers that claim ledger tasks, stream their subscribers in batches,
//! deliver concurrently, record outcomes, and checkpoint, in every `aviso serve` instance.
//!
//! Two lanes run side by side, each with its own workers and its own push-service connections:
//! the priority lane (one-to-one pushes) never waits behind a broadcast's tasks or streams.
//! A task's lease is extended at each checkpoint; a worker that dies stops extending it and
//! another instance takes the task over from the last checkpoint (at-least-once, duplicates
//! bounded by one batch). On shutdown a worker finishes its batch and hands the task back.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use metrics::{gauge, histogram};
use tokio::sync::watch;

use super::lifecycle::{self, BatchActivity};
use super::sender::{Delivery, Failure, Message, Sender};
use super::waker::EngineWaker;
use crate::notify::Notification;
use crate::notify::model::{Audience, Status};
use crate::notify::payload::PayloadTemplate;
use crate::notify::segment::Filter;
use crate::notify::template::EventProperties;
use crate::push::vapid::{DEFAULT_VALIDITY, VapidSubject};
use crate::push::{
    PushOptions, PushSubscription, SubscriptionKeys, Topic, Ttl, Urgency, VapidHeaderCache,
    VapidKey,
};
use crate::store::{
    BatchOutcome, ClaimedTask, Lane, Progress, Store, StoreError, Subscription, SubscriptionId,
    TaskStep, TaskTarget, now_ms,
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
}

/// Work shared by the lanes' workers.
pub struct Engine {
    store: Arc<dyn Store>,
    /// The priority lane's own store connections: its small requests never wait behind a
    /// broadcast's large scans on a shared (multiplexed) connection.
    priority_store: Arc<dyn Store>,
    config: EngineConfig,
    bulk: Sender,
    priority: Sender,
    apps: Mutex<HashMap<String, Arc<VapidHeaderCache>>>,
    notifications: Mutex<HashMap<String, Arc<Prepared>>>,
    /// The apps' stale-expiry windows.
    expiry: lifecycle::Windows,
    /// Woken when this process enqueues tasks, so its idle workers need not wait for a poll.
    wake: Arc<EngineWaker>,
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

/// How often an idle worker refreshes the queue-depth gauge.
const QUEUE_DEPTH_INTERVAL: Duration = Duration::from_secs(1);

/// A notification ready to send: parsed once per process, not once per message.
struct Prepared {
    notification: Notification,
    template: PayloadTemplate,
    options: PushOptions,
    /// A triggered push's event properties, converted once for all its renderings.
    event: Option<EventProperties>,
}

enum TaskEnd {
    Done,
    /// Saved its progress and goes on.
    Checkpointed,
    /// Cancelled, taken over, or handed back at shutdown.
    Stopped,
}

/// What one batch leaves to record: counts by counter name (`sent`, `delivered`, `expired`,
/// `failed.REASON`) and the subscriptions the push service said are gone.
#[derive(Default)]
struct Recorded {
    counts: Counts,
    gone: Vec<Subscription>,
    activity: BatchActivity,
}

/// Stores a batch's counters and deletions with the checkpoint (or completion) that follows it,
/// in one store write.
async fn record(
    store: &dyn Store,
    claim: &ClaimedTask,
    recorded: Recorded,
    step: TaskStep<'_>,
) -> Result<TaskEnd, StoreError> {
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
    };
    match store.record_batch(claim, outcome, step).await {
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
            apps: Mutex::new(HashMap::new()),
            notifications: Mutex::new(HashMap::new()),
            expiry: lifecycle::Windows::default(),
            wake: Arc::new(EngineWaker::default()),
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

    /// Runs the workers of both lanes until `shutdown` turns true; returns when they have
    /// finished or handed back their tasks.
    ///
    /// Each lane gets a tokio runtime (and OS threads) of its own, apart from the runtime that
    /// serves the API. A broadcast keeps every core busy encrypting, and a tokio worker that
    /// polls a batch of encryptions does not yield for milliseconds: sharing its runtime, a
    /// one-to-one push (or any API request) would queue behind those batches at each step.
    /// Apart, the OS scheduler gives the threads that were waiting their turn within a
    /// time slice.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let lanes = [(Lane::Priority, 1), (Lane::Bulk, cores)].map(|(lane, threads)| {
            let engine = self.clone();
            let shutdown = shutdown.clone();
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
                        Ok(runtime) => runtime.block_on(engine.run_lane(lane, shutdown)),
                        Err(error) => {
                            tracing::error!(%error, lane = lane.as_str(), "cannot start a lane's runtime")
                        }
                    }
                })
                .map_err(|error| (lane, error))
        });
        for lane in lanes {
            match lane {
                Ok(thread) => {
                    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
                }
                Err((lane, error)) => {
                    tracing::error!(%error, lane = lane.as_str(), "cannot start a lane's thread")
                }
            }
        }
    }

    async fn run_lane(self: Arc<Self>, lane: Lane, shutdown: watch::Receiver<bool>) {
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
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..count.max(1) {
            workers.spawn(self.clone().work(lane, tick.clone(), shutdown.clone()));
        }
        let ticker = {
            let mut shutdown = shutdown.clone();
            async move {
                let mut interval = tokio::time::interval(poll);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while !*shutdown.borrow() {
                    tokio::select! {
                        _ = interval.tick() => tick.notify_one(),
                        _ = shutdown.changed() => {}
                    }
                }
            }
        };
        // On the lane's runtime with its workers (not on the thread that drives `run_lane`), so
        // that a tick wakes a worker without a switch between threads.
        let ticker = tokio::spawn(ticker);
        while workers.join_next().await.is_some() {}
        let _ = ticker.await;
    }

    async fn work(
        self: Arc<Self>,
        lane: Lane,
        tick: Arc<tokio::sync::Notify>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        // The queue-depth gauge costs a count of the lane's tasks: at most once per interval,
        // not on every idle poll (the priority lane polls every few milliseconds).
        let mut depth_measured: Option<Instant> = None;
        while !*shutdown.borrow() {
            let claimed = self
                .store_for(lane)
                .claim_task(lane, &self.config.worker_id, self.config.lease)
                .await;
            match claimed {
                Ok(Some(task)) => {
                    let lag = now_ms().saturating_sub(task.task.not_before_ms) as f64 / 1000.0;
                    histogram!("aviso_task_lag_seconds", "lane" => lane.as_str()).record(lag);
                    if let Err(error) = self.run_task(&task, &shutdown).await {
                        tracing::warn!(task = %task.task.id, %error, "task interrupted; it will be resumed after its lease");
                    }
                }
                Ok(None) => {
                    if depth_measured.is_none_or(|at| at.elapsed() >= QUEUE_DEPTH_INTERVAL) {
                        depth_measured = Some(Instant::now());
                        if let Ok(depth) = self.store_for(lane).pending_tasks(lane).await {
                            gauge!("aviso_queue_depth", "lane" => lane.as_str()).set(depth as f64);
                        }
                    }
                    tokio::select! {
                        _ = tick.notified() => {}
                        _ = self.wake.lane(lane).notified() => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot claim tasks; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.poll_interval * 5) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    async fn run_task(
        &self,
        claim: &ClaimedTask,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<TaskEnd, StoreError> {
        let Some(prepared) = self
            .prepare(self.store_for(claim.task.lane), &claim.task.notification_id)
            .await?
        else {
            self.store_for(claim.task.lane).complete_task(claim).await?;
            return Ok(TaskEnd::Done);
        };
        if prepared.notification.status == Status::Cancelled {
            self.store_for(claim.task.lane).complete_task(claim).await?;
            return Ok(TaskEnd::Done);
        }
        let vapid = self
            .vapid(self.store_for(claim.task.lane), &claim.task.app_id)
            .await?;
        let store = self.store_for(claim.task.lane);
        let sender = match claim.task.lane {
            Lane::Priority => &self.priority,
            Lane::Bulk => &self.bulk,
        };
        let mut progress = claim.progress.clone();
        match &claim.task.target {
            TaskTarget::Subscriptions(ids) => {
                let subscriptions = store.get_subscriptions(&claim.task.app_id, ids).await?;
                let recorded = self
                    .deliver_batch(store, &prepared, &vapid, sender, subscriptions)
                    .await?;
                record(store, claim, recorded, TaskStep::Complete).await
            }
            TaskTarget::Shard(shard) => {
                // A scan may hand out a subscription twice (Redis' HSCAN does when the hash is
                // resized under it, e.g. as 410s delete subscriptions during the broadcast): a
                // subscriber is sent to once per claim. 8 bytes per subscriber of one shard.
                let mut seen: HashSet<SubscriptionId> = HashSet::new();
                loop {
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
                    let recorded = self
                        .deliver_batch(store, &prepared, &vapid, sender, batch.subscriptions)
                        .await?;
                    let Some(next) = batch.next else {
                        return record(store, claim, recorded, TaskStep::Complete).await;
                    };
                    progress = Progress {
                        cursor: next,
                        processed: progress.processed + count,
                    };
                    // On shutdown, hand the task back: claimable at once by another instance.
                    let stopping = *shutdown.borrow();
                    let lease = if stopping {
                        Duration::ZERO
                    } else {
                        self.config.lease
                    };
                    let step = TaskStep::Checkpoint {
                        progress: &progress,
                        lease,
                    };
                    match record(store, claim, recorded, step).await? {
                        TaskEnd::Checkpointed if !stopping => {}
                        _ => return Ok(TaskEnd::Stopped),
                    }
                }
            }
        }
    }

    async fn deliver_batch(
        &self,
        store: &dyn Store,
        prepared: &Prepared,
        vapid: &VapidHeaderCache,
        sender: &Sender,
        subscriptions: Vec<Subscription>,
    ) -> Result<Recorded, StoreError> {
        let notification = &prepared.notification;
        let targeted = match &notification.audience {
            Audience::Segment(filter) => {
                self.filter(store, notification, filter, subscriptions)
                    .await?
            }
            _ => subscriptions,
        };
        let window = self.expiry.of(store, &notification.app_id).await?;
        let (targeted, activity) = BatchActivity::split(window, (now_ms() / 1000) as u32, targeted);
        if targeted.is_empty() {
            return Ok(Recorded {
                activity,
                ..Recorded::default()
            });
        }
        let expires_at = Instant::now()
            + Duration::from_millis(
                (notification.send_at_ms + u64::from(notification.ttl) * 1000)
                    .saturating_sub(now_ms()),
            );
        let (ready, mut outcomes) = self.personalise(store, prepared, targeted).await?;
        outcomes.extend(
            self.send_all(prepared, vapid, sender, expires_at, ready)
                .await,
        );

        let mut recorded = Recorded {
            activity,
            ..Recorded::default()
        };
        *recorded.counts.entry("sent".to_owned()).or_default() += outcomes.len() as i64;
        for (subscription, delivery) in outcomes {
            let key = match delivery {
                Delivery::Delivered => {
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
        Ok(recorded)
    }

    /// Each subscriber's payload: the notification's, with its id spliced in, or — when the
    /// content has template variables — rendered from the subscriber's profile, the batch's
    /// profiles read in one store call. A rendering that cannot be sent (too large for Web Push)
    /// is that subscriber's outcome, never the batch's.
    async fn personalise(
        &self,
        store: &dyn Store,
        prepared: &Prepared,
        subscriptions: Vec<Subscription>,
    ) -> Result<(Vec<(Subscription, Vec<u8>)>, Vec<(Subscription, Delivery)>), StoreError> {
        let template = &prepared.template;
        if !template.uses_variables() {
            let ready = subscriptions
                .into_iter()
                .map(|subscription| {
                    let payload = template.render(subscription.id);
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
        let rendered = template.render_batch(&subscriptions, &profiles, prepared.event.as_ref());
        let mut ready = Vec::with_capacity(subscriptions.len());
        let mut failed = Vec::new();
        for (subscription, payload) in subscriptions.into_iter().zip(rendered) {
            match payload {
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
    async fn send_all(
        &self,
        prepared: &Prepared,
        vapid: &VapidHeaderCache,
        sender: &Sender,
        expires_at: Instant,
        subscriptions: Vec<(Subscription, Vec<u8>)>,
    ) -> Vec<(Subscription, Delivery)> {
        let window = self.config.concurrency.max(1);
        let run = (window / 4).max(1);
        let mut outcomes = Vec::with_capacity(subscriptions.len());
        let mut waiting = subscriptions.into_iter();
        let mut in_flight = FuturesUnordered::new();
        loop {
            if in_flight.len() + run <= window {
                let room = window - in_flight.len();
                // Whole multiples of the batch backend's lanes, so that no lane is wasted.
                let room = room - room % sender.batch_lanes().min(room);
                let mut run_of = Vec::with_capacity(room);
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
                // The run's encryption is one batch (docs/BENCHMARKS.md, batched cryptography).
                let batch: Vec<_> = run_of.iter().map(|(_, s, p)| (s, p.as_slice())).collect();
                let sealed = sender.seal_batch(&batch);
                drop(batch);
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
                            let delivery = sender.send(&message, body).await;
                            (subscription, delivery)
                        }),
                        Err(failed) => outcomes.push((subscription, failed)),
                    }
                }
            }
            match in_flight.next().await {
                Some(outcome) => outcomes.push(outcome),
                None if waiting.len() == 0 => return outcomes,
                None => {}
            }
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
        if let Ok(cache) = self.notifications.lock()
            && let Some(prepared) = cache.get(notification_id)
            && prepared.notification.status != Status::Cancelled
        {
            return Ok(Some(prepared.clone()));
        }
        let Some(notification) = store.get_notification(notification_id).await? else {
            return Ok(None);
        };
        let options = PushOptions {
            ttl: Ttl::from_secs(u64::from(notification.ttl)).unwrap_or(PushOptions::default().ttl),
            urgency: notification
                .urgency
                .as_deref()
                .and_then(|u| u.parse::<Urgency>().ok()),
            topic: notification
                .topic
                .as_deref()
                .and_then(|t| t.parse::<Topic>().ok()),
        };
        let prepared = Arc::new(Prepared {
            template: PayloadTemplate::new(&notification),
            event: notification.event.as_ref().map(EventProperties::new),
            notification,
            options,
        });
        if let Ok(mut cache) = self.notifications.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(notification_id.to_owned(), prepared.clone());
        }
        Ok(Some(prepared))
    }

    async fn vapid(
        &self,
        store: &dyn Store,
        app_id: &str,
    ) -> Result<Arc<VapidHeaderCache>, StoreError> {
        if let Ok(cache) = self.apps.lock()
            && let Some(vapid) = cache.get(app_id)
        {
            return Ok(vapid.clone());
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
        if let Ok(mut cache) = self.apps.lock() {
            cache.insert(app_id.to_owned(), vapid.clone());
        }
        Ok(vapid)
    }
}
