//! A notification's life end to end, over real HTTP against `aviso serve` and the loopback mock
//! push service, on the embedded store and on Redis: a broadcast through 410s, 503s and 429s
//! ends `completed` with its time, its counters account for everyone it targeted, its series
//! sums to its counters, and a cancel after completion is refused with a 409; a segment and
//! named recipients (one unsubscribed before its time) account the same way; a scheduled one
//! stays `queued` until cancelled, and a second cancel answers the first's time.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{Value, json};
use support::http::Fetch;
use support::rig::{Rig, Subscribed};

const SUBSCRIBERS: usize = 1000;

/// The browsers: browser name → (subscription id, its subscription JSON).
type Setup = Subscribed<HashMap<String, (String, Value)>>;

/// Every even browser is tagged `half: yes`.
async fn setup(redis: bool) -> Setup {
    let rig = Rig::start(redis, &[]).await;
    let browsers = rig
        .subscribe(SUBSCRIBERS, 50, |n, subscription| {
            let tags = if n.is_multiple_of(2) {
                json!({"half": "yes"})
            } else {
                json!({})
            };
            json!({"subscription": subscription, "tags": tags})
        })
        .await;
    Setup { rig, browsers }
}

impl Setup {
    async fn get(&self, path: &str) -> Value {
        let response = self
            .client
            .get(self.aviso.url(path))
            .bearer_auth(&self.aviso.api_key)
            .sent()
            .await;
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{path}");
        response.json().await.unwrap()
    }

    async fn cancel(&self, id: &str) -> reqwest::Response {
        self.client
            .post(self.aviso.url(&format!("/v1/notifications/{id}/cancel")))
            .bearer_auth(&self.aviso.api_key)
            .sent()
            .await
    }

