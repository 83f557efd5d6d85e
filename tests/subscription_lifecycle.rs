//! A subscription's life over real HTTP against `aviso serve`: who may change its keys, how a
//! renewal (`replaces`) carries its tags and profile link over, and how one that push services
//! keep accepting but that never answers expires after the app's window.

mod support;

use std::time::{Duration, Instant};

use aviso::store::ProfileRef;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use support::http::Fetch;
use support::push_service::{self, MockConfig, MockExt};
use support::server::Aviso;

/// A subscription whose keys were made by an independent implementation (`ece`).
fn keys() -> Value {
    let (key_pair, auth) = ece::generate_keypair_and_auth_secret().unwrap();
    json!({
        "p256dh": aviso::push::base64url::encode(&key_pair.pub_as_raw().unwrap()),
        "auth": aviso::push::base64url::encode(&auth),
    })
}

async fn post(client: &Client, url: String, body: &Value) -> (StatusCode, Value) {
    let response = client.post(url).json(body).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get(client: &Client, aviso: &Aviso, path: &str) -> Value {
    client
        .get(aviso.url(path))
        .bearer_auth(&aviso.api_key)
        .json_body()
        .await
}

#[tokio::test]
async fn new_keys_for_a_subscribed_endpoint_need_the_old_auth() {
    let aviso = Aviso::start(None, &[]);
    let client = Client::new();
    let endpoint = "https://127.0.0.1:9/push/victim";
    let victim = keys();
    let subscribe =
        json!({"subscription": {"endpoint": endpoint, "keys": victim}, "tags": {"plan": "pro"}});
    let (status, body) = post(&client, aviso.public("/subscriptions"), &subscribe).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["subscription_id"].clone();

    // A stranger who knows the endpoint sends keys of their own: refused, saying what to send.
    let stranger = keys();
    let takeover = json!({"subscription": {"endpoint": endpoint, "keys": stranger}});
    let (status, problem) = post(&client, aviso.public("/subscriptions"), &takeover).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["field"], "subscription.keys");
    assert!(
        problem["detail"].as_str().unwrap().contains("replaces"),
        "{problem}"
    );
    // … also spelled differently, and with a made-up proof.
    let spelled = json!({"subscription": {"endpoint": "https://127.0.0.1:9/push/victim", "keys": stranger},
        "replaces": {"endpoint": "https://127.0.0.1:9/push/victim", "auth": stranger["auth"]}});
    let (status, problem) = post(&client, aviso.public("/subscriptions"), &spelled).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("replaces.auth"),
        "{problem}"
    );
    let garbled = json!({"subscription": {"endpoint": endpoint, "keys": stranger},
        "replaces": {"endpoint": endpoint, "auth": "not base64url!!!!!!!!!!"}});
    let (status, problem) = post(&client, aviso.public("/subscriptions"), &garbled).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["field"], "replaces.auth");

    // The victim's keys still hold: its auth still proves ownership, the stranger's does not
    // (`tagged`: the status of a tag change with `auth` as the proof).
    let tagged = |auth: &Value| {
        let body = json!({"endpoint": endpoint, "auth": auth, "tags": {"seen": "yes"}});
        let (client, url) = (&client, aviso.public("/subscriptions/tags"));
        async move { post(client, url, &body).await.0 }
    };
    assert_eq!(tagged(&stranger["auth"]).await, StatusCode::FORBIDDEN);
    assert_eq!(tagged(&victim["auth"]).await, StatusCode::NO_CONTENT);

    // The browser itself changes its keys with its current auth as proof.
    let renewed = keys();
    let rekey = json!({"subscription": {"endpoint": endpoint, "keys": renewed},
        "replaces": {"endpoint": endpoint, "auth": victim["auth"]}});
    let (status, body) = post(&client, aviso.public("/subscriptions"), &rekey).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["subscription_id"], &body["replaced"]),
        (&id, &json!(true))
    );
    assert_eq!(
        tagged(&renewed["auth"]).await,
        StatusCode::NO_CONTENT,
        "the new auth holds now"
    );
    assert_eq!(
        tagged(&victim["auth"]).await,
        StatusCode::FORBIDDEN,
        "and the old one no longer"
    );
}

