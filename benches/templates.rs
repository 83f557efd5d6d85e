//! Notification templates: which engine (Liquid or minijinja) renders a typical personalised
//! title and body per subscriber faster, and what personalisation costs per message of a
//! 200,000-subscriber broadcast against the per-message encryption (measured in the same run).

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;

use aviso::notify::Notification;
use aviso::notify::payload::PayloadTemplate;
use aviso::notify::template::{ContentTemplate, Context, EventProperties};
use aviso::push::{SubscriptionKeys, encrypt};
use aviso::store::{AttributeValue, Profile, Subscription, SubscriptionId};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The typical personalised push: three variables over a title and a body.
const LIQUID_TITLE: &str =
    r#"{{ profile.first_name | default: "friend" | capitalize }}, your cart is waiting"#;
const LIQUID_BODY: &str =
    "{{ event.items }} items ({{ event.total | round: 2 }} €) are still in your cart.";
const JINJA_TITLE: &str =
    r#"{{ profile.first_name | default("friend") | capitalize }}, your cart is waiting"#;
const JINJA_BODY: &str =
    "{{ event.items }} items ({{ event.total | round(2) }} €) are still in your cart.";

const BROADCAST: usize = 200_000;
/// Subscriptions per batch, as the engine reads them.
const BATCH: usize = 500;

fn attributes(i: usize) -> BTreeMap<String, AttributeValue> {
    let mut attributes = BTreeMap::new();
    attributes.insert(
        "first_name".to_owned(),
        AttributeValue::Text(format!("ana{i}")),
    );
    attributes.insert("city".to_owned(), AttributeValue::Text("Lisbon".to_owned()));
    attributes.insert("points".to_owned(), AttributeValue::Number(i as f64));
    attributes
}

fn bench_engines(c: &mut Criterion) {
    let profile = attributes(7);
    let mut group = c.benchmark_group("engine_3_variables");
    group.throughput(Throughput::Elements(1));

    // Liquid as a user of the crate would run it: the whole stdlib, an object built per
    // subscriber from the profile.
    let parser = liquid::ParserBuilder::with_stdlib()
        .build()
        .expect("liquid parser");
    let title = parser.parse(LIQUID_TITLE).expect("title");
    let body = parser.parse(LIQUID_BODY).expect("body");
    group.bench_function("liquid_stock", |b| {
        b.iter(|| {
            let mut attributes = liquid::Object::new();
            for (key, value) in &profile {
                let value = match value {
                    AttributeValue::Text(s) => liquid::model::Value::scalar(s.clone()),
                    AttributeValue::Number(n) => liquid::model::Value::scalar(*n),
                    AttributeValue::Bool(v) => liquid::model::Value::scalar(*v),
                };
                attributes.insert(key.clone().into(), value);
            }
            let mut event = liquid::Object::new();
            event.insert("items".into(), liquid::model::Value::scalar(2i64));
            event.insert("total".into(), liquid::model::Value::scalar(59.9f64));
            let mut globals = liquid::Object::new();
            globals.insert("profile".into(), liquid::model::Value::Object(attributes));
            globals.insert("event".into(), liquid::model::Value::Object(event));
            let title = title.render(&globals).expect("render");
            let body = body.render(&globals).expect("render");
            black_box((title, body))
        })
    });

    // minijinja with lenient (chainable) undefined values, its context built per subscriber.
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    let title = env.template_from_str(JINJA_TITLE).expect("title");
    let body = env.template_from_str(JINJA_BODY).expect("body");
    group.bench_function("minijinja", |b| {
        b.iter(|| {
            let attributes: BTreeMap<String, minijinja::Value> = profile
                .iter()
                .map(|(key, value)| {
                    let value = match value {
                        AttributeValue::Text(s) => minijinja::Value::from(s.clone()),
                        AttributeValue::Number(n) => minijinja::Value::from(*n),
                        AttributeValue::Bool(v) => minijinja::Value::from(*v),
                    };
                    (key.clone(), value)
                })
                .collect();
            let context = minijinja::context! {
                profile => attributes,
                event => minijinja::context! { items => 2, total => 59.9 },
            };
            let title = title.render(&context).expect("render");
            let body = body.render(&context).expect("render");
            black_box((title, body))
        })
    });

    // Aviso's cut-down Liquid (bounded filters, lenient variables) reading the profile in place.
    let content =
        serde_json::from_value(serde_json::json!({"title": LIQUID_TITLE, "body": LIQUID_BODY}))
            .expect("content");
    let template = ContentTemplate::compile(&content).expect("compile");
    let properties = serde_json::json!({"items": 2, "total": 59.9});
    let event = EventProperties::new(properties.as_object().expect("object"));
    group.bench_function("aviso_liquid", |b| {
        b.iter(|| {
            let context = Context {
                profile: Some(&profile),
                event: Some(&event),
            };
            black_box(template.render_templates(&context).expect("render"))
        })
    });
    group.finish();
}

