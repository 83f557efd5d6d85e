//! Webhooks end to end, over real HTTP: `aviso serve` posts to a CRM receiver on loopback
//! (HTTPS) that verifies every signature with the PyPI `standardwebhooks` package; each event
//! type reaches it; a receiver that is down, then failing, during a broadcast, and a `kill -9`
//! of the sending instance, lose no `delivered` event.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};
use support::push_service::{self, MockConfig, MockExt, MockPushService};
use support::server::Aviso;
use support::wait::{poll_until, wait_until};
use support::webhook_receiver::Receiver;

struct Crm {
    service: MockPushService,
    receiver: Receiver,
    client: Client,
    env: Vec<(String, String)>,
    _ca: tempfile::TempDir,
}

impl Crm {
    async fn open(mock: MockConfig, extra: &[(&str, &str)]) -> (Self, Aviso) {
        let service = push_service::start(mock).await;
        let ca = tempfile::tempdir().unwrap();
        let ca_path = ca.path().join("ca.pem");
        service.write_ca(&ca_path);
        let receiver = Receiver::prepare(&ca_path);
        let mut env = vec![
            (
                "AVISO_EXTRA_CA_CERTS".to_owned(),
                ca_path.to_str().unwrap().to_owned(),
            ),
            (
                "AVISO_ALLOWED_PUSH_HOSTS".to_owned(),
                service.address().to_string(),
            ),
            (
                "AVISO_ALLOWED_WEBHOOK_HOSTS".to_owned(),
                format!("127.0.0.1:{}", receiver.port),
            ),
            // Retries back off to 2 s at most, so that the outage test ends soon after.
            ("AVISO_WEBHOOK_BACKOFF_MAX_SECS".to_owned(), "2".to_owned()),
        ];
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let crm = Self {
            service,
            receiver,
            client: Client::new(),
            env,
            _ca: ca,
        };
        let aviso = Aviso::start(None, &crm.env());
        (crm, aviso)
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// A body-less admin call (list, test fire, dead letters, delete) that must answer
    /// `status`: its body.
    async fn admin(
        &self,
        aviso: &Aviso,
        method: reqwest::Method,
        path: &str,
        status: u16,
    ) -> Value {
        let url = aviso.url(path);
        self.call_answering(&aviso.admin_key, method, url, Value::Null, status)
            .await
    }

    /// An admin call on webhook `hook`'s path and `tail` that must answer `status`: its body.
    async fn on_hook(
        &self,
        aviso: &Aviso,
        method: reqwest::Method,
        hook: &str,
        tail: &str,
        status: u16,
    ) -> Value {
        let path = format!("/v1/webhooks/{hook}{tail}");
        self.admin(aviso, method, &path, status).await
    }

    /// A call with the send key that must answer `status`: its body.
    async fn api(
        &self,
        aviso: &Aviso,
        method: reqwest::Method,
        path: &str,
        body: Value,
        status: u16,
    ) -> Value {
        let url = aviso.url(path);
        self.call_answering(&aviso.api_key, method, url, body, status)
            .await
    }

    /// A call with `key` that must answer `status`: its body.
    async fn call_answering(
        &self,
        key: &str,
        method: reqwest::Method,
        url: String,
        body: Value,
        status: u16,
    ) -> Value {
        let (got, answer) = self.call(key, method, url, body).await;
        assert_eq!(got, status, "{answer}");
        answer
    }

    async fn call(
        &self,
        key: &str,
        method: reqwest::Method,
        url: String,
        body: Value,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, url).bearer_auth(key);
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST /v1/webhooks` with `key`.
    async fn create_webhook(&self, aviso: &Aviso, key: &str, body: Value) -> (u16, Value) {
        self.call(key, reqwest::Method::POST, aviso.url("/v1/webhooks"), body)
            .await
    }

    /// Registers the receiver (every event type), and gives it the secret.
    /// Registers the receiver for every event type.
    async fn register(&self, aviso: &Aviso) -> String {
        self.register_for(aviso, json!({})).await
    }

    /// Registers the receiver with `more` fields of the request (e.g. `events`).
    async fn register_for(&self, aviso: &Aviso, mut more: Value) -> String {
        more["url"] = json!(self.receiver.url());
        let (status, hook) = self.create_webhook(aviso, &aviso.admin_key, more).await;
        assert_eq!(status, 201, "{hook}");
        let secret = hook["secret"].as_str().unwrap();
        assert!(secret.starts_with("whsec_"));
        self.receiver.set_secret(secret);
        hook["id"].as_str().unwrap().to_owned()
    }

    async fn subscribe(
        &self,
        aviso: &Aviso,
        names: &[String],
        external_id: Option<&str>,
    ) -> Vec<(Value, String)> {
        let mut out = Vec::new();
        for chunk in names.chunks(50) {
            let requests = chunk.iter().map(|name| {
                let subscription = self.service.subscribe(name);
                let mut body = json!({"subscription": subscription});
                if let Some(external_id) = external_id {
                    body["external_id"] = json!(external_id);
                    body["identity_hash"] = json!(aviso::apps::identity_hash(
                        &aviso.identity_secret,
                        external_id
                    ));
                }
                let request = self
                    .client
                    .post(aviso.public("/subscriptions"))
                    .json(&body)
                    .send();
                async move {
                    let response = request.await.unwrap();
                    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
                    let body: Value = response.json().await.unwrap();
                    (
                        subscription,
                        body["subscription_id"].as_str().unwrap().to_owned(),
                    )
                }
            });
            out.extend(futures::future::join_all(requests).await);
        }
        out
    }

    async fn broadcast(&self, aviso: &Aviso, body: &str) -> String {
        let created = self
            .api(
                aviso,
                reqwest::Method::POST,
                "/v1/notifications",
                json!({"audience": "all", "content": {"title": "Sale", "body": body}, "ttl": 600}),
                201,
            )
            .await;
        created["id"].as_str().unwrap().to_owned()
    }

    /// The subscription ids of every accepted `notification.delivered` event of `notification`.
    fn delivered_to(&self, notification: &str) -> (HashSet<String>, usize) {
        let mut ids = HashSet::new();
        let mut events = 0;
        for request in self.receiver.accepted() {
            if request["type"] == "notification.delivered"
                && request["data"]["notification_id"] == notification
            {
                for item in request["data"]["items"].as_array().unwrap() {
                    events += 1;
                    ids.insert(item["subscription_id"].as_str().unwrap().to_owned());
                }
            }
        }
        (ids, events)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_reaches_the_crm_signed() {
    // A tenth of the endpoints are gone (410); bodies over 3,000 bytes are refused (413).
    let mock = MockConfig::default().gone_fraction(0.1).payload_limit(3000);
    let (mut crm, aviso) = Crm::open(mock, &[]).await;
    crm.receiver.set_mode("ok");
    crm.receiver.start();

    // Targets follow the SSRF rules.
    for (url, field) in [
        ("http://127.0.0.1:1/h", "url"),
        ("https://127.0.0.1:1/h", "url"),
        ("https://10.0.0.1/h", "url"),
    ] {
        let (status, problem) = crm
            .create_webhook(&aviso, &aviso.admin_key, json!({"url": url}))
            .await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (400, Some(field)),
            "{url}: {problem}"
        );
    }
    let (status, problem) = crm
        .create_webhook(
            &aviso,
            &aviso.admin_key,
            json!({"url": crm.receiver.url(), "events": ["notification.nope"]}),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (400, Some("events[0]")),
        "{problem}"
    );
    let (status, _) = crm
        .create_webhook(&aviso, &aviso.api_key, json!({"url": crm.receiver.url()}))
        .await;
    assert_eq!(status, 403, "a send key cannot register webhooks");

    let hook = crm.register(&aviso).await;
    let fired = crm
        .on_hook(&aviso, reqwest::Method::POST, &hook, "/test", 202)
        .await;
    let test_id = fired["message_id"].as_str().unwrap().to_owned();

    let names: Vec<String> = (0..60).map(|n| format!("b{n}")).collect();
    let subscribed = crm.subscribe(&aviso, &names, None).await;
    let alice = crm
        .subscribe(&aviso, &["alice".to_owned()], Some("crm-alice"))
        .await;
    let (alice_sub, alice_id) = alice[0].clone();

    let notification = crm.broadcast(&aviso, "Today only").await;
    let too_large = crm.broadcast(&aviso, &"x".repeat(3200)).await;

    // Receipts, and an unsubscribe.
    for (kind, action) in [("shown", None), ("clicked", Some("buy")), ("closed", None)] {
        let response = crm.client.post(aviso.public("/events"))
            .json(&json!({"notification_id": notification, "subscription_id": alice_id, "type": kind, "action": action, "token": aviso.receipt_token(&notification, &alice_id)}))
            .send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
    }
    let _ = alice_sub;

    // A trigger: one send made, one cancelled.
    let rule = json!({"event": "cart_abandoned", "delay_secs": 1, "cancel_on": ["purchase"], "content": {"title": "Your cart"}});
    crm.api(&aviso, reqwest::Method::PUT, "/v1/triggers/cart", rule, 200)
        .await;
    let events = json!([
        {"external_id": "crm-alice", "name": "cart_abandoned", "key": "c1"},
        {"external_id": "crm-alice", "name": "cart_abandoned", "key": "c2"},
        {"external_id": "crm-alice", "name": "purchase", "key": "c2"},
    ]);
    crm.api(&aviso, reqwest::Method::POST, "/v1/events", events, 202)
        .await;

    // The delivered and expired events of the broadcast account for every subscriber.
    let done = || {
        let (delivered, _) = crm.delivered_to(&notification);
        let expired: usize = of_all(&crm, "subscription.expired", &notification);
        delivered.len() + expired
    };
    wait_until("all outcomes reported", Duration::from_secs(30), || {
        done() >= 61
    })
    .await;
    assert_eq!(done(), 61);

    let (gone_sub, _) = &subscribed[0];
    let response = crm
        .client
        .post(aviso.public("/subscriptions/unsubscribe"))
        .json(&json!({"endpoint": gone_sub["endpoint"], "auth": gone_sub["keys"]["auth"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
    let every = [
        "webhook.test",
        "subscription.created",
        "subscription.identified",
        "subscription.unsubscribed",
        "subscription.expired",
        "notification.delivered",
        "notification.failed",
        "notification.shown",
        "notification.clicked",
        "notification.closed",
        "trigger.scheduled",
        "trigger.cancelled",
        "trigger.sent",
    ];
    wait_until("every event type", Duration::from_secs(60), || {
        let seen = crm.receiver.types();
        every.iter().all(|t| seen.contains(*t))
    })
    .await;

    let requests = crm.receiver.requests();
    assert!(
        requests.iter().all(|r| r["verified"] == true),
        "every signature verifies: {:?}",
        requests.iter().find(|r| r["verified"] != true)
    );
    let accepted = crm.receiver.accepted();
    let of = |kind: &str| {
        accepted
            .iter()
            .filter(|r| r["type"] == kind)
            .map(|r| r["data"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(of("webhook.test").len(), 1);
    assert!(
        accepted.iter().any(|r| r["id"] == test_id.as_str()),
        "the test fire's webhook-id"
    );
    let clicked = of("notification.clicked");
    assert_eq!(clicked[0]["action"], "buy");
    assert_eq!(clicked[0]["subscription_id"], alice_id.as_str());
    assert!(
        of("subscription.identified")
            .iter()
            .any(|d| d["external_id"] == "crm-alice")
    );
    let failed = of("notification.failed");
    assert!(
        failed
            .iter()
            .all(|d| d["notification_id"] == too_large.as_str())
    );
    assert_eq!(failed[0]["items"][0]["reason"], "payload_too_large");
    assert_eq!(of("trigger.cancelled")[0]["key"], "c2");
    assert_eq!(of("trigger.sent")[0]["key"], "c1");
    assert!(of("trigger.sent")[0]["notification_id"].is_string());

    // The list shows the webhook's delivery state; a deleted one is gone.
    let list = crm
        .admin(&aviso, reqwest::Method::GET, "/v1/webhooks", 200)
        .await;
    assert_eq!(list["webhooks"][0]["id"], hook.as_str());
    assert!(
        list["webhooks"][0].get("secret").is_none(),
        "the secret is shown once"
    );
    assert!(list["webhooks"][0]["delivery"]["cursor"].as_u64().unwrap() > 0);
    let dead = crm
        .on_hook(&aviso, reqwest::Method::GET, &hook, "/dead-letters", 200)
        .await;
    assert_eq!(dead["dead_letters"].as_array().unwrap().len(), 0, "{dead}");
    // Deleted once; a second delete finds nothing.
    for status in [204, 404] {
        crm.on_hook(&aviso, reqwest::Method::DELETE, &hook, "", status)
            .await;
    }
    crm.receiver.stop();
}

fn of_all(crm: &Crm, kind: &str, notification: &str) -> usize {
    crm.receiver
        .accepted()
        .iter()
        .filter(|r| r["type"] == kind && r["data"]["notification_id"] == notification)
        .map(|r| r["data"]["items"].as_array().map_or(0, Vec::len))
        .sum()
}

/// How many subscribers the outage test broadcasts to.
const OUTAGE_SUBSCRIBERS: usize = 20_000;
/// The receiver is down this long, then answers 500 this long (the 30 s each; the
/// sender's backoff is capped at 2 s by configuration, so it keeps trying through both).
const OUTAGE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_outage_and_a_kill_9_lose_no_delivered_event() {
    // Leases of 3 s, so that the restarted instance takes the webhook over soon.
    let (mut crm, mut aviso) =
        Crm::open(MockConfig::default(), &[("AVISO_TASK_LEASE_SECS", "3")]).await;
    // Only the broadcast's events: 20,000 `subscription.created` (one POST each) would be
    // queued before them and take minutes through the Python receiver.
    let hook = crm
        .register_for(&aviso, json!({"events": ["notification.delivered"]}))
        .await;
    let names: Vec<String> = (0..OUTAGE_SUBSCRIBERS).map(|n| format!("s{n}")).collect();
    let subscribed = crm.subscribe(&aviso, &names, None).await;
    let all: HashSet<String> = subscribed.into_iter().map(|(_, id)| id).collect();

    // Down during the broadcast, then failing, then well.
    let notification = crm.broadcast(&aviso, "Flash sale").await;
    tokio::time::sleep(OUTAGE).await;
    crm.receiver.set_mode("500");
    crm.receiver.start();
    tokio::time::sleep(OUTAGE).await;
    assert!(
        !crm.receiver.requests().is_empty(),
        "retried during the 500s"
    );
    assert!(crm.receiver.accepted().is_empty());
    crm.receiver.set_mode("ok");

    // Once some events are through, kill -9 the sending instance and start another.
    wait_until(
        "first events after the outage",
        Duration::from_secs(30),
        || !crm.receiver.accepted().is_empty(),
    )
    .await;
    let before_kill = crm.delivered_to(&notification).1;
    let env = crm.env();
    aviso = aviso.restart(None, &env);
    drop(env);

    // 20,000 events in a few hundred POSTs through the Python receiver, which verifies each.
    let deadline = Instant::now() + Duration::from_secs(120);
    poll_until(deadline, Duration::from_millis(500), || {
        let reached = crm.delivered_to(&notification).0.len();
        if reached >= all.len() {
            return Ok(());
        }
        Err(format!(
            "{reached} of {} delivered events reached the CRM",
            all.len()
        ))
    })
    .await;
    let (delivered, events) = crm.delivered_to(&notification);
    assert_eq!(
        delivered, all,
        "every subscriber's delivered event reached the CRM"
    );
    let requests = crm.receiver.requests();
    assert!(requests.iter().all(|r| r["verified"] == true));
    // De-duplicable by webhook-id: a repeated id is the same message, whole.
    let accepted = crm.receiver.accepted();
    let distinct: HashSet<&str> = accepted.iter().filter_map(|r| r["id"].as_str()).collect();
    let max_items = accepted
        .iter()
        .filter_map(|r| r["data"]["items"].as_array().map(Vec::len))
        .max()
        .unwrap_or(0);
    assert!(max_items <= 1000, "at most 1,000 events per POST");
    println!(
        "webhook outage: {} subscribers, {before_kill} events through before the kill -9, {} delivered events in {} accepted POSTs ({} distinct webhook-ids), {} requests in all (500s and retries included)",
        all.len(),
        events,
        accepted.len(),
        distinct.len(),
        requests.len()
    );
    let list = crm
        .admin(&aviso, reqwest::Method::GET, "/v1/webhooks", 200)
        .await;
    assert_eq!(list["webhooks"][0]["id"], hook.as_str());
}

/// A receipt of an A/B variant's push tells the CRM which variant was clicked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variant_receipt_tells_the_crm_its_variant() {
    let (mut crm, aviso) = Crm::open(MockConfig::default(), &[]).await;
    crm.receiver.set_mode("ok");
    crm.receiver.start();
    crm.register(&aviso).await;
    let names: Vec<String> = (0..4).map(|n| format!("v{n}")).collect();
    let subscribed = crm.subscribe(&aviso, &names, None).await;
    let created = crm
        .api(&aviso, reqwest::Method::POST, "/v1/notifications",
            json!({"audience": "all", "variants": [
                {"weight": 1, "content": {"title": "A"}}, {"weight": 1, "content": {"title": "B"}}]}),
            201,
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let payload = || -> Option<Value> {
        let delivery = crm.service.deliveries(&names[0]).into_iter().next()?;
        serde_json::from_slice(&delivery.plaintext?).ok()
    };
    wait_until("the push", Duration::from_secs(30), || payload().is_some()).await;
    let payload = payload().unwrap();
    let variant = payload["notification"]["data"]["aviso"]["v"]
        .as_u64()
        .expect("aviso.v");
    let event = json!({"notification_id": id, "subscription_id": subscribed[0].1, "type": "clicked",
        "token": payload["notification"]["data"]["aviso"]["t"], "variant": variant});
    let response = crm
        .client
        .post(aviso.public("/events"))
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
    let clicked = || {
        crm.receiver.accepted().into_iter().find(|r| {
            r["type"] == "notification.clicked" && r["data"]["notification_id"] == id.as_str()
        })
    };
    wait_until("the click's event", Duration::from_secs(30), || {
        clicked().is_some()
    })
    .await;
    let clicked = clicked().unwrap();
    assert_eq!(clicked["data"]["variant"], variant, "{clicked}");
    assert_eq!(clicked["verified"], true, "{clicked}");
}
