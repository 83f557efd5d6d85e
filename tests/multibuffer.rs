//! The multi-buffer P-256 backend (Intel's crypto_mb) against independent implementations:
//! the same public key and ECDH shared secret as aws-lc-rs for the same private scalar over
//! 100,000 random scalars, the RFC 8291 Appendix A body, and what Mozilla's `ece` crate (OpenSSL)
//! decrypts from batches of every shape.
//!
//! On a CPU without AVX-512 IFMA these tests say so and skip; on one with it the library must
//! open (`scripts/test.d/ipp-crypto.sh` installs it into `target/ipp-crypto`), or they fail.
#![cfg(feature = "crypto-mb")]

use aviso::push::encryption::{EcBackend, encrypt_batch, encrypt_batch_with};
use aviso::push::{MAX_PLAINTEXT_LEN, SubscriptionKeys, base64url};
use aviso_crypto_mb::{AffinePoint, LANES, NistP256, Scalar};
use aws_lc_rs::agreement::{ECDH_P256, PrivateKey, UnparsedPublicKey, agree};

/// The library, or `None` (with the reason printed) where the CPU cannot run it.
fn library(test: &str) -> Option<&'static NistP256> {
    if let Err(reason) = aviso_crypto_mb::cpu_has_the_instructions() {
        eprintln!("SKIPPED {test}: {reason}");
        return None;
    }
    match NistP256::shared() {
        Ok(library) => Some(library),
        Err(reason) => panic!(
            "this CPU has AVX-512 IFMA but the multi-buffer backend is unavailable: {reason} \
             (scripts/test.d/ipp-crypto.sh installs it)"
        ),
    }
}

fn random_scalar() -> ([u8; 32], Scalar) {
    loop {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).unwrap();
        if let Some(scalar) = Scalar::from_be_bytes(&bytes) {
            return (bytes, scalar);
        }
    }
}

#[test]
fn same_public_keys_and_shared_secrets_as_aws_lc_for_100000_random_scalars() {
    let Some(library) = library("the differential test") else {
        return;
    };
    const N: usize = 100_000;
    for _ in 0..N / LANES {
        let scalars: [([u8; 32], Scalar); LANES] = std::array::from_fn(|_| random_scalar());
        let peer_keys: [[u8; 65]; LANES] = std::array::from_fn(|_| {
            let peer = PrivateKey::generate(&ECDH_P256).unwrap();
            peer.compute_public_key()
                .unwrap()
                .as_ref()
                .try_into()
                .unwrap()
        });
        let peers: [AffinePoint; LANES] =
            std::array::from_fn(|i| AffinePoint::from_uncompressed(&peer_keys[i]).unwrap());

        let publics = library.public_keys(std::array::from_fn(|i| &scalars[i].1));
        let secrets = library.shared_secrets(
            std::array::from_fn(|i| &scalars[i].1),
            std::array::from_fn(|i| &peers[i]),
        );
        for lane in 0..LANES {
            let reference = PrivateKey::from_private_key(&ECDH_P256, &scalars[lane].0).unwrap();
            let public = publics[lane].as_ref().expect("public key lane");
            assert_eq!(
                public.to_uncompressed().as_slice(),
                reference.compute_public_key().unwrap().as_ref(),
                "public key of scalar {}",
                base64url::encode(&scalars[lane].0)
            );
            let expected = agree(
                &reference,
                UnparsedPublicKey::new(&ECDH_P256, &peer_keys[lane]),
                (),
                |s| Ok(s.to_vec()),
            )
            .unwrap();
            assert_eq!(
                secrets[lane].as_ref().expect("ECDH lane").as_slice(),
                expected.as_slice(),
                "shared secret of scalar {} with {}",
                base64url::encode(&scalars[lane].0),
                base64url::encode(&peer_keys[lane])
            );
        }
    }
}

/// RFC 8291 Appendix A.
const PLAINTEXT: &[u8] = b"When I grow up, I want to be a watermelon";
const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
const UA_PUBLIC: &str =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