fn notification(content: serde_json::Value) -> Notification {
    serde_json::from_value(serde_json::json!({
        "id": "n1", "app_id": "a", "audience": "all", "content": content, "ttl": 60,
        "send_at_ms": 0, "created_at_ms": 0, "status": "queued",
    }))
    .expect("notification")
}

fn bench_broadcast(c: &mut Criterion) {
    let subscriptions: Vec<Subscription> = (0..BROADCAST)
        .map(|i| {
            let endpoint = format!("https://fcm.googleapis.com/fcm/send/{i}");
            let mut subscription = Subscription::new("a", &endpoint, [4; 65], [1; 16], 0);
            subscription.external_id = Some(format!("p{i}"));
            subscription
        })
        .collect();
    // The profiles of each batch, as the engine would read them with one store call a batch.
    let batches: Vec<HashMap<String, Profile>> = subscriptions
        .chunks(BATCH)
        .enumerate()
        .map(|(b, chunk)| {
            chunk
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let external_id = s.external_id.clone().unwrap_or_default();
                    let profile = Profile {
                        external_id: external_id.clone(),
                        attributes: attributes(b * BATCH + i),
                        ..Profile::default()
                    };
                    (external_id, profile)
                })
                .collect()
        })
        .collect();
    let plain = PayloadTemplate::new(
        &notification(serde_json::json!({
            "title": "Ana, your cart is waiting",
            "body": "2 items (59.90 €) are still in your cart.",
            "url": "https://shop.example/cart",
        })),
        aviso::notify::receipt::ReceiptKey::new(&[7; 32]),
    );
    let personal = PayloadTemplate::new(
        &notification(serde_json::json!({
            "title": LIQUID_TITLE.replace("round: 2", "fixed: 2"),
            "body": "{{ profile.points }} points: your items are still in your cart.",
            "url": "https://shop.example/cart",
        })),
        aviso::notify::receipt::ReceiptKey::new(&[7; 32]),
    );
    assert!(!plain.uses_variables() && personal.uses_variables());

    let mut group = c.benchmark_group("broadcast_200k_render");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BROADCAST as u64));
    group.bench_function("without_variables", |b| {
        b.iter(|| {
            for subscription in &subscriptions {
                black_box(plain.render(subscription.id));
            }
        })
    });
    // A/B: two variants prepared once; per subscriber the split's hash picks one (the
    // engine's hot path for a notification with variants, `delivery/engine.rs::personalise`).
    let mut two: Notification = notification(serde_json::json!({"title": "A"}));
    two.variants = serde_json::from_value(serde_json::json!([
        {"weight": 1, "content": {"title": "Ana, your cart is waiting", "body": "2 items (59.90 €) are still in your cart.", "url": "https://shop.example/cart"}},
        {"weight": 1, "content": {"title": "Your cart misses you", "body": "2 items (59.90 €) are still in your cart.", "url": "https://shop.example/cart"}},
    ]))
    .expect("variants");
    let variants = PayloadTemplate::all(&two, aviso::notify::receipt::ReceiptKey::new(&[7; 32]));
    let split = aviso::notify::variants::Split::new(&two.id, &[1, 1], None);
    group.bench_function("two_variants_picked_by_hash", |b| {
        b.iter(|| {
            for subscription in &subscriptions {
                let template = &variants[split.variant_of(subscription.id)];
                black_box(template.render(subscription.id));
            }
        })
    });
    group.bench_function("with_variables", |b| {
        b.iter(|| {
            for (chunk, profiles) in subscriptions.chunks(BATCH).zip(&batches) {
                // The engine's path: one profile lookup and one rendering a subscriber.
                for subscription in chunk {
                    let profile = subscription
                        .external_id
                        .as_ref()
                        .and_then(|id| profiles.get(id));
                    black_box(personal.render_subscriber(subscription, profile, None))
                        .expect("a payload that fits");
                }
            }
        })
    });
    group.finish();

    // The crypto floor of one message, in the same run (as benches/push.rs measures it).
    let (key_pair, auth) = ece::generate_keypair_and_auth_secret().expect("ece key generation");
    let keys = SubscriptionKeys::from_bytes(&key_pair.pub_as_raw().expect("raw key"), &auth)
        .expect("valid subscriber keys");
    let payload = personal
        .render_for(SubscriptionId(1), &Context::default())
        .expect("payload");
    let mut group = c.benchmark_group("encrypt");
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("{}B", payload.len()), |b| {
        b.iter(|| encrypt(black_box(&keys), black_box(&payload)).expect("encrypt"))
    });
    group.finish();
}

criterion_group!(benches, bench_engines, bench_broadcast);
criterion_main!(benches);
