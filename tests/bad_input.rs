//! Bad input never panics: the subscription parser fed arbitrary JSON and arbitrary bytes, and
//! every option parser fed arbitrary strings, answer with an error or a valid value; and every
//! public request body type, as arbitrary JSON of its shape and of no shape, sent through the
//! real router (embedded store), is answered 2xx or a 4xx problem, never a 5xx or a panic.

use std::net::SocketAddr;
use std::sync::Arc;

use aviso::push::{PushSubscription, Topic, Ttl, Urgency};
use axum::extract::connect_info::MockConnectInfo;
use axum::http::StatusCode;
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Arbitrary JSON values, nested a few levels.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,80}".prop_map(Value::String),
        "[A-Za-z0-9_-]{0,100}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map(
                prop_oneof![
                    Just("endpoint".to_owned()),
                    Just("keys".to_owned()),
                    Just("p256dh".to_owned()),
                    Just("auth".to_owned()),
                    ".{0,10}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Subscriptions that are well-formed in shape but arbitrary in content.
fn arb_shaped_subscription() -> impl Strategy<Value = Value> {
    (".{0,60}", "[A-Za-z0-9_=+/-]{0,100}", "[A-Za-z0-9_=+/-]{0,30}").prop_map(|(e, p, a)| {
        json!({"endpoint": format!("https://{e}"), "keys": {"p256dh": p, "auth": a}})
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_json_never_panics(value in prop_oneof![arb_json(), arb_shaped_subscription()]) {
        let _ = PushSubscription::from_json(value.to_string().as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        prop_assert!(PushSubscription::from_json(&bytes).is_err() || serde_json::from_slice::<Value>(&bytes).is_ok());
    }

    #[test]
    fn option_parsers_never_panic(s in ".{0,40}") {
        let _ = s.parse::<Ttl>();
        let _ = s.parse::<Urgency>();
        if let Ok(topic) = s.parse::<Topic>() {
            prop_assert!(topic.as_str().len() <= 32);
        }
    }
}

#[test]
fn each_bad_input_has_a_clear_message() {
    let p256dh =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    let auth = "BTBZMqHH6r4Tts7J_aSIgg";
    let message = |endpoint: &str, p: &str, a: &str| {
        PushSubscription::from_parts(endpoint, p, a)
            .unwrap_err()
            .to_string()
    };
    assert!(message("http://push.example/x", p256dh, auth).contains("https"));
    assert!(message("https://push.example/x", &p256dh[..20], auth).contains("65-byte"));
    assert!(message("https://push.example/x", p256dh, "AAAA").contains("16 bytes"));
    assert!(message("https://push.example/x", "%%%", auth).contains("base64url"));
    let mut off_curve = p256dh.to_owned();
    off_curve.replace_range(60..62, "AA");
    assert!(message("https://push.example/x", &off_curve, auth).contains("curve"));
    assert!(
        "-5".parse::<Ttl>()
            .unwrap_err()
            .to_string()
            .contains("seconds")
    );
    assert!(
        "soon"
            .parse::<Urgency>()
            .unwrap_err()
            .to_string()
            .contains("very-low")
    );
    assert!(
        "x".repeat(33)
            .parse::<Topic>()
            .unwrap_err()
            .to_string()
            .contains("32")
    );
}

#[test]
fn date_parser_is_total() {
    proptest!(ProptestConfig::with_cases(3000), |(text in prop_oneof![
        ".{0,40}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9é]{2}:?[0-9é]{2})",
    ])| {
        let _ = aviso::notify::model::parse_rfc3339(&text);
    });
}

/// The real router over a fresh embedded store with one app, limits out of the way.
struct Api {
    router: axum::Router,
    app_id: String,
    api_key: String,
    _dir: tempfile::TempDir,
}

/// The runtime the router tests drive the router on (a proptest runner is not async).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = aviso::store::open(None, &dir.path().join("data"))
        .await
        .unwrap();
    let created = aviso::apps::create_app("Fuzz", vec!["https://shop.example".into()]).unwrap();
    let mut app = created.app.clone();
    app.demo = true;
    store.put_app(&app).await.unwrap();
    let mut config = aviso::config::Config::load(&aviso::config::ServeArgs::default()).unwrap();
    config.public_rate_limit = 1_000_000;
    config.public_app_rate_limit = 1_000_000;
    config.allowed_push_hosts = vec!["127.0.0.1:9".parse().unwrap()];
    let state = aviso::api::ApiState::new(Arc::clone(&store), config, None);
    let router =
        aviso::api::router(state).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 4000))));
    Api {
        router,
        app_id: app.id,
        api_key: created.api_key,
        _dir: dir,
    }
}

