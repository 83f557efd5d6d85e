//! HKDF-SHA256 (RFC 5869) for outputs of at most one hash, the lengths RFC 8291's key schedule
//! asks for (32, 16 and 12 bytes), written over aws-lc-rs's HMAC.
//!
//! Why not `aws_lc_rs::hkdf`: it allocates seven times for one extract and expand (the salt and
//! the key in `Arc`s, boxed copies of the secret, the joined info), and a message's key schedule
//! runs two of each: 14 of the ~30 allocations a push message cost the sender (counted with a
//! uprobe on the allocator during a 20k broadcast). Within one hash length HKDF is two HMACs,
//! nothing to get wrong beyond what the tests here pin: extract is `HMAC(salt, ikm)`, and expand
//! is the first `L` bytes of `T(1) = HMAC(prk, info || 0x01)`. The tests hold it to RFC 5869's
//! vectors and to aws-lc-rs's `hkdf` over random inputs.
//!
//! The PRKs are HMAC keys, whose contexts aws-lc cleanses when dropped; the one transient tag
//! each step produces is copied out and its `Zeroizing` holder cleared.

use aws_lc_rs::hmac::{self, HMAC_SHA256};
use zeroize::Zeroizing;

/// Bytes of one SHA-256 output: the longest output [`Prk::expand`] gives.
pub(super) const HASH_LEN: usize = 32;

/// A pseudorandom key from [`extract`], ready to expand.
pub(super) struct Prk(hmac::Key);

/// HKDF-Extract: the PRK of input keying material `ikm` under `salt`.
pub(super) fn extract(salt: &[u8], ikm: &[u8]) -> Prk {
    let tag = hmac::sign(&hmac::Key::new(HMAC_SHA256, salt), ikm);
    let prk = Zeroizing::new(copy_out(&tag));
    Prk(hmac::Key::new(HMAC_SHA256, prk.as_ref()))
}

impl Prk {
    /// HKDF-Expand into `out`, at most [`HASH_LEN`] bytes (one block, `T(1)`).
    pub(super) fn expand(&self, info: &[u8], out: &mut [u8]) {
        assert!(
            out.len() <= HASH_LEN,
            "HKDF output of {} bytes: this HKDF gives one block of {HASH_LEN}",
            out.len()
        );
        let mut context = hmac::Context::with_key(&self.0);
        context.update(info);
        context.update(&[1]);
        let block = Zeroizing::new(copy_out(&context.sign()));
        out.copy_from_slice(&block[..out.len()]);
    }
}

fn copy_out(tag: &hmac::Tag) -> [u8; HASH_LEN] {
    let mut bytes = [0u8; HASH_LEN];
    bytes.copy_from_slice(tag.as_ref());
    bytes
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};

    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn okm(salt: &[u8], ikm: &[u8], info: &[u8], len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        extract(salt, ikm).expand(info, &mut out);
        out
    }

    /// RFC 5869 Appendix A, test cases 1 and 3: the first block of their 42-byte OKMs, and
    /// shorter lengths of it.
    #[test]
    fn rfc5869_vectors() {
        let case1 = okm(
            &hex("000102030405060708090a0b0c"),
            &[0x0b; 22],
            &hex("f0f1f2f3f4f5f6f7f8f9"),
            HASH_LEN,
        );
        assert_eq!(
            case1,
            hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf")
        );
        let case3 = okm(&[], &[0x0b; 22], &[], HASH_LEN);
        assert_eq!(
            case3,
            hex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d")
        );
        for len in [0, 12, 16, 31] {
            assert_eq!(okm(&[], &[0x0b; 22], &[], len), case3[..len]);
        }
    }

    struct Len(usize);

    impl KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }

    /// Against aws-lc-rs's own HKDF, 20,000 random salts, keys, infos and lengths.
    #[test]
    fn matches_aws_lc_hkdf_on_random_inputs() {
        let random = SystemRandom::new();
        let draw = |max: usize| {
            let mut len = [0u8; 2];
            random.fill(&mut len).unwrap();
            let mut bytes = vec![0u8; usize::from(u16::from_le_bytes(len)) % (max + 1)];
            random.fill(&mut bytes).unwrap();
            bytes
        };
        for _ in 0..20_000 {
            let (salt, ikm, info) = (draw(80), draw(80), draw(200));
            let len = draw(HASH_LEN).len();
            let mut expected = vec![0u8; len];
            Salt::new(HKDF_SHA256, &salt)
                .extract(&ikm)
                .expand(&[&info], Len(len))
                .unwrap()
                .fill(&mut expected)
                .unwrap();
            assert_eq!(okm(&salt, &ikm, &info, len), expected, "len {len}");
        }
    }

    #[test]
    #[should_panic(expected = "one block of 32")]
    fn longer_outputs_are_refused() {
        okm(b"salt", b"ikm", b"info", HASH_LEN + 1);
    }
}
