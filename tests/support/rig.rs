//! The setup the end-to-end delivery tests share: the loopback mock push service, `aviso serve`
//! trusting its CA and allowed to push to it (on a Redis of its own, or the embedded store), and
//! browsers of the mock subscribed through the public API.

use std::collections::HashMap;

use reqwest::Client;
use serde_json::Value;

use aviso_loadtest::{Throttle, Unavailable};

use super::http::Fetch;
use super::push_service::{self, MockConfig, MockExt, MockPushService};
use super::redis::RedisServer;
use super::server::Aviso;

pub struct Rig {
    pub service: MockPushService,
    pub aviso: Aviso,
    pub client: Client,
    pub redis: Option<RedisServer>,
    /// The settings `aviso` was started with beside the CA and the push host ([`Rig::restarted`]
    /// starts it with them again).
    env: Vec<(String, String)>,
    _ca: tempfile::TempDir,
}

impl Rig {
    /// A mock with its default behaviour and `aviso serve` beside it, with `extra_env`.
    pub async fn start(redis: bool, extra_env: &[(&str, &str)]) -> Rig {
        let service = push_service::start(MockConfig::default()).await;
        let ca = tempfile::tempdir().unwrap();
        let ca_path = ca.path().join("ca.pem");
        service.write_ca(&ca_path);
        let redis = redis.then(RedisServer::start);
        let mut env = vec![
            (
                "AVISO_EXTRA_CA_CERTS".to_owned(),
                ca_path.to_str().unwrap().to_owned(),
            ),
            (
                "AVISO_ALLOWED_PUSH_HOSTS".to_owned(),
                service.address().to_string(),
            ),
        ];
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let aviso = Aviso::start(redis.as_ref().map(|r| r.url()).as_deref(), &pairs(&env));
        Rig {
            service,
            aviso,
            client: Client::new(),
            redis,
            env,
            _ca: ca,
        }
    }

    /// Browsers `b0` … `b{count-1}` of the mock subscribe through the public API, `at_once`
    /// requests at a time, browser `n` with the body `body(n, its subscription JSON)`; each must
    /// be created. Answers browser name → (subscription id, subscription JSON).
    pub async fn subscribe(
        &self,
        count: usize,
        at_once: usize,
        body: impl Fn(usize, &Value) -> Value,
    ) -> HashMap<String, (String, Value)> {
        let mut browsers = HashMap::with_capacity(count);
        let all: Vec<(usize, Value)> = (0..count)
            .map(|n| (n, self.service.subscribe(&format!("b{n}"))))
            .collect();
        for chunk in all.chunks(at_once) {
            let requests = chunk.iter().map(|(n, subscription)| {
                let request = self
                    .client
                    .post(self.aviso.public("/subscriptions"))
                    .json(&body(*n, subscription))
                    .send();
                async move {
                    let response = request.await.unwrap();
                    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
                    let answer: Value = response.json().await.unwrap();
                    let id = answer["subscription_id"].as_str().unwrap().to_owned();
                    (format!("b{n}"), (id, subscription.clone()))
                }
            });
            browsers.extend(futures::future::join_all(requests).await);
        }
        browsers
    }

    /// [`Rig::subscribe`] with the subscription alone as each body: browser name →
    /// subscription id.
    pub async fn subscribe_plain(&self, count: usize, at_once: usize) -> HashMap<String, String> {
        self.subscribe(
            count,
            at_once,
            |_, subscription| serde_json::json!({ "subscription": subscription }),
        )
        .await
        .into_iter()
        .map(|(name, (id, _))| (name, id))
        .collect()
    }

    /// Creates a notification through the server API with the app's send key; it must be
    /// created. Answers the created notification.
    pub async fn create_notification(&self, body: &Value) -> Value {
        let response = self
            .client
            .post(self.aviso.url("/v1/notifications"))
            .bearer_auth(&self.aviso.api_key)
            .json(body)
            .sent()
            .await;
        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
        response.json().await.expect("the created notification")
    }

    /// [`Rig::create_notification`]: the new notification's id.
    pub async fn create_notification_id(&self, body: &Value) -> String {
        self.create_notification(body).await["id"]
            .as_str()
            .expect("a notification id")
            .to_owned()
    }

    /// The mock's own failure modes: 10% of the endpoints gone (410, a stable choice by hash),
    /// the last 10 of every 100 requests answered 503 (at most 3 times per endpoint, so that a
    /// burst never holds one message alone), and a `throttled` fraction answered 429 with
    /// `Retry-After: 1` (which pauses the whole origin).
    pub fn make_unreliable(&self, throttled: f64) {
        self.service
            .update_behaviour(|behaviour| {
                behaviour.gone_fraction = 0.1;
                behaviour.unavailable = Unavailable::bursts(100, 10).at_most_per_endpoint(3);
                behaviour.throttle = Throttle::fraction(throttled).retry_after(1);
            })
            .expect("a valid behaviour");
    }

    /// `kill -9` of the server, then a new one on the same data (and Redis) with the same
    /// settings.
    pub fn restarted(mut self) -> Rig {
        let redis_url = self.redis.as_ref().map(|r| r.url());
        self.aviso = self.aviso.restart(redis_url.as_deref(), &pairs(&self.env));
        self
    }
}

/// A rig and what a test keeps of the browsers it subscribed; it reads as the rig.
pub struct Subscribed<B> {
    pub rig: Rig,
    pub browsers: B,
}

impl<B> std::ops::Deref for Subscribed<B> {
    type Target = Rig;
    fn deref(&self) -> &Rig {
        &self.rig
    }
}

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}
