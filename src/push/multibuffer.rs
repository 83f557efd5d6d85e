//! The P-256 part of a batch of messages on Intel's multi-buffer crypto_mb (crate
//! `aviso-crypto-mb`): a fresh key pair and one ECDH per message, eight messages per call.
//!
//! Only the elliptic-curve work is here; the RFC 8291 key schedule and the record are
//! [`super::encryption`]'s, shared with the aws-lc-rs path. Private scalars come from aws-lc-rs's
//! CSPRNG and are wiped when dropped, as are the shared secrets.

use aviso_crypto_mb::{AffinePoint, LANES, NistP256, Scalar, SharedSecret};
use zeroize::Zeroizing;

use super::encryption::EncryptError;
use super::subscription::P256DH_LEN;

/// One message's EC result: the server's public key for it, and the shared secret.
pub(crate) type Agreement = (/* server public */ [u8; P256DH_LEN], SharedSecret);

/// A uniformly random scalar in `[1, n)` from the CSPRNG (rejection sampling).
pub(crate) fn random_scalar() -> Result<Scalar, EncryptError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    loop {
        aws_lc_rs::rand::fill(bytes.as_mut()).map_err(|_| EncryptError::Random)?;
        if let Some(scalar) = Scalar::from_be_bytes(&bytes) {
            return Ok(scalar);
        }
    }
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
