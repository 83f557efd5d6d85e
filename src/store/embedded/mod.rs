//! The embedded store: one `redb` file under the data directory, ACID, crash-safe.
//!
//! The default when no Redis URL is configured: `aviso serve` works on a fresh machine and keeps
//! its data across restarts. One process owns the file; the ledger's leases and takeovers work
//! the same as with Redis, between the workers of that process. Every change is one
//! transaction, so every multi-key change is atomic; writes go through the group-commit
//! [`writer`]. One file per concern; the tables and their shared helpers are in [`tables`].

mod apps;
mod caps;
mod ledger;
mod notifications;
mod policy;
mod profiles;
mod readers;
mod subscriptions;
mod tables;
mod triggers;
mod webhooks;
mod writer;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, Key, ReadOnlyTable, TableDefinition, Value};
use serde::de::DeserializeOwned;

use crate::store::{Store, StoreError, StoreResult};
use readers::Readers;
use writer::Writer;

/// The embedded store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: Writer,
    caps: caps::Caps,
    readers: Readers,
}

/// The store's format, recorded in its `meta` table: a file without it is not Aviso's.
const FORMAT: &str = "aviso-store-1";

/// The page cache `redb` keeps in memory when nothing else is configured, in MiB. redb's own
/// default is 1 GiB, which a server's resident memory would grow into by ~300 bytes per
/// subscriber as broadcasts read them; 64 MiB holds the pages a broadcast's scans and the
/// ledger's writes touch again, and leaves the rest to the OS page cache.
pub const DEFAULT_CACHE_MB: u64 = 64;

impl EmbeddedStore {
    /// Opens `aviso.redb` in `data_dir`, or creates it when there is none. A file that is there
    /// but is not a store Aviso wrote (empty, truncated, another program's) is refused with
    /// what to do: starting afresh on it would forget every subscriber without a word.
    pub fn open(data_dir: &Path) -> StoreResult<Self> {
        Self::open_with_cache(data_dir, DEFAULT_CACHE_MB)
    }

    /// [`Self::open`] with a page cache of at most `cache_mb` MiB (the `store_cache_mb` setting).
    pub fn open_with_cache(data_dir: &Path, cache_mb: u64) -> StoreResult<Self> {
        let cache_bytes = usize::try_from(cache_mb.saturating_mul(1024 * 1024)).map_err(|_| {
            StoreError::Embedded(format!("a cache of {cache_mb} MiB does not fit in memory"))
        })?;
        let mut builder = Database::builder();
        builder.set_cache_size(cache_bytes);
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Embedded(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join("aviso.redb");
        let shown = path.display();
        let existing = match std::fs::metadata(&path) {
            Ok(meta) if meta.len() == 0 => {
                return Err(StoreError::Embedded(format!(
                    "{shown} exists but is empty (0 bytes), so it is not a store Aviso wrote. \
                     If it was restored or copied, restore it again from a good backup; if this \
                     is a new installation, delete the file and start again"
                )));
            }
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => {
                return Err(StoreError::Embedded(format!("cannot read {shown}: {e}")));
            }
        };
        let db = if existing {
            builder.open(&path).map_err(|e| {
                StoreError::Embedded(format!(
                    "cannot open {shown} ({e}): another aviso process may be using this data \
                     directory (stop it, or give this one its own --data-dir), or the file is \
                     damaged or not Aviso's (restore it from a backup)"
                ))
            })?
        } else {
            builder
                .create(&path)
                .map_err(|e| StoreError::Embedded(format!("cannot create {shown} ({e})")))?
        };
        tables::prepare(&db, existing, FORMAT).map_err(|e| match e {
            StoreError::Invalid(why) => StoreError::Embedded(format!(
                "{shown} is not a store Aviso wrote ({why}): point --data-dir at Aviso's data \
                 directory, or move the file away to start an empty store"
            )),
            other => other,
        })?;
        let caps = caps::Caps::load(&db)?;
        let db = Arc::new(db);
        let writer = Writer::start(&db)?;
        let readers = Readers::start(&db)?;
        Ok(Self {
            db,
            writer,
            caps,
            readers,
        })
    }

    /// Runs `work` in the writer's next transaction; answers once it is committed and on disk.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&redb::WriteTransaction) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.writer.write(true, work).await
    }

