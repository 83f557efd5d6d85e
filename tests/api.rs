//! The HTTP API over real HTTP, against a running `aviso serve` on each store backend: every
//! endpoint, and every kind of bad input answered with a 4xx problem that says what to fix.

#[macro_use]
mod support;

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use support::http::Fetch;
use support::server::Aviso;

struct Browser {
    subscription: Value,
    endpoint: String,
    auth: String,
}

/// A subscription whose keys were made by an independent implementation.
fn browser(n: usize) -> Browser {
    let (key_pair, auth) = ece::generate_keypair_and_auth_secret().unwrap();
    let endpoint = format!("https://127.0.0.1:9/push/{n}");
    let auth = aviso::push::base64url::encode(&auth);
    let subscription = json!({
        "endpoint": endpoint,
        "expirationTime": null,
        "keys": {"p256dh": aviso::push::base64url::encode(&key_pair.pub_as_raw().unwrap()), "auth": auth},
    });
    Browser {
        subscription,
        endpoint,
        auth,
    }
}

async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["detail"].as_str().is_some_and(|d| d.len() > 10),
        "{body}"
    );
    body
}

/// Asserts the problem document's detail mentions `words`.
fn assert_detail_mentions(body: &Value, words: &str) {
    assert!(body["detail"].as_str().unwrap().contains(words), "{body}");
}

/// POSTs `body` to the app's public `path` (as a browser does): a problem of `status`.
async fn public_problem(
    aviso: &Aviso,
    client: &Client,
    path: &str,
    body: &Value,
    status: StatusCode,
) -> Value {
    problem(aviso.post_public(client, path, body).await, status).await
}

fn identity_hash(aviso: &Aviso, external_id: &str) -> String {
    aviso::apps::identity_hash(&aviso.identity_secret, external_id)
}

