//! The delivery engine under load: broadcast throughput, the sender's CPU per delivered message
//! beside the crypto floor measured in the same run, and the latency of one-to-one pushes sent
//! while the broadcast runs.
//!
//! ```sh
//! cargo build --release && cargo run --release --example broadcast_load -- --n 200000 [--redis URL] [--peer M]
//! ```
//!
//! `--aviso PATH`: the sender binary to run (default `target/release/aviso`), so that two
//! builds can be measured in turn against the same driver and floor.
//! The sender and this driver use the multi-buffer P-256 backend where it opens (see the
//! `aviso-crypto-mb` crate); `AVISO_CRYPTO_MB=off` in the environment turns it off in both, for
//! an A/B of one binary.
//!
//! `--peer M`: afterwards, the npm `web-push` package (loadtest/peer/, `npm ci` there first)
//! sends the same payload to M of the subscribers through the same push service, and its CPU per
//! message is printed beside Aviso's.
//!
//! `--policy`: before the broadcast, a delivery policy with caps and quiet hours is PUT through
//! `/v1/policy` (see [`put_policy`]), so that every batch goes through the policy gate; the
//! one-to-one probes are `transactional` in every run (exempt, as receipts are).
//!
//! `--personalised`: every subscriber is linked to a profile at subscribe, the profiles get a
//! `first_name` through `/v1/profile-imports`, and the broadcast's title reads it
//! (`{{ profile.first_name | default: "friend" }}`), so that each batch reads its profiles and
//! renders per subscriber (see [`import_profiles`]).
//!
//! `--webhooks`: a webhook for every event type is registered (`POST /v1/webhooks`) with the
//! mock's `POST /sink` as its target, so that every batch also writes its `delivered` events to
//! the outbox and the sender posts them while the broadcast runs; the sender's CPU is printed
//! both up to the last push and until the webhook posts stop.
//!
//! The project's mock push service (`aviso-loadtest`, in this process, verifying each VAPID JWT
//! but not decrypting) stands in for FCM; the sender
//! is a real `target/release/aviso serve` (embedded store, or an empty Redis with `--redis`), so
//! its CPU time is its own.

use std::time::{Duration, Instant};

use aviso_loadtest::{MockConfig, MockPushService, TestSubscriber};
use serde_json::{Value, json};

fn cpu_seconds(pid: u32) -> f64 {
    // utime + stime, fields 14 and 15 of /proc/PID/stat, in clock ticks (100 a second on Linux).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The CPU time this thread has used, in seconds: the floors below count it rather than the
/// wall clock, so that other processes on the machine (builds) do not inflate them.
fn thread_cpu_seconds() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec; this clock exists on every Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}

/// The crypto floor on this machine, now: one 200-byte message encryption, on one core, for 2 s
/// (its CPU time per message).
fn crypto_floor_us(subscription: &aviso::push::PushSubscription) -> anyhow::Result<f64> {
    let payload = vec![b'x'; 200];
    let started = Instant::now();
    let cpu = thread_cpu_seconds();
    let mut runs = 0u32;
    while started.elapsed() < Duration::from_secs(2) {
        aviso::push::encrypt(subscription.keys(), &payload)?;
        runs += 1;
    }
    Ok((thread_cpu_seconds() - cpu) * 1e6 / f64::from(runs))
}

