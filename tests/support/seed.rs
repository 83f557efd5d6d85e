//! Many subscribers at once, written straight into a Redis store (a broadcast test needs tens of
//! thousands; the public API path is tested elsewhere). One real key pair serves them all: these
//! tests count deliveries per endpoint, the delivery tests decrypt.

use aviso::store::SubscriptionStore;

use super::push_service::{MockExt, MockPushService};

/// The endpoint id of subscriber `n` at the mock.
pub fn subscriber_id(n: usize) -> String {
    format!("s{n}")
}

/// Writes subscribers `s0` … `s{count-1}` of the mock into `app_id`'s store at `redis_url`.
pub async fn redis_subscribers(
    redis_url: &str,
    app_id: &str,
    service: &MockPushService,
    count: usize,
) {
    let store = aviso::store::redis::RedisStore::connect(redis_url)
        .await
        .expect("connect to Redis");
    let template = service.subscribe("template");
    let keys = aviso::push::PushSubscription::from_json(template.to_string().as_bytes())
        .expect("the mock's subscription");
    let endpoint = template["endpoint"].as_str().expect("an endpoint");
    for chunk in (0..count).collect::<Vec<_>>().chunks(10_000) {
        let subscriptions: Vec<_> = chunk
            .iter()
            .map(|&n| {
                let endpoint = endpoint.replace("template", &subscriber_id(n));
                aviso::store::Subscription::new(
                    app_id,
                    &endpoint,
                    *keys.keys().p256dh(),
                    *keys.keys().auth(),
                    1,
                )
            })
            .collect();
        store
            .insert_subscriptions(&subscriptions)
            .await
            .expect("insert subscriptions");
    }
}
