//! How much Redis memory one subscription costs, and how fast the store writes and scans.
//!
//! `cargo run --release --example store_memory -- --redis redis://127.0.0.1:6379 --n 1000000`
//!
//! Inserts N realistic subscriptions (190-character FCM endpoints, real-sized keys, a locale and
//! a time zone) into an app of its own, then scans every shard, and prints the insert rate, the
//! scan rate, the reader's resident memory before and after the scan, and last a line
//! `bytes_per_subscription: X` (Redis `used_memory` growth / N). It deletes nothing: use an
//! empty Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aviso::store::redis::RedisStore;
use aviso::store::{SHARDS, ScanCursor, ShardAt, Subscription, SubscriptionStore};

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn token(rng: &mut fastrand::Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(ALPHABET[rng.usize(..ALPHABET.len())]))
        .collect()
}

/// An FCM-style subscription: `https://fcm.googleapis.com/fcm/send/` + `xxxxxxxxxxx:APA91b…`.
fn realistic(rng: &mut fastrand::Rng, app_id: &str) -> Subscription {
    let prefix = "https://fcm.googleapis.com/fcm/send/";
    let head = token(rng, 11);
    let tail_len = 190 - prefix.len() - head.len() - ":APA91b".len();
    let endpoint = format!("{prefix}{head}:APA91b{}", token(rng, tail_len));
    let mut p256dh = [0u8; 65];
    rng.fill(&mut p256dh);
    p256dh[0] = 4;
    let mut auth = [0u8; 16];
    rng.fill(&mut auth);
    let mut sub = Subscription::new(
        app_id,
        &endpoint,
        p256dh,
        auth,
        1_760_000_000 + rng.u32(..1_000_000),
    );
    sub.locale = "en-US".into();
    sub.timezone = "America/New_York".into();
    sub
}

fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut url, mut n) = ("redis://127.0.0.1:6379".to_owned(), 100_000usize);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--redis" => {
                url = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--redis needs a URL"))?
            }
            "--n" => {
                n = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--n needs a number"))?
                    .parse()?
            }
            other => anyhow::bail!("unknown argument {other}; usage: --redis URL --n N"),
        }
    }
    let store = Arc::new(RedisStore::connect(&url).await?);
    let app_id = format!("bench{}", fastrand::u32(..));
    let before = store.used_memory().await?;

    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(7);
    let chunk = 20_000;
    let mut inserted = 0;
    while inserted < n {
        let count = chunk.min(n - inserted);
        let subs: Vec<_> = (0..count).map(|_| realistic(&mut rng, &app_id)).collect();
        store.insert_subscriptions(&subs).await?;
        inserted += count;
    }
    let insert_secs = started.elapsed().as_secs_f64();
    println!(
        "inserted: {n} in {insert_secs:.2} s = {:.0} subscriptions/s",
        n as f64 / insert_secs
    );
    let after = store.used_memory().await?;
    println!(
        "stored count: {}",
        store.count_subscriptions(&app_id).await?
    );

    let rss_before_scan = resident_mib();
    let started = Instant::now();
    let scanned = Arc::new(AtomicU64::new(0));
    let next_shard = Arc::new(AtomicU64::new(0));
    let readers = (0..8).map(|_| {
        let (store, app_id, scanned, next_shard) = (
            store.clone(),
            app_id.clone(),
            scanned.clone(),
            next_shard.clone(),
        );
        tokio::spawn(async move {
            loop {
                let shard = next_shard.fetch_add(1, Ordering::Relaxed);
                if shard >= u64::from(SHARDS) {
                    return Ok::<_, aviso::store::StoreError>(());
                }
                let mut cursor = ScanCursor::start();
                loop {
                    let batch = store
                        .scan_shard(ShardAt::new(&app_id, shard as u16, &cursor), 1000)
                        .await?;
                    scanned.fetch_add(batch.subscriptions.len() as u64, Ordering::Relaxed);
                    match batch.next {
                        Some(next) => cursor = next,
                        None => break,
                    }
                }
            }
        })
    });
    for reader in futures::future::join_all(readers).await {
        reader??;
    }
    let scan_secs = started.elapsed().as_secs_f64();
    let scanned = scanned.load(Ordering::Relaxed);
    println!(
        "scanned: {scanned} in {scan_secs:.2} s = {:.0} subscriptions/s",
        scanned as f64 / scan_secs
    );
    println!(
        "reader_rss_mib: before scan {rss_before_scan:.1}, after scan {:.1}",
        resident_mib()
    );
    println!(
        "bytes_per_subscription: {:.1}",
        (after.saturating_sub(before)) as f64 / n as f64
    );
    Ok(())
}
