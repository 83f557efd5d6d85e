//! Frequency-cap counts in the embedded store: held in memory, written as one log row per
//! batch.
//!
//! A batch asks for hundreds of holders at once, and holders are spread over the whole key
//! space (profiles, subscriptions of one shard among all). Kept as a row per holder, every
//! holder of a batch touched its own B-tree page: a page copied, checksummed and written per
//! message, which cost a broadcast with caps on a fifth of its CPU. So the counts live in
//! memory ([`Caps`]), where [`crate::policy::caps::take`] decides, and what a batch newly
//! counted is appended to `cap_log` in one row, keyed by when it may be forgotten: the writes
//! go to the tree's right edge, and forgetting is a cut at its left.
//!
//! One process owns the file and every take runs on the writer thread, so the memory is the
//! truth between restarts; at open it is rebuilt from the log. A row is committed without its
//! own fsync, like the counts before it: every send it admits is followed by a durable write
//! of that send (the batch's record, the trigger's send), which carries it to disk. A crash
//! before that loses counts of sends that are then made again, and counted again. A take
//! whose row cannot be written is undone in memory; one whose group commit fails after it
//! stays counted until a restart (its batch, asked again, is answered "already counted").
//!
//! Memory: one entry per holder counted within its scope's longest window (a few dozen bytes
//! each, the category and notification ids shared).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use redb::{Database, ReadableTable, TableDefinition, TableError, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::policy::caps::{Counted, Take, take};
use crate::policy::model::Window;
use crate::store::{StoreResult, from_json, to_json};

/// (keep until ms, sequence) → one batch's new counts (JSON [`Row`]).
const CAP_LOG: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("cap_log");
/// The row-per-holder table of earlier versions, dropped at open (its counts are forgotten).
const OLD_CAP_COUNTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("cap_counts");

/// How often expired counts are swept from memory and cut from the log.
const SWEEP_EVERY_MS: u64 = 60_000;

/// One batch's new counts, as logged.
#[derive(Serialize, Deserialize)]
struct Row {
    app: String,
    at: u64,
    category: String,
    notification: String,
    /// Holder keys (with their scope, `holder_key` in `policy.rs`).
    holders: Vec<String>,
}

/// One holder's counts, and until when the longest window of its scope needs them.
#[derive(Default)]
struct Held {
    counts: Vec<Counted>,
    keep_until_ms: u64,
}

#[derive(Default)]
struct Inner {
    /// app → holder key → counts.
    apps: HashMap<String, HashMap<String, Held>>,
    next_seq: u64,
    next_sweep_ms: u64,
}

/// One check of a batch, owned (it runs on the writer thread).
pub(super) struct Check {
    pub app_id: String,
    pub category: String,
    pub notification: String,
    pub windows: Vec<Window>,
    pub now_ms: u64,
    /// Holder keys, with their scope.
    pub keys: Vec<String>,
}

/// The counts of every app, shared by the store's clones.
#[derive(Clone, Default)]
pub(super) struct Caps {
    inner: Arc<Mutex<Inner>>,
}

