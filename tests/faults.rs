//! The fault suite (issue 16): broadcasts through real `aviso serve` processes on one Redis to the
//! project's mock push service, each under one fault:
//!
//! - the mock answers `503` to the first 4,000 requests and then `429 Retry-After: 1` to 5%;
//! - Redis is stopped (`kill -9`, append-only file) and restarted mid-broadcast;
//! - the push service is unreachable (connection refused) for a while, then throttles;
//! - one of two instances is killed (`kill -9`) mid-broadcast;
//! - SIGTERM while retries are pending, then another instance finishes;
//! - Redis at its memory limit (`maxmemory` with `noeviction`): `/readyz` says it refuses writes.
//!
//! Each asserts that nobody was missed, that duplicates stay within the documented bound (one
//! batch per task in flight), that the counters agree with the distinct deliveries, and that the
//! broadcast finished within a bound that a stall would break. Each prints a `fault:` line with
//! its figures (docs/RELIABILITY.md has them). Loopback only; bounded in time.

mod support;

use std::time::{Duration, Instant};

use aviso_loadtest::{Behaviour, Throttle, Unavailable};
use http::StatusCode;
use reqwest::Client;
use serde_json::{Value, json};
use support::push_service::{self, MockConfig, MockExt, MockPushService};
use support::redis::RedisServer;
use support::server::Aviso;

/// `EngineConfig::batch_size` in `aviso serve`.
const BATCH: usize = 500;
/// `EngineConfig::bulk_workers` in `aviso serve`: tasks sending at once per instance.
const BULK_WORKERS: usize = 8;
/// `IDLE_TASKS_PER_TURN` in the engine: tasks held per sending one (the others wait for
/// retries).
const TASKS_PER_TURN: usize = 4;
/// DESIGN.md: duplicates after a fault are bounded by one batch per task in flight.
const DUPLICATES_BOUND: usize = BATCH * BULK_WORKERS * TASKS_PER_TURN;
/// Every broadcast here finishes well within this unless something stalls.
const FINISH_BOUND: Duration = Duration::from_secs(150);

/// A mock push service whose CA the instances trust.
struct Mock {
    service: MockPushService,
    ca: String,
    _dir: tempfile::TempDir,
}

