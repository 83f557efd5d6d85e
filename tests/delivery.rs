//! The delivery engine end to end, over real HTTP: browsers subscribe through the public API, a
//! broadcast is created through the server API, `aviso serve` delivers it to a loopback push
//! service that decrypts every message and verifies every VAPID JWT with independent code.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http::StatusCode;
use reqwest::Client;
use serde_json::{Value, json};
use support::http::Fetch;
use support::push_service::{self, MockConfig, MockExt};
use support::rig::{Rig, Subscribed};
use support::server::Aviso;
use support::wait::poll_until;

const SUBSCRIBERS: usize = 2000;

/// The browsers: browser name at the mock → subscription id.
type Setup = Subscribed<HashMap<String, String>>;

async fn setup(redis: bool) -> Setup {
    let rig = Rig::start(redis, &[]).await;
    let ids = rig.subscribe_plain(SUBSCRIBERS, 50).await;
    Setup { rig, browsers: ids }
}

async fn broadcast(setup: &Setup) -> String {
    setup
        .create_notification_id(&json!({"audience": "all", "content": {"title": "Sale", "body": "Today only", "url": "https://shop.example/sale"}, "ttl": 600, "urgency": "high", "topic": "sale"}))
        .await
}

/// Waits (bounded) until the notification's outcomes add up to `expected`.
async fn counters_when_done(setup: &Setup, id: &str, expected: i64) -> Value {
    wait_for_counters(&setup.client, &setup.aviso, id, expected).await
}

