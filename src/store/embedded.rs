//! The embedded store: one `redb` file under the data directory, ACID, crash-safe.
//!
//! The default when no Redis URL is configured: `aviso serve` works on a fresh machine and keeps
//! its data across restarts. One process owns the file; the ledger's leases and takeovers work
//! the same as with Redis, between the workers of that process.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{
    App, ClaimedTask, Lane, NewNotification, Profile, ProfileUpdate, Progress, ScanBatch,
    ScanCursor, Store, StoreError, StoreResult, Subscription, SubscriptionId, Task, TaskStep,
    Upserted, now_ms,
};

const APPS: TableDefinition<&str, &[u8]> = TableDefinition::new("apps");
const API_KEYS: TableDefinition<&[u8], &str> = TableDefinition::new("api_keys");
const SUBSCRIPTIONS: TableDefinition<(&str, u16, u64), &[u8]> =
    TableDefinition::new("subscriptions");
const SUBSCRIPTION_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("subscription_counts");
const PROFILES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("profiles");
const NOTIFICATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("notifications");
/// (app, created ms, id): lists an app's notifications newest first.
const NOTIFICATIONS_BY_APP: TableDefinition<(&str, u64, &str), ()> =
    TableDefinition::new("notifications_by_app");
const COUNTERS: TableDefinition<(&str, &str), i64> = TableDefinition::new("counters");
/// (app, key) → (notification id, expiry ms).
const IDEMPOTENCY: TableDefinition<(&str, &str), (&str, u64)> = TableDefinition::new("idempotency");
const PROFILE_SENDS: TableDefinition<(&str, &str, u64), u64> =
    TableDefinition::new("profile_sends");
const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
/// (lane, claimable-from ms, task id): the ready queue and the lease expiries in one index.
const LANE_INDEX: TableDefinition<(&str, u64, &str), ()> = TableDefinition::new("lane_index");

/// A task as the ledger keeps it.
#[derive(Serialize, Deserialize)]
struct TaskRecord {
    task: Task,
    owner: Option<String>,
    epoch: u64,
    claimable_at_ms: u64,
    progress: Progress,
    claims: u64,
}

/// The embedded store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: std::sync::mpsc::Sender<WriteJob>,
}

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

