//! Bad input never panics: the subscription parser fed arbitrary JSON and arbitrary bytes, and
//! every option parser fed arbitrary strings, answer with an error or a valid value.

use aviso::push::{PushSubscription, Topic, Ttl, Urgency};
use proptest::prelude::*;
use serde_json::{Value, json};

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
                    Just("endpoint".to_string()),
                    Just("keys".to_string()),
                    Just("p256dh".to_string()),
                    Just("auth".to_string()),
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
    let mut off_curve = p256dh.to_string();
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
