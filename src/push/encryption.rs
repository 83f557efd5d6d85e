//! RFC 8291 message encryption for Web Push, in RFC 8188's `aes128gcm` content coding.
//!
//! One message is one record: `salt(16) | rs(4) | idlen(1) | keyid(65) | ciphertext`, where the
//! key id is the application server's public key for this message. Each message gets a fresh
//! ECDH key pair and a fresh salt (RFC 8291 §3.1, RFC 8188 §2.1), so nothing here is cached.
//!
//! The decrypt side exists for tests and tooling (the RFC test vector, verifying what was sent);
//! the sender only encrypts.

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, ECDH_P256, PrivateKey, UnparsedPublicKey};
use zeroize::Zeroizing;

use super::hkdf;
use super::subscription::{AUTH_LEN, P256DH_LEN, SubscriptionKeys};

/// Push services accept bodies of 4096 bytes (RFC 8030 §7.2).
pub const MAX_BODY_LEN: usize = 4096;
/// Bytes of the `aes128gcm` header with a P-256 key id.
pub const HEADER_LEN: usize = SALT_LEN + 4 + 1 + P256DH_LEN;
pub(crate) const SALT_LEN: usize = 16;
const TAG_LEN: usize = 16;
/// The padding delimiter of the last (and only) record.
const LAST_RECORD_DELIMITER: u8 = 0x02;
/// The largest payload that fits a 4096-byte body: 4096 − 86 (header) − 16 (tag) − 1 (delimiter).
pub const MAX_PLAINTEXT_LEN: usize = MAX_BODY_LEN - HEADER_LEN - TAG_LEN - 1;
/// The record size announced in the header; one record always fits in it.
const RECORD_SIZE: u32 = MAX_BODY_LEN as u32;

/// Why a message could not be encrypted or decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptError {
    #[error(
        "payload is {0} bytes; Web Push allows at most {MAX_PLAINTEXT_LEN} bytes of plaintext \
         (4096-byte body minus encryption overhead): shorten it"
    )]
    PayloadTooLarge(usize),
    #[error("the subscriber's public key was rejected by ECDH")]
    KeyAgreement,
    #[error("the system random generator failed")]
    Random,
    #[error("the encrypted body is malformed: {0}")]
    MalformedBody(&'static str),
    #[error("the encrypted body failed authentication (wrong keys or corrupted)")]
    Decryption,
}

/// Encrypts `plaintext` for one subscriber with a fresh key pair and salt.
pub fn encrypt(keys: &SubscriptionKeys, plaintext: &[u8]) -> Result<Vec<u8>, EncryptError> {
    if plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(EncryptError::PayloadTooLarge(plaintext.len()));
    }
    let server_key = PrivateKey::generate(&ECDH_P256).map_err(|_| EncryptError::Random)?;
    let mut salt = [0u8; SALT_LEN];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| EncryptError::Random)?;
    encrypt_with(keys, plaintext, &server_key, &salt)
}

/// Encrypts with a given server key and salt. Only for test vectors: reusing either for two
/// messages breaks the encryption's guarantees.
pub fn encrypt_with(
    keys: &SubscriptionKeys,
    plaintext: &[u8],
    server_key: &PrivateKey,
    salt: &[u8; SALT_LEN],
) -> Result<Vec<u8>, EncryptError> {
    if plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(EncryptError::PayloadTooLarge(plaintext.len()));
    }
    let server_public = server_key
        .compute_public_key()
        .map_err(|_| EncryptError::KeyAgreement)?;
    let server_public: &[u8; P256DH_LEN] = server_public
        .as_ref()
        .try_into()
        .map_err(|_| EncryptError::KeyAgreement)?;
    agreement::agree(
        server_key,
        UnparsedPublicKey::new(&ECDH_P256, keys.p256dh()),
        EncryptError::KeyAgreement,
        |shared| seal(keys, plaintext, shared, server_public, salt),
    )
}

