//! What comes in from outside, against a real `aviso serve`: configuration refused before
//! anything is made, extra push hosts on their own port only, one subscription per endpoint
//! however it is spelled, CORS on the rate limits' answers, the per-app ceiling, key rotation
//! at once across instances, direct audiences as large as the limit says, metrics described
//! with a route label.

mod support;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use support::http::Fetch;
use support::server::Aviso;

/// A browser subscription at `endpoint`, keys made by the `ece` crate.
fn subscription(endpoint: &str) -> (Value, String) {
    let (key_pair, auth) = ece::generate_keypair_and_auth_secret().unwrap();
    let auth = aviso::push::base64url::encode(&auth);
    let p256dh = aviso::push::base64url::encode(&key_pair.pub_as_raw().unwrap());
    (
        json!({"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}),
        auth,
    )
}

async fn subscribe(client: &Client, aviso: &Aviso, subscription: &Value) -> (StatusCode, Value) {
    let response = aviso
        .post_public(
            client,
            "/subscriptions",
            &json!({ "subscription": subscription }),
        )
        .await;
    (response.status(), response.json().await.unwrap())
}

#[test]
fn a_bad_setting_stops_start_up_before_anything_is_made_or_printed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_aviso"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--vapid-subject",
            "bogus",
        ])
        .arg("--data-dir")
        .arg(&data)
        .env_remove("AVISO_REDIS_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("vapid_subject"), "{stderr}");
    // Before: the default app's key and "listening" were printed, then the process exited 2.
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    assert!(!data.exists(), "no store was created");

    // The file's log_format is obeyed (it was ignored): JSON lines on stderr, no colours.
    let config = dir.path().join("aviso.toml");
    std::fs::write(&config, "log_format = \"json\"\n").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_aviso"))
        .args(["serve", "--listen", "127.0.0.1:0", "--role", "api"])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .env_remove("AVISO_REDIS_URL")
        .env("AVISO_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let first = std::io::BufRead::lines(std::io::BufReader::new(stderr))
        .next()
        .map(Result::unwrap)
        .unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    let line: Value = serde_json::from_str(&first).unwrap_or_else(|_| panic!("not JSON: {first}"));
    assert!(line["fields"]["message"].is_string(), "{first}");
    assert!(
        !first.contains('\u{1b}'),
        "no ANSI colours off a terminal: {first}"
    );
}

#[tokio::test]
async fn an_extra_push_host_is_allowed_on_its_own_port_only() {
    let aviso = Aviso::start(None, &[]);
    let client = Client::new();
    let (allowed, _) = subscription("https://127.0.0.1:9/push/1");
    assert_eq!(
        subscribe(&client, &aviso, &allowed).await.0,
        StatusCode::CREATED
    );
    // Before: any port of an extra host was taken, e.g. the local Redis.
    for endpoint in ["https://127.0.0.1:6379/push/1", "https://127.0.0.1/push/1"] {
        let (other_port, _) = subscription(endpoint);
        let (status, problem) = subscribe(&client, &aviso, &other_port).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{endpoint}");
        assert_eq!(problem["field"], "subscription.endpoint");
    }
}

#[tokio::test]
async fn one_endpoint_spelled_differently_is_one_subscription() {
    let aviso = Aviso::start(None, &[("AVISO_ALLOWED_PUSH_HOSTS", "push.test:443")]);
    let client = Client::new();
    let (first, auth) = subscription("https://push.test/p/1");
    let (status, body) = subscribe(&client, &aviso, &first).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = body["subscription_id"].clone();
    for spelling in [
        "https://PUSH.Test/p/1",
        "https://push.test:443/p/1",
        "https://push.test./p/1",
    ] {
        let mut again = first.clone();
        again["endpoint"] = json!(spelling);
        let (status, body) = subscribe(&client, &aviso, &again).await;
        assert_eq!(
            (status, &body["subscription_id"]),
            (StatusCode::OK, &id),
            "{spelling}"
        );
    }
    // The proof of ownership finds it under any spelling too.
    let response = aviso
        .post_public(
            &client,
            "/subscriptions/unsubscribe",
            &json!({"endpoint": "https://Push.Test.:443/p/1", "auth": auth}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn the_rate_limits_answer_with_cors_headers_and_many_addresses_meet_the_app_ceiling() {
    let aviso = Aviso::start(
        None,
        &[
            ("AVISO_PUBLIC_RATE_LIMIT", "1"),
            ("AVISO_PUBLIC_APP_RATE_LIMIT", "3"),
            ("AVISO_TRUSTED_PROXIES", "127.0.0.0/8"),
        ],
    );
    let client = Client::new();
    let get = |forwarded_for: String| {
        client
            .get(aviso.public("/vapid-public-key"))
            .header("origin", &aviso.base)
            .header("x-forwarded-for", forwarded_for)
            .send()
    };
    // The first 429 among requests from `addresses`.
    let first_limited = async |addresses: Vec<String>| {
        for address in addresses {
            let response = get(address).await.unwrap();
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                return Some(response);
            }
        }
        None
    };
    // One address past its limit: a 429 the page can read (before: no CORS header, so the
    // widget saw "Failed to fetch").
    let limited = first_limited(vec!["198.51.100.1".to_owned(); 6])
        .await
        .expect("the address limit answers 429");
    assert_eq!(
        limited.headers()["access-control-allow-origin"],
        aviso.base.as_str()
    );
    let problem: Value = limited.json().await.unwrap();
    assert_eq!(problem["type"], "https://aviso.dev/problems/rate-limited");

    // Many addresses, one request each: the app's ceiling stops them together.
    let app_limited = first_limited((0..40).map(|n| format!("203.0.113.{n}")).collect())
        .await
        .expect("the app ceiling answers 429");
    assert_eq!(
        app_limited.headers()["access-control-allow-origin"],
        aviso.base.as_str()
    );
    assert_eq!(app_limited.headers()["retry-after"], "1");
    let problem: Value = app_limited.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://aviso.dev/problems/app-rate-limited"
    );

    // A page on another origin gets no CORS header, and a 403 that says why.
    let evil = client
        .get(aviso.public("/vapid-public-key"))
        .header("origin", "https://evil.example")
        .header("x-forwarded-for", "192.0.2.1")
        .sent()
        .await;
    assert!(evil.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_rotated_key_stops_working_at_once_on_every_instance() {
    let redis = support::redis::RedisServer::start();
    let aviso = Aviso::start(Some(&redis.url()), &[]);
    let client = Client::new();
    let list = |key: &str| {
        client
            .get(aviso.url("/v1/notifications"))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(list(&aviso.api_key).await.unwrap().status(), StatusCode::OK);
    // Another process (the CLI) rotates the key in the shared store, with no overlap: the old
    // key is to stop at once.
    let output = support::command::stdout_of(
        std::process::Command::new(env!("CARGO_BIN_EXE_aviso"))
            .args(["apps", "rotate-key", "--json", "--app", &aviso.app_id])
            .args(["--overlap-seconds", "0"])
            .args(["--redis-url", &redis.url()]),
    );
    let rotated: Value = serde_json::from_str(&output).unwrap();
    // Before: the old key stayed valid for up to 5 s (a per-instance cache).
    assert_eq!(
        list(&aviso.api_key).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let new_key = rotated["api_key"].as_str().unwrap();
    assert_eq!(list(new_key).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn a_direct_audience_as_large_as_the_limit_fits_the_body_limit() {
    let aviso = Aviso::start(None, &[]);
    let client = Client::new();
    let create = |audience: Value| {
        client
            .post(aviso.url("/v1/notifications"))
            .bearer_auth(&aviso.api_key)
            .json(&json!({"audience": audience, "content": {"title": "Hi"}}))
    };
    let limit = aviso::notify::model::MAX_DIRECT_RECIPIENTS;
    // Before: the 64 KiB body limit stopped at ~3,400 subscription ids.
    let ids: Vec<String> = (0..limit).map(|n| format!("{n:016x}")).collect();
    let response = create(json!({ "subscription_ids": ids })).sent().await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let longest = aviso::notify::model::MAX_ID_LEN;
    let ids: Vec<String> = (0..limit).map(|n| format!("{n:0>longest$}")).collect();
    let response = create(json!({ "external_ids": ids })).sent().await;
    assert_eq!(response.status(), StatusCode::CREATED);
    // One more id, or one byte more in an id, is refused by name.
    let ids: Vec<String> = (0..=limit).map(|n| format!("{n:016x}")).collect();
    let problem: Value = create(json!({ "subscription_ids": ids })).json_body().await;
    assert_eq!(problem["field"], "audience.subscription_ids");
    let problem: Value = create(json!({ "external_ids": ["x".repeat(longest + 1)] }))
        .json_body()
        .await;
    assert_eq!(problem["field"], "audience.external_ids[0]");
}

#[tokio::test]
async fn metrics_are_described_at_start_and_latency_is_labelled_by_route() {
    let aviso = Aviso::start(None, &[]);
    let client = Client::new();
    let fresh = aviso.metrics(&client).await;
    assert!(
        fresh.contains("# HELP aviso_notifications_created_total"),
        "{fresh}"
    );
    for id in ["aaaa", "bbbb"] {
        let response = client
            .get(aviso.url(&format!("/v1/notifications/{id}")))
            .bearer_auth(&aviso.api_key)
            .sent()
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    let text = aviso.metrics(&client).await;
    assert!(text.contains("# HELP aviso_api_request_seconds"), "{text}");
    assert!(text.contains(r#"route="/v1/notifications/{id}""#), "{text}");
    assert!(!text.contains("aaaa"), "no raw paths in labels");
}

#[tokio::test]
async fn a_send_at_that_panicked_the_old_parser_is_a_400_naming_it() {
    let aviso = Aviso::start(None, &[]);
    let client = Client::new();
    for send_at in [
        "2026-11-22T18:00:00+0é00",
        "2026-02-30T00:00:00Z",
        "2026-11-22T18:00:00+99:99",
    ] {
        let response = client
            .post(aviso.url("/v1/notifications"))
            .bearer_auth(&aviso.api_key)
            .json(&json!({"audience": "all", "send_at": send_at, "content": {"title": "Hi"}}))
            .sent()
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{send_at}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["field"], "send_at");
    }
}
