//! The sender's hot path, one piece at a time: encrypting a message (a typical 200-byte
//! notification and the 3993-byte maximum), fetching the cached VAPID header, and signing a
//! fresh JWT (what the cache saves).

use aviso::push::vapid::{DEFAULT_VALIDITY, VapidSubject};
use aviso::push::{
    MAX_PLAINTEXT_LEN, PushOptions, PushSubscription, SubscriptionKeys, VapidHeaderCache, VapidKey,
    build_request, encrypt,
};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn subscriber_keys() -> SubscriptionKeys {
    let (key_pair, auth) = ece::generate_keypair_and_auth_secret().expect("ece key generation");
    SubscriptionKeys::from_bytes(&key_pair.pub_as_raw().expect("raw key"), &auth)
        .expect("valid subscriber keys")
}

fn bench_encrypt(c: &mut Criterion) {
    let keys = subscriber_keys();
    let mut group = c.benchmark_group("encrypt");
    for size in [200, MAX_PLAINTEXT_LEN] {
        let payload = vec![b'x'; size];
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{size}B"), |b| {
            b.iter(|| encrypt(black_box(&keys), black_box(&payload)).expect("encrypt"))
        });
    }
    group.finish();
}

fn bench_vapid(c: &mut Criterion) {
    let cache = VapidHeaderCache::new(
        VapidKey::generate().expect("key"),
        VapidSubject::parse("mailto:ops@example.com").expect("subject"),
        DEFAULT_VALIDITY,
    )
    .expect("cache");
    let audience = "https://fcm.googleapis.com";
    cache.authorization(audience).expect("header");
    let mut group = c.benchmark_group("vapid");
    group.bench_function("cached_header", |b| {
        b.iter(|| cache.authorization(black_box(audience)).expect("header"))
    });
    let subject = VapidSubject::parse("mailto:ops@example.com").expect("subject");
    group.bench_function("fresh_jwt", |b| {
        b.iter(|| {
            cache
                .key()
                .sign_jwt(black_box(audience), &subject, 1_900_000_000)
                .expect("jwt")
        })
    });
    group.finish();
}

/// One whole message as the sender prepares it: encrypt, header, request.
fn bench_message(c: &mut Criterion) {
    let keys = subscriber_keys();
    let sub = PushSubscription::new(
        "https://fcm.googleapis.com/fcm/send/dGVzdC1lbmRwb2ludC10b2tlbi1mb3ItYmVuY2htYXJr",
        keys,
    )
    .expect("subscription");
    let cache = VapidHeaderCache::new(
        VapidKey::generate().expect("key"),
        VapidSubject::parse("mailto:ops@example.com").expect("subject"),
        DEFAULT_VALIDITY,
    )
    .expect("cache");
    let payload = vec![b'x'; 200];
    let options = PushOptions::default();
    c.bench_function("message/200B_request", |b| {
        b.iter(|| {
            let body = encrypt(sub.keys(), &payload).expect("encrypt");
            let auth = cache.authorization(&sub.audience()).expect("header");
            build_request(&sub, Bytes::from(body), auth, &options)
        })
    });
}

criterion_group!(benches, bench_encrypt, bench_vapid, bench_message);
criterion_main!(benches);