/// The part of a message after its elliptic-curve work, the same whichever backend did that:
/// the RFC 8291 key schedule from the shared secret, then the one `aes128gcm` record.
fn seal(
    keys: &SubscriptionKeys,
    plaintext: &[u8],
    shared_secret: &[u8],
    server_public: &[u8; P256DH_LEN],
    salt: &[u8; SALT_LEN],
) -> Result<Vec<u8>, EncryptError> {
    let content_keys = ContentKeys::derive(
        shared_secret,
        keys.auth(),
        keys.p256dh(),
        server_public,
        salt,
    );
    let mut body = Vec::with_capacity(HEADER_LEN + plaintext.len() + 1 + TAG_LEN);
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(P256DH_LEN as u8);
    body.extend_from_slice(server_public);
    body.extend_from_slice(plaintext);
    body.push(LAST_RECORD_DELIMITER);
    let tag = content_keys
        .key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(content_keys.nonce),
            Aad::empty(),
            &mut body[HEADER_LEN..],
        )
        .map_err(|_| EncryptError::Random)?;
    body.extend_from_slice(tag.as_ref());
    Ok(body)
}

/// Which implementation does the P-256 part (key pair and ECDH) of [`encrypt_batch`].
#[derive(Debug, Clone, Copy)]
pub enum EcBackend {
    /// aws-lc-rs, one message at a time: everywhere.
    AwsLc,
    /// Intel's crypto_mb, eight messages per call: where the CPU has AVX-512 IFMA and the
    /// library opens (`aviso_crypto_mb` says where it looks).
    #[cfg(feature = "crypto-mb")]
    MultiBuffer(&'static aviso_crypto_mb::NistP256),
}

impl EcBackend {
    /// The multi-buffer backend when this build, the CPU and the library allow it (detected once
    /// per process), aws-lc-rs otherwise, with the reason the faster one is not used.
    pub fn detect() -> (Self, Option<String>) {
        #[cfg(feature = "crypto-mb")]
        {
            match aviso_crypto_mb::NistP256::shared() {
                Ok(library) => (Self::MultiBuffer(library), None),
                Err(reason) => (Self::AwsLc, Some(reason.to_string())),
            }
        }
        #[cfg(not(feature = "crypto-mb"))]
        {
            (
                Self::AwsLc,
                Some("built without the `crypto-mb` feature".to_owned()),
            )
        }
    }

    /// How many messages one call does at once: a batch whose size is a multiple of it wastes
    /// no lane.
    pub fn lanes(&self) -> usize {
        match self {
            Self::AwsLc => 1,
            #[cfg(feature = "crypto-mb")]
            Self::MultiBuffer(_) => aviso_crypto_mb::LANES,
        }
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AwsLc => "aws-lc-rs",
            #[cfg(feature = "crypto-mb")]
            Self::MultiBuffer(_) => "crypto_mb",
        }
    }
}

/// Encrypts each `(keys, plaintext)` for its subscriber with a fresh key pair and salt, as
/// [`encrypt`] does one, with the P-256 work of the whole batch on `backend`. One result per
/// message, in order; a message that fails does not fail the others.
pub fn encrypt_batch(
    backend: EcBackend,
    messages: &[(&SubscriptionKeys, &[u8])],
) -> Vec<Result<Vec<u8>, EncryptError>> {
    match backend {
        EcBackend::AwsLc => messages
            .iter()
            .map(|(keys, plaintext)| encrypt(keys, plaintext))
            .collect(),
        #[cfg(feature = "crypto-mb")]
        EcBackend::MultiBuffer(library) => {
            let secrets = super::multibuffer::fresh_secrets(messages.len());
            match secrets {
                Ok(secrets) => multi_buffer_batch(library, messages, secrets),
                Err(error) => messages.iter().map(|_| Err(error.clone())).collect(),
            }
        }
    }
}

/// [`encrypt_batch`] on the multi-buffer backend with given server scalars (32 bytes, big-endian)
/// and salts, one per message. Only for test vectors, like [`encrypt_with`].
#[cfg(feature = "crypto-mb")]
pub fn encrypt_batch_with(
    library: &aviso_crypto_mb::NistP256,
    messages: &[(&SubscriptionKeys, &[u8])],
    secrets: &[([u8; 32], [u8; SALT_LEN])],
) -> Vec<Result<Vec<u8>, EncryptError>> {
    let secrets = secrets
        .iter()
        .map(|(scalar, salt)| {
            aviso_crypto_mb::Scalar::from_be_bytes(scalar)
                .map(|scalar| (scalar, *salt))
                .ok_or(EncryptError::KeyAgreement)
        })
        .collect::<Result<Vec<_>, _>>();
    match secrets {
        Ok(secrets) => multi_buffer_batch(library, messages, secrets),
        Err(error) => messages.iter().map(|_| Err(error.clone())).collect(),
    }
}

