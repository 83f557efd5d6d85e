//! The P-256 part of a batch of messages on Intel's multi-buffer crypto_mb (crate
//! `aviso-crypto-mb`): a fresh key pair and one ECDH per message, eight messages per call.
//!
//! Only the elliptic-curve work is here; the RFC 8291 key schedule and the record are
//! [`super::encryption`]'s, shared with the aws-lc-rs path. Private scalars come from aws-lc-rs's
//! CSPRNG and are wiped when dropped, as are the shared secrets.

use aviso_crypto_mb::{AffinePoint, LANES, NistP256, Scalar, SharedSecret};
use zeroize::Zeroizing;

use super::encryption::{EncryptError, SALT_LEN};
use super::subscription::P256DH_LEN;

/// One message's EC result: the server's public key for it, and the shared secret.
pub(crate) type Agreement = (/* server public */ [u8; P256DH_LEN], SharedSecret);

/// A uniformly random scalar in `[1, n)` from the CSPRNG (rejection sampling).
fn random_scalar() -> Result<Scalar, EncryptError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    loop {
        aws_lc_rs::rand::fill(bytes.as_mut()).map_err(|_| EncryptError::Random)?;
        if let Some(scalar) = Scalar::from_be_bytes(&bytes) {
            return Ok(scalar);
        }
    }
}

/// A fresh server scalar (uniform in `[1, n)`) and salt for each of `n` messages, drawn from
/// the CSPRNG in one call: aws-lc's generator pays per call (a prediction-resistant reseed from
/// the CPU's entropy source), not per byte, so two calls a message were ~7% of a message's
/// CPU besides its EC work (docs/BENCHMARKS.md). A scalar out of range (probability 2⁻³²) is
/// drawn again on its own, which keeps the distribution uniform.
pub(crate) fn fresh_secrets(n: usize) -> Result<Vec<(Scalar, [u8; SALT_LEN])>, EncryptError> {
    const EACH: usize = 32 + SALT_LEN;
    let mut random = Zeroizing::new(vec![0u8; n * EACH]);
    aws_lc_rs::rand::fill(random.as_mut_slice()).map_err(|_| EncryptError::Random)?;
    random
        .chunks_exact(EACH)
        .map(|drawn| {
            let (scalar, salt) = drawn.split_at(32);
            let scalar = <&[u8; 32]>::try_from(scalar)
                .ok()
                .and_then(Scalar::from_be_bytes);
            let salt = <[u8; SALT_LEN]>::try_from(salt).map_err(|_| EncryptError::Random)?;
            Ok((scalar.map_or_else(random_scalar, Ok)?, salt))
        })
        .collect()
}

/// The public key of each scalar and its shared secret with the peer of the same index, eight
/// at a time. A peer that is not an uncompressed P-256 point fails alone.
pub(crate) fn agree(
    library: &NistP256,
    scalars: &[Scalar],
    peers: &[&[u8; P256DH_LEN]],
) -> Vec<Result<Agreement, EncryptError>> {
    debug_assert_eq!(scalars.len(), peers.len());
    let mut out = Vec::with_capacity(peers.len());
    for (scalars, peers) in scalars.chunks(LANES).zip(peers.chunks(LANES)) {
        let points: Vec<Option<AffinePoint>> = peers
            .iter()
            .map(|p| AffinePoint::from_uncompressed(p))
            .collect();
        // Lanes without a message of their own (a short last chunk, an unusable peer) repeat a
        // usable one; their results are dropped.
        let usable = points
            .iter()
            .enumerate()
            .find_map(|(i, point)| point.as_ref().map(|point| (i, point)));
        let Some((filler, filler_point)) = usable else {
            out.extend(peers.iter().map(|_| Err(EncryptError::KeyAgreement)));
            continue;
        };
        let lane_scalars: [&Scalar; LANES] =
            std::array::from_fn(|i| scalars.get(i).unwrap_or(&scalars[filler]));
        let lane_peers: [&AffinePoint; LANES] = std::array::from_fn(|i| {
            points
                .get(i)
                .and_then(Option::as_ref)
                .unwrap_or(filler_point)
        });
        let publics = library.public_keys(lane_scalars);
        let secrets = library.shared_secrets(lane_scalars, lane_peers);
        for ((point, public), secret) in points.iter().zip(publics).zip(secrets) {
            out.push(match (point, public, secret) {
                (Some(_), Ok(public), Ok(secret)) => Ok((public.to_uncompressed(), secret)),
                _ => Err(EncryptError::KeyAgreement),
            });
        }
    }
    out
}
