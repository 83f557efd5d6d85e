//! Per-message cost of `encrypt_batch` with the P-256 part on aws-lc-rs and on the multi-buffer
//! backend (Intel's crypto_mb), same run: a run of 24 messages of 200 bytes (the engine seals a
//! quarter of a task's window at a time, 25 by default), and the EC part alone (a key pair and an
//! ECDH for each of 8 messages). Criterion's throughput line gives messages per second; the
//! time per message is the batch's time over its size. Figures: docs/BENCHMARKS.md.

use aviso::push::{EcBackend, SubscriptionKeys, encrypt_batch};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const RUN: usize = 24;

fn subscribers(n: usize) -> Vec<SubscriptionKeys> {
    (0..n)
        .map(|_| {
            let (key_pair, auth) =
                ece::generate_keypair_and_auth_secret().expect("ece key generation");
            SubscriptionKeys::from_bytes(&key_pair.pub_as_raw().expect("raw key"), &auth)
                .expect("valid keys")
        })
        .collect()
}

fn backends() -> Vec<EcBackend> {
    let mut backends = vec![EcBackend::AwsLc];
    match EcBackend::detect() {
        (backend @ EcBackend::MultiBuffer(_), _) => backends.push(backend),
        (_, reason) => eprintln!(
            "multi-buffer backend not measured: {}",
            reason.unwrap_or_default()
        ),
    }
    backends
}

fn batch(c: &mut Criterion) {
    let keys = subscribers(RUN);
    let payload = vec![0x42u8; 200];
    let messages: Vec<(&SubscriptionKeys, &[u8])> =
        keys.iter().map(|k| (k, payload.as_slice())).collect();
    let mut group = c.benchmark_group("encrypt_batch_24x200B");
    group.throughput(Throughput::Elements(RUN as u64));
    for backend in backends() {
        group.bench_function(backend.name(), |b| {
            b.iter(|| encrypt_batch(backend, black_box(&messages)))
        });
    }
    group.finish();
}

fn ec_part(c: &mut Criterion) {
    use aviso_crypto_mb::{AffinePoint, LANES, NistP256, Scalar};
    let Ok(library) = NistP256::shared() else {
        return;
    };
    let keys = subscribers(LANES);
    let peers: Vec<AffinePoint> = keys
        .iter()
        .map(|k| AffinePoint::from_uncompressed(k.p256dh()).expect("point"))
        .collect();
    let scalars: Vec<Scalar> = (0..LANES)
        .map(|i| {
            let mut bytes = [0u8; 32];
            bytes[31] = 1 + i as u8;
            bytes[0] = 0x5a;
            Scalar::from_be_bytes(&bytes).expect("scalar")
        })
        .collect();
    let mut group = c.benchmark_group("keygen_ecdh_p256_x8");
    group.throughput(Throughput::Elements(LANES as u64));
    group.bench_function("crypto_mb", |b| {
        b.iter(|| {
            let lanes = std::array::from_fn(|i| &scalars[i]);
            let publics = library.public_keys(lanes);
            let secrets = library.shared_secrets(lanes, std::array::from_fn(|i| &peers[i]));
            (publics, secrets)
        })
    });
    group.finish();
}

criterion_group!(benches, batch, ec_part);
criterion_main!(benches);