impl Caps {
    /// The counts the log holds (dropping the table of earlier versions).
    pub(super) fn load(db: &Database) -> StoreResult<Self> {
        let txn = db.begin_write()?;
        let mut inner = Inner::default();
        match txn.delete_table(OLD_CAP_COUNTS) {
            Ok(_) | Err(TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(e.into()),
        }
        {
            let table = txn.open_table(CAP_LOG)?;
            let mut interned: HashMap<String, Arc<str>> = HashMap::new();
            let mut intern = |s: String| -> Arc<str> {
                interned
                    .entry(s)
                    .or_insert_with_key(|s| s.as_str().into())
                    .clone()
            };
            for entry in table.iter()? {
                let (key, value) = entry?;
                let (keep_until_ms, seq) = key.value();
                inner.next_seq = inner.next_seq.max(seq + 1);
                let row: Row = from_json(value.value(), "cap log")?;
                let (category, notification) = (intern(row.category), intern(row.notification));
                let holders = inner.apps.entry(row.app).or_default();
                for holder in row.holders {
                    let held = holders.entry(holder).or_default();
                    held.keep_until_ms = held.keep_until_ms.max(keep_until_ms);
                    held.counts.push(Counted {
                        at_ms: row.at,
                        category: category.clone(),
                        notification: notification.clone(),
                    });
                }
            }
        }
        txn.commit()?;
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    /// Checks and counts each holder of `check` (answers in their order), logging what it
    /// counted in `txn`. Runs on the writer thread: takes never interleave.
    pub(super) fn take(&self, txn: &WriteTransaction, check: Check) -> StoreResult<Vec<bool>> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let now = check.now_ms;
        let longest = check.windows.iter().map(|w| w.per_ms).max().unwrap_or(0);
        let keep_until_ms = now.saturating_add(longest);
        let category: Arc<str> = check.category.as_str().into();
        let notification: Arc<str> = check.notification.as_str().into();
        let mut answers = Vec::with_capacity(check.keys.len());
        let mut counted = Vec::new();
        let holders = inner.apps.entry(check.app_id.clone()).or_default();
        for key in check.keys {
            let held = match holders.get_mut(key.as_str()) {
                Some(held) => held,
                None => holders.entry(key.clone()).or_default(),
            };
            let taken = take(
                &mut held.counts,
                &category,
                &notification,
                &check.windows,
                now,
            );
            if taken == Take::Counted {
                held.keep_until_ms = held.keep_until_ms.max(keep_until_ms);
                counted.push(key);
            }
            answers.push(taken.allowed());
        }
        let mut log = txn.open_table(CAP_LOG)?;
        if !counted.is_empty() {
            let row = Row {
                app: check.app_id,
                at: now,
                category: check.category,
                notification: check.notification,
                holders: counted,
            };
            let seq = inner.next_seq;
            inner.next_seq += 1;
            let logged = to_json(&row).and_then(|json| {
                Ok(log
                    .insert((keep_until_ms, seq), json.as_slice())
                    .map(drop)?)
            });
            if let Err(error) = logged {
                // Not counted after all: the batch fails, and is asked again.
                if let Some(holders) = inner.apps.get_mut(&row.app) {
                    for key in &row.holders {
                        if let Some(held) = holders.get_mut(key) {
                            held.counts.pop();
                        }
                    }
                }
                return Err(error);
            }
        }
        if now >= inner.next_sweep_ms {
            inner.next_sweep_ms = now + SWEEP_EVERY_MS;
            for holders in inner.apps.values_mut() {
                holders.retain(|_, held| held.keep_until_ms > now);
            }
            inner.apps.retain(|_, holders| !holders.is_empty());
            log.retain_in(..(now, 0), |_, _| false)?;
        }
        Ok(answers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableDatabase;

    const HOUR: u64 = 3_600_000;

    fn check(notification: &str, now_ms: u64, keys: &[&str]) -> Check {
        Check {
            app_id: "a".into(),
            category: "marketing".into(),
            notification: notification.into(),
            windows: vec![Window {
                max: 1,
                per_ms: HOUR,
            }],
            now_ms,
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    fn take_in(db: &Database, caps: &Caps, check: Check) -> Vec<bool> {
        let txn = db.begin_write().unwrap();
        let answers = caps.take(&txn, check).unwrap();
        txn.commit().unwrap();
        answers
    }

    fn log_rows(db: &Database) -> usize {
        let txn = db.begin_read().unwrap();
        txn.open_table(CAP_LOG).unwrap().iter().unwrap().count()
    }

    #[test]
    fn counts_come_back_from_the_log_and_expired_ones_are_cut_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("caps.redb")).unwrap();
        let t0 = 1_000 * HOUR;
        let caps = Caps::load(&db).unwrap();
        assert_eq!(
            take_in(&db, &caps, check("n1", t0, &["p:ann", "p:bob"])),
            [true, true]
        );
        // Nothing newly counted, nothing logged.
        assert_eq!(take_in(&db, &caps, check("n1", t0 + 1, &["p:ann"])), [true]);
        assert_eq!(log_rows(&db), 1);

        // Reopened: the counts are the log's.
        let caps = Caps::load(&db).unwrap();
        assert_eq!(
            take_in(&db, &caps, check("n2", t0 + 2, &["p:ann", "p:cy"])),
            [false, true]
        );
        assert_eq!(take_in(&db, &caps, check("n1", t0 + 3, &["p:bob"])), [true]);
        assert_eq!(log_rows(&db), 2);

        // Past the window, the next take sweeps: the first rows are cut, memory forgets them.
        let later = t0 + 2 * HOUR;
        assert_eq!(take_in(&db, &caps, check("n3", later, &["p:ann"])), [true]);
        assert_eq!(log_rows(&db), 1, "only the newest row is kept");
        let inner = caps.inner.lock().unwrap();
        assert_eq!(inner.apps["a"].keys().collect::<Vec<_>>(), ["p:ann"]);
    }
}