#[test]
fn rfc8291_appendix_a_in_every_lane_of_a_batch() {
    let Some(library) = library("the RFC 8291 vector") else {
        return;
    };
    let keys = SubscriptionKeys::from_base64url(UA_PUBLIC, AUTH).unwrap();
    let scalar: [u8; 32] = base64url::decode(AS_PRIVATE).unwrap().try_into().unwrap();
    let salt: [u8; 16] = base64url::decode(SALT).unwrap().try_into().unwrap();
    // Nine messages: one full call of eight lanes and a short one.
    let messages = vec![(&keys, PLAINTEXT); LANES + 1];
    let bodies = encrypt_batch_with(library, &messages, &vec![(scalar, salt); LANES + 1]);
    assert_eq!(bodies.len(), LANES + 1);
    for body in bodies {
        assert_eq!(base64url::encode(&body.unwrap()), BODY);
    }
}

fn subscriber() -> (ece::EcKeyComponents, SubscriptionKeys, [u8; 16]) {
    let (key_pair, auth) = ece::generate_keypair_and_auth_secret().unwrap();
    let keys = SubscriptionKeys::from_bytes(&key_pair.pub_as_raw().unwrap(), &auth).unwrap();
    (key_pair.raw_components().unwrap(), keys, auth)
}

/// Encrypts batches of 0, 1, 7, 8, 9 and 25 messages of sizes up to the maximum on `backend` and
/// checks that `ece` decrypts each to its payload, with a fresh key and salt per message.
fn ece_decrypts_batches(backend: EcBackend) {
    for size in [0, 1, 7, 8, 9, 25] {
        let subscribers: Vec<_> = (0..size).map(|_| subscriber()).collect();
        let payloads: Vec<Vec<u8>> = (0..size)
            .map(|i| {
                let len = [0, 1, 200, 3000, MAX_PLAINTEXT_LEN][i % 5];
                (0..len).map(|b| (b * 7 + i) as u8).collect()
            })
            .collect();
        let messages: Vec<(&SubscriptionKeys, &[u8])> = subscribers
            .iter()
            .zip(&payloads)
            .map(|((_, keys, _), payload)| (keys, payload.as_slice()))
            .collect();
        let bodies = encrypt_batch(backend, &messages);
        assert_eq!(bodies.len(), size);
        let mut headers = std::collections::HashSet::new();
        for (((components, _, auth), payload), body) in
            subscribers.iter().zip(&payloads).zip(bodies)
        {
            let body = body.unwrap();
            assert!(headers.insert(body[..86].to_vec()), "salt and key repeat");
            assert_eq!(&ece::decrypt(components, auth, &body).unwrap(), payload);
        }
    }
}

#[test]
fn ece_decrypts_multi_buffer_batches_of_every_shape() {
    if let Some(library) = library("the ece interop of batches") {
        ece_decrypts_batches(EcBackend::MultiBuffer(library));
    }
}

#[test]
fn ece_decrypts_the_fallback_batches_everywhere() {
    ece_decrypts_batches(EcBackend::AwsLc);
}

#[test]
fn a_bad_message_fails_alone_in_its_batch() {
    let mut backends = vec![EcBackend::AwsLc];
    if let Some(library) = library("bad messages in a multi-buffer batch") {
        backends.push(EcBackend::MultiBuffer(library));
    }
    for backend in backends {
        let good: Vec<_> = (0..10).map(|_| subscriber()).collect();
        // (1, 2) is not on the curve: a key that skipped validation must not be agreed with.
        let mut off_curve = [0u8; 65];
        off_curve[0] = 0x04;
        off_curve[32] = 1;
        off_curve[64] = 2;
        let bad_key = SubscriptionKeys::from_validated(off_curve, [0; 16]);
        let too_large = vec![0u8; MAX_PLAINTEXT_LEN + 1];
        let mut messages: Vec<(&SubscriptionKeys, &[u8])> = good
            .iter()
            .map(|(_, keys, _)| (keys, &b"hello"[..]))
            .collect();
        messages[3] = (&good[3].1, &too_large);
        messages[9] = (&bad_key, b"hello");
        let bodies = encrypt_batch(backend, &messages);
        for (i, body) in bodies.iter().enumerate() {
            match i {
                3 => assert_eq!(
                    body,
                    &Err(aviso::push::EncryptError::PayloadTooLarge(
                        MAX_PLAINTEXT_LEN + 1
                    )),
                    "{}",
                    backend.name()
                ),
                9 => assert_eq!(
                    body,
                    &Err(aviso::push::EncryptError::KeyAgreement),
                    "{}",
                    backend.name()
                ),
                _ => {
                    let (components, _, auth) = &good[i];
                    let body = body.as_ref().unwrap();
                    assert_eq!(ece::decrypt(components, auth, body).unwrap(), b"hello");
                }
            }
        }
    }
}
