//! Caches of what is read from the store (apps, their windows, their policies): each bounded
//! to [`CAPACITY`] entries, each entry used for its cache's time-to-live and then read again.

use std::hash::Hash;
use std::time::Duration;

/// Entries a cache of store reads keeps at most: the apps (or notifications) in use.
pub const CAPACITY: u64 = 10_000;

/// A cache whose entries are read again after `ttl` (the API's cache of apps awaits its
/// lookups: a `moka::future` cache with the same bound).
pub fn bounded<K, V>(ttl: Duration) -> moka::sync::Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    moka::sync::Cache::builder()
        .max_capacity(CAPACITY)
        .time_to_live(ttl)
        .build()
}
