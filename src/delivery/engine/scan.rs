//! Reading a broadcast task's subscribers: one batch at a time, from its checkpoint, across as
//! many of its shards as it takes to fill the batch. A task over one shard reads that shard; a
//! task over a range (a small audience, planned as a few tasks: `notify::plan`) reads its
//! shards in order, 16 at a time (one round trip for the 16), so that its batches are full
//! however few subscribers each shard holds.
//!
//! A shard that the batch moved on to is read to its end (up to twice the batch), so that a
//! range's checkpoints fall between shards: a checkpoint inside a shard holds the backend's scan
//! cursor, and a Redis HSCAN cursor does not survive a Redis restart (the Redis store then reads
//! the shard again from its start: the run id in its cursor, `store/redis/lua/run_id.lua`),
//! which sends its first part twice. Only a shard with more subscribers than a batch (a large broadcast, one shard a
//! task) is checkpointed inside.

use std::ops::Range;

use crate::store::{Progress, ScanCursor, ShardAt, Store, StoreResult, Subscription};

/// Shards read at once.
const SHARDS_AT_ONCE: u16 = 16;

/// One batch of a task over `shards`.
pub(super) struct Scanned {
    pub subscriptions: Vec<Subscription>,
    /// Where the next batch starts (its shard and the cursor in it), `None` when the range is
    /// done.
    pub next: Option<(u16, ScanCursor)>,
}

/// About `limit` subscriptions of `app_id` in `shards`, from `progress`: at least `limit` unless
/// the range ends first, at most twice that (a shard's scan may hand out a few more than asked,
/// as Redis' HSCAN does).
pub(super) async fn scan(
    store: &dyn Store,
    app_id: &str,
    shards: Range<u16>,
    progress: &Progress,
    limit: usize,
) -> StoreResult<Scanned> {
    let first = progress.shard.max(shards.start);
    let (mut shard, mut cursor) = (first, progress.cursor.clone());
    let mut subscriptions = Vec::new();
    // In the batch's first shard, stop at the batch; in a later one, at the shard's end.
    let stop_at = |shard: u16| if shard == first { limit } else { 2 * limit };
    'shards: while shard < shards.end {
        // The shards are read several at once, the batch's first among them (a small
        // audience's hold a few subscribers each, and each read is a store round trip); those
        // after one that is not done, or after the batch is full, are read for nothing.
        let width = SHARDS_AT_ONCE.min(shards.end - shard);
        let reads = (0..width).map(|i| {
            let (from, want) = match i {
                0 => (cursor.clone(), stop_at(shard) - subscriptions.len()),
                _ => (ScanCursor::start(), limit),
            };
            async move {
                store
                    .scan_shard(ShardAt::new(app_id, shard + i, &from), want)
                    .await
            }
        });
        for page in futures::future::try_join_all(reads).await? {
            let stop_at = stop_at(shard);
            subscriptions.extend(page.subscriptions);
            match page.next {
                Some(next) => {
                    cursor = next;
                    if subscriptions.len() >= stop_at {
                        break 'shards;
                    }
                    // This shard goes on from its cursor; the pages after it wait their turn.
                    continue 'shards;
                }
                None => {
                    (shard, cursor) = (shard + 1, ScanCursor::start());
                    if subscriptions.len() >= limit {
                        break 'shards;
                    }
                }
            }
        }
    }
    Ok(Scanned {
        subscriptions,
        next: (shard < shards.end).then_some((shard, cursor)),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::store::{SHARDS, SubscriptionId};

    /// Reads `shards` from `progress` to the end in batches of `limit`, as the engine does.
    async fn read_all(
        store: &dyn Store,
        shards: Range<u16>,
        mut progress: Progress,
        limit: usize,
    ) -> Vec<Vec<SubscriptionId>> {
        let mut batches = Vec::new();
        loop {
            let batch = scan(store, "a", shards.clone(), &progress, limit)
                .await
                .unwrap();
            batches.push(batch.subscriptions.iter().map(|s| s.id).collect());
            let Some((shard, cursor)) = batch.next else {
                return batches;
            };
            progress = Progress {
                cursor,
                shard,
                processed: progress.processed + batch.subscriptions.len() as u64,
            };
        }
    }

    #[tokio::test]
    async fn a_range_is_read_in_full_batches_across_its_shards_and_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(None, dir.path()).await.unwrap();
        let subscriptions: Vec<Subscription> = (0..2_000)
            .map(|n| {
                let endpoint = format!("https://push.example/{n}");
                Subscription::new("a", &endpoint, [4; 65], [1; 16], 1)
            })
            .collect();
        store.insert_subscriptions(&subscriptions).await.unwrap();
        let of = |shards: Range<u16>| -> HashSet<SubscriptionId> {
            subscriptions
                .iter()
                .filter(|s| shards.contains(&s.id.shard()))
                .map(|s| s.id)
                .collect()
        };

        // Every shard: full batches that end between shards (the last one the rest), each
        // subscriber once.
        let batches = read_all(store.as_ref(), 0..SHARDS, Progress::default(), 500).await;
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        let (last, full) = sizes.split_last().unwrap();
        assert!(full.iter().all(|&n| (500..1_000).contains(&n)), "{sizes:?}");
        assert!(*last < 1_000, "{sizes:?}");
        let read: Vec<SubscriptionId> = batches.concat();
        assert_eq!(read.len(), 2_000);
        assert_eq!(read.iter().copied().collect::<HashSet<_>>(), of(0..SHARDS));

        // A range reads its own shards only, and one shard is a range of one.
        let read: Vec<SubscriptionId> = read_all(store.as_ref(), 64..128, Progress::default(), 100)
            .await
            .concat();
        assert_eq!(read.iter().copied().collect::<HashSet<_>>(), of(64..128));
        assert_eq!(read.len(), of(64..128).len());
        let read = read_all(store.as_ref(), 7..8, Progress::default(), 100).await;
        assert_eq!(read.concat().into_iter().collect::<HashSet<_>>(), of(7..8));

        // Resumed from a checkpoint (the shard and the cursor in it): the rest, once.
        let first = scan(store.as_ref(), "a", 0..SHARDS, &Progress::default(), 300)
            .await
            .unwrap();
        let (shard, cursor) = first.next.unwrap();
        assert!(shard > 0, "a batch of 300 spans shards");
        assert_eq!(cursor, ScanCursor::start(), "it stops between shards");
        let checkpoint = Progress {
            cursor,
            shard,
            processed: 300,
        };
        let rest = read_all(store.as_ref(), 0..SHARDS, checkpoint, 300)
            .await
            .concat();
        let mut all: Vec<SubscriptionId> = first.subscriptions.iter().map(|s| s.id).collect();
        all.extend(rest);
        assert_eq!(all.len(), 2_000, "nobody twice");
        assert_eq!(all.into_iter().collect::<HashSet<_>>(), of(0..SHARDS));

        // A shard larger than a batch (a large broadcast's) is checkpointed inside, at the batch.
        let crowded: Vec<Subscription> = (0..1_500)
            .map(|n| format!("https://push.example/crowded/{n}"))
            .map(|endpoint| Subscription::new("a", &endpoint, [4; 65], [1; 16], 1))
            .filter(|s| s.id.shard() == 3)
            .collect();
        store.insert_subscriptions(&crowded).await.unwrap();
        let in_3 = of(3..4).len() + crowded.len();
        let batches = read_all(store.as_ref(), 3..4, Progress::default(), 2).await;
        assert!(batches.iter().all(|b| b.len() <= 2), "{batches:?}");
        assert_eq!(batches.concat().len(), in_3);
    }
}