#[cfg(feature = "crypto-mb")]
fn multi_buffer_batch(
    library: &aviso_crypto_mb::NistP256,
    messages: &[(&SubscriptionKeys, &[u8])],
    secrets: Vec<(aviso_crypto_mb::Scalar, [u8; SALT_LEN])>,
) -> Vec<Result<Vec<u8>, EncryptError>> {
    let (scalars, salts): (Vec<_>, Vec<_>) = secrets.into_iter().unzip();
    let peers: Vec<&[u8; P256DH_LEN]> = messages.iter().map(|(keys, _)| keys.p256dh()).collect();
    let agreements = super::multibuffer::agree(library, &scalars, &peers);
    drop(scalars);
    messages
        .iter()
        .zip(agreements)
        .zip(&salts)
        .map(|(((keys, plaintext), agreement), salt)| {
            if plaintext.len() > MAX_PLAINTEXT_LEN {
                return Err(EncryptError::PayloadTooLarge(plaintext.len()));
            }
            let (server_public, shared) = agreement?;
            seal(keys, plaintext, shared.as_ref(), &server_public, salt)
        })
        .collect()
}

/// Decrypts a one-record `aes128gcm` body addressed to the subscriber whose private key is
/// `subscriber_key` (the user agent's side of RFC 8291).
pub fn decrypt(
    subscriber_key: &PrivateKey,
    auth: &[u8; AUTH_LEN],
    body: &[u8],
) -> Result<Vec<u8>, EncryptError> {
    if body.len() < HEADER_LEN + TAG_LEN + 1 {
        return Err(EncryptError::MalformedBody("shorter than header and tag"));
    }
    let (salt, rest) = body.split_at(SALT_LEN);
    let (record_size, rest) = rest.split_at(4);
    let record_size = u32::from_be_bytes([
        record_size[0],
        record_size[1],
        record_size[2],
        record_size[3],
    ]);
    if usize::from(rest[0]) != P256DH_LEN {
        return Err(EncryptError::MalformedBody(
            "key id is not a P-256 public key",
        ));
    }
    let server_public = &rest[1..=P256DH_LEN];
    let record = &rest[1 + P256DH_LEN..];
    if record.len() > record_size as usize {
        return Err(EncryptError::MalformedBody("more than one record"));
    }
    let subscriber_public = subscriber_key
        .compute_public_key()
        .map_err(|_| EncryptError::KeyAgreement)?;
    let salt: &[u8; SALT_LEN] = salt
        .try_into()
        .map_err(|_| EncryptError::MalformedBody("salt"))?;
    let content_keys = agreement::agree(
        subscriber_key,
        UnparsedPublicKey::new(&ECDH_P256, server_public),
        EncryptError::KeyAgreement,
        |shared| {
            Ok(ContentKeys::derive(
                shared,
                auth,
                subscriber_public.as_ref(),
                server_public,
                salt,
            ))
        },
    )?;
    let mut plaintext = record.to_vec();
    let opened_len = content_keys
        .key
        .open_in_place(
            Nonce::assume_unique_for_key(content_keys.nonce),
            Aad::empty(),
            &mut plaintext,
        )
        .map_err(|_| EncryptError::Decryption)?
        .len();
    plaintext.truncate(opened_len);
    // Padding is zeros after the delimiter (RFC 8188 §2).
    while plaintext.last() == Some(&0) {
        plaintext.pop();
    }
    match plaintext.pop() {
        Some(LAST_RECORD_DELIMITER) => Ok(plaintext),
        _ => Err(EncryptError::MalformedBody("missing last-record delimiter")),
    }
}

/// The AES key and nonce of a message (RFC 8291 §3.4, RFC 8188 §2.2–2.3).
struct ContentKeys {
    key: LessSafeKey,
    nonce: [u8; 12],
}