/// Group commit: a committed redb transaction costs an fsync, so the writer thread runs every
/// write that is waiting in one transaction and commits once. A write is acknowledged only after
/// the commit that holds it. Jobs validate before they mutate, so one caller's error never leaves
/// half a write in another's transaction.
fn run_writer(db: std::sync::Weak<Database>, jobs: std::sync::mpsc::Receiver<WriteJob>) {
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

fn save_notification(
    txn: &redb::WriteTransaction,
    app_id: &str,
    id: &str,
    document: &[u8],
) -> StoreResult<()> {
    let mut table = txn.open_table(NOTIFICATIONS).map_err(db_error)?;
    let existed = table.insert(id, document).map_err(db_error)?.is_some();
    if !existed {
        let mut index = txn.open_table(NOTIFICATIONS_BY_APP).map_err(db_error)?;
        index.insert((app_id, now_ms(), id), ()).map_err(db_error)?;
    }
    Ok(())
}

/// Saves a claimed task's progress and extends its lease, if the claim still holds.
fn checkpoint_in(
    txn: &redb::WriteTransaction,
    claim: &ClaimedTask,
    progress: Progress,
    lease: Duration,
) -> StoreResult<()> {
    let mut record = fenced(txn, claim)?;
    unindex_task(txn, &record)?;
    record.progress = progress;
    record.claimable_at_ms = now_ms() + lease.as_millis() as u64;
    save_task(txn, &record)
}

/// Removes a claimed task, if the claim still holds.
fn complete_in(txn: &redb::WriteTransaction, claim: &ClaimedTask) -> StoreResult<()> {
    let record = fenced(txn, claim)?;
    unindex_task(txn, &record)?;
    let mut tasks = txn.open_table(TASKS).map_err(db_error)?;
    tasks.remove(record.task.id.as_str()).map_err(db_error)?;
    Ok(())
}

fn owned_deltas(deltas: &[(&str, i64)]) -> Vec<(String, i64)> {
    deltas.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn add_counters_in(
    txn: &redb::WriteTransaction,
    id: &str,
    deltas: &[(String, i64)],
) -> StoreResult<()> {
    let mut table = txn.open_table(COUNTERS).map_err(db_error)?;
    for (field, delta) in deltas {
        let current = table
            .get((id, field.as_str()))
            .map_err(db_error)?
            .map_or(0, |v| v.value());
        table
            .insert((id, field.as_str()), current + delta)
            .map_err(db_error)?;
    }
    Ok(())
}

/// Puts new tasks in the ledger, unclaimed, claimable from their `not_before_ms`.
fn save_new_tasks(txn: &redb::WriteTransaction, tasks: Vec<Task>) -> StoreResult<()> {
    for task in tasks {
        let record = TaskRecord {
            claimable_at_ms: task.not_before_ms,
            task,
            owner: None,
            epoch: 0,
            progress: Progress::default(),
            claims: 0,
        };
        save_task(txn, &record)?;
    }
    Ok(())
}

/// The id of the first task of `lane` claimable now (new, or its lease ran out).
fn next_claimable(
    index: &impl ReadableTable<(&'static str, u64, &'static str), ()>,
    lane: Lane,
) -> StoreResult<Option<String>> {
    let now = now_ms();
    let mut range = index
        .range((lane.as_str(), 0, "")..(lane.as_str(), now + 1, ""))
        .map_err(db_error)?;
    match range.next() {
        Some(entry) => Ok(Some(entry.map_err(db_error)?.0.value().2.to_owned())),
        None => Ok(None),
    }
}

fn db_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Embedded(e.to_string())
}

fn json<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

impl EmbeddedStore {
    /// Opens (or creates) `aviso.redb` in `data_dir`.
    pub fn open(data_dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Embedded(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join("aviso.redb");
        let db = Database::create(&path).map_err(|e| {
            StoreError::Embedded(format!(
                "cannot open {} ({e}); is another aviso process using this data directory?",
                path.display()
            ))
        })?;
        // Create every table up front so that readers never meet a missing one.
        let txn = db.begin_write().map_err(db_error)?;
        {
            txn.open_table(APPS).map_err(db_error)?;
            txn.open_table(API_KEYS).map_err(db_error)?;
            txn.open_table(SUBSCRIPTIONS).map_err(db_error)?;
            txn.open_table(SUBSCRIPTION_COUNTS).map_err(db_error)?;
            txn.open_table(PROFILES).map_err(db_error)?;
            txn.open_table(NOTIFICATIONS).map_err(db_error)?;
            txn.open_table(NOTIFICATIONS_BY_APP).map_err(db_error)?;
            txn.open_table(COUNTERS).map_err(db_error)?;
            txn.open_table(IDEMPOTENCY).map_err(db_error)?;
            txn.open_table(PROFILE_SENDS).map_err(db_error)?;
            txn.open_table(TASKS).map_err(db_error)?;
            txn.open_table(LANE_INDEX).map_err(db_error)?;
        }
        txn.commit().map_err(db_error)?;
        let db = Arc::new(db);
        let (writer, jobs) = std::sync::mpsc::channel();
        let writer_db = Arc::downgrade(&db);
        std::thread::Builder::new()
            .name("aviso-store-writer".into())
            .spawn(move || run_writer(writer_db, jobs))
            .map_err(|e| StoreError::Embedded(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { db, writer })
    }

    /// Runs blocking database work off the async runtime's threads.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StoreError::Embedded(format!("store task failed: {e}")))?
    }

    /// Runs `work` in the writer's next transaction; answers once it is committed and on disk.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&redb::WriteTransaction) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.write_with(true, work).await
    }

    async fn write_with<T: Send + 'static>(
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
        self.writer
            .send(job)
            .map_err(|_| StoreError::Embedded("the writer thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Embedded("the write was not committed (see the log)".into()))?
    }

    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&redb::ReadTransaction) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.run(move |db| work(&db.begin_read().map_err(db_error)?))
            .await
    }
}