impl Api {
    /// Sends a JSON `body` with the app's key and answers the status and the JSON it answered.
    async fn answer(&self, method: &str, path: &str, body: String) -> (StatusCode, Value) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path.replace("{app}", &self.app_id))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", self.api_key))
            .header("origin", "https://shop.example")
            .body(axum::body::Body::from(body))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// Sends `body` and checks the answer: 2xx, or a 4xx problem document; never 5xx.
    async fn check(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: String,
    ) -> Result<(), TestCaseError> {
        let path = path.replace("{app}", &self.app_id);
        let request = axum::http::Request::builder()
            .method(method)
            .uri(&path)
            .header("content-type", content_type)
            .header("authorization", format!("Bearer {}", self.api_key))
            .header("origin", "https://shop.example")
            .body(axum::body::Body::from(body.clone()))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let problem = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/problem+json");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        prop_assert!(
            status.is_success() || (status.is_client_error() && problem),
            "{method} {path} {body} -> {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        if status.is_client_error() {
            let problem: Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()));
        }
        Ok(())
    }
}

/// JSON values whose object keys are mostly the field names of the body type under test, so
/// that the values reach the checks behind the shape.
fn shaped(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        (0u64..5_000_000).prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
        "[0-9a-f]{16}".prop_map(Value::String),
        "https://127\\.0\\.0\\.1(:9|:6379)?/[a-z]{0,5}".prop_map(Value::String),
        "20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|\\+0[0-9é]:00)"
            .prop_map(Value::String),
        prop::sample::select(keys).prop_map(|k| json!(k)),
        Just(json!("all")),
        Just(json!(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
        )),
        Just(json!("BTBZMqHH6r4Tts7J_aSIgg")),
    ];
    leaf.prop_recursive(5, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![4 => prop::sample::select(keys).prop_map(str::to_owned), 1 => ".{0,8}"],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const SUBSCRIBE: &[&str] = &[
    "subscription",
    "endpoint",
    "expirationTime",
    "keys",
    "p256dh",
    "auth",
    "locale",
    "timezone",
    "tags",
    "external_id",
    "identity_hash",
];
const OWNED: &[&str] = &["endpoint", "auth", "external_id", "identity_hash", "tags"];
const EVENT: &[&str] = &[
    "notification_id",
    "subscription_id",
    "type",
    "action",
    "token",
    "variant",
    "shown",
    "clicked",
    "closed",
];
const PROFILE: &[&str] = &["attributes", "tags", "external_id", "subscription_id"];
const NOTIFICATION: &[&str] = &[
    "audience",
    "content",
    "ttl",
    "urgency",
    "topic",
    "send_at",
    "idempotency_key",
    "segment",
    "external_ids",
    "subscription_ids",
    "all",
    "any",
    "not",
    "tag",
    "attribute",
    "key",
    "value",
    "op",
    "eq",
    "lt",
    "gte",
    "title",
    "body",
    "icon",
    "image",
    "badge",
    "url",
    "actions",
    "action",
    "require_interaction",
    "data",
    "high",
    "very-low",
    "variants",
    "weight",
    "winner",
    "fraction",
    "metric",
    "after_secs",
    "clicked",
    "shown",
];

/// Every body-taking endpoint, with the field names of its body type.
const ENDPOINTS: &[(&str, &str, &[&str])] = &[
    ("POST", "/v1/apps/{app}/subscriptions", SUBSCRIBE),
    ("POST", "/v1/apps/{app}/subscriptions/unsubscribe", OWNED),
    ("POST", "/v1/apps/{app}/subscriptions/identify", OWNED),
    ("POST", "/v1/apps/{app}/subscriptions/tags", OWNED),
    ("POST", "/v1/apps/{app}/events", EVENT),
    ("POST", "/v1/apps/{app}/demo/test-push", OWNED),
    ("PUT", "/v1/profiles/crm-1", PROFILE),
    ("POST", "/v1/profiles/crm-1/subscriptions", PROFILE),
    ("POST", "/v1/notifications", NOTIFICATION),
];

#[test]
fn every_body_type_through_the_router_gets_a_2xx_or_a_4xx_problem() {
    let runtime = runtime();
    let api = runtime.block_on(api());
    for (method, path, keys) in ENDPOINTS {
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(300));
        runner
            .run(&shaped(keys), |body| {
                runtime.block_on(api.check(method, path, "application/json", body.to_string()))
            })
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    }
    // The bulk import: arbitrary lines of NDJSON.
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(200));
    runner
        .run(&prop::collection::vec(shaped(PROFILE), 0..5), |lines| {
            let body = lines
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n");
            runtime.block_on(api.check("POST", "/v1/profile-imports", "application/x-ndjson", body))
        })
        .unwrap();
}