impl ContentKeys {
    fn derive(
        shared_secret: &[u8],
        auth: &[u8; AUTH_LEN],
        subscriber_public: &[u8],
        server_public: &[u8],
        salt: &[u8; SALT_LEN],
    ) -> Self {
        // key_info = "WebPush: info" || 0x00 || ua_public || as_public
        let mut key_info = [0u8; 14 + 2 * P256DH_LEN];
        key_info[..14].copy_from_slice(b"WebPush: info\0");
        key_info[14..14 + P256DH_LEN].copy_from_slice(subscriber_public);
        key_info[14 + P256DH_LEN..].copy_from_slice(server_public);
        let mut ikm = Zeroizing::new([0u8; hkdf::HASH_LEN]);
        hkdf::extract(auth, shared_secret).expand(&key_info, ikm.as_mut());

        let prk = hkdf::extract(salt, ikm.as_ref());
        let mut cek = Zeroizing::new([0u8; 16]);
        let mut nonce = [0u8; 12];
        prk.expand(b"Content-Encoding: aes128gcm\0", cek.as_mut());
        prk.expand(b"Content-Encoding: nonce\0", &mut nonce);
        // A 16-byte key always suits AES-128; this cannot fail.
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_128_GCM, cek.as_ref())
                .unwrap_or_else(|_| unreachable!("AES-128 key length")),
        );
        Self { key, nonce }
    }
}

/// RFC 8291 Appendix A's example, for every test of the push core.
#[cfg(test)]
pub(super) mod rfc8291 {
    pub const PLAINTEXT: &[u8] = b"When I grow up, I want to be a watermelon";
    pub const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    pub const AS_PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    pub const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    pub const UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    pub const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    pub const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    pub const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::base64url;

    fn private_key(b64: &str) -> PrivateKey {
        PrivateKey::from_private_key(&ECDH_P256, &base64url::decode(b64).unwrap()).unwrap()
    }

    fn auth() -> [u8; 16] {
        base64url::decode(rfc8291::AUTH)
            .unwrap()
            .try_into()
            .unwrap()
    }

    #[test]
    fn rfc8291_appendix_a_encrypts_to_the_published_body() {
        let keys = SubscriptionKeys::from_base64url(rfc8291::UA_PUBLIC, rfc8291::AUTH).unwrap();
        let salt: [u8; 16] = base64url::decode(rfc8291::SALT)
            .unwrap()
            .try_into()
            .unwrap();
        let server_key = private_key(rfc8291::AS_PRIVATE);
        assert_eq!(
            base64url::encode(server_key.compute_public_key().unwrap().as_ref()),
            rfc8291::AS_PUBLIC
        );
        let body = encrypt_with(&keys, rfc8291::PLAINTEXT, &server_key, &salt).unwrap();
        assert_eq!(base64url::encode(&body), rfc8291::BODY);
    }

    #[test]
    fn rfc8291_appendix_a_decrypts_to_the_published_plaintext() {
        let body = base64url::decode(rfc8291::BODY).unwrap();
        let plaintext = decrypt(&private_key(rfc8291::UA_PRIVATE), &auth(), &body).unwrap();
        assert_eq!(plaintext, rfc8291::PLAINTEXT);

        let mut tampered = body.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            decrypt(&private_key(rfc8291::UA_PRIVATE), &auth(), &tampered),
            Err(EncryptError::Decryption)
        );
    }

    #[test]
    fn fresh_key_and_salt_per_message_round_trip() {
        let subscriber = private_key(rfc8291::UA_PRIVATE);
        let keys = SubscriptionKeys::from_base64url(rfc8291::UA_PUBLIC, rfc8291::AUTH).unwrap();
        let a = encrypt(&keys, b"hello").unwrap();
        let b = encrypt(&keys, b"hello").unwrap();
        assert_ne!(
            a[..HEADER_LEN],
            b[..HEADER_LEN],
            "salt and key must differ per message"
        );
        assert_eq!(decrypt(&subscriber, &auth(), &a).unwrap(), b"hello");
        let largest = vec![7u8; MAX_PLAINTEXT_LEN];
        let body = encrypt(&keys, &largest).unwrap();
        assert_eq!(body.len(), MAX_BODY_LEN);
        assert_eq!(decrypt(&subscriber, &auth(), &body).unwrap(), largest);
        assert_eq!(
            encrypt(&keys, b"").map(|b| b.len()),
            Ok(HEADER_LEN + 1 + TAG_LEN)
        );
    }

    #[test]
    fn refuses_a_payload_over_the_limit_naming_it() {
        let keys = SubscriptionKeys::from_base64url(rfc8291::UA_PUBLIC, rfc8291::AUTH).unwrap();
        let err = encrypt(&keys, &vec![0u8; 3994]).unwrap_err();
        assert_eq!(err, EncryptError::PayloadTooLarge(3994));
        assert!(err.to_string().contains("3993"));
        assert_eq!(MAX_PLAINTEXT_LEN, 3993);
    }
}