async fn wait_for_counters(client: &Client, aviso: &Aviso, id: &str, expected: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let view: Value = client
            .get(aviso.url(&format!("/v1/notifications/{id}")))
            .bearer_auth(&aviso.api_key)
            .json_body()
            .await;
        let counters = view["counters"].clone();
        let finished = ["delivered", "expired"]
            .iter()
            .map(|k| counters[k].as_i64().unwrap_or(0))
            .sum::<i64>();
        if finished >= expected {
            return counters;
        }
        assert!(Instant::now() < deadline, "not done in time: {counters}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every message decrypted (with `ece`) to the notification's payload for its subscriber, its
/// VAPID JWT verified, and everyone but the `skip`ped got it exactly once.
fn check_every_message(setup: &Setup, notification_id: &str, skip: impl Fn(&str) -> bool) {
    let stats = setup.service.stats();
    assert_eq!(stats.verification_failures, 0, "{stats:?}");
    for refused in [
        StatusCode::BAD_REQUEST,
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
    ] {
        assert_eq!(setup.service.count_for(refused), 0, "{stats:?}");
    }
    for (name, subscription_id) in &setup.browsers {
        let deliveries = setup.service.deliveries(name);
        let expected = usize::from(!skip(name));
        assert_eq!(
            deliveries.len(),
            expected,
            "{name} must be delivered {expected} time(s)"
        );
        for delivery in deliveries {
            let plaintext = delivery.plaintext.as_deref().expect("decrypted");
            let payload: Value = serde_json::from_slice(plaintext).unwrap();
            assert_eq!(
                payload["notification"]["data"]["aviso"]["n"],
                notification_id
            );
            assert_eq!(
                payload["notification"]["data"]["aviso"]["s"],
                subscription_id.as_str()
            );
            assert_eq!(payload["notification"]["title"], "Sale");
            assert_eq!(delivery.urgency.as_deref(), Some("high"));
            assert_eq!(delivery.topic.as_deref(), Some("sale"));
        }
    }
}

/// Sends a second broadcast and waits for `expected` deliveries of it.
async fn second_broadcast(setup: &Setup, expected: i64) -> Value {
    let second = broadcast(setup).await;
    counters_when_done(setup, &second, expected).await
}

async fn broadcast_reaches_everyone_exactly_once(redis: bool) {
    let setup = setup(redis).await;
    let id = broadcast(&setup).await;
    let counters = counters_when_done(&setup, &id, SUBSCRIBERS as i64).await;
    assert_eq!(counters["delivered"], SUBSCRIBERS as i64, "{counters}");
    assert_eq!(counters["sent"], SUBSCRIBERS as i64, "{counters}");
    assert!(counters.get("expired").is_none_or(|v| v == 0), "{counters}");
    assert_eq!(setup.service.requests(), SUBSCRIBERS as u64);
    check_every_message(&setup, &id, |_| false);

    // Prometheus: sends by service and outcome, and the request latency as a histogram (which,
    // unlike a summary, adds up across instances).
    let metrics = setup.aviso.metrics(&setup.client).await;
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find(|line| line.starts_with(prefix))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
    };
    let sent = SUBSCRIBERS as f64;
    assert_eq!(
        value("aviso_sends_total{service=\"other\",outcome=\"delivered\"}"),
        sent
    );
    assert_eq!(
        value("aviso_push_request_seconds_count{service=\"other\"}"),
        sent
    );
    assert_eq!(
        value("aviso_push_request_seconds_bucket{service=\"other\",le=\"+Inf\"}"),
        sent
    );
    assert_eq!(value("aviso_encrypt_seconds_count"), sent);
}

async fn gone_subscribers_are_deleted_and_failures_retried(redis: bool) {
    let setup = setup(redis).await;
    // The mock's own failure modes, every 500th request 429. The 503s are transient per
    // endpoint (at most 3 each): counted in requests, a burst would otherwise hold the
    // broadcast's last message alone, retrying through the burst's ten 503s with its backoff
    // doubling until it is given up (the takeover of its task by another worker, which resent
    // the whole batch, used to hide that; the lease heartbeat now keeps the task with its
    // worker).
    setup.make_unreliable(0.002);
    let gone = |name: &str| setup.service.is_gone(name);
    let gone_count = setup.browsers.keys().filter(|name| gone(name)).count();
    assert!((150..=250).contains(&gone_count), "{gone_count} gone");
    let id = broadcast(&setup).await;
    let counters = counters_when_done(&setup, &id, SUBSCRIBERS as i64).await;
    assert_eq!(counters["expired"], gone_count as i64, "{counters}");
    let remaining = (SUBSCRIBERS - gone_count) as i64;
    assert_eq!(counters["delivered"], remaining, "{counters}");
    assert!(setup.service.count_for(StatusCode::SERVICE_UNAVAILABLE) >= 200);
    assert!(setup.service.count_for(StatusCode::TOO_MANY_REQUESTS) >= 3);
    check_every_message(&setup, &id, gone);
    // Each gone endpoint heard 410 once (after any 503 or 429 before it).
    assert_eq!(setup.service.count_for(StatusCode::GONE), gone_count as u64);
    // The gone subscriptions were deleted: a second broadcast never tries them.
    let requests_to_gone = || -> Vec<u64> {
        let gone_names = setup.browsers.keys().filter(|name| gone(name));
        gone_names
            .map(|name| setup.service.requests_for(name))
            .collect()
    };
    let requests_before = requests_to_gone();
    let counters = second_broadcast(&setup, remaining).await;
    assert_eq!(counters["delivered"], remaining, "{counters}");
    let requests_after = requests_to_gone();
    assert_eq!(
        requests_before, requests_after,
        "a gone subscription got a request after the push service said it was gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broadcast_reaches_everyone_exactly_once() {
    broadcast_reaches_everyone_exactly_once(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_broadcast_reaches_everyone_exactly_once() {
    broadcast_reaches_everyone_exactly_once(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_gone_subscribers_are_deleted_and_failures_retried() {
    gone_subscribers_are_deleted_and_failures_retried(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_gone_subscribers_are_deleted_and_failures_retried() {
    gone_subscribers_are_deleted_and_failures_retried(true).await;
}

/// Issue 5: two instances on one Redis share a 100,000-subscriber broadcast; one is killed
/// (`kill -9`) midway; the other finishes it. Nobody is missed, and duplicates stay within one
/// batch per task the dead instance had in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_a_broadcast_and_survive_a_kill() {
    const N: usize = 100_000;
    const BATCH: usize = 500; // EngineConfig::batch_size in `aviso serve`
    const BULK_WORKERS: usize = 8; // EngineConfig::bulk_workers in `aviso serve`
    // Only counts: 100,000 deliveries' details would be kept for nothing.
    let service = push_service::start(MockConfig::default().record_details(false)).await;
    let ca = tempfile::tempdir().unwrap();
    let ca_path = ca.path().join("ca.pem");
    service.write_ca(&ca_path);
    let redis = support::redis::RedisServer::start();
    let push_host = service.address().to_string();
    let env = [
        ("AVISO_EXTRA_CA_CERTS", ca_path.to_str().unwrap()),
        ("AVISO_TASK_LEASE_SECS", "2"),
        ("AVISO_ALLOWED_PUSH_HOSTS", &push_host),
    ];
    let a = Aviso::start(Some(&redis.url()), &env);
    let mut b = Aviso::start(Some(&redis.url()), &env);
    assert!(
        b.app_id.is_empty(),
        "the second instance shares the first one's app"
    );

    // Seed the store directly: one real key pair serves every subscriber (this test counts, the
    // others decrypt).
    let store = aviso::store::redis::RedisStore::connect(&redis.url())
        .await
        .unwrap();
    let subscriber = service.subscribe("template");
    let keys = aviso::push::PushSubscription::from_json(subscriber.to_string().as_bytes()).unwrap();
    let endpoint = |n: usize| {
        subscriber["endpoint"]
            .as_str()
            .unwrap()
            .replace("template", &format!("s{n}"))
    };
    for chunk in (0..N).collect::<Vec<_>>().chunks(10_000) {
        let subscriptions: Vec<_> = chunk
            .iter()
            .map(|n| {
                aviso::store::Subscription::new(
                    &a.app_id,
                    &endpoint(*n),
                    *keys.keys().p256dh(),
                    *keys.keys().auth(),
                    1,
                )
            })
            .collect();
        aviso::store::SubscriptionStore::insert_subscriptions(&store, &subscriptions)
            .await
            .unwrap();
    }

    let client = Client::new();
    let created: Value = client
        .post(a.url("/v1/notifications"))
        .bearer_auth(&a.api_key)
        .json(&json!({"audience": "all", "content": {"title": "Big sale"}}))
        .json_body()
        .await;
    let id = created["id"].as_str().unwrap().to_owned();

    // Midway, after both instances have sent, kill one.
    let deadline = Instant::now() + Duration::from_secs(300);
    let sent_by = |metrics: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with("aviso_sends_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    loop {
        let received = service.requests() as usize;
        let metrics_b = b.metrics(&client).await;
        let metrics_a = a.metrics(&client).await;
        if received >= N / 3 && sent_by(&metrics_a) > 0.0 && sent_by(&metrics_b) > 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broadcast did not get going: {received} received"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.kill();
    let at_kill = service.requests() as usize;
    assert!(at_kill < N, "killed too late to matter");

    poll_until(deadline, Duration::from_millis(200), || {
        let reached = service.distinct_delivered();
        if reached >= N {
            return Ok(());
        }
        Err(format!("only {reached} of {N} reached after the kill"))
    })
    .await;
    let duplicates = service.stats().duplicate_deliveries as usize;
    assert_eq!(service.distinct_delivered(), N, "nobody missed");
    assert!(
        duplicates <= BATCH * BULK_WORKERS,
        "{duplicates} duplicates: more than one batch per task in flight"
    );
    let counters = wait_for_counters(&client, &a, &id, N as i64).await;
    // Counted once per task position: the resent batches of the killed instance's tasks do not
    // count twice, and none of its batches is lost to a checkpoint that landed before its
    // counters.
    assert_eq!(counters["delivered"], N as i64, "{counters}");
    assert_eq!(counters["sent"], N as i64, "{counters}");
    // The killed instance's tasks, taken over, complete the notification once their last
    // batches are counted: everyone targeted accounted for.
    let view = loop {
        let view = a.notification(&client, &a.api_key, &id).await;
        if view["status"] == "completed" {
            break view;
        }
        assert!(Instant::now() < deadline, "not completed: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(view["accounting"]["targeted"], N, "{view}");
    assert_eq!(view["accounting"]["outstanding"], 0, "{view}");
    eprintln!(
        "killed at {at_kill} received; {duplicates} duplicates; counters {counters}; completed {} ms after it began sending",
        view["completed_at_ms"].as_i64().unwrap() - view["sending_at_ms"].as_i64().unwrap()
    );
}
