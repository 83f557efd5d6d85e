//! `--seed`: the subscribers written straight into the store through the library's store API
//! (`SubscriptionStore::insert_subscriptions`, 10,000 a call), not through N HTTP requests, so
//! that a run of 1,000,000 does not spend its time subscribing.
//!
//! It lives in the load driver because what it writes is only meaningful to the driver: every
//! endpoint points at this run's in-process mock (`/push/s{i}`), which is gone when the run
//! ends. The embedded store (redb) is one process's file: the driver starts `aviso serve` once so
//! that it creates the app and prints its keys, stops it, opens the data directory itself, seeds,
//! and starts `aviso serve` again. Redis is seeded while the server runs.
//!
//! Each subscription has a real P-256 public key and auth secret, taken in turn from a pool of
//! [`KEY_POOL`] key pairs made by the mock's `TestSubscriber` (ece): generating one per endpoint
//! would take 1,000,000 × ~40 µs of the driver's CPU, and the sender's work per message (a fresh
//! ephemeral key pair and one ECDH with the subscriber's key) does not depend on whether two
//! subscribers share a key.

use std::time::{Duration, Instant};

use aviso::store::{Store, Subscription};
use aviso_loadtest::{MockPushService, TestSubscriber};

/// Distinct key pairs behind the seeded subscriptions.
pub const KEY_POOL: usize = 4096;

/// Subscriptions per `insert_subscriptions` call (one transaction on the embedded store, one
/// pipelined HSET per shard on Redis).
const BATCH: usize = 10_000;

/// Writes a subscription of app `app_id` for each of `names` (endpoint `service.endpoint(name)`);
/// answers how long the writing took (the key pool not included).
pub async fn seed(
    store: &dyn Store,
    app_id: &str,
    service: &MockPushService,
    names: &[String],
) -> anyhow::Result<Duration> {
    let pool = (0..KEY_POOL.min(names.len()))
        .map(|i| {
            let subscriber = TestSubscriber::generate_unregistered(service, &format!("key{i}"))?;
            Ok((*subscriber.public_key(), *subscriber.auth_secret()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let now = u32::try_from(aviso::store::now_ms() / 1000)?;
    let started = Instant::now();
    for (batch_index, batch) in names.chunks(BATCH).enumerate() {
        let subscriptions: Vec<Subscription> = batch
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let (p256dh, auth) = pool[(batch_index * BATCH + i) % pool.len()];
                Subscription::new(app_id, &service.endpoint(name), p256dh, auth, now)
            })
            .collect();
        store.insert_subscriptions(&subscriptions).await?;
    }
    let stored = store.count_subscriptions(app_id).await?;
    anyhow::ensure!(
        stored == names.len() as u64,
        "seeded {} subscriptions but the store counts {stored}: use an empty store",
        names.len()
    );
    Ok(started.elapsed())
}