    /// Waits (bounded) until the notification is `completed`; its view then.
    async fn completed(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let view = self.get(&format!("/v1/notifications/{id}")).await;
            match view["status"].as_str().unwrap() {
                "completed" => return view,
                "queued" | "sending" => {}
                other => panic!("{other}: {view}"),
            }
            assert!(Instant::now() < deadline, "not completed in time: {view}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Whether the mock answers 410 for this browser, with its behaviour as it is now.
    fn gone(&self, name: &str) -> bool {
        self.service.is_gone(name)
    }
}

fn number(view: &Value, field: &str) -> i64 {
    view[field]
        .as_i64()
        .unwrap_or_else(|| panic!("no {field} in {view}"))
}

/// The view's counters as a map, and the identity: everyone targeted has exactly one final
/// outcome, recomputed here from the counters (not only read from `accounting`).
fn accounted(view: &Value) -> BTreeMap<String, i64> {
    let counters: BTreeMap<String, i64> = serde_json::from_value(view["counters"].clone()).unwrap();
    let targeted = counters["targeted"];
    let finals: i64 = counters
        .iter()
        // The test's own list of final outcomes, not the library's: the identity is checked
        // against what the API documents, independently of the code that counts.
        .filter(|(name, _)| {
            name.starts_with("failed.")
                || [
                    "delivered",
                    "expired",
                    "capped",
                    "dropped_quiet_hours",
                    "skipped_stale",
                    "missing",
                    "left_segment",
                ]
                .contains(&name.as_str())
        })
        .map(|(_, n)| *n)
        .sum();
    assert_eq!(targeted, finals, "the identity: {counters:?}");
    let accounting = &view["accounting"];
    assert_eq!(
        (
            number(accounting, "targeted"),
            number(accounting, "settled"),
            number(accounting, "outstanding")
        ),
        (targeted, finals, 0),
        "{view}"
    );
    counters
}

/// The completion's times are in order, and the series sums to the counters it holds (every
/// delivery counter: all but `targeted` when named recipients set it at creation).
async fn check_times_and_series(setup: &Setup, view: &Value, counters: &BTreeMap<String, i64>) {
    let id = view["id"].as_str().unwrap();
    let created = number(view, "created_at_ms");
    let sending = number(view, "sending_at_ms");
    let completed = number(view, "completed_at_ms");
    assert!(created <= sending && sending <= completed, "{view}");
    assert!(view.get("cancelled_at_ms").is_none(), "{view}");

    let series = setup.get(&format!("/v1/notifications/{id}/series")).await;
    let send_at = number(&series, "send_at_ms");
    assert_eq!(send_at, number(view, "send_at_ms"));
    let points = series["points"].as_array().unwrap();
    assert!(!points.is_empty(), "{series}");
    let mut summed: BTreeMap<String, i64> = BTreeMap::new();
    let mut last = 0;
    for point in points {
        let at = number(point, "at_ms");
        assert!(at >= send_at && at > last, "in time order: {series}");
        assert_eq!((at - send_at) % 60_000, 0, "aligned to send_at: {series}");
        assert_eq!(number(point, "width_s"), 60, "a minute, in the first hours");
        last = at;
        for (counter, n) in point["counters"].as_object().unwrap() {
            *summed.entry(counter.clone()).or_default() += n.as_i64().unwrap();
        }
    }
    for counter in ["sent", "delivered"] {
        assert!(summed.contains_key(counter), "{counter} in {series}");
    }
    for (counter, total) in &summed {
        assert_eq!(counters.get(counter), Some(total), "{counter}: {series}");
    }
    let in_series_or_set_at_creation = counters
        .keys()
        .all(|counter| summed.contains_key(counter) || counter == "targeted");
    assert!(in_series_or_set_at_creation, "{counters:?} vs {summed:?}");
}

/// A cancel after completion: 409 problem+json naming `id`, and nothing changes.
async fn check_cancel_refused(setup: &Setup, view: &Value) {
    let id = view["id"].as_str().unwrap();
    let refused = setup.cancel(id).await;
    assert_eq!(refused.status(), reqwest::StatusCode::CONFLICT);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["field"], "id", "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("completed"),
        "{problem}"
    );
    let after = setup.get(&format!("/v1/notifications/{id}")).await;
    assert_eq!(after["status"], "completed");
    assert_eq!(after["completed_at_ms"], view["completed_at_ms"]);
    assert!(after.get("cancelled_at_ms").is_none(), "{after}");
}

async fn a_notifications_life(redis: bool) {
    let setup = setup(redis).await;
    // 10% of the endpoints gone (410), bursts of 503 and some 429 with Retry-After: retried.
    setup.make_unreliable(0.005);
    // By name, as the mock chose them: it forgets once its behaviour changes.
    let gone_ones: std::collections::HashSet<String> = setup
        .browsers
        .keys()
        .filter(|name| setup.gone(name))
        .cloned()
        .collect();
    let is_gone = |name: &str| gone_ones.contains(name);
    let gone = gone_ones.len();
    assert!((50..=150).contains(&gone), "{gone} gone");

    let created = setup
        .create_notification(&json!({"audience": "all", "content": {"title": "Sale"}, "ttl": 600}))
        .await;
    assert_eq!(created["status"], "queued");
    assert!(created.get("completed_at_ms").is_none(), "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let view = setup.completed(&id).await;
    let counters = accounted(&view);
    assert_eq!(counters["targeted"], SUBSCRIBERS as i64, "{counters:?}");
    assert_eq!(counters["expired"], gone as i64, "{counters:?}");
    assert_eq!(
        counters["delivered"],
        (SUBSCRIBERS - gone) as i64,
        "{counters:?}"
    );
    assert!(setup.service.count_for(StatusCode::TOO_MANY_REQUESTS) >= 2);
    assert!(setup.service.count_for(StatusCode::SERVICE_UNAVAILABLE) >= 50);
    check_times_and_series(&setup, &view, &counters).await;
    check_cancel_refused(&setup, &view).await;
    let series = setup.get(&format!("/v1/notifications/{id}/series")).await;
    println!(
        "{} store: broadcast to {SUBSCRIBERS}, {gone} gone, {} answered 429 and {} 503: completed {} ms after it began sending; counters {counters:?}; accounting {}; {} series points",
        if redis { "Redis" } else { "embedded" },
        setup.service.count_for(StatusCode::TOO_MANY_REQUESTS),
        setup.service.count_for(StatusCode::SERVICE_UNAVAILABLE),
        number(&view, "completed_at_ms") - number(&view, "sending_at_ms"),
        view["accounting"],
        series["points"].as_array().unwrap().len(),
    );
    let listed = setup.get("/v1/notifications").await;
    let item = listed["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(item["status"], "completed");
    assert_eq!(item["completed_at_ms"], view["completed_at_ms"]);

    // A segment: targeted counted as its shards are read, the gone ones deleted before.
    setup
        .service
        .update_behaviour(|behaviour| behaviour.gone_fraction = 0.0)
        .unwrap();
    let half = setup
        .browsers
        .keys()
        .filter(|name| name[1..].parse::<usize>().unwrap().is_multiple_of(2) && !is_gone(name))
        .count();
    let segment = setup
        .create_notification(&json!({"audience": {"segment": {"tag": {"key": "half", "value": "yes"}}}, "content": {"title": "Half"}}))
        .await;
    let view = setup.completed(segment["id"].as_str().unwrap()).await;
    let counters = accounted(&view);
    assert_eq!(counters["targeted"], half as i64, "{counters:?}");
    assert_eq!(counters["delivered"], half as i64, "{counters:?}");
    check_times_and_series(&setup, &view, &counters).await;
    check_cancel_refused(&setup, &view).await;

    // Named recipients, due in a moment: queued until then; one unsubscribes meanwhile and is
    // `missing` when its time comes.
    let live: Vec<&String> = setup
        .browsers
        .keys()
        .filter(|name| !is_gone(name))
        .take(3)
        .collect();
    let ids: Vec<&str> = live
        .iter()
        .map(|name| setup.browsers[*name].0.as_str())
        .collect();
    let send_at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3);
    let direct = setup
        .create_notification(&json!({"audience": {"subscription_ids": ids}, "content": {"title": "You"}, "send_at": send_at.to_string()}))
        .await;
    assert_eq!(direct["counters"]["targeted"], 3);
    let direct_id = direct["id"].as_str().unwrap();
    let waiting = setup.get(&format!("/v1/notifications/{direct_id}")).await;
    assert_eq!(waiting["status"], "queued", "{waiting}");
    assert!(waiting.get("sending_at_ms").is_none(), "{waiting}");
    let leaving = &setup.browsers[live[0]].1;
    let unsubscribed = setup
        .client
        .post(setup.aviso.public("/subscriptions/unsubscribe"))
        .json(&json!({"endpoint": leaving["endpoint"], "auth": leaving["keys"]["auth"]}))
        .sent()
        .await;
    assert_eq!(unsubscribed.status(), reqwest::StatusCode::NO_CONTENT);
    let view = setup.completed(direct_id).await;
    let counters = accounted(&view);
    assert_eq!(
        (counters["missing"], counters["delivered"]),
        (1, 2),
        "{counters:?}"
    );
    assert!(number(&view, "sending_at_ms") >= number(&view, "send_at_ms"));
    check_times_and_series(&setup, &view, &counters).await;
    check_cancel_refused(&setup, &view).await;

    // Scheduled for later: queued; cancelled with its time; a second cancel answers that time.
    let later = setup
        .create_notification(&json!({"audience": "all", "content": {"title": "Later"}, "send_at": "2030-01-01T00:00:00Z"}))
        .await;
    let later_id = later["id"].as_str().unwrap();
    let waiting = setup.get(&format!("/v1/notifications/{later_id}")).await;
    assert_eq!(waiting["status"], "queued");
    let first = setup.cancel(later_id).await;
    assert_eq!(first.status(), reqwest::StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["status"], "cancelled");
    let cancelled_at = number(&first, "cancelled_at_ms");
    let again = setup.cancel(later_id).await;
    assert_eq!(again.status(), reqwest::StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(number(&again, "cancelled_at_ms"), cancelled_at);
    assert!(again.get("completed_at_ms").is_none(), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_notifications_life() {
    a_notifications_life(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_notifications_life() {
    a_notifications_life(true).await;
}