fn put_subscription(txn: &redb::WriteTransaction, sub: &Subscription) -> StoreResult<bool> {
    let record = sub.encode()?;
    let mut table = txn.open_table(SUBSCRIPTIONS).map_err(db_error)?;
    let existed = table
        .insert(
            (sub.app_id.as_str(), sub.id.shard(), sub.id.0),
            record.as_slice(),
        )
        .map_err(db_error)?
        .is_some();
    if !existed {
        let mut counts = txn.open_table(SUBSCRIPTION_COUNTS).map_err(db_error)?;
        let count = counts
            .get(sub.app_id.as_str())
            .map_err(db_error)?
            .map_or(0, |v| v.value());
        counts
            .insert(sub.app_id.as_str(), count + 1)
            .map_err(db_error)?;
    }
    Ok(!existed)
}

fn read_subscription(
    table: &impl ReadableTable<(&'static str, u16, u64), &'static [u8]>,
    app_id: &str,
    id: SubscriptionId,
) -> StoreResult<Option<Subscription>> {
    match table.get((app_id, id.shard(), id.0)).map_err(db_error)? {
        Some(record) => Ok(Some(Subscription::decode(app_id, id, record.value())?)),
        None => Ok(None),
    }
}

fn remove_subscription(
    txn: &redb::WriteTransaction,
    app_id: &str,
    id: SubscriptionId,
) -> StoreResult<Option<Subscription>> {
    let mut table = txn.open_table(SUBSCRIPTIONS).map_err(db_error)?;
    let removed = match table.remove((app_id, id.shard(), id.0)).map_err(db_error)? {
        Some(record) => Some(Subscription::decode(app_id, id, record.value())?),
        None => None,
    };
    if removed.is_some() {
        let mut counts = txn.open_table(SUBSCRIPTION_COUNTS).map_err(db_error)?;
        let count = counts
            .get(app_id)
            .map_err(db_error)?
            .map_or(0, |v| v.value());
        counts
            .insert(app_id, count.saturating_sub(1))
            .map_err(db_error)?;
    }
    Ok(removed)
}

fn load_profile(
    txn: &redb::WriteTransaction,
    app_id: &str,
    external_id: &str,
) -> StoreResult<Option<Profile>> {
    let table = txn.open_table(PROFILES).map_err(db_error)?;
    let value = table.get((app_id, external_id)).map_err(db_error)?;
    value.map(|v| from_json(v.value(), "profile")).transpose()
}

fn save_profile(txn: &redb::WriteTransaction, app_id: &str, profile: &Profile) -> StoreResult<()> {
    let mut table = txn.open_table(PROFILES).map_err(db_error)?;
    table
        .insert(
            (app_id, profile.external_id.as_str()),
            json(profile)?.as_slice(),
        )
        .map_err(db_error)?;
    Ok(())
}

fn unlink(txn: &redb::WriteTransaction, sub: &Subscription) -> StoreResult<()> {
    if let Some(external_id) = &sub.external_id
        && let Some(mut profile) = load_profile(txn, &sub.app_id, external_id)?
    {
        profile.subscriptions.retain(|id| *id != sub.id);
        save_profile(txn, &sub.app_id, &profile)?;
    }
    Ok(())
}

fn load_task(txn: &redb::WriteTransaction, id: &str) -> StoreResult<Option<TaskRecord>> {
    let table = txn.open_table(TASKS).map_err(db_error)?;
    let value = table.get(id).map_err(db_error)?;
    value.map(|v| from_json(v.value(), "task")).transpose()
}

fn save_task(txn: &redb::WriteTransaction, record: &TaskRecord) -> StoreResult<()> {
    let mut tasks = txn.open_table(TASKS).map_err(db_error)?;
    tasks
        .insert(record.task.id.as_str(), json(record)?.as_slice())
        .map_err(db_error)?;
    let mut index = txn.open_table(LANE_INDEX).map_err(db_error)?;
    index
        .insert(
            (
                record.task.lane.as_str(),
                record.claimable_at_ms,
                record.task.id.as_str(),
            ),
            (),
        )
        .map_err(db_error)?;
    Ok(())
}

fn unindex_task(txn: &redb::WriteTransaction, record: &TaskRecord) -> StoreResult<()> {
    let mut index = txn.open_table(LANE_INDEX).map_err(db_error)?;
    index
        .remove((
            record.task.lane.as_str(),
            record.claimable_at_ms,
            record.task.id.as_str(),
        ))
        .map_err(db_error)?;
    Ok(())
}

/// Loads the claimed task, failing when the claim is no longer the current one.
fn fenced(txn: &redb::WriteTransaction, claim: &ClaimedTask) -> StoreResult<TaskRecord> {
    match load_task(txn, &claim.task.id)? {
        Some(record)
            if record.epoch == claim.epoch && record.owner.as_deref() == Some(&claim.worker) =>
        {
            Ok(record)
        }
        _ => Err(StoreError::LeaseLost),
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    fn is_shared(&self) -> bool {
        false
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|txn| {
            txn.open_table(APPS).map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn put_app(&self, app: &App) -> StoreResult<()> {
        let app = app.clone();
        self.write(move |txn| {
            let mut apps = txn.open_table(APPS).map_err(db_error)?;
            let previous = apps
                .get(app.id.as_str())
                .map_err(db_error)?
                .map(|v| v.value().to_vec());
            let mut keys = txn.open_table(API_KEYS).map_err(db_error)?;
            if let Some(previous) = previous {
                let previous: App = from_json(&previous, "app")?;
                for hash in previous.key_hashes() {
                    keys.remove(hash.as_slice()).map_err(db_error)?;
                }
            }
            for hash in app.key_hashes() {
                keys.insert(hash.as_slice(), app.id.as_str())
                    .map_err(db_error)?;
            }
            apps.insert(app.id.as_str(), json(&app)?.as_slice())
                .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn get_app(&self, app_id: &str) -> StoreResult<Option<App>> {
        let app_id = app_id.to_owned();
        self.read(move |txn| {
            let apps = txn.open_table(APPS).map_err(db_error)?;
            let value = apps.get(app_id.as_str()).map_err(db_error)?;
            value.map(|v| from_json(v.value(), "app")).transpose()
        })
        .await
    }

    async fn list_apps(&self) -> StoreResult<Vec<App>> {
        self.read(|txn| {
            let apps = txn.open_table(APPS).map_err(db_error)?;
            let mut out = Vec::new();
            for entry in apps.iter().map_err(db_error)? {
                let (_, value) = entry.map_err(db_error)?;
                out.push(from_json(value.value(), "app")?);
            }
            Ok(out)
        })
        .await
    }

    async fn app_by_api_key(&self, key_hash: &[u8; 32]) -> StoreResult<Option<App>> {
        let key_hash = *key_hash;
        let app_id = self
            .read(move |txn| {
                let keys = txn.open_table(API_KEYS).map_err(db_error)?;
                Ok(keys
                    .get(key_hash.as_slice())
                    .map_err(db_error)?
                    .map(|v| v.value().to_owned()))
            })
            .await?;
        match app_id {
            Some(id) => self.get_app(&id).await,
            None => Ok(None),
        }
    }

    async fn delete_app(&self, app_id: &str) -> StoreResult<bool> {
        let app_id = app_id.to_owned();
        self.write(move |txn| {
            let mut apps = txn.open_table(APPS).map_err(db_error)?;
            let Some(previous) = apps
                .remove(app_id.as_str())
                .map_err(db_error)?
                .map(|v| v.value().to_vec())
            else {
                return Ok(false);
            };
            let previous: App = from_json(&previous, "app")?;
            let mut keys = txn.open_table(API_KEYS).map_err(db_error)?;
            for hash in previous.key_hashes() {
                keys.remove(hash.as_slice()).map_err(db_error)?;
            }
            let mut subscriptions = txn.open_table(SUBSCRIPTIONS).map_err(db_error)?;
            subscriptions
                .retain_in(
                    (app_id.as_str(), 0, 0)..=(app_id.as_str(), u16::MAX, u64::MAX),
                    |_, _| false,
                )
                .map_err(db_error)?;
            let mut counts = txn.open_table(SUBSCRIPTION_COUNTS).map_err(db_error)?;
            counts.remove(app_id.as_str()).map_err(db_error)?;
            Ok(true)
        })
        .await
    }

    async fn upsert_subscription(&self, subscription: &Subscription) -> StoreResult<Upserted> {
        let mut sub = subscription.clone();
        self.write(move |txn| {
            let existing = {
                let table = txn.open_table(SUBSCRIPTIONS).map_err(db_error)?;
                read_subscription(&table, &sub.app_id, sub.id)?
            };
            if let Some(existing) = &existing {
                sub.created_at = existing.created_at;
                if sub.external_id.is_none() {
                    sub.external_id = existing.external_id.clone();
                }
            }
            put_subscription(txn, &sub)?;
            Ok(if existing.is_some() {
                Upserted::Updated
            } else {
                Upserted::Created
            })
        })
        .await
    }

    async fn insert_subscriptions(&self, subscriptions: &[Subscription]) -> StoreResult<()> {
        let subscriptions = subscriptions.to_vec();
        self.write(move |txn| {
            for sub in &subscriptions {
                put_subscription(txn, sub)?;
            }
            Ok(())
        })
        .await
    }

    async fn get_subscription(
        &self,
        app_id: &str,
        id: SubscriptionId,
    ) -> StoreResult<Option<Subscription>> {
        let app_id = app_id.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(SUBSCRIPTIONS).map_err(db_error)?;
            read_subscription(&table, &app_id, id)
        })
        .await
    }

    async fn get_subscriptions(
        &self,
        app_id: &str,
        ids: &[SubscriptionId],
    ) -> StoreResult<Vec<Subscription>> {
        let app_id = app_id.to_owned();
        let ids = ids.to_vec();
        self.read(move |txn| {
            let table = txn.open_table(SUBSCRIPTIONS).map_err(db_error)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(sub) = read_subscription(&table, &app_id, id)? {
                    out.push(sub);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn delete_subscription(&self, app_id: &str, id: SubscriptionId) -> StoreResult<bool> {
        let app_id = app_id.to_owned();
        self.write(move |txn| match remove_subscription(txn, &app_id, id)? {
            Some(sub) => {
                unlink(txn, &sub)?;
                Ok(true)
            }
            None => Ok(false),
        })
        .await
    }

    async fn count_subscriptions(&self, app_id: &str) -> StoreResult<u64> {
        let app_id = app_id.to_owned();
        self.read(move |txn| {
            let counts = txn.open_table(SUBSCRIPTION_COUNTS).map_err(db_error)?;
            Ok(counts
                .get(app_id.as_str())
                .map_err(db_error)?
                .map_or(0, |v| v.value()))
        })
        .await
    }

    async fn scan_shard(
        &self,
        app_id: &str,
        shard: u16,
        cursor: &ScanCursor,
        limit: usize,
    ) -> StoreResult<ScanBatch> {
        let app_id = app_id.to_owned();
        // The cursor is the last id handed out, big-endian; empty = from the start.
        let after = match cursor.0.as_slice() {
            [] => None,
            bytes => Some(SubscriptionId::from_bytes(bytes)?.0),
        };
        let limit = limit.max(1);
        self.read(move |txn| {
            let table = txn.open_table(SUBSCRIPTIONS).map_err(db_error)?;
            let start = after.map_or(0, |id| id.saturating_add(1));
            let mut subscriptions = Vec::with_capacity(limit);
            if after != Some(u64::MAX) {
                let range = table
                    .range((app_id.as_str(), shard, start)..=(app_id.as_str(), shard, u64::MAX))
                    .map_err(db_error)?;
                for entry in range.take(limit) {
                    let (key, value) = entry.map_err(db_error)?;
                    let (_, _, id) = key.value();
                    subscriptions.push(Subscription::decode(
                        &app_id,
                        SubscriptionId(id),
                        value.value(),
                    )?);
                }
            }
            let next = (subscriptions.len() == limit)
                .then(|| {
                    subscriptions
                        .last()
                        .map(|s| ScanCursor(s.id.to_bytes().to_vec()))
                })
                .flatten();
            Ok(ScanBatch {
                subscriptions,
                next,
            })
        })
        .await
    }

    async fn update_profile(&self, app_id: &str, update: &ProfileUpdate) -> StoreResult<Profile> {
        let app_id = app_id.to_owned();
        let update = update.clone();
        self.write(move |txn| {
            let mut profile =
                load_profile(txn, &app_id, &update.external_id)?.unwrap_or_else(|| Profile {
                    external_id: update.external_id.clone(),
                    ..Profile::default()
                });
            profile.apply(&update, now_ms() / 1000);
            save_profile(txn, &app_id, &profile)?;
            Ok(profile)
        })
        .await
    }

    async fn get_profile(&self, app_id: &str, external_id: &str) -> StoreResult<Option<Profile>> {
        let (app_id, external_id) = (app_id.to_owned(), external_id.to_owned());
        self.read(move |txn| {
            let table = txn.open_table(PROFILES).map_err(db_error)?;
            let value = table
                .get((app_id.as_str(), external_id.as_str()))
                .map_err(db_error)?;
            value.map(|v| from_json(v.value(), "profile")).transpose()
        })
        .await
    }

    async fn link_subscription(
        &self,
        app_id: &str,
        external_id: &str,
        id: SubscriptionId,
    ) -> StoreResult<()> {
        let (app_id, external_id) = (app_id.to_owned(), external_id.to_owned());
        self.write(move |txn| {
            let mut sub = {
                let table = txn.open_table(SUBSCRIPTIONS).map_err(db_error)?;
                read_subscription(&table, &app_id, id)?
            }
            .ok_or_else(|| StoreError::NotFound(format!("subscription {id}")))?;
            if sub.external_id.as_deref() == Some(external_id.as_str()) {
                // Already linked; make sure the profile lists it.
            } else {
                unlink(txn, &sub)?;
            }
            sub.external_id = Some(external_id.clone());
            put_subscription(txn, &sub)?;
            let mut profile =
                load_profile(txn, &app_id, &external_id)?.unwrap_or_else(|| Profile {
                    external_id: external_id.clone(),
                    updated_at: now_ms() / 1000,
                    ..Profile::default()
                });
            if !profile.subscriptions.contains(&id) {
                profile.subscriptions.push(id);
            }
            save_profile(txn, &app_id, &profile)
        })
        .await
    }

    async fn erase_profile(&self, app_id: &str, external_id: &str) -> StoreResult<u64> {
        let (app_id, external_id) = (app_id.to_owned(), external_id.to_owned());
        self.write(move |txn| {
            let Some(profile) = load_profile(txn, &app_id, &external_id)? else {
                return Ok(0);
            };
            let mut deleted = 0;
            for id in &profile.subscriptions {
                if remove_subscription(txn, &app_id, *id)?.is_some() {
                    deleted += 1;
                }
            }
            let mut table = txn.open_table(PROFILES).map_err(db_error)?;
            table
                .remove((app_id.as_str(), external_id.as_str()))
                .map_err(db_error)?;
            let mut sends = txn.open_table(PROFILE_SENDS).map_err(db_error)?;
            sends
                .retain_in(
                    (app_id.as_str(), external_id.as_str(), 0)
                        ..=(app_id.as_str(), external_id.as_str(), u64::MAX),
                    |_, _| false,
                )
                .map_err(db_error)?;
            Ok(deleted)
        })
        .await
    }

    async fn put_notification(&self, app_id: &str, id: &str, document: &[u8]) -> StoreResult<()> {
        let (app_id, id, document) = (app_id.to_owned(), id.to_owned(), document.to_vec());
        self.write(move |txn| save_notification(txn, &app_id, &id, &document))
            .await
    }

    async fn create_notification(&self, new: NewNotification<'_>) -> StoreResult<()> {
        let (app_id, id) = (new.app_id.to_owned(), new.id.to_owned());
        let (document, tasks) = (new.document.to_vec(), new.tasks.to_vec());
        let counters = owned_deltas(new.counters);
        self.write(move |txn| {
            save_notification(txn, &app_id, &id, &document)?;
            save_new_tasks(txn, tasks)?;
            add_counters_in(txn, &id, &counters)
        })
        .await
    }

    async fn get_notification(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        let id = id.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(NOTIFICATIONS).map_err(db_error)?;
            Ok(table
                .get(id.as_str())
                .map_err(db_error)?
                .map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn list_notifications(&self, app_id: &str, limit: usize) -> StoreResult<Vec<Vec<u8>>> {
        let app_id = app_id.to_owned();
        self.read(move |txn| {
            let index = txn.open_table(NOTIFICATIONS_BY_APP).map_err(db_error)?;
            let table = txn.open_table(NOTIFICATIONS).map_err(db_error)?;
            let mut out = Vec::new();
            let range = index
                .range((app_id.as_str(), 0, "")..=(app_id.as_str(), u64::MAX, "\u{10FFFF}"))
                .map_err(db_error)?;
            for entry in range.rev().take(limit) {
                let (key, _) = entry.map_err(db_error)?;
                let (_, _, id) = key.value();
                if let Some(document) = table.get(id).map_err(db_error)? {
                    out.push(document.value().to_vec());
                }
            }
            Ok(out)
        })
        .await
    }

    async fn add_counters(&self, notification_id: &str, deltas: &[(&str, i64)]) -> StoreResult<()> {
        let id = notification_id.to_owned();
        let deltas = owned_deltas(deltas);
        self.write(move |txn| add_counters_in(txn, &id, &deltas))
            .await
    }

    async fn counters(&self, notification_id: &str) -> StoreResult<BTreeMap<String, i64>> {
        let id = notification_id.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(COUNTERS).map_err(db_error)?;
            let mut out = BTreeMap::new();
            for entry in table
                .range((id.as_str(), "")..=(id.as_str(), "\u{10FFFF}"))
                .map_err(db_error)?
            {
                let (key, value) = entry.map_err(db_error)?;
                out.insert(key.value().1.to_owned(), value.value());
            }
            Ok(out)
        })
        .await
    }

    async fn claim_idempotency_key(
        &self,
        app_id: &str,
        key: &str,
        notification_id: &str,
        ttl: Duration,
    ) -> StoreResult<Option<String>> {
        let (app_id, key, id) = (
            app_id.to_owned(),
            key.to_owned(),
            notification_id.to_owned(),
        );
        self.write(move |txn| {
            let mut table = txn.open_table(IDEMPOTENCY).map_err(db_error)?;
            let now = now_ms();
            if let Some(existing) = table
                .get((app_id.as_str(), key.as_str()))
                .map_err(db_error)?
            {
                let (holder, expires) = existing.value();
                if expires > now {
                    return Ok(Some(holder.to_owned()));
                }
            }
            let expires = now + ttl.as_millis() as u64;
            table
                .insert((app_id.as_str(), key.as_str()), (id.as_str(), expires))
                .map_err(db_error)?;
            Ok(None)
        })
        .await
    }

    async fn count_profile_send(
        &self,
        app_id: &str,
        external_id: &str,
        window: Duration,
    ) -> StoreResult<u64> {
        let (app_id, external_id) = (app_id.to_owned(), external_id.to_owned());
        let window_ms = window.as_millis().max(1) as u64;
        self.write(move |txn| {
            let mut table = txn.open_table(PROFILE_SENDS).map_err(db_error)?;
            let slot = now_ms() / window_ms;
            // Older windows are history: drop them as we go.
            table
                .retain_in(
                    (app_id.as_str(), external_id.as_str(), 0)
                        ..(app_id.as_str(), external_id.as_str(), slot),
                    |_, _| false,
                )
                .map_err(db_error)?;
            let key = (app_id.as_str(), external_id.as_str(), slot);
            let count = table.get(key).map_err(db_error)?.map_or(0, |v| v.value()) + 1;
            table.insert(key, count).map_err(db_error)?;
            Ok(count)
        })
        .await
    }

    async fn enqueue_tasks(&self, tasks: &[Task]) -> StoreResult<()> {
        let tasks = tasks.to_vec();
        self.write(move |txn| save_new_tasks(txn, tasks)).await
    }

    async fn claim_task(
        &self,
        lane: Lane,
        worker: &str,
        lease: Duration,
    ) -> StoreResult<Option<ClaimedTask>> {
        // Idle lanes poll often (the priority lane every few milliseconds): look in a read
        // transaction first, so that an empty poll costs no turn of the writer; and inline, as
        // it reads a few pages of a small index, which costs less than the thread switches of
        // a trip to the blocking pool.
        let ready = {
            let txn = self.db.begin_read().map_err(db_error)?;
            next_claimable(&txn.open_table(LANE_INDEX).map_err(db_error)?, lane)?
        };
        if ready.is_none() {
            return Ok(None);
        }
        let worker = worker.to_owned();
        self.write_with(false, move |txn| {
            let now = now_ms();
            let next = next_claimable(&txn.open_table(LANE_INDEX).map_err(db_error)?, lane)?;
            let Some(task_id) = next else { return Ok(None) };
            let mut record = load_task(txn, &task_id)?.ok_or_else(|| {
                StoreError::Corrupt(format!("indexed task {task_id} has no record"))
            })?;
            unindex_task(txn, &record)?;
            let previous_claims = record.claims;
            record.claims += 1;
            record.epoch += 1;
            record.owner = Some(worker.clone());
            record.claimable_at_ms = now + lease.as_millis() as u64;
            save_task(txn, &record)?;
            Ok(Some(ClaimedTask {
                task: record.task,
                worker,
                epoch: record.epoch,
                progress: record.progress,
                previous_claims,
            }))
        })
        .await
    }

    async fn checkpoint_task(
        &self,
        claim: &ClaimedTask,
        progress: &Progress,
        lease: Duration,
    ) -> StoreResult<()> {
        let (claim, progress) = (claim.clone(), progress.clone());
        self.write(move |txn| checkpoint_in(txn, &claim, progress, lease))
            .await
    }

    async fn complete_task(&self, claim: &ClaimedTask) -> StoreResult<()> {
        let claim = claim.clone();
        self.write(move |txn| complete_in(txn, &claim)).await
    }

    async fn record_batch(
        &self,
        claim: &ClaimedTask,
        counters: &[(&str, i64)],
        step: TaskStep<'_>,
    ) -> StoreResult<()> {
        let claim = claim.clone();
        let deltas = owned_deltas(counters);
        let checkpoint = match step {
            TaskStep::Checkpoint { progress, lease } => Some((progress.clone(), lease)),
            TaskStep::Complete => None,
        };
        // One transaction: the counters are written first, so they commit even when the
        // fence then says the lease was lost.
        self.write(move |txn| {
            add_counters_in(txn, &claim.task.notification_id, &deltas)?;
            match checkpoint {
                Some((progress, lease)) => checkpoint_in(txn, &claim, progress, lease),
                None => complete_in(txn, &claim),
            }
        })
        .await
    }

    async fn cancel_tasks(&self, notification_id: &str) -> StoreResult<u64> {
        let prefix = format!("{notification_id}:");
        // ';' follows ':' in ASCII: the range holds exactly the ids with this prefix.
        let upper = format!("{notification_id};");
        self.write(move |txn| {
            let ids: Vec<String> = {
                let tasks = txn.open_table(TASKS).map_err(db_error)?;
                let mut ids = Vec::new();
                for entry in tasks
                    .range(prefix.as_str()..upper.as_str())
                    .map_err(db_error)?
                {
                    ids.push(entry.map_err(db_error)?.0.value().to_owned());
                }
                ids
            };
            for id in &ids {
                if let Some(record) = load_task(txn, id)? {
                    unindex_task(txn, &record)?;
                    let mut tasks = txn.open_table(TASKS).map_err(db_error)?;
                    tasks.remove(id.as_str()).map_err(db_error)?;
                }
            }
            Ok(ids.len() as u64)
        })
        .await
    }

    async fn pending_tasks(&self, lane: Lane) -> StoreResult<u64> {
        self.read(move |txn| {
            let index = txn.open_table(LANE_INDEX).map_err(db_error)?;
            let range = index
                .range((lane.as_str(), 0, "")..=(lane.as_str(), u64::MAX, "\u{10FFFF}"))
                .map_err(db_error)?;
            Ok(range.count() as u64)
        })
        .await
    }
}
