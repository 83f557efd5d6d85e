//! Which crypto backend should carry the per-message work? Each message needs a fresh P-256 key
//! pair and one ECDH with the subscriber's key (RFC 8291 §3.1), which is ~90% of its cost. This
//! bench measures exactly that pair of operations on every real candidate, and a whole 200-byte
//! message with Aviso's encryption beside the `ece` crate (OpenSSL). Figures: docs/BENCHMARKS.md.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn subscriber_public_key() -> Vec<u8> {
    let (key_pair, _) = ece::generate_keypair_and_auth_secret().expect("ece key generation");
    key_pair.pub_as_raw().expect("raw key")
}

fn keygen_and_ecdh(c: &mut Criterion) {
    let peer = subscriber_public_key();
    let mut group = c.benchmark_group("keygen_ecdh_p256");

    group.bench_function("aws-lc-rs", |b| {
        use aws_lc_rs::agreement::{ECDH_P256, PrivateKey, UnparsedPublicKey, agree};
        b.iter(|| {
            let key = PrivateKey::generate(&ECDH_P256).expect("keygen");
            let public = key.compute_public_key().expect("public");
            let secret = agree(
                &key,
                UnparsedPublicKey::new(&ECDH_P256, black_box(&peer)),
                (),
                |s| Ok(s[0]),
            );
            (public.as_ref()[1], secret)
        })
    });

    group.bench_function("ring", |b| {
        use ring::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
        let rng = ring::rand::SystemRandom::new();
        b.iter(|| {
            let key = EphemeralPrivateKey::generate(&ECDH_P256, &rng).expect("keygen");
            let public = key.compute_public_key().expect("public");
            let secret = agree_ephemeral(
                key,
                &UnparsedPublicKey::new(&ECDH_P256, black_box(&peer)),
                |s| s[0],
            );
            (public.as_ref()[1], secret)
        })
    });

    group.bench_function("p256", |b| {
        let peer = p256::PublicKey::from_sec1_bytes(&peer).expect("peer");
        b.iter(|| {
            let secret =
                p256::ecdh::EphemeralSecret::random(&mut p256::elliptic_curve::rand_core::OsRng);
            let public = p256::EncodedPoint::from(secret.public_key());
            let shared = secret.diffie_hellman(black_box(&peer));
            (public.as_bytes()[1], shared.raw_secret_bytes()[0])
        })
    });

    group.bench_function("openssl", |b| {
        use openssl::bn::BigNumContext;
        use openssl::derive::Deriver;
        use openssl::ec::{EcGroup, EcKey, EcPoint, PointConversionForm};
        use openssl::nid::Nid;
        use openssl::pkey::PKey;
        let curve = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("curve");
        let mut ctx = BigNumContext::new().expect("ctx");
        let point = EcPoint::from_bytes(&curve, &peer, &mut ctx).expect("point");
        let peer =
            PKey::from_ec_key(EcKey::from_public_key(&curve, &point).expect("key")).expect("pkey");
        b.iter(|| {
            let key = EcKey::generate(&curve).expect("keygen");
            let public = key
                .public_key()
                .to_bytes(&curve, PointConversionForm::UNCOMPRESSED, &mut ctx)
                .expect("public");
            let key = PKey::from_ec_key(key).expect("pkey");
            let mut deriver = Deriver::new(&key).expect("deriver");
            deriver.set_peer(black_box(&peer)).expect("peer");
            (public[1], deriver.derive_to_vec().expect("derive")[0])
        })
    });
    group.finish();
}

fn whole_message(c: &mut Criterion) {
    let (key_pair, auth) = ece::generate_keypair_and_auth_secret().expect("ece key generation");
    let public = key_pair.pub_as_raw().expect("raw key");
    let keys = aviso::push::SubscriptionKeys::from_bytes(&public, &auth).expect("keys");
    let payload = vec![b'x'; 200];
    let mut group = c.benchmark_group("encrypt_200B");
    group.bench_function("aviso (aws-lc-rs)", |b| {
        b.iter(|| aviso::push::encrypt(black_box(&keys), black_box(&payload)).expect("encrypt"))
    });
    group.bench_function("ece crate (openssl)", |b| {
        b.iter(|| ece::encrypt(black_box(&public), &auth, black_box(&payload)).expect("encrypt"))
    });
    group.finish();
}

criterion_group!(benches, keygen_and_ecdh, whole_message);
criterion_main!(benches);