async fn mock(config: MockConfig) -> Mock {
    // Only counts: the deliveries' details would be kept for nothing.
    let service = push_service::start(config.record_details(false)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    service.write_ca(&ca);
    Mock {
        service,
        ca: ca.to_str().unwrap().to_owned(),
        _dir: dir,
    }
}

fn instance(redis: &RedisServer, mock: &Mock, env: &[(&str, &str)]) -> Aviso {
    let mut all = vec![("AVISO_EXTRA_CA_CERTS", mock.ca.as_str())];
    all.extend_from_slice(env);
    Aviso::start(Some(&redis.url()), &all)
}

/// Creates a broadcast to everyone; its id and when it was created.
async fn broadcast(client: &Client, aviso: &Aviso) -> (String, Instant) {
    let created = Instant::now();
    let response = client
        .post(aviso.url("/v1/notifications"))
        .bearer_auth(&aviso.api_key)
        .json(&json!({"audience": "all", "content": {"title": "Sale"}, "ttl": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    (body["id"].as_str().unwrap().to_owned(), created)
}

/// Waits until every one of `n` subscribers got the message; how long that took from `since`.
async fn all_delivered(
    service: &MockPushService,
    n: usize,
    since: Instant,
    what: &str,
) -> Duration {
    loop {
        let distinct = service.distinct_delivered();
        if distinct >= n {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < FINISH_BOUND,
            "{what}: only {distinct} of {n} delivered after {FINISH_BOUND:?}: a stall ({:?})",
            service.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The notification's counters once its tasks have recorded `n` delivered (bounded), read
/// from `aviso` with the app's `api_key`.
async fn counters(client: &Client, aviso: &Aviso, api_key: &str, id: &str, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = aviso.notification(client, api_key, id).await;
        let counters = view["counters"].clone();
        if counters["delivered"].as_i64().unwrap_or(0) >= n as i64 {
            return counters;
        }
        assert!(
            Instant::now() < deadline,
            "the counters never reached {n}: {counters}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Requests per second from `since`, for the figures.
fn per_second(service: &MockPushService, since: Instant) -> Vec<u64> {
    let timeline = service.request_timeline();
    let skip = since
        .saturating_duration_since(timeline.started)
        .as_millis() as usize
        / aviso_loadtest::TIMELINE_SLOT.as_millis() as usize;
    let per_slot = timeline
        .counts
        .iter()
        .skip(skip)
        .copied()
        .collect::<Vec<_>>();
    let slots_per_second = (1000 / aviso_loadtest::TIMELINE_SLOT.as_millis()) as usize;
    per_slot
        .chunks(slots_per_second)
        .map(|second| second.iter().sum())
        .collect()
}

/// Nobody missed, duplicates within the bound; the duplicates.
fn nobody_missed(service: &MockPushService, n: usize, what: &str) -> usize {
    let stats = service.stats();
    assert_eq!(stats.distinct_endpoints as usize, n, "{what}: {stats:?}");
    assert_eq!(stats.verification_failures, 0, "{what}: {stats:?}");
    let duplicates = stats.duplicate_deliveries as usize;
    assert!(
        duplicates <= DUPLICATES_BOUND,
        "{what}: {duplicates} duplicates, more than one batch per task in flight"
    );
    duplicates
}

/// The `delivered` counter after a process (or Redis) died mid-broadcast: every delivery
/// exactly once. A batch sent again after the death (its record cut short) is counted once per
/// task position (`LedgerStore::record_batch`).
fn counted_once_after_a_death(counters: &Value, n: usize) {
    assert_eq!(counters["delivered"], n as i64, "{counters}");
}

/// One instance and no crash: nobody missed and nothing sent twice (`why` says what kept it
/// so); the duplicates (none).
fn nothing_sent_twice(service: &MockPushService, n: usize, what: &str, why: &str) -> usize {
    let duplicates = nobody_missed(service, n, what);
    assert_eq!(duplicates, 0, "one instance, no crash: {why}");
    duplicates
}

/// The longest the push service heard nothing from `from` to `to` while messages were due:
/// under 10 s, or the broadcast stalled.
fn never_silent(service: &MockPushService, from: Instant, to: Instant) -> Duration {
    let silence = service.request_timeline().longest_silence(from, to);
    assert!(
        silence < Duration::from_secs(10),
        "the push service heard nothing for {silence:?} while messages were due"
    );
    silence
}

/// The end of a broadcast in which a process (or Redis) died (`what`, for the messages): all
/// `n` delivered within the bound, nobody missed, each delivery counted once (read from
/// `aviso`); then the `fault:` line, which opens with `headline`.
async fn after_a_death(
    client: &Client,
    mock: &Mock,
    aviso: &Aviso,
    (id, created): &(String, Instant),
    n: usize,
    what: &str,
    headline: &str,
) {
    let service = &mock.service;
    let took = all_delivered(service, n, *created, what).await;
    let duplicates = nobody_missed(service, n, what);
    let counters = counters(client, aviso, &aviso.api_key, id, n).await;
    counted_once_after_a_death(&counters, n);
    eprintln!(
        "fault: {headline}: {n} delivered in {:.1} s, {duplicates} duplicates, counters {counters}",
        took.as_secs_f64()
    );
}

/// Waits (bounded) until the mock has received `requests`.
async fn received_at_least(service: &MockPushService, requests: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while service.requests() < requests {
        assert!(
            Instant::now() < deadline,
            "the broadcast did not get going: {:?}",
            service.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Issue 16, must show 1: 503 for the first 4,000 requests, then 5% `429 Retry-After: 1`, as
/// the mock's own flags give them (`--unavailable-first 4000 --throttle-fraction 0.05
/// --retry-after 1`). The broadcast finishes, everyone gets it once, and the push service
/// never goes 10 s without a request while messages are due (it went silent for 15–50 s when a
/// message's own backoff paused the whole origin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_then_throttling_never_stalls_the_broadcast() {
    const N: usize = 20_000;
    let mock = mock(
        MockConfig::default()
            .unavailable(Unavailable::first(4_000))
            .throttle(Throttle::fraction(0.05).retry_after(1)),
    )
    .await;
    let redis = RedisServer::start();
    let aviso = instance(&redis, &mock, &[]);
    support::seed::redis_subscribers(&redis.url(), &aviso.app_id, &mock.service, N).await;
    let client = Client::new();

    let (id, created) = broadcast(&client, &aviso).await;
    let took = all_delivered(&mock.service, N, created, "503 then 429").await;
    let finished = Instant::now();
    let why = "nothing is sent twice";
    let duplicates = nothing_sent_twice(&mock.service, N, "503 then 429", why);
    let silence = never_silent(&mock.service, created, finished);
    let service = &mock.service;
    assert_eq!(service.count_for(StatusCode::SERVICE_UNAVAILABLE), 4_000);
    let throttled = service.count_for(StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled >= (N / 20) as u64 - 1, "{throttled} throttled");
    let counters = counters(&client, &aviso, &aviso.api_key, &id, N).await;
    assert_eq!(counters["delivered"], N as i64, "{counters}");
    let failed = counters
        .as_object()
        .unwrap()
        .keys()
        .any(|k| k.starts_with("failed"));
    assert!(!failed, "{counters}");
    eprintln!("requests per second: {:?}", per_second(service, created));
    eprintln!(
        "fault: 503x4000 then 5% 429: {N} delivered in {:.1} s, {duplicates} duplicates, longest silence {:.1} s, {throttled} throttled, counters {counters}",
        took.as_secs_f64(),
        silence.as_secs_f64()
    );
}

/// Redis dies (`kill -9`; its append-only file keeps what it acknowledged) a third of the way
/// through and comes back 2 s later on the same port. Batches in flight record once it is back;
/// tasks whose scan failed resume from their checkpoint after their lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_broadcast_loses_nothing() {
    const N: usize = 10_000;
    let mock = mock(MockConfig::default().latency(Duration::from_millis(10), Duration::ZERO)).await;
    let mut redis = RedisServer::start_durable();
    let aviso = instance(&redis, &mock, &[("AVISO_TASK_LEASE_SECS", "5")]);
    support::seed::redis_subscribers(&redis.url(), &aviso.app_id, &mock.service, N).await;
    let client = Client::new();

    let sent = broadcast(&client, &aviso).await;
    received_at_least(&mock.service, (N / 3) as u64).await;
    redis.stop();
    let at_stop = mock.service.requests();
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.restart();
    let headline = format!("Redis kill -9 + restart after {at_stop} requests");
    after_a_death(&client, &mock, &aviso, &sent, N, "Redis restart", &headline).await;
}

/// The push service refuses connections for 8 s from the start of the broadcast (longer than
/// the 2 s task lease: only the heartbeat keeps other workers from taking the tasks over and
/// sending their batches twice), then comes back throttling 5% with `Retry-After: 1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_then_throttling_loses_nothing_and_sends_nothing_twice() {
    const N: usize = 10_000;
    let mock = mock(MockConfig::default()).await;
    let redis = RedisServer::start();
    let aviso = instance(&redis, &mock, &[("AVISO_TASK_LEASE_SECS", "2")]);
    support::seed::redis_subscribers(&redis.url(), &aviso.app_id, &mock.service, N).await;
    let client = Client::new();
    mock.service.set_reachable(false).await.unwrap();

    let (id, created) = broadcast(&client, &aviso).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(mock.service.requests(), 0, "the mock was unreachable");
    mock.service
        .set_behaviour(Behaviour {
            throttle: Throttle::fraction(0.05).retry_after(1),
            ..Behaviour::default()
        })
        .unwrap();
    mock.service.set_reachable(true).await.unwrap();
    let back = Instant::now();
    let took = all_delivered(&mock.service, N, created, "unreachable, then 429").await;
    let why = "a batch in long retries kept its lease";
    let duplicates = nothing_sent_twice(&mock.service, N, "unreachable, then 429", why);
    let silence = never_silent(&mock.service, back, Instant::now());
    let counters = counters(&client, &aviso, &aviso.api_key, &id, N).await;
    assert_eq!(counters["delivered"], N as i64, "{counters}");
    eprintln!(
        "fault: unreachable 8 s then 5% 429: {N} delivered in {:.1} s ({:.1} s after it came back), {duplicates} duplicates, longest silence since {:.1} s, counters {counters}",
        took.as_secs_f64(),
        back.elapsed().as_secs_f64(),
        silence.as_secs_f64()
    );
}

/// Two instances share a broadcast; one is killed (`kill -9`) midway; the other takes its tasks
/// over after their 2 s lease and finishes from their checkpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_of_two_instances_loses_nothing() {
    const N: usize = 10_000;
    let mock = mock(MockConfig::default().latency(Duration::from_millis(20), Duration::ZERO)).await;
    let redis = RedisServer::start();
    let env = [("AVISO_TASK_LEASE_SECS", "2")];
    let a = instance(&redis, &mock, &env);
    let mut b = instance(&redis, &mock, &env);
    support::seed::redis_subscribers(&redis.url(), &a.app_id, &mock.service, N).await;
    let client = Client::new();

    let sent = broadcast(&client, &a).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let received = mock.service.requests() as usize;
        let (sent_a, sent_b) = (a.sends(&client).await, b.sends(&client).await);
        if received >= N / 3 && sent_a > 0.0 && sent_b > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the broadcast did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.kill();
    let at_kill = mock.service.requests();
    assert!((at_kill as usize) < N, "killed too late to matter");
    let headline = format!("kill -9 of one of two instances after {at_kill} requests");
    after_a_death(&client, &mock, &a, &sent, N, "kill -9", &headline).await;
}

/// Issue 16, must show 2: SIGTERM while half the requests fail with 503 and retries are pending.
/// The process exits within its 5 s grace (it lived 110–190 s in retry sleeps), handing its
/// tasks back; a second instance started afterwards finishes them at once, long before their
/// 30 s lease would have let it, with duplicates within the bound and exact counters (an
/// interrupted batch is counted by whoever sends it again, not by the one that stopped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_retries_pending_exits_within_the_grace_and_hands_back() {
    const N: usize = 10_000;
    const GRACE: Duration = Duration::from_secs(5);
    let mock = mock(
        MockConfig::default()
            .latency(Duration::from_millis(20), Duration::ZERO)
            .unavailable(Unavailable::bursts(10, 5)),
    )
    .await;
    let redis = RedisServer::start();
    let mut a = instance(&redis, &mock, &[("AVISO_SHUTDOWN_GRACE_SECS", "5")]);
    support::seed::redis_subscribers(&redis.url(), &a.app_id, &mock.service, N).await;
    let client = Client::new();

    let (id, created) = broadcast(&client, &a).await;
    received_at_least(&mock.service, 3_000).await;
    assert!(
        mock.service.count_for(StatusCode::SERVICE_UNAVAILABLE) > 1_000,
        "retries are pending"
    );
    let signalled = Instant::now();
    a.terminate();
    let status = a.wait_exit(GRACE + Duration::from_secs(10));
    let exited_after = signalled.elapsed();
    let status = status.expect("aviso serve still runs 15 s after SIGTERM");
    assert!(status.success(), "{status}");
    assert!(
        exited_after <= GRACE + Duration::from_secs(1),
        "exited {exited_after:?} after SIGTERM, grace {GRACE:?}"
    );
    let delivered_by_a = mock.service.distinct_delivered();
    assert!(delivered_by_a < N, "stopped too late to matter");

    mock.service.set_behaviour(Behaviour::default()).unwrap();
    let restarted = Instant::now();
    let b = instance(&redis, &mock, &[]);
    let took = all_delivered(&mock.service, N, created, "SIGTERM").await;
    let finish_after_b = restarted.elapsed();
    assert!(
        finish_after_b < Duration::from_secs(25),
        "the second instance took {finish_after_b:?}: were the tasks handed back, or left to their 30 s lease?"
    );
    let duplicates = nobody_missed(&mock.service, N, "SIGTERM");
    let counters = counters(&client, &b, &a.api_key, &id, N).await;
    assert_eq!(counters["delivered"], N as i64, "{counters}");
    eprintln!(
        "fault: SIGTERM with retries pending: exited {:.2} s after the signal (grace {} s), {delivered_by_a} delivered before; the second instance finished {:.1} s after its start, {N} delivered in {:.1} s, {duplicates} duplicates, counters {counters}",
        exited_after.as_secs_f64(),
        GRACE.as_secs(),
        finish_after_b.as_secs_f64(),
        took.as_secs_f64()
    );
}

/// A Redis at its memory limit with `noeviction` answers `PING` but refuses every write
/// (`OOM command not allowed`): nothing can be subscribed or sent, so `/readyz` must say 503
/// (a load balancer then stops sending traffic here), and 200 again once Redis has room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_a_redis_that_refuses_writes() {
    let mock = mock(MockConfig::default()).await;
    let redis = RedisServer::start();
    let aviso = instance(&redis, &mock, &[]);
    // Well over 1 MB of data, so that a 1 MB limit is exceeded whatever Redis' own overhead.
    support::seed::redis_subscribers(&redis.url(), &aviso.app_id, &mock.service, 5_000).await;
    let client = Client::new();
    let ready = || async {
        let response = client.get(aviso.url("/readyz")).send().await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, content_type, response.text().await.unwrap())
    };
    assert_eq!(ready().await.0, reqwest::StatusCode::OK);

    redis.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis.cli(&["CONFIG", "SET", "maxmemory", "1mb"]);
    assert!(
        redis.cli(&["SET", "probe", "x"]).contains("OOM"),
        "the test's Redis must refuse writes now"
    );
    assert!(redis.cli(&["PING"]).contains("PONG"), "yet it answers PING");
    let (status, content_type, body) = ready().await;
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert!(body.contains("OOM"), "the problem names the cause: {body}");

    redis.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    assert_eq!(ready().await.0, reqwest::StatusCode::OK);
}