/// Each mistake in A/B variants and a winner test is a 400 problem naming its field, through the
/// real router.
#[test]
fn variant_mistakes_name_their_field() {
    let runtime = runtime();
    let api = runtime.block_on(api());
    let two = || json!([{"weight": 1, "content": {"title": "A"}}, {"weight": 1, "content": {"title": "B"}}]);
    let variant = |title: &str| json!({"weight": 1, "content": {"title": title}});
    let winner = json!({"fraction": 0.2, "metric": "clicked", "after_secs": 60});
    let cases = [
        (json!({"audience": "all"}), "content"),
        (
            json!({"audience": "all", "content": {"title": "x"}, "variants": two()}),
            "variants",
        ),
        (
            json!({"audience": "all", "variants": [variant("A")]}),
            "variants",
        ),
        (
            json!({"audience": "all", "variants": vec![variant("A"); 6]}),
            "variants",
        ),
        (json!({"audience": "all", "variants": []}), "variants"),
        (
            json!({"audience": "all", "variants": [variant("A"), variant("B"), {"weight": 0, "content": {"title": "C"}}]}),
            "variants[2].weight",
        ),
        (
            json!({"audience": "all", "variants": [variant("A"), {"weight": -3, "content": {"title": "B"}}]}),
            "variants[1].weight",
        ),
        (
            json!({"audience": "all", "variants": [variant("A"), {"weight": 1.5, "content": {"title": "B"}}]}),
            "variants[1].weight",
        ),
        (
            json!({"audience": "all", "variants": [variant("A"), {"weight": 10001, "content": {"title": "B"}}]}),
            "variants[1].weight",
        ),
        (
            json!({"audience": "all", "variants": [variant(" "), variant("B")]}),
            "variants[0].content.title",
        ),
        (
            json!({"audience": "all", "variants": [variant("A"), {"weight": 1, "content": {"title": "B", "icon": "nope"}}]}),
            "variants[1].content.icon",
        ),
        (
            json!({"audience": "all", "variants": [variant("A"), {"weight": 1, "content": {"title": "{{ profile.x"}}]}),
            "variants[1].content.title",
        ),
        (
            json!({"audience": "all", "variants": [variant("A"), {"weight": 1, "content": {"title": "B", "body": "y".repeat(4000)}}]}),
            "variants[1].content",
        ),
        (
            json!({"audience": "all", "variants": [variant("A"), {"weight": 1}]}),
            "variants[1].content",
        ),
        (
            json!({"audience": "all", "content": {"title": "x"}, "winner": winner}),
            "winner",
        ),
        (
            json!({"audience": "all", "variants": two(), "winner": {"fraction": 0, "metric": "clicked", "after_secs": 60}}),
            "winner.fraction",
        ),
        (
            json!({"audience": "all", "variants": two(), "winner": {"fraction": 1.0, "metric": "clicked", "after_secs": 60}}),
            "winner.fraction",
        ),
        (
            json!({"audience": "all", "variants": two(), "winner": {"fraction": 0.5, "metric": "opened", "after_secs": 60}}),
            "winner.metric",
        ),
        (
            json!({"audience": "all", "variants": two(), "winner": {"fraction": 0.5, "metric": "shown", "after_secs": 0}}),
            "winner.after_secs",
        ),
        (
            json!({"audience": "all", "variants": two(), "winner": {"fraction": 0.5, "metric": "shown"}}),
            "winner.after_secs",
        ),
        (
            json!({"audience": "all", "variants": two(), "winner": winner, "send_at_local": "2030-01-01T10:00"}),
            "winner",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) =
            runtime.block_on(api.answer("POST", "/v1/notifications", body.to_string()));
        assert_eq!(status, 400, "{body} -> {problem}");
        assert_eq!(problem["field"], field, "{body} -> {problem}");
    }
}