#[tokio::test]
async fn a_renewal_carries_tags_and_profile_link_over_to_the_new_endpoint() {
    let aviso = Aviso::start(None, &[]);
    let client = Client::new();
    let (old_endpoint, new_endpoint) = (
        "https://127.0.0.1:9/push/old",
        "https://127.0.0.1:9/push/new",
    );
    let old = keys();
    let hash = aviso::apps::identity_hash(&aviso.identity_secret, "ana");
    let subscribe = json!({"subscription": {"endpoint": old_endpoint, "keys": old}, "tags": {"plan": "pro"},
        "external_id": "ana", "identity_hash": hash, "timezone": "Europe/Lisbon"});
    let (status, body) = post(&client, aviso.public("/subscriptions"), &subscribe).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let old_id = body["subscription_id"].clone();

    // What the service worker sends on `pushsubscriptionchange`.
    let renewal = json!({"subscription": {"endpoint": new_endpoint, "keys": keys()},
        "replaces": {"endpoint": old_endpoint, "auth": old["auth"]}});
    let (status, body) = post(&client, aviso.public("/subscriptions"), &renewal).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["replaced"], true);
    let new_id = body["subscription_id"].clone();
    assert_ne!(new_id, old_id);

    let profile = get(&client, &aviso, "/v1/profiles/ana").await;
    let listed = profile["subscriptions"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{profile}");
    assert_eq!(listed[0]["id"], new_id);
    assert_eq!(listed[0]["tags"], json!({"plan": "pro"}));
    assert_eq!(listed[0]["timezone"], "Europe/Lisbon");
    // The old one is gone: its proof no longer finds anything.
    let (status, _) = post(
        &client,
        aviso.public("/subscriptions/unsubscribe"),
        &json!({"endpoint": old_endpoint, "auth": old["auth"]}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The worker's retry: the old one is gone, the new one is kept as it is.
    let (status, body) = post(&client, aviso.public("/subscriptions"), &renewal).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["replaced"], false);
    let profile = get(&client, &aviso, "/v1/profiles/ana").await;
    assert_eq!(profile["subscriptions"][0]["id"], new_id);
}

/// The notification's counters once `ready` holds (bounded wait).
async fn counters_when(
    client: &Client,
    aviso: &Aviso,
    id: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = get(client, aviso, &format!("/v1/notifications/{id}")).await;
        let counters = view["counters"].clone();
        if ready(&counters) {
            return counters;
        }
        assert!(Instant::now() < deadline, "not done in time: {counters}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn broadcast(client: &Client, aviso: &Aviso) -> String {
    let response = client
        .post(aviso.url("/v1/notifications"))
        .bearer_auth(&aviso.api_key)
        .json(&json!({"audience": "all", "content": {"title": "News"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Issue 13, must-show 5: the mock answers 201 to everything, for ever, and two of three
/// browsers never send a receipt. After the app's window (2 s here, set through the admin API)
/// the next broadcast does not send to them: they are deleted and counted `expired_stale`; the
/// browser that answered keeps receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_that_never_answer_expire_after_the_window() {
    for redis in [false, true] {
        let service = push_service::start(MockConfig::default()).await;
        let ca = tempfile::tempdir().unwrap();
        let ca_path = ca.path().join("ca.pem");
        service.write_ca(&ca_path);
        let redis_server = redis.then(support::redis::RedisServer::start);
        let push_host = service.address().to_string();
        let aviso = Aviso::start(
            redis_server.as_ref().map(|r| r.url()).as_deref(),
            &[
                ("AVISO_EXTRA_CA_CERTS", ca_path.to_str().unwrap()),
                ("AVISO_ALLOWED_PUSH_HOSTS", &push_host),
            ],
        );
        let client = Client::new();
        let response = client
            .patch(aviso.url(&format!("/v1/admin/apps/{}", aviso.app_id)))
            .bearer_auth(&aviso.admin_key)
            .json(&json!({"expire_after_secs": 2}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.json::<Value>().await.unwrap()["expire_after_secs"],
            2
        );
        let mut ids = Vec::new();
        for name in ["alive", "dead-1", "dead-2"] {
            let subscription = service.subscribe(name);
            let (status, body) = post(
                &client,
                aviso.public("/subscriptions"),
                &json!({"subscription": subscription}),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            ids.push(body["subscription_id"].as_str().unwrap().to_owned());
        }

        let first = broadcast(&client, &aviso).await;
        counters_when(&client, &aviso, &first, |c| c["delivered"] == 3).await;
        // Only the first browser shows it and says so.
        let (status, _) = post(
            &client,
            aviso.public("/events"),
            &json!({"notification_id": first, "subscription_id": ids[0], "type": "shown", "token": aviso.receipt_token(&first, &ids[0])}),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        tokio::time::sleep(Duration::from_millis(2_500)).await;

        let second = broadcast(&client, &aviso).await;
        let counters = counters_when(&client, &aviso, &second, |c| {
            c["delivered"].as_i64().unwrap_or(0) + c["expired_stale"].as_i64().unwrap_or(0) >= 3
        })
        .await;
        println!("redis: {redis}; second broadcast: {counters}");
        assert_eq!(counters["delivered"], 1, "{counters}");
        assert_eq!(counters["expired_stale"], 2, "{counters}");
        assert_eq!(service.delivered_count("alive"), 2);
        assert_eq!(
            service.delivered_count("dead-1"),
            1,
            "not sent to once stale"
        );
        assert_eq!(service.delivered_count("dead-2"), 1);
        for (id, kept) in [(&ids[0], true), (&ids[1], false), (&ids[2], false)] {
            let response = client
                .post(aviso.url("/v1/notifications"))
                .bearer_auth(&aviso.api_key)
                .json(&json!({"audience": {"subscription_ids": [id]}, "content": {"title": "Hi"}}))
                .send()
                .await
                .unwrap();
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                body["counters"]["targeted"],
                if kept { 1 } else { 0 },
                "{id}: {body}"
            );
        }
    }
}

/// Subscriptions stored before endpoints were canonicalised, as such a store held them: one
/// spelled with an uppercase host and `:443` (tagged, linked), and one with a trailing dot whose
/// browser has since subscribed again under the canonical spelling with new keys.
async fn store_old_spellings(store: &dyn aviso::store::Store) -> [aviso::store::Subscription; 3] {
    use aviso::store::Subscription;
    let mut upper = Subscription::new("m", "https://PUSH.Test:443/p/1", [4; 65], [1; 16], 100);
    upper.tags.insert("plan".into(), "pro".into());
    let dotted = Subscription::new("m", "https://push.test./p/2", [4; 65], [2; 16], 100);
    let mut current = Subscription::new("m", "https://push.test/p/2", [5; 65], [3; 16], 200);
    current.tags.insert("seen".into(), "again".into());
    store
        .put_app(&aviso::store::App {
            id: "m".into(),
            name: "M".into(),
            origins: Vec::new(),
            vapid_private_key: vec![1; 32],
            identity_secret: vec![2; 32],
            receipt_secret: vec![3; 32],
            api_keys: Vec::new(),
            created_at: 1,
            demo: false,
            expire_after_secs: 0,
        })
        .await
        .unwrap();
    store
        .insert_subscriptions(&[upper.clone(), dotted.clone(), current.clone()])
        .await
        .unwrap();
    store
        .link_subscription(ProfileRef::new("m", "ana"), upper.id)
        .await
        .unwrap();
    store
        .link_subscription(ProfileRef::new("m", "bo"), dotted.id)
        .await
        .unwrap();
    [upper, dotted, current]
}

async fn check_migrated(store: &dyn aviso::store::Store, old: &[aviso::store::Subscription; 3]) {
    use aviso::store::SubscriptionId;
    let canonical_1 = SubscriptionId::for_endpoint("m", "https://push.test/p/1");
    assert_eq!(store.get_subscription("m", old[0].id).await.unwrap(), None);
    assert_eq!(store.get_subscription("m", old[1].id).await.unwrap(), None);
    let moved = store
        .get_subscription("m", canonical_1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.endpoint, "https://push.test/p/1");
    assert_eq!(moved.auth, [1; 16]);
    assert_eq!(moved.tags["plan"], "pro");
    assert_eq!(moved.external_id.as_deref(), Some("ana"));
    let merged = store
        .get_subscription("m", old[2].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(merged.auth, [3; 16], "the keys the browser sent last win");
    assert_eq!(merged.tags["seen"], "again");
    assert_eq!(merged.external_id.as_deref(), Some("bo"));
    assert_eq!(merged.created_at, 100, "the first subscription's age");
    assert_eq!(store.count_subscriptions("m").await.unwrap(), 2);
    let ana = store
        .get_profile(ProfileRef::new("m", "ana"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ana.subscriptions, [canonical_1]);
    let bo = store
        .get_profile(ProfileRef::new("m", "bo"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bo.subscriptions, [old[2].id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_stored_before_canonicalisation_move_to_their_canonical_id() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::RedisServer::start();
    let embedded: std::sync::Arc<dyn aviso::store::Store> =
        std::sync::Arc::new(aviso::store::embedded::EmbeddedStore::open(dir.path()).unwrap());
    let shared = aviso::store::open(Some(&redis.url()), dir.path())
        .await
        .unwrap();
    for store in [embedded, shared] {
        let old = store_old_spellings(store.as_ref()).await;
        let report = aviso::migrate::canonicalise_endpoints(store.as_ref())
            .await
            .unwrap();
        // A moved record may be met again later in the scan, already canonical.
        assert_eq!((report.moved, report.merged), (2, 1), "{report:?}");
        assert!((3..=4).contains(&report.scanned), "{report:?}");
        check_migrated(store.as_ref(), &old).await;
        let again = aviso::migrate::canonicalise_endpoints(store.as_ref())
            .await
            .unwrap();
        assert_eq!((again.scanned, again.moved), (2, 0), "idempotent");
    }
}

#[tokio::test]
async fn aviso_migrate_endpoints_runs_on_the_store_serve_uses() {
    let dir = tempfile::tempdir().unwrap();
    let old = {
        let store = aviso::store::embedded::EmbeddedStore::open(dir.path()).unwrap();
        store_old_spellings(&store).await
    };
    let stdout = support::command::stdout_of(
        std::process::Command::new(env!("CARGO_BIN_EXE_aviso"))
            .args(["migrate-endpoints", "--data-dir"])
            .arg(dir.path()),
    );
    assert!(stdout.contains("2 moved"), "{stdout}");
    let store = aviso::store::embedded::EmbeddedStore::open(dir.path()).unwrap();
    check_migrated(&store, &old).await;
}
