//! VAPID: one signature per push-service origin, and JWTs that an independent library
//! (`jsonwebtoken`, RustCrypto backend) verifies with the public key from the header.

use aviso::push::vapid::{DEFAULT_VALIDITY, VapidSubject};
use aviso::push::{
    PushOptions, PushSubscription, SubscriptionKeys, VapidHeaderCache, VapidKey, build_request,
    encrypt,
};
use bytes::Bytes;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

#[derive(serde::Deserialize)]
struct Claims {
    aud: String,
    exp: u64,
    sub: String,
}

fn verify(header: &str, audience: &str) -> Claims {
    let rest = header.strip_prefix("vapid t=").unwrap();
    let (jwt, key) = rest.split_once(", k=").unwrap();
    let point = aviso::push::base64url::decode(key).unwrap();
    let x = aviso::push::base64url::encode(&point[1..33]);
    let y = aviso::push::base64url::encode(&point[33..]);
    let decoding_key = DecodingKey::from_ec_components(&x, &y).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    jsonwebtoken::decode::<Claims>(jwt, &decoding_key, &validation)
        .unwrap()
        .claims
}

/// A fresh header cache, and a browser's keys made by the `ece` crate.
fn cache_and_keys() -> (VapidHeaderCache, SubscriptionKeys) {
    let cache = VapidHeaderCache::new(
        VapidKey::generate().unwrap(),
        VapidSubject::parse("mailto:ops@example.com").unwrap(),
        DEFAULT_VALIDITY,
    )
    .unwrap();
    let (key_pair, auth) = ece::generate_keypair_and_auth_secret().unwrap();
    let keys = SubscriptionKeys::from_bytes(&key_pair.pub_as_raw().unwrap(), &auth).unwrap();
    (cache, keys)
}

#[test]
fn a_thousand_messages_to_two_origins_cost_two_signatures() {
    let (cache, keys) = cache_and_keys();
    let origins = [
        "https://fcm.googleapis.com/fcm/send",
        "https://updates.push.services.mozilla.com/wpush/v2",
    ];
    let mut headers = std::collections::HashSet::new();
    for i in 0..1000 {
        let sub = PushSubscription::new(&format!("{}/{i}", origins[i % 2]), keys.clone()).unwrap();
        let body = encrypt(sub.keys(), b"hello").unwrap();
        let authorization = cache.authorization(&sub.audience()).unwrap();
        let request = build_request(
            &sub,
            Bytes::from(body),
            authorization,
            &PushOptions::default(),
        );
        headers.insert(
            request.headers()["authorization"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(cache.signatures_made(), 2);
    assert_eq!(headers.len(), 2);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (header, audience) in [
        (
            cache.authorization("https://fcm.googleapis.com").unwrap(),
            "https://fcm.googleapis.com",
        ),
        (
            cache
                .authorization("https://updates.push.services.mozilla.com")
                .unwrap(),
            "https://updates.push.services.mozilla.com",
        ),
    ] {
        let claims = verify(header.to_str().unwrap(), audience);
        assert_eq!(claims.aud, audience);
        assert_eq!(claims.sub, "mailto:ops@example.com");
        assert!(claims.exp > now && claims.exp <= now + 24 * 3600);
    }
    assert_eq!(cache.signatures_made(), 2);
}

/// The sender asks by subscription (the cache keyed by the endpoint's authority, no audience
/// written out per message): its JWT's `aud` is still the endpoint's origin, port included and
/// the default port left out, and the audience spelled out finds the same cached header.
#[test]
fn a_subscriptions_header_is_signed_for_its_origin_and_shared_with_that_audience() {
    let (cache, keys) = cache_and_keys();
    for (endpoint, origin) in [
        ("https://push.example:8443/a/1", "https://push.example:8443"),
        (
            "https://FCM.googleapis.com:443/fcm/send/2",
            "https://fcm.googleapis.com",
        ),
        (
            "https://user@push.example:8443/b",
            "https://push.example:8443",
        ),
        ("https://[::1]:8443/c", "https://[::1]:8443"),
    ] {
        let sub = PushSubscription::new(endpoint, keys.clone()).unwrap();
        let header = cache.authorization_for(&sub).unwrap();
        let claims = verify(header.to_str().unwrap(), origin);
        assert_eq!(claims.aud, origin, "{endpoint}");
        let signed = cache.signatures_made();
        assert_eq!(cache.authorization(origin).unwrap(), header, "{endpoint}");
        assert_eq!(cache.signatures_made(), signed, "{endpoint}: signed again");
    }
    assert_eq!(cache.signatures_made(), 3);
}