    /// Runs `work` in a read transaction on one of the [`readers`] threads.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&redb::ReadTransaction) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.readers.read(work).await
    }

    /// The JSON document at `(first, second)` of a table keyed by two strings (an app's
    /// profile, trigger, webhook state), in a read transaction.
    async fn read_json<T: DeserializeOwned + Send + 'static>(
        &self,
        table: TableDefinition<'static, (&'static str, &'static str), &'static [u8]>,
        (first, second): (&str, &str),
        what: &'static str,
    ) -> StoreResult<Option<T>> {
        let (first, second) = (first.to_owned(), second.to_owned());
        self.read(move |txn| {
            tables::get_json(
                &txn.open_table(table)?,
                (first.as_str(), second.as_str()),
                what,
            )
        })
        .await
    }

    /// The JSON documents under `first` of a table keyed by two strings (an app's triggers,
    /// webhooks), in key order, in a read transaction.
    async fn list_json<T: DeserializeOwned + Send + 'static>(
        &self,
        table: TableDefinition<'static, (&'static str, &'static str), &'static [u8]>,
        first: &str,
        what: &'static str,
    ) -> StoreResult<Vec<T>> {
        let first = first.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(table)?;
            tables::json_values(table.range(tables::keys_under(&first))?, what)
        })
        .await
    }

    /// What `find` finds in `table` for each of `keys`, in their order (the keys it finds
    /// nothing for are left out), in one read transaction.
    async fn read_found<K, V, Id, T>(
        &self,
        table: TableDefinition<'static, K, V>,
        keys: Vec<Id>,
        find: impl Fn(&ReadOnlyTable<K, V>, Id) -> StoreResult<Option<T>> + Send + 'static,
    ) -> StoreResult<Vec<T>>
    where
        K: Key + Send + 'static,
        V: Value + Send + 'static,
        Id: Send + 'static,
        T: Send + 'static,
    {
        self.read(move |txn| {
            let table = txn.open_table(table)?;
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                if let Some(found) = find(&table, key)? {
                    out.push(found);
                }
            }
            Ok(out)
        })
        .await
    }
}

/// Waits for the answer to a job handed to one of the store's threads (`sent`: whether the
/// hand-over worked): `stopped` when the thread is gone, `unanswered` when it dropped the job.
async fn answer_of<T, E>(
    sent: Result<(), E>,
    answer: tokio::sync::oneshot::Receiver<StoreResult<T>>,
    stopped: &str,
    unanswered: &str,
) -> StoreResult<T> {
    sent.map_err(|_| StoreError::Embedded(stopped.into()))?;
    answer
        .await
        .map_err(|_| StoreError::Embedded(unanswered.into()))?
}

#[async_trait]
impl Store for EmbeddedStore {
    fn is_shared(&self) -> bool {
        false
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|txn| {
            txn.open_table(tables::APPS)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Subscription, SubscriptionStore};

    /// A store far larger than its cache works and reopens whole: the cap limits memory, not
    /// what the file holds.
    #[tokio::test]
    async fn a_store_larger_than_its_one_mib_cache_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let subscriptions: Vec<Subscription> = (0..20_000)
            .map(|i| {
                let endpoint = format!("https://push.example/send/{i:0>150}");
                Subscription::new("app", &endpoint, [4; 65], [7; 16], 1_760_000_000)
            })
            .collect();
        {
            let store = EmbeddedStore::open_with_cache(dir.path(), 1).unwrap();
            for batch in subscriptions.chunks(5_000) {
                store.insert_subscriptions(batch).await.unwrap();
            }
            assert_eq!(store.count_subscriptions("app").await.unwrap(), 20_000);
        }
        let store = EmbeddedStore::open_with_cache(dir.path(), 1).unwrap();
        for sub in subscriptions.iter().step_by(997) {
            let read = store.get_subscription("app", sub.id).await.unwrap();
            assert_eq!(read.map(|s| s.endpoint), Some(sub.endpoint.clone()));
        }
        assert!(
            std::fs::metadata(dir.path().join("aviso.redb"))
                .unwrap()
                .len()
                > 2 * 1024 * 1024,
            "the file outgrew the cache"
        );
    }

    /// The threads of this process (Linux).
    fn threads() -> usize {
        std::fs::read_dir("/proc/self/task").unwrap().count()
    }

    /// Many reads at once wait for a reader instead of starting a thread each.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_at_once_start_no_thread_beyond_the_readers() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let sub = Subscription::new("app", "https://push.example/1", [4; 65], [7; 16], 1);
        store
            .insert_subscriptions(std::slice::from_ref(&sub))
            .await
            .unwrap();
        let before = threads();
        let reads = (0..400).map(|_| store.get_subscription("app", sub.id));
        for read in futures::future::join_all(reads).await {
            assert!(read.unwrap().is_some());
        }
        let started = threads().saturating_sub(before);
        assert_eq!(
            started,
            0,
            "400 reads at once started {started} threads beside the store's {} readers",
            readers::count()
        );
    }
}
