//! CRM triggers end to end, over real HTTP: a trigger rule, events through `POST /v1/events`,
//! and `aviso serve` delivering the delayed pushes to a loopback push service that decrypts
//! every message (`ece`) and verifies every VAPID JWT (`jsonwebtoken`).

mod support;

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use support::http::Fetch;
use support::push_service::{self, MockConfig, MockExt, MockPushService};
use support::server::Aviso;

struct Shop {
    service: MockPushService,
    aviso: Aviso,
    client: Client,
    env: Vec<(String, String)>,
    _ca: tempfile::TempDir,
    _redis: Option<support::redis::RedisServer>,
}

impl Shop {
    async fn open(redis: Option<support::redis::RedisServer>) -> Self {
        let service = push_service::start(MockConfig::default().record_details(true)).await;
        let ca = tempfile::tempdir().unwrap();
        let ca_path = ca.path().join("ca.pem");
        service.write_ca(&ca_path);
        let env = vec![
            (
                "AVISO_EXTRA_CA_CERTS".to_owned(),
                ca_path.to_str().unwrap().to_owned(),
            ),
            (
                "AVISO_ALLOWED_PUSH_HOSTS".to_owned(),
                service.address().to_string(),
            ),
        ];
        let aviso = Aviso::start(redis.as_ref().map(|r| r.url()).as_deref(), &pairs(&env));
        Self {
            service,
            aviso,
            client: Client::new(),
            env,
            _ca: ca,
            _redis: redis,
        }
    }

    /// A shop (as `open`) with a browser of each (name, person), one after the other.
    async fn with_browsers(
        redis: Option<support::redis::RedisServer>,
        browsers: &[(&str, &str)],
    ) -> Self {
        let shop = Self::open(redis).await;
        for (name, person) in browsers {
            shop.browser(&shop.aviso, name, person).await;
        }
        shop
    }

