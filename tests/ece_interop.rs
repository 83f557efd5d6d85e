//! Interoperability: what Aviso encrypts, an independent implementation (Mozilla's `ece` crate,
//! OpenSSL backend) decrypts to the same bytes, for random keys and every payload size class.

use aviso::push::{MAX_PLAINTEXT_LEN, SubscriptionKeys, encrypt};
use proptest::prelude::*;

fn subscriber() -> (ece::EcKeyComponents, SubscriptionKeys, [u8; 16]) {
    let (key_pair, auth) = ece::generate_keypair_and_auth_secret().unwrap();
    let keys = SubscriptionKeys::from_bytes(&key_pair.pub_as_raw().unwrap(), &auth).unwrap();
    (key_pair.raw_components().unwrap(), keys, auth)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ece_decrypts_what_aviso_encrypts(
        payload in prop::collection::vec(any::<u8>(), 0..=MAX_PLAINTEXT_LEN),
    ) {
        let (components, keys, auth) = subscriber();
        let body = encrypt(&keys, &payload).unwrap();
        prop_assert!(body.len() <= 4096);
        let decrypted = ece::decrypt(&components, &auth, &body).unwrap();
        prop_assert_eq!(decrypted, payload);
    }
}

#[test]
fn the_size_limits_decrypt_too() {
    let (components, keys, auth) = subscriber();
    for size in [0, 1, 15, 16, 17, 3992, MAX_PLAINTEXT_LEN] {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let body = encrypt(&keys, &payload).unwrap();
        assert_eq!(
            ece::decrypt(&components, &auth, &body).unwrap(),
            payload,
            "size {size}"
        );
    }
}