async fn subscribe(
    client: &Client,
    aviso: &Aviso,
    browser: &Browser,
    extra: Value,
) -> (StatusCode, String) {
    let mut body = json!({"subscription": browser.subscription, "locale": "pt-BR", "timezone": "Europe/Lisbon"});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let response = aviso.post_public(client, "/subscriptions", &body).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["subscription_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

pub async fn public_endpoints(aviso: Aviso) {
    let client = Client::new();
    let key: Value = client
        .get(aviso.public("/vapid-public-key"))
        .json_body()
        .await;
    assert_eq!(key["vapid_public_key"], aviso.vapid_public_key.as_str());

    let alice = browser(1);
    let (status, id) = subscribe(&client, &aviso, &alice, json!({"tags": {"plan": "pro"}})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(id.len(), 16);
    let (status, again) = subscribe(&client, &aviso, &alice, json!({})).await;
    assert_eq!(
        (status, again.as_str()),
        (StatusCode::OK, id.as_str()),
        "an upsert by endpoint"
    );

    // CORS: the app's origins (here the server's own) get the header; preflight answers.
    let response = client
        .get(aviso.public("/vapid-public-key"))
        .header("origin", &aviso.base)
        .sent()
        .await;
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        aviso.base.as_str()
    );
    let response = client
        .request(reqwest::Method::OPTIONS, aviso.public("/subscriptions"))
        .header("origin", &aviso.base)
        .header("access-control-request-method", "POST")
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        response.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );

    let owned = json!({"endpoint": alice.endpoint, "auth": alice.auth});
    let tags = json!({"endpoint": alice.endpoint, "auth": alice.auth, "tags": {"plan": null, "city": "Porto"}});
    let response = aviso
        .post_public(&client, "/subscriptions/tags", &tags)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let identify = json!({"endpoint": alice.endpoint, "auth": alice.auth, "external_id": "crm-1", "identity_hash": identity_hash(&aviso, "crm-1")});
    let response = aviso
        .post_public(&client, "/subscriptions/identify", &identify)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let profile: Value = client
        .get(aviso.url("/v1/profiles/crm-1"))
        .bearer_auth(&aviso.api_key)
        .json_body()
        .await;
    assert_eq!(profile["subscriptions"][0]["id"], id.as_str());
    assert_eq!(
        profile["subscriptions"][0]["tags"],
        json!({"city": "Porto"})
    );
    assert_eq!(profile["subscriptions"][0]["locale"], "pt-BR");

    // Events count against the notification.
    let created: Value = client
        .post(aviso.url("/v1/notifications"))
        .bearer_auth(&aviso.api_key)
        .json(&json!({"audience": {"subscription_ids": [id]}, "content": {"title": "Hi"}}))
        .json_body()
        .await;
    let notification_id = created["id"].as_str().unwrap();
    // A receipt proves itself with the payload's token (computed here by Python's hmac): a
    // forged one, or one of another subscription, is refused and not counted.
    let token = aviso.receipt_token(notification_id, &id);
    let other = aviso.receipt_token(notification_id, "00000000000000aa");
    for forged in [
        "AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        other,
        token[..21].to_owned(),
    ] {
        let event = json!({"notification_id": notification_id, "subscription_id": id, "type": "shown", "token": forged});
        let refused =
            public_problem(&aviso, &client, "/events", &event, StatusCode::FORBIDDEN).await;
        assert_eq!(refused["field"], "token", "{refused}");
    }
    // Each (notification, subscription, type) counts once; a click counts for its action too.
    for (kind, action) in [
        ("shown", None),
        ("shown", None),
        ("clicked", Some("open")),
        ("clicked", Some("open")),
    ] {
        let event = json!({"notification_id": notification_id, "subscription_id": id, "type": kind, "action": action, "token": token});
        let response = aviso.post_public(&client, "/events", &event).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    let event =
        json!({"notification_id": "nope", "subscription_id": id, "type": "shown", "token": token});
    public_problem(&aviso, &client, "/events", &event, StatusCode::NOT_FOUND).await;
    let view: Value = client
        .get(aviso.url(&format!("/v1/notifications/{notification_id}")))
        .bearer_auth(&aviso.api_key)
        .json_body()
        .await;
    assert_eq!(view["counters"]["shown"], 1, "{view}");
    assert_eq!(view["counters"]["clicked"], 1, "{view}");
    assert_eq!(view["counters"]["clicked.open"], 1, "{view}");
    assert_eq!(view["counters"]["targeted"], 1);

    // The demo page's test push is queued for the default app.
    let response = aviso.post_public(&client, "/demo/test-push", &owned).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    // Unsubscribe needs the auth secret.
    let wrong = json!({"endpoint": alice.endpoint, "auth": browser(2).auth});
    public_problem(
        &aviso,
        &client,
        "/subscriptions/unsubscribe",
        &wrong,
        StatusCode::FORBIDDEN,
    )
    .await;
    let response = aviso
        .post_public(&client, "/subscriptions/unsubscribe", &owned)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    public_problem(
        &aviso,
        &client,
        "/subscriptions/unsubscribe",
        &owned,
        StatusCode::NOT_FOUND,
    )
    .await;
}

pub async fn server_endpoints(aviso: Aviso) {
    let client = Client::new();
    let auth = |request: reqwest::RequestBuilder| request.bearer_auth(&aviso.api_key);
    // GETs `path` with the API key: a problem of `status`.
    let get_problem = |path: &str, status: StatusCode| {
        let request = auth(client.get(aviso.url(path)));
        async move { problem(request.sent().await, status).await }
    };
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            subscribe(&client, &aviso, &browser(10 + n), json!({}))
                .await
                .1,
        );
    }

    let profile: Value = auth(client.put(aviso.url("/v1/profiles/crm-7")))
        .json(&json!({"attributes": {"age": 41, "vip": true, "name": "Ana"}, "tags": {"city": "Porto"}}))
        .json_body().await;
    assert_eq!(
        profile["attributes"],
        json!({"age": 41.0, "vip": true, "name": "Ana"})
    );
    for id in &ids[..2] {
        let response = auth(client.post(aviso.url("/v1/profiles/crm-7/subscriptions")))
            .json(&json!({"subscription_id": id}))
            .sent()
            .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    let profile: Value = auth(client.get(aviso.url("/v1/profiles/crm-7")))
        .json_body()
        .await;
    assert_eq!(profile["subscriptions"].as_array().unwrap().len(), 2);
    get_problem("/v1/profiles/nobody", StatusCode::NOT_FOUND).await;

    // Streaming JSONL import: good lines count, a bad one is reported by number.
    let jsonl = "{\"external_id\": \"a\", \"attributes\": {\"score\": 3}}\n\nnot json\n{\"external_id\": \"b\", \"tags\": {\"x\": \"y\"}}\n";
    let report: Value = auth(client.post(aviso.url("/v1/profile-imports")))
        .body(jsonl)
        .json_body()
        .await;
    assert_eq!(report["imported"], 2);
    assert_eq!(report["failed"], 1);
    assert_eq!(report["errors"][0]["line"], 3);
    // A line of the wrong shape names its field, in our words.
    let report: Value = auth(client.post(aviso.url("/v1/profile-imports")))
        .body("{\"external_id\": \"c\"}\n{\"external_id\": \"d\", \"colour\": 1}\n")
        .json_body()
        .await;
    assert_eq!(report["failed"], 1, "{report}");
    assert_eq!(report["errors"][0]["line"], 2, "{report}");
    assert_eq!(report["errors"][0]["field"], "colour", "{report}");
    let message = report["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("not a field here"), "{report}");
    // An attribute that is none of the kinds a profile keeps; a line that is not JSON.
    let report: Value = auth(client.post(aviso.url("/v1/profile-imports")))
        .body("{\"external_id\": \"e\", \"attributes\": {\"x\": [1]}}\nnope\n")
        .json_body()
        .await;
    assert_eq!(report["errors"][0]["field"], "attributes.x", "{report}");
    let message = report["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("must be a string, a number, or true or false"),
        "{report}"
    );
    assert_eq!(report["errors"][1]["line"], 2, "{report}");
    assert!(report["errors"][1].get("field").is_none(), "{report}");
    let message = report["errors"][1]["message"].as_str().unwrap_or_default();
    assert!(message.contains("the line is not valid JSON"), "{report}");
    let imported: Value = auth(client.get(aviso.url("/v1/profiles/a")))
        .json_body()
        .await;
    assert_eq!(imported["attributes"]["score"], 3.0);

    // Notifications of every audience; one-to-one ones know their targets at once.
    let create = |body: Value| {
        auth(client.post(aviso.url("/v1/notifications")))
            .json(&body)
            .send()
    };
    let content = json!({"title": "Sale", "body": "50% off", "url": "https://shop.example/sale", "icon": "https://shop.example/i.png",
        "actions": [{"action": "open", "title": "Open"}, {"action": "later", "title": "Later", "url": "https://shop.example/later"}],
        "tag": "sale", "require_interaction": true, "data": {"campaign": 7}});
    let all = create(json!({"audience": "all", "content": content, "ttl": 3600, "urgency": "high", "topic": "sale"})).await.unwrap();
    assert_eq!(all.status(), StatusCode::CREATED);
    let all: Value = all.json().await.unwrap();
    assert_eq!(all["status"], "queued");
    let segment = json!({"all": [{"tag": {"key": "city", "value": "Porto"}}, {"attribute": {"key": "age", "op": "gte", "value": 18}}]});
    assert_eq!(
        create(json!({"audience": {"segment": segment}, "content": {"title": "x"}}))
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    let direct: Value = create(json!({"audience": {"external_ids": ["crm-7", "unknown"]}, "content": {"title": "Cart"}, "send_at": "2030-01-01T00:00:00Z"}))
        .await.unwrap().json().await.unwrap();
    assert_eq!(direct["counters"]["targeted"], 2);
    assert_eq!(direct["send_at_ms"], 1_893_456_000_000u64);
    let by_id: Value =
        create(json!({"audience": {"subscription_ids": [ids[2]]}, "content": {"title": "You"}}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(by_id["counters"]["targeted"], 1);

    // A retried create with the same idempotency key returns the first notification.
    let first =
        create(json!({"audience": "all", "content": {"title": "once"}, "idempotency_key": "k-1"}))
            .await
            .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let retry =
        create(json!({"audience": "all", "content": {"title": "once"}, "idempotency_key": "k-1"}))
            .await
            .unwrap();
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(retry.json::<Value>().await.unwrap()["id"], first["id"]);

    let list: Value = auth(client.get(aviso.url("/v1/notifications?limit=2")))
        .json_body()
        .await;
    assert_eq!(list["notifications"].as_array().unwrap().len(), 2);
    assert_eq!(list["notifications"][0]["id"], first["id"], "newest first");
    get_problem("/v1/notifications?limit=0", StatusCode::BAD_REQUEST).await;

    let cancelled: Value = auth(client.post(aviso.url(&format!(
        "/v1/notifications/{}/cancel",
        all["id"].as_str().unwrap()
    ))))
    .json_body()
    .await;
    assert_eq!(cancelled["status"], "cancelled");
    get_problem("/v1/notifications/missing", StatusCode::NOT_FOUND).await;

    // GDPR erasure takes the profile's subscriptions with it.
    let erased: Value = auth(client.delete(aviso.url("/v1/profiles/crm-7")))
        .json_body()
        .await;
    assert_eq!(erased["deleted_subscriptions"], 2);
    get_problem("/v1/profiles/crm-7", StatusCode::NOT_FOUND).await;

    // Operations.
    assert_eq!(
        client.get(aviso.url("/healthz")).sent().await.status(),
        StatusCode::OK
    );
    assert_eq!(
        client
            .get(aviso.url("/readyz"))
            .sent()
            .await
            .text()
            .await
            .unwrap(),
        "ready"
    );
    let metrics = aviso.metrics(&client).await;
    assert!(
        metrics.contains("aviso_notifications_created_total"),
        "{metrics}"
    );
    let openapi: Value = client.get(aviso.url("/openapi.json")).json_body().await;
    assert!(openapi["paths"]["/v1/notifications"]["post"].is_object());
}

pub async fn bad_input_gets_a_problem_that_says_what_to_fix(aviso: Aviso) {
    let client = Client::new();
    let alice = browser(1);
    let post = |path: &str, body: Value| client.post(aviso.public(path)).json(&body).send();

    let bad_json = client
        .post(aviso.public("/subscriptions"))
        .header("content-type", "application/json")
        .body("{\"subscription\": ")
        .sent()
        .await;
    assert_detail_mentions(
        &problem(bad_json, StatusCode::BAD_REQUEST).await,
        "not valid JSON",
    );
    let unknown = post(
        "/subscriptions",
        json!({"subscription": alice.subscription, "colour": "red"}),
    )
    .await
    .unwrap();
    assert_detail_mentions(&problem(unknown, StatusCode::BAD_REQUEST).await, "colour");
    let not_json = client
        .post(aviso.public("/subscriptions"))
        .body("x")
        .sent()
        .await;
    problem(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

    // Alice's subscription with the member at `pointer` set to `value`: refused (400), and
    // the problem document.
    let refused = |pointer: &str, value: &str| {
        let mut changed = alice.subscription.clone();
        *changed.pointer_mut(pointer).unwrap() = json!(value);
        let request = post("/subscriptions", json!({"subscription": changed}));
        async move { problem(request.await.unwrap(), StatusCode::BAD_REQUEST).await }
    };
    let body = refused("/keys/auth", "AAAA").await;
    assert_detail_mentions(&body, "16 bytes");
    // The field is the member at fault, not the whole subscription.
    assert_eq!(body["field"], "subscription.keys.auth");
    let off_curve = format!("BA{}", "A".repeat(85));
    let body = refused("/keys/p256dh", &off_curve).await;
    assert_detail_mentions(&body, "curve");
    assert_eq!(body["field"], "subscription.keys.p256dh");

    let elsewhere = "https://169.254.169.254/latest/meta-data";
    let body = refused("/endpoint", elsewhere).await;
    assert_detail_mentions(&body, "not a known push service");
    let other_port = "https://fcm.googleapis.com:6379/fcm/send/x";
    refused("/endpoint", other_port).await;
    let plain_http = "http://fcm.googleapis.com/fcm/send/x";
    refused("/endpoint", plain_http).await;

    let body = problem(
        post("/subscriptions", json!({"subscription": alice.subscription, "external_id": "crm-1", "identity_hash": "00".repeat(32)})).await.unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_detail_mentions(&body, "identity_hash");
    let body = problem(
        post(
            "/subscriptions",
            json!({"subscription": alice.subscription, "external_id": "crm-1"}),
        )
        .await
        .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["field"], "identity_hash");
    // A malformed hash is refused wherever it is given, with or without an external id
    // (schemathesis found the second accepted).
    for request in [
        json!({"subscription": alice.subscription, "external_id": "crm-1", "identity_hash": "ab*"}),
        json!({"subscription": alice.subscription, "identity_hash": format!("{}*", "0".repeat(64))}),
    ] {
        let body = problem(
            post("/subscriptions", request).await.unwrap(),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(body["field"], "identity_hash");
    }

    let evil = client
        .post(aviso.public("/subscriptions"))
        .header("origin", "https://evil.example")
        .json(&json!({"subscription": alice.subscription}))
        .sent()
        .await;
    assert_detail_mentions(&problem(evil, StatusCode::FORBIDDEN).await, "origin");
    let huge = client
        .post(aviso.public("/subscriptions"))
        .header("content-type", "application/json")
        .body(format!("{{\"x\": \"{}\"}}", "a".repeat(100_000)))
        .sent()
        .await;
    problem(huge, StatusCode::PAYLOAD_TOO_LARGE).await;
    problem(
        client
            .get(aviso.url("/v1/apps/nope/vapid-public-key"))
            .sent()
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // Server endpoints: API key, audience, payload size.
    let create = |key: Option<&str>, body: Value| {
        let request = client.post(aviso.url("/v1/notifications")).json(&body);
        match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
        .send()
    };
    let good = json!({"audience": "all", "content": {"title": "x"}});
    problem(
        create(None, good.clone()).await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(
        create(Some("av_wrong"), good.clone()).await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let key = Some(aviso.api_key.as_str());
    let body = problem(
        create(
            key,
            json!({"audience": {"segment": {"tag": {"key": ""}}}, "content": {"title": "x"}}),
        )
        .await
        .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["field"], "audience.segment");
    problem(
        create(
            key,
            json!({"audience": {"segment": {"regex": "x"}}, "content": {"title": "x"}}),
        )
        .await
        .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let body = problem(
        create(
            key,
            json!({"audience": "all", "content": {"title": "x", "body": "b".repeat(3990)}}),
        )
        .await
        .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_detail_mentions(&body, "3993");
    assert_eq!(body["field"], "content");
    let body = problem(
        create(
            key,
            json!({"audience": "all", "content": {"title": "x"}, "ttl": -5}),
        )
        .await
        .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_detail_mentions(&body, "ttl");
    problem(
        client.get(aviso.url("/nowhere")).sent().await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

backends!(
    public_endpoints,
    server_endpoints,
    bad_input_gets_a_problem_that_says_what_to_fix
);

#[tokio::test]
async fn public_endpoints_are_rate_limited_per_address() {
    let aviso = Aviso::start(None, &[("AVISO_PUBLIC_RATE_LIMIT", "2")]);
    let client = Client::new();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            client
                .get(aviso.public("/vapid-public-key"))
                .sent()
                .await
                .status(),
        );
    }
    assert!(
        statuses.iter().take(4).all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let limited = client.get(aviso.public("/vapid-public-key")).sent().await;
    assert_eq!(limited.headers()["retry-after"], "1");
    problem(limited, StatusCode::TOO_MANY_REQUESTS).await;
    // Server endpoints are not rate limited by address.
    assert_eq!(
        client.get(aviso.url("/healthz")).sent().await.status(),
        StatusCode::OK
    );
}

/// Statuses of `n` public requests claiming to come from `forwarded_for`.
async fn public_statuses(aviso: &Aviso, forwarded_for: &str, n: usize) -> Vec<StatusCode> {
    let client = Client::new();
    let mut statuses = Vec::new();
    for _ in 0..n {
        let response = client
            .get(aviso.public("/vapid-public-key"))
            .header("x-forwarded-for", forwarded_for)
            .sent()
            .await;
        statuses.push(response.status());
    }
    statuses
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let limited = |statuses: &[StatusCode]| statuses.contains(&StatusCode::TOO_MANY_REQUESTS);
    // The test's requests come from 127.0.0.1: a balancer Aviso trusts.
    let behind = Aviso::start(
        None,
        &[
            ("AVISO_PUBLIC_RATE_LIMIT", "2"),
            ("AVISO_TRUSTED_PROXIES", "127.0.0.0/8"),
        ],
    );
    let first = public_statuses(&behind, "198.51.100.1", 8).await;
    assert!(limited(&first), "{first:?}");
    let second = public_statuses(&behind, "198.51.100.2", 4).await;
    assert!(second.iter().all(|s| *s == StatusCode::OK), "{second:?}");
    // A forged entry to the left of the one the balancer appended changes nothing.
    let forged = public_statuses(&behind, "203.0.113.9, 198.51.100.1", 1).await;
    assert_eq!(forged, [StatusCode::TOO_MANY_REQUESTS]);

    // Without trust, the header is ignored: every "client" shares the peer's bucket.
    let direct = Aviso::start(None, &[("AVISO_PUBLIC_RATE_LIMIT", "2")]);
    let first = public_statuses(&direct, "198.51.100.1", 8).await;
    assert!(limited(&first), "{first:?}");
    let second = public_statuses(&direct, "198.51.100.2", 1).await;
    assert_eq!(second, [StatusCode::TOO_MANY_REQUESTS]);
}

#[test]
fn instances_started_together_on_an_empty_redis_make_one_default_app() {
    let redis = support::redis::RedisServer::start();
    let url = redis.url();
    let instances: Vec<Aviso> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| Aviso::start(Some(&url), &[])))
            .collect();
        starting.into_iter().map(|s| s.join().unwrap()).collect()
    });
    let made: Vec<&str> = instances
        .iter()
        .map(|aviso| aviso.app_id.as_str())
        .filter(|id| !id.is_empty())
        .collect();
    assert_eq!(made.len(), 1, "default apps printed: {made:?}");
}

#[test]
fn bad_configuration_stops_start_up_with_a_clear_message() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_aviso"))
        .args([
            "serve",
            "--public-url",
            "ftp://x",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("public_url"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("aviso.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nlisten_port = 3\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_aviso"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("listen_port"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn apps_commands_create_list_and_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let aviso = |args: &[&str]| {
        support::command::stdout_of(
            std::process::Command::new(env!("CARGO_BIN_EXE_aviso"))
                .args(args)
                .arg("--data-dir")
                .arg(dir.path())
                .env_remove("AVISO_REDIS_URL"),
        )
    };
    let created: Value = serde_json::from_str(&aviso(&[
        "apps",
        "create",
        "--name",
        "Shop",
        "--origin",
        "https://shop.example/",
        "--json",
    ]))
    .unwrap();
    for field in ["app_id", "api_key", "vapid_public_key", "identity_secret"] {
        assert!(
            created[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}"
        );
    }
    let listed = aviso(&["apps", "list", "--json"]);
    let listed: Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(listed["origins"], json!(["https://shop.example"]));
    assert!(
        !listed
            .to_string()
            .contains(created["api_key"].as_str().unwrap()),
        "keys are never shown again"
    );
    let rotated: Value = serde_json::from_str(&aviso(&[
        "apps",
        "rotate-key",
        "--app",
        created["app_id"].as_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_ne!(rotated["api_key"], created["api_key"]);
}
