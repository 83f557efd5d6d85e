//! A/B variants end to end, over real HTTP, on the embedded store and on Redis: 10,000 browsers
//! subscribe through the public API, `aviso serve` sends to a loopback push service that
//! decrypts every message (`ece`), and each decrypted payload is checked against the split as
//! docs/PUBLIC-API.md states it, computed again by Python's `hashlib` (independent of Aviso's
//! code) and by the library. A 50/50 broadcast: each variant a fair share of the audience
//! (`assert_fair_share`), counted apart, each subscriber one push of its variant; receipts
//! counted per variant, a forged variant refused. A winner test (fraction 0.2, clicks posted
//! for variant B only, the server killed and started again before the test ends): the rest
//! get B, once, and the test's members nothing more.

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use aviso::notify::variants::{Split, Winner};
use aviso::store::{Phase, SubscriptionId};
use http::StatusCode;
use serde_json::{Value, json};
use support::http::Fetch;
use support::rig::{Rig, Subscribed};

const SUBSCRIBERS: usize = 10_000;
/// Seconds from the winner test's send to its decision: room for the test's 2,000 pushes, the
/// clicks and a restart on a loaded machine.
const AFTER_SECS: u64 = 40;

/// Asserts that `count` of `SUBSCRIBERS` fits a fair draw with probability `share`: within five
/// standard deviations of the binomial (σ = 50 for a half of 10,000). The split is a hash, so
/// a fair split fails this fewer than once in a million runs (a 3% band, 3σ, failed CI once at
/// 4,810 / 5,190), while a split biased by 3 points or more fails it nearly always.
fn assert_fair_share(count: usize, share: f64, what: &str) {
    let n = SUBSCRIBERS as f64;
    let mean = n * share;
    let sigma = (n * share * (1.0 - share)).sqrt();
    let off = (count as f64 - mean).abs();
    assert!(
        off <= 5.0 * sigma,
        "{what}: {count} of {SUBSCRIBERS}, {off} from {mean} (σ = {sigma:.1}): not a fair split"
    );
}

/// The browsers: browser name at the mock → subscription id.
type Setup = Subscribed<HashMap<String, String>>;

async fn setup(redis: bool) -> Setup {
    // 10,000 subscriptions and the receipts from one address.
    let rig = Rig::start(
        redis,
        &[
            ("AVISO_PUBLIC_RATE_LIMIT", "1000000"),
            ("AVISO_PUBLIC_APP_RATE_LIMIT", "1000000"),
        ],
    )
    .await;
    let ids = rig.subscribe_plain(SUBSCRIBERS, 100).await;
    Setup { rig, browsers: ids }
}

/// Each subscription's place in a notification's split, computed by Python's `hashlib` from
/// the rule docs/PUBLIC-API.md states: `(in the test, variant by weight)`.
fn python_split(
    notification_id: &str,
    weights: &[u32],
    fraction: Option<f64>,
    subscription_ids: &[&str],
) -> HashMap<String, (bool, usize)> {
    let script = r#"
import hashlib, json, sys
spec = json.load(sys.stdin)
cumulative, total = [], 0
for w in spec["weights"]:
    total += w
    cumulative.append(total)
below = None if spec["fraction"] is None else int(spec["fraction"] * 2.0**64)
out = {}
for sid in spec["ids"]:
    d = hashlib.sha256(spec["n"].encode() + b"\0" + int(sid, 16).to_bytes(8, "big")).digest()
    test, pick = int.from_bytes(d[:8], "big"), int.from_bytes(d[8:16], "big")
    point = (pick * total) >> 64
    variant = next(i for i, end in enumerate(cumulative) if end > point)
    out[sid] = [below is None or test < below, variant]
print(json.dumps(out))
"#;
    let spec = json!({"n": notification_id, "weights": weights, "fraction": fraction, "ids": subscription_ids});
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 computes the split");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(spec.to_string().as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let parsed: HashMap<String, (bool, usize)> = serde_json::from_slice(&output.stdout).unwrap();
    parsed
}

/// The receipt token of a variant's push, by Python's `hmac`: HMAC-SHA256(receipt secret,
/// NOTIFICATION NUL SUBSCRIPTION NUL VARIANT), 16 bytes, base64url.
fn python_variant_token(
    secret: &[u8],
    notification_id: &str,
    subscription: &str,
    v: usize,
) -> String {
    support::server::python_token(secret, &[notification_id, subscription, &v.to_string()])
}

async fn view(setup: &Setup, id: &str) -> Value {
    setup
        .aviso
        .notification(&setup.client, &setup.aviso.api_key, id)
        .await
}

