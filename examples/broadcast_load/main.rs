//! The delivery engine under load: broadcast throughput, the sender's CPU per delivered message
//! beside the crypto floor measured in the same run, the sender's resident memory, and the
//! latency of one-to-one pushes sent while the broadcast runs.
//!
//! ```sh
//! cargo build --release --bins --examples
//! target/release/examples/broadcast_load --n 200000 [--seed] [--redis URL | --cluster] [--senders K]
//! ```
//!
//! `--aviso PATH`: the sender binary to run (default `target/release/aviso`), so that two
//! builds can be measured in turn against the same driver and floor. `--bare-host` for a build
//! from before the allowed push hosts took `HOST:PORT` (before the store re-cut).
//! The sender and this driver use the multi-buffer P-256 backend where it opens (see the
//! `aviso-crypto-mb` crate); `AVISO_CRYPTO_MB=off` in the environment turns it off in both, for
//! an A/B of one binary.
//!
//! `--seed`: the subscribers are written straight into the store through the library's store
//! API instead of subscribing through `POST /subscriptions` (see [`seed`]); with Redis, the
//! growth of `used_memory` (summed over the URL's nodes) is printed per subscriber.
//!
//! `--redis URL`: the sender uses that (empty) Redis, or Redis Cluster (comma-separated node
//! URLs), instead of the embedded store. `--cluster`: the driver starts a Cluster of three
//! masters for the run and uses it (see [`redis`]). `--senders K`: K − 1 more
//! `aviso serve --role sender` processes on the same Redis; the CPU of all K is summed into the
//! per-message figure and the resident memory of each is sampled.
//!
//! `--no-probes`: no one-to-one pushes during the broadcast (they are skipped anyway for N ≤
//! 10,000, where the broadcast is over before a second probe). Without probes the driver polls
//! the mock every millisecond; either way the time from the broadcast's `POST` to its first and
//! last delivery is read from the mock's recorded arrival times.
//!
//! `--peer M`: afterwards, the npm `web-push` package (loadtest/peer/, `npm ci` there first)
//! sends the same payload to M of the subscribers through the same push service, and its CPU per
//! message is printed beside Aviso's.
//!
//! `--policy`: before the broadcast, a delivery policy with caps and quiet hours is PUT through
//! `/v1/policy` (see [`api::put_policy`]), so that every batch goes through the policy gate; the
//! one-to-one probes are `transactional` in every run (exempt, as receipts are).
//!
//! `--personalised`: every subscriber is linked to a profile at subscribe, the profiles get a
//! `first_name` through `/v1/profile-imports`, and the broadcast's title reads it
//! (`{{ profile.first_name | default: "friend" }}`), so that each batch reads its profiles and
//! renders per subscriber (see [`api::import_profiles`]).
//!
//! `--segment`: the broadcast's audience is the segment "everyone not tagged `opted_out`"
//! (`{"not": {"tag": {"key": "opted_out"}}}`), which every subscriber passes but which reads
//! each batch's profiles, as a tag may be the profile's: with `--personalised`, the filter's
//! profile reads and the template's are the ones measured.
//!
//! `--webhooks`: a webhook for every event type is registered (`POST /v1/webhooks`) with the
//! mock's `POST /sink` as its target, so that every batch also writes its `delivered` events to
//! the outbox and the sender posts them while the broadcast runs; the sender's CPU is printed
//! both up to the last push and until the webhook posts stop.
//!
//! `--rounds K`: after the first broadcast, K − 1 more of the same to the same audience, one
//! after the other (the next POST once the last one's every message is in), as a marketer who
//! sends small broadcasts through a running server does: the first round pays for the server's
//! first connections to the push service, the later ones find them open. Their POST → first and
//! last delivery (from the mock's delivered count, polled every millisecond) and their CPU
//! together are printed apart from the first round's (whose figures are the lines above).
//!
//! The project's mock push service (`aviso-loadtest`, in this process, verifying each VAPID JWT
//! but not decrypting) stands in for FCM; the sender is a real `target/release/aviso serve`, so
//! its CPU time is its own.

mod api;
mod floor;
mod procs;
mod redis;
mod seed;

use std::time::{Duration, Instant};

use aviso_loadtest::{MockConfig, MockPushService, TestSubscriber};
use serde_json::{Value, json};