    /// A browser of `person`: subscribed through the public API, linked through the server API.
    async fn browser(&self, aviso: &Aviso, name: &str, person: &str) {
        let public = format!("{}/v1/apps/{}/subscriptions", aviso.base, self.aviso.app_id);
        let subscription = self.service.subscribe(name);
        let response = self
            .client
            .post(public)
            .json(&json!({"subscription": subscription}))
            .sent()
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let id = response.json::<Value>().await.unwrap()["subscription_id"].clone();
        let response = self
            .client
            .post(aviso.url(&format!("/v1/profiles/{person}/subscriptions")))
            .bearer_auth(&self.aviso.api_key)
            .json(&json!({"subscription_id": id}))
            .sent()
            .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    /// A browser of nobody known: subscribed through the public API, linked to no profile.
    async fn stranger(&self, name: &str) {
        let subscription = self.service.subscribe(name);
        let response = self
            .aviso
            .post_public(
                &self.client,
                "/subscriptions",
                &json!({"subscription": subscription}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }

    /// `PUT /v1/profiles/{person}` with these attributes.
    async fn put_profile(&self, person: &str, attributes: Value) {
        let path = format!("/v1/profiles/{person}");
        let body = json!({"attributes": attributes});
        let (status, answer) = self
            .call(&self.aviso, reqwest::Method::PUT, &path, body)
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    /// A server API call to `aviso` (any instance) with the app's key.
    async fn call(
        &self,
        aviso: &Aviso,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .request(method, aviso.url(path))
            .bearer_auth(&self.aviso.api_key)
            .json(&body)
            .sent()
            .await;
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `PUT /v1/triggers/{name}` with `rule`: the status and the answer.
    async fn put_trigger(&self, aviso: &Aviso, name: &str, rule: Value) -> (StatusCode, Value) {
        self.call(
            aviso,
            reqwest::Method::PUT,
            &format!("/v1/triggers/{name}"),
            rule,
        )
        .await
    }

    /// `GET /v1/triggers/{name}`: the trigger with its counters.
    async fn trigger(&self, aviso: &Aviso, name: &str) -> Value {
        let path = format!("/v1/triggers/{name}");
        self.call(aviso, reqwest::Method::GET, &path, Value::Null)
            .await
            .1
    }

    /// The abandoned-cart rule, with this delay.
    async fn put_cart_reminder(&self, delay_secs: u64) {
        let (status, answer) = self
            .put_trigger(&self.aviso, "cart-reminder", cart_reminder(delay_secs))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    /// `kill -9` of the server, then a new process on the same data file (and the same mock).
    fn restart(self) -> Self {
        let aviso = self.aviso.restart(None, &pairs(&self.env));
        Shop { aviso, ..self }
    }

    async fn event(&self, aviso: &Aviso, body: Value) -> Value {
        let (status, answer) = self
            .call(aviso, reqwest::Method::POST, "/v1/events", body)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        answer
    }

    /// Waits (bounded) until `name` got `count` pushes; answers when the last arrived.
    async fn wait_for(&self, name: &str, count: usize, within: Duration) -> Instant {
        let deadline = Instant::now() + within;
        loop {
            let deliveries = self.service.deliveries(name);
            if deliveries.len() >= count {
                return deliveries[count - 1].received_at;
            }
            assert!(
                Instant::now() < deadline,
                "{name} got {} of {count} pushes",
                deliveries.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn cart_reminder(delay_secs: u64) -> Value {
    json!({
        "event": "cart_abandoned",
        "delay_secs": delay_secs,
        "cancel_on": ["purchase"],
        "content": {"title": "Your cart is waiting", "body": "Your items are still there", "url": "https://shop.example/cart"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_cart_is_reminded_once_unless_bought() {
    let shop = Shop::with_browsers(None, &[("ana-phone", "ana"), ("ana-laptop", "ana")]).await;
    let aviso = &shop.aviso;
    // The reminder as issue 12 tells it: her name from her profile, the cart from the event.
    let mut rule = cart_reminder(2);
    rule["content"]["body"] = json!(
        "{{ profile.first_name | default: \"friend\" }}, your {{ event.items }} items ({{ event.total | fixed: 2 }} €) are waiting"
    );
    let (status, answer) = shop.put_trigger(aviso, "cart-reminder", rule).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = shop
        .call(
            aviso,
            reqwest::Method::PUT,
            "/v1/profiles/ana",
            json!({"attributes": {"first_name": "Ana"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let abandoned = json!({"external_id": "ana", "name": "cart_abandoned", "key": "cart-1",
        "properties": {"items": 2, "total": 59.90}});
    let sent_at = Instant::now();
    assert_eq!(shop.event(aviso, abandoned.clone()).await["scheduled"], 1);
    // The same event again (a CRM retry): still one push.
    assert_eq!(shop.event(aviso, abandoned).await["ignored"], 1);
    // Another cart, bought before its reminder: nothing is sent for it.
    let batch = json!([
        {"external_id": "ana", "name": "cart_abandoned", "key": "cart-2"},
        {"external_id": "ana", "name": "purchase", "key": "cart-2"}
    ]);
    let answer = shop.event(aviso, batch).await;
    assert_eq!(
        (answer["scheduled"].clone(), answer["cancelled"].clone()),
        (json!(1), json!(1))
    );
    let (_, profile) = shop
        .call(aviso, reqwest::Method::GET, "/v1/profiles/ana", Value::Null)
        .await;
    let pending = profile["pending_sends"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{profile}");
    assert_eq!(pending[0]["key"], "cart-1");

    let phone = shop.wait_for("ana-phone", 1, Duration::from_secs(20)).await;
    let laptop = shop
        .wait_for("ana-laptop", 1, Duration::from_secs(20))
        .await;
    for arrived in [phone, laptop] {
        let after = arrived.duration_since(sent_at);
        assert!(after >= Duration::from_secs(2), "early: {after:?}");
        println!("reminder arrived {after:?} after the event (delay 2 s)");
    }
    // Long enough for the cancelled cart's reminder to have come, had it not been cancelled.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for name in ["ana-phone", "ana-laptop"] {
        let plaintexts = shop.service.plaintexts(name);
        assert_eq!(
            plaintexts.len(),
            1,
            "{name}: one push, not {}",
            plaintexts.len()
        );
        let payload: Value = serde_json::from_slice(&plaintexts[0]).unwrap();
        assert_eq!(payload["notification"]["title"], "Your cart is waiting");
        assert_eq!(
            payload["notification"]["body"], "Ana, your 2 items (59.90 €) are waiting",
            "{name}: {payload}"
        );
    }
    let trigger = shop.trigger(aviso, "cart-reminder").await;
    let counters = &trigger["counters"];
    assert_eq!(counters["matched"], 3, "{trigger}");
    assert_eq!(counters["scheduled"], 2, "{trigger}");
    assert_eq!(counters["ignored"], 1, "{trigger}");
    assert_eq!(counters["cancelled"], 1, "{trigger}");
    assert_eq!(counters["sent"], 1, "{trigger}");
    let (_, listed) = shop
        .call(aviso, reqwest::Method::GET, "/v1/triggers", Value::Null)
        .await;
    assert_eq!(listed["triggers"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_send_survives_kill_9_and_is_sent_once() {
    let shop = Shop::with_browsers(None, &[("bo", "bo")]).await;
    shop.put_cart_reminder(3).await;
    let sent_at = Instant::now();
    shop.event(
        &shop.aviso,
        json!({"external_id": "bo", "name": "cart_abandoned", "key": "c"}),
    )
    .await;
    // kill -9 between the event and its due time; a new process on the same data file.
    let shop = shop.restart();
    let arrived = shop.wait_for("bo", 1, Duration::from_secs(30)).await;
    assert!(
        arrived.duration_since(sent_at) >= Duration::from_secs(3),
        "early"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(shop.service.deliveries("bo").len(), 1, "sent once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis_send_each_triggered_push_once_and_never_early() {
    const PROFILES: usize = 1000;
    let redis = support::redis::RedisServer::start();
    let url = redis.url();
    let shop = Shop::open(Some(redis)).await;
    let second = Aviso::start(Some(&url), &pairs(&shop.env));
    shop.put_cart_reminder(1).await;
    for chunk in (0..PROFILES).collect::<Vec<_>>().chunks(50) {
        let names: Vec<(String, String)> = chunk
            .iter()
            .map(|n| (format!("p{n}"), format!("person-{n}")))
            .collect();
        let browsers = names
            .iter()
            .map(|(name, person)| shop.browser(&shop.aviso, name, person));
        futures::future::join_all(browsers).await;
    }
    // Ten batches half a second apart, alternating instances: due times spread over 5 s.
    let mut sent_at = Vec::with_capacity(PROFILES);
    for (batch, chunk) in (0..PROFILES)
        .collect::<Vec<_>>()
        .chunks(PROFILES / 10)
        .enumerate()
    {
        let events: Vec<Value> = chunk
            .iter()
            .map(|n| json!({"external_id": format!("person-{n}"), "name": "cart_abandoned", "key": "k"}))
            .collect();
        let via = if batch % 2 == 0 { &shop.aviso } else { &second };
        let now = Instant::now();
        let answer = shop.event(via, Value::Array(events)).await;
        assert_eq!(answer["scheduled"], chunk.len());
        sent_at.extend(chunk.iter().map(|n| (*n, now)));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while shop.service.distinct_delivered() < PROFILES {
        assert!(
            Instant::now() < deadline,
            "{} of {PROFILES} delivered",
            shop.service.distinct_delivered()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut lateness = Vec::with_capacity(PROFILES);
    for (n, at) in sent_at {
        let deliveries = shop.service.deliveries(&format!("p{n}"));
        assert_eq!(deliveries.len(), 1, "p{n} got {} pushes", deliveries.len());
        let after = deliveries[0].received_at.duration_since(at);
        assert!(after >= Duration::from_secs(1), "p{n} early: {after:?}");
        lateness.push(after.as_secs_f64() - 1.0);
    }
    lateness.sort_by(f64::total_cmp);
    println!(
        "1,000 triggered pushes over two instances: late by p50 {:.0} ms, p99 {:.0} ms",
        lateness[PROFILES / 2] * 1000.0,
        lateness[PROFILES * 99 / 100] * 1000.0
    );
}

#[tokio::test]
async fn bad_triggers_and_events_are_told_what_to_fix() {
    let shop = Shop::open(None).await;
    let aviso = &shop.aviso;
    let put = |body: Value| shop.call(aviso, reqwest::Method::PUT, "/v1/triggers/t", body);
    for (body, field) in [
        (
            json!({"event": "e", "delay_secs": 1, "content": {"title": "x"}, "colour": 1}),
            None,
        ),
        (
            json!({"event": "e", "delay_secs": 99_999_999, "content": {"title": "x"}}),
            Some("delay_secs"),
        ),
        (
            json!({"event": "e", "delay_secs": "soon", "content": {"title": "x"}}),
            None,
        ),
        (
            json!({"event": "no spaces", "delay_secs": 1, "content": {"title": "x"}}),
            Some("event"),
        ),
        (
            json!({"event": "e", "delay_secs": 1, "content": {"title": ""}}),
            Some("content.title"),
        ),
    ] {
        let (status, problem) = put(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {problem}");
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{problem}");
        }
    }
    let (status, problem) = shop
        .call(
            aviso,
            reqwest::Method::PUT,
            "/v1/triggers/has%20space",
            cart_reminder(1),
        )
        .await;
    assert_eq!(
        (status, problem["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("name"))
    );
    let post = |body: Value| shop.call(aviso, reqwest::Method::POST, "/v1/events", body);
    let big = "x".repeat(5000);
    for (body, field) in [
        (json!({"external_id": "", "name": "e"}), "external_id"),
        (
            json!({"external_id": "a", "name": "e", "properties": {"blob": big}}),
            "properties",
        ),
        (
            json!([{"external_id": "a", "name": "e"}, {"external_id": "a", "name": "bad name"}]),
            "[1].name",
        ),
        (json!([]), "body"),
        // A mistake of shape names its field, as every body's does.
        (json!({"external_id": "a", "name": "e", "when": 1}), "when"),
        (json!({"name": "e"}), "external_id"),
        (json!([{"external_id": "a", "name": "e"}, 7]), "[1]"),
    ] {
        let (status, problem) = post(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {problem}");
        assert_eq!(problem["field"], field, "{body}: {problem}");
    }
    // Events for a profile nobody made are taken (their push will reach nobody).
    shop.call(
        aviso,
        reqwest::Method::PUT,
        "/v1/triggers/t",
        cart_reminder(1),
    )
    .await;
    let answer = shop
        .event(
            aviso,
            json!({"external_id": "stranger", "name": "cart_abandoned"}),
        )
        .await;
    assert_eq!(answer["scheduled"], 1);
    let (status, _) = shop
        .call(
            aviso,
            reqwest::Method::GET,
            "/v1/triggers/missing",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Templates: a push's text is rendered from each person's profile (read per batch), with the
/// template's default for browsers of nobody known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personalised_push_reads_each_persons_profile() {
    let shop = Shop::with_browsers(None, &[("ana-phone", "ana"), ("bo-laptop", "bo")]).await;
    let aviso = &shop.aviso;
    shop.stranger("stranger").await;
    for (person, name) in [("ana", "Ana"), ("bo", "Bo")] {
        shop.put_profile(person, json!({"first_name": name, "items": 2}))
            .await;
    }
    let (status, created) = shop
        .call(
            aviso,
            reqwest::Method::POST,
            "/v1/notifications",
            json!({"audience": "all", "content": {
                "title": "Hi {{ profile.first_name | default: \"friend\" }}",
                "body": "{{ profile.items | default: 0 }} items are waiting"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    for (name, title, body) in [
        ("ana-phone", "Hi Ana", "2 items are waiting"),
        ("bo-laptop", "Hi Bo", "2 items are waiting"),
        ("stranger", "Hi friend", "0 items are waiting"),
    ] {
        shop.wait_for(name, 1, Duration::from_secs(20)).await;
        let payload: Value = serde_json::from_slice(&shop.service.plaintexts(name)[0]).unwrap();
        assert_eq!(payload["notification"]["title"], title, "{payload}");
        assert_eq!(payload["notification"]["body"], body, "{payload}");
    }
    // A template that does not compile is refused at creation, naming the field.
    let (status, problem) = shop
        .call(
            aviso,
            reqwest::Method::POST,
            "/v1/notifications",
            json!({"audience": "all", "content": {"title": "Hi {{ profile.first_name "}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["field"], "content.title", "{problem}");
}

/// A segment on the profile with a personalised payload, on both stores: the batch's profiles
/// are read once for the filter and the payloads together (`ProfileReads`), and each device
/// gets its own person's text; a person's two devices both match, and a device whose person
/// does not match, whose person has no such attribute, or that has no person gets nothing.
async fn a_profile_segment_reaches_only_its_people_with_their_own_text(redis: bool) {
    let redis = redis.then(support::redis::RedisServer::start);
    let browsers = [
        ("ana-phone", "ana"),
        ("ana-laptop", "ana"),
        ("bo-laptop", "bo"),
        ("cy-phone", "cy"),
        ("di-phone", "di"),
    ];
    let shop = Shop::with_browsers(redis, &browsers).await;
    let aviso = &shop.aviso;
    shop.stranger("stranger").await;
    for (person, attributes) in [
        ("ana", json!({"first_name": "Ana", "age": 30})),
        ("bo", json!({"first_name": "Bo", "age": 15})),
        ("cy", json!({"first_name": "Cy"})),
        ("di", json!({"first_name": "Di", "age": 18})),
    ] {
        shop.put_profile(person, attributes).await;
    }
    let (status, created) = shop
        .call(
            aviso,
            reqwest::Method::POST,
            "/v1/notifications",
            json!({"audience": {"segment": {"attribute": {"key": "age", "op": "gte", "value": 18}}},
                "content": {"title": "Hi {{ profile.first_name | default: \"friend\" }}"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    let view = loop {
        let (_, view) = shop
            .call(
                aviso,
                reqwest::Method::GET,
                &format!("/v1/notifications/{id}"),
                Value::Null,
            )
            .await;
        if view["status"] == "completed" {
            break view;
        }
        assert!(Instant::now() < deadline, "not completed: {view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(view["counters"]["targeted"], 3, "{view}");
    assert_eq!(view["counters"]["delivered"], 3, "{view}");
    for (name, title) in [
        ("ana-phone", "Hi Ana"),
        ("ana-laptop", "Hi Ana"),
        ("di-phone", "Hi Di"),
    ] {
        let plaintexts = shop.service.plaintexts(name);
        assert_eq!(plaintexts.len(), 1, "{name}");
        let payload: Value = serde_json::from_slice(&plaintexts[0]).unwrap();
        assert_eq!(payload["notification"]["title"], title, "{payload}");
    }
    for name in ["bo-laptop", "cy-phone", "stranger"] {
        assert_eq!(shop.service.deliveries(name).len(), 0, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_segment_reaches_only_its_people_with_their_own_text_embedded() {
    a_profile_segment_reaches_only_its_people_with_their_own_text(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_segment_reaches_only_its_people_with_their_own_text_on_redis() {
    a_profile_segment_reaches_only_its_people_with_their_own_text(true).await;
}

/// Issue 12's per-trigger cap, over both stores: `once_per_hours: 24` lets one reminder a day
/// reach a profile; a second cart of the same person within the day is counted `capped` and
/// not sent, while another person still gets theirs and another trigger (uncapped) still
/// reaches the first person. A bad value is a 400 naming the field.
async fn a_trigger_capped_once_a_day_sends_one_per_profile(redis: bool) {
    let redis = redis.then(support::redis::RedisServer::start);
    let shop = Shop::with_browsers(redis, &[("ana-phone", "ana"), ("bob-phone", "bob")]).await;
    let aviso = &shop.aviso;
    let mut rule = cart_reminder(1);
    rule["once_per_hours"] = json!(0);
    let (status, answer) = shop.put_trigger(aviso, "cart-reminder", rule.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer.to_string().contains("once_per_hours"), "{answer}");
    rule["once_per_hours"] = json!(24);
    let (status, answer) = shop.put_trigger(aviso, "cart-reminder", rule).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["once_per_hours"], 24, "{answer}");
    let mut welcome = cart_reminder(1);
    welcome["event"] = json!("signed_up");
    let (status, answer) = shop.put_trigger(aviso, "welcome", welcome).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let cart = |person: &str, key: &str| json!({"external_id": person, "name": "cart_abandoned", "key": key});
    shop.event(aviso, cart("ana", "cart-1")).await;
    shop.wait_for("ana-phone", 1, Duration::from_secs(20)).await;
    // A second cart within the day: capped. Bob's first: sent. Ana's welcome: its own trigger.
    shop.event(aviso, cart("ana", "cart-2")).await;
    shop.event(aviso, cart("bob", "cart-9")).await;
    shop.wait_for("bob-phone", 1, Duration::from_secs(20)).await;
    shop.event(aviso, json!({"external_id": "ana", "name": "signed_up"}))
        .await;
    shop.wait_for("ana-phone", 2, Duration::from_secs(20)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let counters = loop {
        let trigger = shop.trigger(aviso, "cart-reminder").await;
        if trigger["counters"]["capped"] == 1 {
            break trigger["counters"].clone();
        }
        assert!(Instant::now() < deadline, "no capped send: {trigger}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(counters["scheduled"], 3, "{counters}");
    assert_eq!(counters["sent"], 2, "{counters}");
    // Long enough for a capped reminder to have arrived had it been sent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let titles: Vec<String> = shop
        .service
        .plaintexts("ana-phone")
        .iter()
        .map(|p| serde_json::from_slice::<Value>(p).unwrap()["notification"]["title"].to_string())
        .collect();
    assert_eq!(
        titles.len(),
        2,
        "ana: the first reminder and the welcome: {titles:?}"
    );
    assert_eq!(shop.service.deliveries("bob-phone").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_capped_once_a_day_sends_one_per_profile_embedded() {
    a_trigger_capped_once_a_day_sends_one_per_profile(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_capped_once_a_day_sends_one_per_profile_on_redis() {
    a_trigger_capped_once_a_day_sends_one_per_profile(true).await;
}