/// Waits (bounded) until `delivered` reaches `expected`; the view then.
async fn delivered(setup: &Setup, id: &str, expected: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let view = view(setup, id).await;
        if view["counters"]["delivered"].as_i64().unwrap_or(0) >= expected {
            return view;
        }
        assert!(Instant::now() < deadline, "not delivered in time: {view}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every browser's decrypted payloads of notification `id`.
fn payloads_of(setup: &Setup, id: &str) -> HashMap<String, Vec<Value>> {
    assert_eq!(setup.service.stats().verification_failures, 0);
    setup
        .browsers
        .keys()
        .map(|name| {
            let payloads = setup
                .service
                .deliveries(name)
                .into_iter()
                .map(|d| serde_json::from_slice::<Value>(&d.plaintext.expect("decrypted")).unwrap())
                .filter(|p| p["notification"]["data"]["aviso"]["n"] == id)
                .collect();
            (name.clone(), payloads)
        })
        .collect()
}

async fn post_event(setup: &Setup, event: Value) -> reqwest::StatusCode {
    setup
        .client
        .post(setup.aviso.public("/events"))
        .json(&event)
        .sent()
        .await
        .status()
}

async fn fifty_fifty_then_a_winner(mut setup: Setup) {
    // 1. 50/50: two contents, one push each, the split as documented.
    let id = setup
        .create_notification_id(&json!({"audience": "all", "ttl": 600, "variants": [
            {"weight": 1, "content": {"title": "Variant A", "body": "a"}},
            {"weight": 1, "content": {"title": "Variant B", "body": "b", "url": "https://shop.example/b"}},
        ]}),
    )
    .await;
    let done = delivered(&setup, &id, SUBSCRIBERS as i64).await;
    let counters = &done["counters"];
    let (a, b) = (
        counters["variants.0.delivered"].as_i64().unwrap(),
        counters["variants.1.delivered"].as_i64().unwrap(),
    );
    eprintln!("50/50: variant A {a}, variant B {b} of {SUBSCRIBERS}");
    assert_eq!(a + b, SUBSCRIBERS as i64, "{counters}");
    assert_eq!(counters["delivered"], SUBSCRIBERS as i64, "{counters}");
    assert_fair_share(a as usize, 0.5, "variant A");
    assert_eq!(done["ab"]["variants"][0]["delivered"], a, "{done}");
    assert_eq!(done["ab"]["variants"][1]["delivered"], b, "{done}");
    assert!(done["ab"].get("test").is_none(), "{done}");

    let sids: Vec<&str> = setup.browsers.values().map(String::as_str).collect();
    let python = python_split(&id, &[1, 1], None, &sids);
    let library = Split::new(&id, &[1, 1], None);
    let again = Split::new(&id, &[1, 1], None);
    let payloads = payloads_of(&setup, &id);
    let mut seen = [0i64; 2];
    for (name, sid) in &setup.browsers {
        let got = &payloads[name];
        assert_eq!(got.len(), 1, "{name} must get exactly one push");
        let payload = &got[0];
        let variant = payload["notification"]["data"]["aviso"]["v"]
            .as_u64()
            .expect("aviso.v") as usize;
        let (_, expected) = python[sid.as_str()];
        let parsed = SubscriptionId(u64::from_str_radix(sid, 16).unwrap());
        assert_eq!(
            variant, expected,
            "{name}: the engine's variant is the documented split's"
        );
        assert_eq!(library.variant_of(parsed), expected);
        assert_eq!(again.variant_of(parsed), expected, "the split is stable");
        let title = ["Variant A", "Variant B"][variant];
        assert_eq!(payload["notification"]["title"], title, "{payload}");
        seen[variant] += 1;
    }
    assert_eq!(seen, [a, b], "counted apart, as delivered");

    // Receipts: the payload's token covers its variant. Python's HMAC agrees; a receipt that
    // names the other variant, or none, is refused and not counted.
    let (name_b, sid_b) = setup
        .browsers
        .iter()
        .find(|(name, _)| payloads[*name][0]["notification"]["data"]["aviso"]["v"] == 1)
        .map(|(n, s)| (n.clone(), s.clone()))
        .unwrap();
    let token = payloads[&name_b][0]["notification"]["data"]["aviso"]["t"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        token,
        python_variant_token(&setup.aviso.receipt_secret, &id, &sid_b, 1)
    );
    for forged in [json!(0), json!(4), Value::Null] {
        let event = json!({"notification_id": id, "subscription_id": sid_b, "type": "shown", "token": token, "variant": forged});
        assert_eq!(
            post_event(&setup, event).await,
            StatusCode::FORBIDDEN,
            "variant {forged}"
        );
    }
    for _ in 0..2 {
        let event = json!({"notification_id": id, "subscription_id": sid_b, "type": "clicked", "token": token, "variant": 1});
        assert_eq!(post_event(&setup, event).await, StatusCode::NO_CONTENT);
    }
    let after = view(&setup, &id).await;
    assert_eq!(after["counters"]["variants.1.clicked"], 1, "{after}");
    assert_eq!(after["counters"]["clicked"], 1, "{after}");
    assert!(
        after["counters"].get("variants.0.clicked").is_none(),
        "{after}"
    );
    assert!(after["counters"].get("shown").is_none(), "{after}");
    assert_eq!(after["ab"]["variants"][1]["clicked"], 1, "{after}");

    // 2. A winner test: 20% get A or B; clicks come for B only; the server is killed and
    // started again before the test ends; then the rest get B, once.
    let test = Winner {
        fraction: 0.2,
        metric: aviso::notify::variants::Metric::Clicked,
        after_secs: AFTER_SECS,
    };
    let id = setup
        .create_notification_id(&json!({"audience": "all", "ttl": 600, "variants": [
            {"weight": 1, "content": {"title": "Test A"}},
            {"weight": 1, "content": {"title": "Test B"}},
        ], "winner": {"fraction": test.fraction, "metric": "clicked", "after_secs": AFTER_SECS}}))
        .await;
    let python = python_split(&id, &[1, 1], Some(test.fraction), &sids);
    let library = Split::new(&id, &[1, 1], Some(&test));
    let members: Vec<&String> = setup
        .browsers
        .values()
        .filter(|sid| python[sid.as_str()].0)
        .collect();
    assert_fair_share(members.len(), test.fraction, "members of the test");
    for sid in setup.browsers.values() {
        let parsed = SubscriptionId(u64::from_str_radix(sid, 16).unwrap());
        let (in_test, variant) = python[sid.as_str()];
        assert_eq!(library.in_test(parsed), in_test);
        let expected = in_test.then_some(variant);
        assert_eq!(library.pick(Phase::Test, None, parsed), expected);
    }
    let tested = delivered(&setup, &id, members.len() as i64).await;
    assert_eq!(tested["ab"]["test"]["state"], "testing", "{tested}");
    let payloads = payloads_of(&setup, &id);
    let mut clicks = 0;
    for (name, sid) in &setup.browsers {
        let (in_test, variant) = python[sid.as_str()];
        let got = &payloads[name];
        assert_eq!(got.len(), usize::from(in_test), "{name}: test members only");
        let Some(payload) = got.first() else { continue };
        assert_eq!(
            payload["notification"]["data"]["aviso"]["v"],
            variant as u64
        );
        assert_eq!(
            payload["notification"]["title"],
            ["Test A", "Test B"][variant]
        );
        if variant == 1 {
            let event = json!({"notification_id": id, "subscription_id": sid, "type": "clicked",
                "token": payload["notification"]["data"]["aviso"]["t"], "variant": 1});
            assert_eq!(post_event(&setup, event).await, StatusCode::NO_CONTENT);
            clicks += 1;
        }
    }
    let before = view(&setup, &id).await;
    assert_eq!(before["counters"]["variants.1.clicked"], clicks, "{before}");
    assert_eq!(
        before["ab"]["test"]["state"], "testing",
        "the test must still run when the clicks are in (raise AFTER_SECS on a slow machine): {before}"
    );
    let decides_at = before["ab"]["test"]["decides_at_ms"].as_u64().unwrap();
    eprintln!(
        "winner test: {} in the test, {clicks} clicks posted for B, {} ms left before the decision",
        members.len(),
        decides_at.saturating_sub(aviso::store::now_ms())
    );

    // kill -9 and start again: the follow-up waits in the store.
    setup.rig = setup.rig.restarted();

    let done = delivered(&setup, &id, SUBSCRIBERS as i64).await;
    assert!(aviso::store::now_ms() >= decides_at);
    assert_eq!(done["ab"]["test"]["state"], "decided", "{done}");
    assert_eq!(done["ab"]["test"]["winner"], 1, "{done}");
    assert_eq!(done["counters"]["winner.1"], 1, "{done}");
    assert_eq!(done["counters"]["delivered"], SUBSCRIBERS as i64, "{done}");
    let payloads = payloads_of(&setup, &id);
    let mut rest = 0;
    for (name, sid) in &setup.browsers {
        let (in_test, variant) = python[sid.as_str()];
        let got = &payloads[name];
        assert_eq!(
            got.len(),
            1,
            "{name} must get exactly one push of the winner test"
        );
        let parsed = SubscriptionId(u64::from_str_radix(sid, 16).unwrap());
        if in_test {
            assert_eq!(
                got[0]["notification"]["data"]["aviso"]["v"], variant as u64,
                "{name}: nothing more"
            );
        } else {
            assert_eq!(
                got[0]["notification"]["data"]["aviso"]["v"], 1,
                "{name}: the winner"
            );
            assert_eq!(got[0]["notification"]["title"], "Test B");
            assert_eq!(library.pick(Phase::Rest, Some(1), parsed), Some(1));
            rest += 1;
        }
    }
    eprintln!(
        "winner test: the rest, {rest}, got B; counters {}",
        done["counters"]
    );
    assert_eq!(rest, SUBSCRIBERS - members.len());
    let test_a = members.iter().filter(|s| python[s.as_str()].1 == 0).count() as i64;
    assert_eq!(done["counters"]["variants.0.delivered"], test_a, "{done}");
    assert_eq!(
        done["counters"]["variants.1.delivered"],
        SUBSCRIBERS as i64 - test_a,
        "{done}"
    );
    // Nothing else arrives later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let total: usize = payloads_of(&setup, &id).values().map(Vec::len).sum();
    assert_eq!(total, SUBSCRIBERS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_fifty_fifty_then_a_winner() {
    fifty_fifty_then_a_winner(setup(false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_fifty_fifty_then_a_winner() {
    fifty_fifty_then_a_winner(setup(true).await).await;
}