use api::answered;
use floor::{batch_floor_us, crypto_floor_us, percentile};
use procs::{Resident, RssSampler, Serve, Setup, cpu_seconds};

/// Audiences up to this size get no one-to-one probes.
const NO_PROBES_UP_TO: usize = 10_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arg = |name: &str| std::env::args().skip_while(|a| a != name).nth(1);
    let flag = |name: &str| std::env::args().any(|a| a == name);
    let n: usize = arg("--n").map_or(Ok(20_000), |v| v.parse())?;
    let peer: usize = arg("--peer").map_or(Ok(0), |v| v.parse())?;
    let senders: usize = arg("--senders").map_or(Ok(1), |v| v.parse())?;
    let (policy, personalised, webhooks) =
        (flag("--policy"), flag("--personalised"), flag("--webhooks"));
    let seeded = flag("--seed");
    let audience = if flag("--segment") {
        json!({"segment": {"not": {"tag": {"key": "opted_out"}}}})
    } else {
        json!("all")
    };
    let rounds: usize = arg("--rounds").map_or(Ok(1), |v| v.parse())?;
    anyhow::ensure!(rounds >= 1, "--rounds must be at least 1");
    let probing = !flag("--no-probes") && n > NO_PROBES_UP_TO;
    anyhow::ensure!(senders >= 1, "--senders must be at least 1");
    anyhow::ensure!(
        !(seeded && (personalised || peer > 0)),
        "--seed writes bare subscriptions: it does not go with --personalised or --peer"
    );
    let cluster = flag("--cluster")
        .then(|| redis::Cluster::start(3))
        .transpose()?;
    let redis_url = cluster.as_ref().map(redis::Cluster::url).or(arg("--redis"));
    anyhow::ensure!(
        senders == 1 || redis_url.is_some(),
        "--senders K > 1 needs --redis or --cluster: the embedded store is one process's"
    );
    // Keeps each delivery's arrival time (the latencies and the first and last delivery are
    // read from them).
    let service = MockPushService::start(MockConfig::default().record_details(true)).await?;
    let dir = tempfile::tempdir()?;
    let setup = Setup {
        aviso: arg("--aviso").unwrap_or_else(|| "target/release/aviso".to_owned()),
        ca: dir.path().join("ca.pem"),
        // `--bare-host`: the host alone, for builds from before `HOST:PORT` entries (they took
        // bare hosts, on any port; later builds allow a bare host on 443 only).
        mock: if flag("--bare-host") {
            service.address().ip().to_string()
        } else {
            service.address().to_string()
        },
        redis: redis_url.clone(),
    };
    service.write_ca_cert(&setup.ca)?;
    let data_dir = dir.path().join("data");
    // Subscribers' keys are not registered with the mock: decrypting 200,000 messages would
    // make it the bottleneck (the tests decrypt every message).
    let subscribe = |name: &str| -> anyhow::Result<Value> {
        Ok(TestSubscriber::generate_unregistered(&service, name)?.subscription_json())
    };

    let floor_subscriber = subscribe("floor")?;
    let keys = aviso::push::PushSubscription::from_json(floor_subscriber.to_string().as_bytes())?;
    // Measured before and after the broadcast (the machine's speed drifts): their mean is the floor.
    let floor_before_us = crypto_floor_us(&keys)?;
    let batch_floor_before_us = batch_floor_us(&keys)?;

    let mut server = Serve::start(&setup, &data_dir, false)?;
    let (app, key) = (server.field("app_id")?, server.field("api_key")?);
    // Read only when a run needs it: builds from before the admin key print none, and can
    // still be measured against this driver.
    let admin_key = if policy || webhooks {
        server.field("admin_key")?
    } else {
        String::new()
    };
    let client = reqwest::Client::new();
    if policy {
        api::put_policy(&client, &server.base, &admin_key).await?;
    }
    let identity = personalised
        .then(|| server.field("identity_secret"))
        .transpose()?
        .map(|secret| api::unhex(&secret));

    let names: Vec<String> = (0..n)
        .map(|i| format!("s{i}"))
        .chain(["vip".to_owned()])
        .collect();
    let memory_before = redis_url.as_deref().map(redis::used_memory).transpose()?;
    let subscribed = Instant::now();
    let mut peer_subscriptions = Vec::with_capacity(peer);
    let vip_id = if seeded {
        // redb is one process's file: seed while `aviso serve` is stopped, then start it again.
        let embedded = redis_url.is_none();
        if embedded {
            server.stop()?;
        }
        let store = aviso::store::open(redis_url.as_deref(), &data_dir).await?;
        let writing = seed::seed(store.as_ref(), &app, &service, &names).await?;
        drop(store);
        if embedded {
            server = Serve::start(&setup, &data_dir, false)?;
        }
        println!(
            "seeded {} subscriptions in {:.1} s ({:.0}/s; {} distinct key pairs)",
            names.len(),
            writing.as_secs_f64(),
            names.len() as f64 / writing.as_secs_f64(),
            seed::KEY_POOL.min(names.len())
        );
        aviso::store::SubscriptionId::for_endpoint(&app, &service.endpoint("vip")).to_string()
    } else {
        let mut vip_id = String::new();
        for chunk in names.chunks(256) {
            let mut requests = Vec::with_capacity(chunk.len());
            for name in chunk {
                let subscription = subscribe(name)?;
                if peer_subscriptions.len() < peer {
                    peer_subscriptions.push(subscription.to_string());
                }
                let body = api::subscribe_body(subscription, name, identity.as_deref());
                let request = client
                    .post(format!("{}/v1/apps/{app}/subscriptions", server.base))
                    .json(&body)
                    .send();
                requests.push(async move { (name.clone(), request.await) });
            }
            for (name, response) in futures::future::join_all(requests).await {
                let body: Value = answered(response?, "POST /subscriptions")
                    .await?
                    .json()
                    .await?;
                if name == "vip" {
                    vip_id = body["subscription_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                }
            }
        }
        println!(
            "subscribed {} browsers in {:.1} s",
            n + 1,
            subscribed.elapsed().as_secs_f64()
        );
        vip_id
    };
    if let (Some(before), Some(url)) = (memory_before, redis_url.as_deref()) {
        let after = redis::used_memory(url)?;
        println!(
            "Redis used_memory: {:.1} → {:.1} MiB = {:.0} bytes per subscriber",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            after.saturating_sub(before) as f64 / names.len() as f64
        );
    }
    if personalised {
        api::import_profiles(&client, &server.base, &key, n).await?;
    }
    let base = server.base.clone();
    let mut extra = Vec::with_capacity(senders - 1);
    for k in 1..senders {
        extra.push(Serve::start(
            &setup,
            &dir.path().join(format!("sender-{k}")),
            true,
        )?);
    }
    let pids: Vec<u32> = std::iter::once(server.pid)
        .chain(extra.iter().map(|s| s.pid))
        .collect();
    let all_cpu = || pids.iter().map(|pid| cpu_seconds(*pid)).sum::<f64>();

    // Registered after the subscribers: its cursor starts at the outbox's end, so it gets the
    // broadcast's events, not 200,000 `subscription.created` posted one by one.
    if webhooks {
        let webhook = client
            .post(format!("{base}/v1/webhooks"))
            .bearer_auth(&admin_key)
            .json(&json!({"url": service.sink_url(), "description": "load driver"}))
            .send()
            .await?;
        answered(webhook, "POST /v1/webhooks").await?;
    }
    let rss = RssSampler::start(pids.clone(), Duration::from_millis(250));
    let cpu_before = all_cpu();
    let limit = Duration::from_secs(600.max(n as u64 / 1000));
    let started = Instant::now();
    let broadcast = client
        .post(format!("{base}/v1/notifications"))
        .bearer_auth(&key)
        .json(&json!({"audience": audience, "content": api::broadcast_content(personalised)}))
        .send()
        .await?;
    answered(broadcast, "POST /v1/notifications (the broadcast)").await?;
    println!(
        "the broadcast's POST answered in {:.1} ms (stored, planned, queued)",
        started.elapsed().as_secs_f64() * 1000.0
    );
    // One-to-one pushes while the broadcast runs.
    let mut probes = Vec::new();
    // How long the API took to answer each probe's creation (stored, planned, queued).
    let mut answered_ms = Vec::new();
    while probing && (service.stats().distinct_endpoints as usize) < n * 9 / 10 {
        let sent = Instant::now();
        let probe = client
            .post(format!("{base}/v1/notifications"))
            .bearer_auth(&key)
            .json(&json!({"audience": {"subscription_ids": [vip_id]}, "content": {"title": "Your cart"}, "urgency": "high", "category": "transactional"}))
            .send()
            .await?;
        answered(probe, "POST /v1/notifications (a probe)").await?;
        probes.push(sent);
        answered_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
        anyhow::ensure!(
            started.elapsed() < limit,
            "the broadcast did not finish in {} s",
            limit.as_secs()
        );
    }
    let poll = Duration::from_millis(if probing { 20 } else { 1 });
    // Every subscriber once, and every probe that was sent.
    let expected = (n + 1 + probes.len()) as u64;
    while (service.stats().distinct_endpoints as usize) < n + 1 || service.delivered() < expected {
        tokio::time::sleep(poll).await;
        anyhow::ensure!(
            started.elapsed() < limit,
            "the broadcast did not finish in {} s",
            limit.as_secs()
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = all_cpu() - cpu_before;
    if webhooks {
        // The outbox drains after the last push: wait until no post came for 2 s (at most 60 s).
        let mut last = service.sink_received();
        let mut quiet_since = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(60);
        while quiet_since.elapsed() < Duration::from_secs(2) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = service.sink_received();
            if now != last {
                (last, quiet_since) = (now, Instant::now());
            }
        }
        let drained = all_cpu() - cpu_before;
        println!(
            "webhooks: {} posts, {:.1} MB, sender CPU until they stopped {drained:.1} s ({:.1} s after the last push)",
            last.0,
            last.1 as f64 / 1e6,
            drained - cpu
        );
    }
    let later = later_rounds(&client, &base, &key, &service, rounds - 1, expected, limit).await?;
    let cpu_later = all_cpu() - cpu_before - cpu;
    let expected = expected + ((rounds - 1) * (n + 1)) as u64;
    // A moment for late repeats (a duplicate would come after the first delivery).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resident = rss.finish();
    let stats = service.stats();
    drop(extra);
    drop(server);
    let floor_after_us = crypto_floor_us(&keys)?;
    let floor_us = (floor_before_us + floor_after_us) / 2.0;
    let batch_floor_after_us = batch_floor_us(&keys)?;

    // The broadcast itself reaches the VIP once; every other arrival for it answers a probe, in order.
    let vip: Vec<Instant> = service
        .deliveries("vip")
        .into_iter()
        .map(|delivery| delivery.received_at)
        .collect();
    let (first, last) = broadcast_span(&service, &names[..n], vip.first().copied());
    let mut latencies: Vec<f64> = probes
        .iter()
        .filter_map(|sent| {
            vip.iter()
                .find(|at| *at >= sent)
                .map(|at| (*at - *sent).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let messages = n + 1 + probes.len();
    let cpu_us = cpu * 1e6 / messages as f64;
    if let (Some(first), Some(last)) = (first, last) {
        let (to_first, to_last) = (
            first.saturating_duration_since(started).as_secs_f64(),
            last.saturating_duration_since(started).as_secs_f64(),
        );
        println!(
            "broadcast: {} messages; from its POST to the first delivery {:.1} ms, to the last {to_last:.3} s = {:.0} messages/s",
            n + 1,
            to_first * 1000.0,
            (n + 1) as f64 / to_last
        );
    }
    println!("driver saw the last delivery after {elapsed:.1} s");
    println!(
        "duplicates: {} (deliveries {}, expected {expected}: {} subscribers once + {} probes; {} endpoints reached)",
        stats.delivered.saturating_sub(expected),
        stats.delivered,
        n + 1,
        probes.len(),
        stats.distinct_endpoints
    );
    println!(
        "push service: {} TLS connections accepted since the driver started",
        stats.connections
    );
    println!(
        "sender CPU ({} process{}): {cpu:.1} s = {cpu_us:.1} µs per delivered message",
        pids.len(),
        if pids.len() == 1 { "" } else { "es" }
    );
    println!(
        "crypto floor (one 200-byte encryption, same run): {floor_us:.1} µs (before {floor_before_us:.1}, after {floor_after_us:.1}) → ratio {:.2}",
        cpu_us / floor_us
    );
    if let (Some(before), Some(after)) = (batch_floor_before_us, batch_floor_after_us) {
        let batch_floor_us = (before + after) / 2.0;
        println!(
            "multi-buffer floor (200-byte encryptions in runs of 24, same run): {batch_floor_us:.1} µs (before {before:.1}, after {after:.1}) → ratio {:.2}",
            cpu_us / batch_floor_us
        );
    }
    if !later.is_empty() {
        let messages = later.len() * (n + 1);
        let per_message = cpu_later * 1e6 / messages as f64;
        let mut firsts: Vec<f64> = later.iter().map(|r| r.0).collect();
        let mut lasts: Vec<f64> = later.iter().map(|r| r.1).collect();
        firsts.sort_by(f64::total_cmp);
        lasts.sort_by(f64::total_cmp);
        let floor = batch_floor_before_us
            .zip(batch_floor_after_us)
            .map(|(before, after)| {
                format!(
                    " → ratio {:.2} to the multi-buffer floor",
                    per_message * 2.0 / (before + after)
                )
            })
            .unwrap_or_default();
        println!(
            "rounds 2–{rounds}: POST → first delivery p50 {:.1} ms, max {:.1} ms; → last p50 {:.3} s, max {:.3} s; sender CPU {cpu_later:.2} s = {per_message:.1} µs per message{floor}",
            percentile(&firsts, 0.5),
            firsts[firsts.len() - 1],
            percentile(&lasts, 0.5) / 1000.0,
            lasts[lasts.len() - 1] / 1000.0,
        );
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    for (i, seen) in resident.iter().enumerate() {
        let role = if i == 0 {
            "serve"
        } else {
            "serve --role sender"
        };
        if let Some(Resident {
            first,
            min,
            max,
            last,
        }) = seen
        {
            println!(
                "RSS of {role} #{i} (every 250 ms from before the POST): at the POST {:.0} MiB, min {:.0}, max {:.0}, at the end {:.0} MiB",
                mib(*first),
                mib(*min),
                mib(*max),
                mib(*last)
            );
        }
    }
    if peer > 0 {
        let file = dir.path().join("peer-subscriptions.jsonl");
        std::fs::write(&file, peer_subscriptions.join("\n"))?;
        api::web_push_peer(&file, &setup.ca, cpu_us)?;
    }
    answered_ms.sort_by(f64::total_cmp);
    if !answered_ms.is_empty() {
        println!(
            "one-to-one creation answered by the API: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            percentile(&answered_ms, 0.5),
            percentile(&answered_ms, 0.99),
            answered_ms[answered_ms.len() - 1]
        );
    }
    if !latencies.is_empty() {
        println!(
            "one-to-one during the broadcast: {} pushes, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            latencies.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies[latencies.len() - 1]
        );
    }
    drop(cluster);
    Ok(())
}

/// The broadcast's first and last arrival at the mock: each of `names`' first delivery, and
/// the VIP's (`vip`, its first).
fn broadcast_span(
    service: &MockPushService,
    names: &[String],
    vip: Option<Instant>,
) -> (Option<Instant>, Option<Instant>) {
    let arrivals = names
        .iter()
        .filter_map(|name| service.deliveries(name).first().map(|d| d.received_at))
        .chain(vip);
    arrivals.fold((None, None), |(first, last), at| {
        (
            Some(first.map_or(at, |f: Instant| f.min(at))),
            Some(last.map_or(at, |l: Instant| l.max(at))),
        )
    })
}

/// `count` more broadcasts to everyone, each posted once the mock has every message so far
/// (`delivered`, at the start): each one's POST → first and last delivery, in ms.
async fn later_rounds(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    service: &MockPushService,
    count: usize,
    delivered: u64,
    limit: Duration,
) -> anyhow::Result<Vec<(f64, f64)>> {
    let audience = service.stats().distinct_endpoints;
    let mut spans = Vec::with_capacity(count);
    for round in 1..=count as u64 {
        let (before, target) = (
            delivered + (round - 1) * audience,
            delivered + round * audience,
        );
        let started = Instant::now();
        let broadcast = client
            .post(format!("{base}/v1/notifications"))
            .bearer_auth(key)
            .json(&json!({"audience": "all", "content": api::broadcast_content(false)}))
            .send()
            .await?;
        answered(broadcast, "POST /v1/notifications (a later round)").await?;
        let mut first = None;
        loop {
            let now = service.delivered();
            if first.is_none() && now > before {
                first = Some(started.elapsed());
            }
            if now >= target {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < limit,
                "round {} did not finish in {} s",
                round + 1,
                limit.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        spans.push((ms(first.unwrap_or_default()), ms(started.elapsed())));
    }
    Ok(spans)
}