/// Every JSON body is one object: an array, a string or a number is a 400 naming `body`, even
/// where every field is optional (serde alone reads a struct from an array of its fields, so
/// `PUT /v1/profiles/{id}` took `[]`: schemathesis ST201, seed 811411812).
#[test]
fn a_body_that_is_not_an_object_is_refused_by_name() {
    let runtime = runtime();
    let api = runtime.block_on(api());
    for (method, path, _) in ENDPOINTS {
        for body in ["[]", "[{}]", "\"x\"", "1", "null"] {
            let (status, problem) = runtime.block_on(api.answer(method, path, body.to_owned()));
            assert_eq!(status, 400, "{method} {path} {body} -> {problem}");
            assert_eq!(
                problem["field"], "body",
                "{method} {path} {body} -> {problem}"
            );
        }
    }
}

/// A query parameter's mistake is a 400 naming the parameter (`field`), in our words rather
/// than the parser's ("invalid digit found in string"), through the real router.
#[test]
fn query_mistakes_name_their_parameter() {
    let runtime = runtime();
    let api = runtime.block_on(api());
    let cases = [
        (
            "/v1/notifications?limit=x",
            "limit",
            "must be a whole number",
        ),
        (
            "/v1/notifications?limit=-5",
            "limit",
            "must be a whole number",
        ),
        (
            "/v1/notifications?limit=",
            "limit",
            "must be a whole number",
        ),
        (
            "/v1/notifications?limit=99999999999999999999999",
            "limit",
            "too large",
        ),
        ("/v1/notifications?limt=5", "limt", "not a field here"),
        ("/v1/notifications?limit=5&limit=6", "limit", "given twice"),
        (
            "/v1/notifications/history?status=weird",
            "status",
            "`weird` is not one of",
        ),
        (
            "/v1/notifications/history?created_from_ms=1.5",
            "created_from_ms",
            "must be a whole number",
        ),
        ("/v1/notifications/history?limit=0", "limit", "1 to 100"),
    ];
    for (path, field, says) in cases {
        let (status, problem) = runtime.block_on(api.answer("GET", path, String::new()));
        assert_eq!(status, 400, "{path} -> {problem}");
        assert_eq!(problem["field"], field, "{path} -> {problem}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{path} -> {detail}");
        assert!(!detail.contains("deserialize"), "{path} -> {detail}");
    }
    // A path parameter that is not UTF-8 once decoded is named too.
    let (status, problem) =
        runtime.block_on(api.answer("GET", "/v1/notifications/%FF", String::new()));
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "id", "{problem}");
}

/// A known path asked with a method it does not take is a 405 problem document, with the
/// `Allow` header that lists the methods it takes; axum's own answer has an empty body.
#[test]
fn a_method_an_endpoint_does_not_take_is_a_problem_with_allow() {
    let runtime = runtime();
    let api = runtime.block_on(api());
    let cases = [
        ("PATCH", "/v1/profiles/crm-1", "PUT"),
        ("DELETE", "/v1/notifications", "POST"),
        ("PUT", "/v1/apps/{app}/subscriptions", "POST"),
        ("POST", "/healthz", "GET"),
    ];
    for (method, path, allowed) in cases {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path.replace("{app}", &api.app_id))
            .header("authorization", format!("Bearer {}", api.api_key))
            .header("origin", "https://shop.example")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = runtime
            .block_on(api.router.clone().oneshot(request))
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(
            header("allow").contains(allowed),
            "{method} {path}: allow `{}`",
            header("allow")
        );
        assert_eq!(
            header("content-type"),
            "application/problem+json",
            "{method} {path}"
        );
        let bytes = runtime
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 16))
            .unwrap();
        let problem: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(problem["status"], 405, "{problem}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(method), "{method} {path}: {detail}");
    }
}