/// The same with the process's batch backend (`AVISO_CRYPTO_MB`), in runs of 24 as the engine
/// seals them: the floor when the multi-buffer backend is in use, `None` when it is not.
fn batch_floor_us(subscription: &aviso::push::PushSubscription) -> anyhow::Result<Option<f64>> {
    let (backend @ aviso::push::EcBackend::MultiBuffer(_), _) = aviso::push::EcBackend::detect()
    else {
        return Ok(None);
    };
    let payload = vec![b'x'; 200];
    let run = vec![(subscription.keys(), payload.as_slice()); 24];
    let started = Instant::now();
    let cpu = thread_cpu_seconds();
    let mut messages = 0u32;
    while started.elapsed() < Duration::from_secs(2) {
        for body in aviso::push::encrypt_batch(backend, &run) {
            body?;
        }
        messages += 24;
    }
    Ok(Some(
        (thread_cpu_seconds() - cpu) * 1e6 / f64::from(messages),
    ))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arg = |name: &str| std::env::args().skip_while(|a| a != name).nth(1);
    let n: usize = arg("--n").map_or(Ok(20_000), |v| v.parse())?;
    // `--redis URL`: the sender uses that (empty) Redis instead of the embedded store.
    let redis = arg("--redis");
    let peer: usize = arg("--peer").map_or(Ok(0), |v| v.parse())?;
    // `--aviso PATH`: another build of the sender (an A/B of two commits in one sitting).
    let aviso = arg("--aviso").unwrap_or_else(|| "target/release/aviso".to_owned());
    let flag = |name: &str| std::env::args().any(|a| a == name);
    let (policy, personalised, webhooks) =
        (flag("--policy"), flag("--personalised"), flag("--webhooks"));
    // Keeps each delivery's arrival time (the one-to-one latencies are read from them).
    let service = MockPushService::start(MockConfig::default().record_details(true)).await?;
    let dir = tempfile::tempdir()?;
    let ca = dir.path().join("ca.pem");
    service.write_ca_cert(&ca)?;
    // Subscribers' keys are not registered with the mock: decrypting 200,000 messages would
    // make it the bottleneck (the tests decrypt every message).
    let subscribe = |name: &str| -> anyhow::Result<Value> {
        Ok(TestSubscriber::generate_unregistered(&service, name)?.subscription_json())
    };

    let subscriber = subscribe("floor")?;
    let keys = aviso::push::PushSubscription::from_json(subscriber.to_string().as_bytes())?;
    // Measured before and after the broadcast (the machine's speed drifts): their mean is the floor.
    let floor_before_us = crypto_floor_us(&keys)?;
    let batch_floor_before_us = batch_floor_us(&keys)?;

    let mut child = std::process::Command::new(&aviso)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("AVISO_EXTRA_CA_CERTS", &ca)
        // The mock's host and port: the push service, and the webhook target (`/sink`).
        .env("AVISO_ALLOWED_PUSH_HOSTS", service.address().to_string())
        .env("AVISO_ALLOWED_WEBHOOK_HOSTS", service.address().to_string())
        // Every subscriber comes from this one address into one app: neither limit may refuse them.
        .env("AVISO_PUBLIC_RATE_LIMIT", "100000000")
        .env("AVISO_PUBLIC_APP_RATE_LIMIT", "100000000")
        .env("AVISO_LOG", "warn")
        .env("AVISO_REDIS_URL", redis.clone().unwrap_or_default())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut fields = std::collections::HashMap::new();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let base = loop {
        let line = lines
            .next()
            .ok_or_else(|| anyhow::anyhow!("aviso exited; run `cargo build --release` first"))??;
        if let Some(url) = line.trim().strip_prefix("listening:") {
            break url.trim().to_owned();
        }
        if let Some((k, v)) = line.trim().split_once(':') {
            fields.insert(k.trim().to_owned(), v.trim().to_owned());
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let (app, key) = (fields["app_id"].clone(), fields["api_key"].clone());
    let client = reqwest::Client::new();
    if policy {
        put_policy(&client, &base, &fields["admin_key"]).await?;
    }
    let identity = personalised.then(|| unhex(&fields["identity_secret"]));

    // Subscribers, through the public API.
    let subscribed = Instant::now();
    let names: Vec<String> = (0..n)
        .map(|i| format!("s{i}"))
        .chain(["vip".to_owned()])
        .collect();
    let mut vip_id = String::new();
    let mut peer_subscriptions = Vec::with_capacity(peer);
    for chunk in names.chunks(256) {
        let mut requests = Vec::with_capacity(chunk.len());
        for name in chunk {
            let subscription = subscribe(name)?;
            if peer_subscriptions.len() < peer {
                peer_subscriptions.push(subscription.to_string());
            }
            let body = subscribe_body(subscription, name, identity.as_deref());
            let request = client
                .post(format!("{base}/v1/apps/{app}/subscriptions"))
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
    if personalised {
        import_profiles(&client, &base, &key, n).await?;
    }

    // Registered after the subscribers: its cursor starts at the outbox's end, so it gets the
    // broadcast's events, not 200,000 `subscription.created` posted one by one.
    if webhooks {
        let webhook = client
            .post(format!("{base}/v1/webhooks"))
            .bearer_auth(&fields["admin_key"])
            .json(&json!({"url": service.sink_url(), "description": "load driver"}))
            .send()
            .await?;
        answered(webhook, "POST /v1/webhooks").await?;
    }
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let broadcast = client
        .post(format!("{base}/v1/notifications"))
        .bearer_auth(&key)
        .json(&json!({"audience": "all", "content": broadcast_content(personalised)}))
        .send()
        .await?;
    answered(broadcast, "POST /v1/notifications (the broadcast)").await?;
    // One-to-one pushes while the broadcast runs.
    let mut probes = Vec::new();
    // How long the API took to answer each probe's creation (stored, planned, queued).
    let mut answered_ms = Vec::new();
    while (service.stats().distinct_endpoints as usize) < n * 9 / 10 {
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
            started.elapsed() < Duration::from_secs(600),
            "the broadcast did not finish in 10 minutes"
        );
    }
    while (service.stats().distinct_endpoints as usize) < n + 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the broadcast did not finish in 10 minutes"
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
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
        let drained = cpu_seconds(pid) - cpu_before;
        println!(
            "webhooks: {} posts, {:.1} MB, sender CPU until they stopped {drained:.1} s ({:.1} s after the last push)",
            last.0,
            last.1 as f64 / 1e6,
            drained - cpu
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    let floor_after_us = crypto_floor_us(&keys)?;
    let floor_us = (floor_before_us + floor_after_us) / 2.0;
    let batch_floor_after_us = batch_floor_us(&keys)?;

    // The broadcast itself reaches the VIP once; every other arrival for it answers a probe, in order.
    let arrivals: Vec<Instant> = service
        .deliveries("vip")
        .into_iter()
        .map(|delivery| delivery.received_at)
        .collect();
    let mut latencies: Vec<f64> = probes
        .iter()
        .filter_map(|sent| {
            arrivals
                .iter()
                .find(|at| *at >= sent)
                .map(|at| (*at - *sent).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let messages = n + probes.len();
    let cpu_us = cpu * 1e6 / messages as f64;
    println!(
        "broadcast: {n} messages in {elapsed:.1} s = {:.0} messages/s",
        n as f64 / elapsed
    );
    println!("sender CPU: {cpu:.1} s = {cpu_us:.1} µs per delivered message");
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
    if peer > 0 {
        let file = dir.path().join("peer-subscriptions.jsonl");
        std::fs::write(&file, peer_subscriptions.join("\n"))?;
        web_push_peer(&file, &ca, cpu_us)?;
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
    Ok(())
}

/// Runs loadtest/peer/web-push-send.mjs over `subscriptions` and prints its cost beside Aviso's.
fn web_push_peer(
    subscriptions: &std::path::Path,
    ca: &std::path::Path,
    aviso_cpu_us: f64,
) -> anyhow::Result<()> {
    // The same content as the broadcast, as a hand-rolled sender would encode it.
    let payload = json!({"web_push": 8030, "notification": {"title": "Big sale", "body": "Everything must go", "navigate": "https://shop.example/sale"}});
    let output = std::process::Command::new("node")
        .arg("loadtest/peer/web-push-send.mjs")
        .arg(subscriptions)
        .arg(ca)
        .arg(payload.to_string())
        .arg("64")
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "the web-push peer failed (run `npm ci` in loadtest/peer first): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout)?;
    let messages = report["messages"].as_f64().unwrap_or(0.0);
    let cpu_us = report["cpu_s"].as_f64().unwrap_or(0.0) * 1e6 / messages.max(1.0);
    println!(
        "npm web-push peer, same push service: {} messages ({} created, {} failed) at {:.0} messages/s, {cpu_us:.1} µs CPU per message = {:.1}× Aviso's",
        messages,
        report["created"],
        report["failed"],
        messages / report["wall_s"].as_f64().unwrap_or(f64::INFINITY),
        cpu_us / aviso_cpu_us
    );
    Ok(())
}

/// `--policy`: caps (3 a day, 1 an hour, per subscriber here: they have no profile unless
/// `--personalised`) and quiet hours that hold nobody now (in UTC, the default zone, from two
/// to three hours ahead), so that every subscriber is checked and counted and every message
/// is still sent now: the policy's whole cost, none of its deferrals.
async fn put_policy(client: &reqwest::Client, base: &str, admin_key: &str) -> anyhow::Result<()> {
    let hour = (aviso::store::now_ms() / 3_600_000 % 24) as u32;
    let start = format!("{:02}:00", (hour + 2) % 24);
    let end = format!("{:02}:00", (hour + 3) % 24);
    let policy = json!({
        "caps": [{"max": 3, "per": "1d"}, {"max": 1, "per": "1h"}],
        "quiet_hours": {"start": start, "end": end},
    });
    let response = client
        .put(format!("{base}/v1/policy"))
        .bearer_auth(admin_key)
        .json(&policy)
        .send()
        .await?;
    answered(response, "PUT /v1/policy").await?;
    println!("policy: {policy}");
    Ok(())
}

/// The response if Aviso accepted the request, else an error with its status and problem: a
/// refused step must stop the run, not leave it measuring an empty broadcast.
async fn answered(response: reqwest::Response, what: &str) -> anyhow::Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let problem = response.text().await.unwrap_or_default();
    anyhow::bail!("{what} answered {status}: {problem}")
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// A subscriber's `POST /subscriptions` body: with `--personalised`, linked to profile `name`
/// (the identity hash as the site's backend computes it).
fn subscribe_body(subscription: Value, name: &str, identity: Option<&[u8]>) -> Value {
    match identity {
        None => json!({"subscription": subscription}),
        Some(secret) => json!({
            "subscription": subscription,
            "external_id": name,
            "identity_hash": aviso::apps::identity_hash(secret, name),
        }),
    }
}

/// `--personalised`: a `first_name` for nine profiles in ten (the tenth gets the default),
/// through one NDJSON import.
async fn import_profiles(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    n: usize,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let lines: String = (0..n)
        .filter(|i| i % 10 != 9)
        .map(|i| {
            format!("{{\"external_id\":\"s{i}\",\"attributes\":{{\"first_name\":\"Name{i}\"}}}}\n")
        })
        .collect();
    let response = client
        .post(format!("{base}/v1/profile-imports"))
        .bearer_auth(key)
        .header("Content-Type", "application/x-ndjson")
        .body(lines)
        .send()
        .await?;
    let report: Value = answered(response, "POST /v1/profile-imports")
        .await?
        .json()
        .await?;
    anyhow::ensure!(report["failed"] == 0, "profile import: {report}");
    println!(
        "imported {} profiles in {:.1} s",
        report["imported"],
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The broadcast's content: the same text, its title personalised with `--personalised`.
fn broadcast_content(personalised: bool) -> Value {
    let title = if personalised {
        "{{ profile.first_name | default: \"friend\" }}, big sale"
    } else {
        "Big sale"
    };
    json!({"title": title, "body": "Everything must go", "url": "https://shop.example/sale"})
}
