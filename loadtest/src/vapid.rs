//! VAPID (RFC 8292) checks as a strict push service makes them, with `jsonwebtoken` on RustCrypto
//! so that Aviso's own signer (aws-lc-rs) is checked by an independent implementation.
//!
//! A sender should sign one JWT per push-service origin and reuse it, so verified tokens are
//! remembered: a repeat costs a map lookup instead of an ECDSA verification, and the number of
//! distinct tokens seen is counted.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::{DashMap, DashSet};
use http::HeaderMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::rejection::Rejection;

/// RFC 8292 §2: a JWT must not expire more than 24 hours after the request.
const MAX_VALIDITY_SECS: u64 = 24 * 3600;
/// Verified tokens kept for reuse. A sender that signs per message fills this up; past it, the
/// mock keeps verifying (and counting) but stops remembering, so memory stays bounded.
const MAX_REMEMBERED_TOKENS: usize = 65_536;

#[derive(serde::Deserialize)]
struct Claims {
    aud: String,
    exp: u64,
    sub: String,
}

/// What a verified token allows: the audience it names and until when.
struct Accepted {
    audience: String,
    expires_at: u64,
}

/// Verifies `Authorization: vapid t=…, k=…` headers and remembers the tokens it accepted.
pub(crate) struct VapidVerifier {
    accepted: DashMap<Box<str>, Accepted>,
    /// Hashes of every distinct token accepted, for counting past [`MAX_REMEMBERED_TOKENS`].
    distinct: DashSet<u64>,
    validation: Validation,
}

impl VapidVerifier {
    pub(crate) fn new() -> Self {
        // Requests from two libraries in one process would otherwise leave jsonwebtoken unable to
        // choose; an error here means a provider is already installed, which is fine.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = 0;
        // The audience is checked below, against the origin each request was sent to, with a
        // message that says which origin was expected.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        Self {
            accepted: DashMap::new(),
            distinct: DashSet::new(),
            validation,
        }
    }

    /// Number of distinct JWTs accepted so far.
    pub(crate) fn distinct_tokens(&self) -> usize {
        self.distinct.len()
    }

    /// Checks the request's VAPID credentials for a push sent to `authority` (`host:port`): the
    /// JWT's `aud` must be the origin `https://{authority}`.
    pub(crate) fn check(&self, headers: &HeaderMap, authority: &str) -> Result<(), Rejection> {
        let authorization = authorization(headers)?;
        let now = unix_now();
        if let Some(accepted) = self.accepted.get(authorization) {
            return still_valid(&accepted, authority, now);
        }
        let (token, key) = parse(authorization)?;
        let accepted = self.verify(token, key, now)?;
        still_valid(&accepted, authority, now)?;
        self.distinct
            .insert(xxhash_rust::xxh3::xxh3_64(authorization.as_bytes()));
        if self.accepted.len() < MAX_REMEMBERED_TOKENS {
            self.accepted.insert(authorization.into(), accepted);
        }
        Ok(())
    }

    fn verify(&self, token: &str, key: &str, now: u64) -> Result<Accepted, Rejection> {
        let point = URL_SAFE_NO_PAD
            .decode(key.trim_end_matches('='))
            .ok()
            .filter(|point| point.len() == 65 && point[0] == 0x04)
            .ok_or_else(|| {
                Rejection::forbidden(
                    "BadPublicKey",
                    "k is not a base64url uncompressed P-256 public key (65 bytes starting 0x04)",
                )
            })?;
        let decoding_key = DecodingKey::from_ec_components(
            &URL_SAFE_NO_PAD.encode(&point[1..33]),
            &URL_SAFE_NO_PAD.encode(&point[33..]),
        )
        .map_err(|e| Rejection::forbidden("BadPublicKey", format!("k is unusable: {e}")))?;
        let claims = jsonwebtoken::decode::<Claims>(token, &decoding_key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => {
                    Rejection::forbidden("ExpiredJwtToken", "the JWT's exp is in the past")
                }
                ErrorKind::InvalidSignature => Rejection::forbidden(
                    "BadJwtToken",
                    "the JWT's signature does not verify with the public key in k",
                ),
                _ => Rejection::forbidden("BadJwtToken", format!("the JWT is not valid: {e}")),
            })?
            .claims;
        if claims.exp > now + MAX_VALIDITY_SECS {
            return Err(Rejection::forbidden(
                "BadJwtExpiry",
                format!(
                    "the JWT's exp is {} s ahead; at most 24 h (86400 s) is allowed (RFC 8292 §2)",
                    claims.exp - now
                ),
            ));
        }
        check_subject(&claims.sub)?;
        Ok(Accepted {
            audience: claims.aud,
            expires_at: claims.exp,
        })
    }
}

fn still_valid(accepted: &Accepted, authority: &str, now: u64) -> Result<(), Rejection> {
    if accepted.audience.strip_prefix("https://") != Some(authority) {
        return Err(Rejection::forbidden(
            "BadJwtAudience",
            format!(
                "the JWT's aud is {:?}; this push service's origin is \"https://{authority}\"",
                accepted.audience
            ),
        ));
    }
    if accepted.expires_at <= now {
        return Err(Rejection::forbidden(
            "ExpiredJwtToken",
            "the JWT's exp is in the past",
        ));
    }
    Ok(())
}

/// RFC 8292 §2.1: a `mailto:` or `https:` URI to contact the sender; Apple rejects anything else.
fn check_subject(subject: &str) -> Result<(), Rejection> {
    let usable = url::Url::parse(subject).is_ok_and(|url| match url.scheme() {
        "mailto" => url.path().contains('@'),
        "https" => url.host().is_some(),
        _ => false,
    });
    if usable {
        Ok(())
    } else {
        Err(Rejection::forbidden(
            "BadJwtSubject",
            format!("the JWT's sub {subject:?} is not a mailto: address or an https: URL"),
        ))
    }
}

fn authorization(headers: &HeaderMap) -> Result<&str, Rejection> {
    let value = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
        Rejection::unauthorized(
            "MissingAuthorization",
            "an Authorization: vapid t=<JWT>, k=<public key> header is required (RFC 8292)",
        )
    })?;
    value.to_str().map_err(|_| {
        Rejection::unauthorized(
            "BadAuthorization",
            "the Authorization header is not visible ASCII",
        )
    })
}

/// Splits `vapid t=<JWT>, k=<key>` (parameters in any order) into the token and the key.
fn parse(authorization: &str) -> Result<(&str, &str), Rejection> {
    let malformed = || {
        Rejection::unauthorized(
            "BadAuthorization",
            "the Authorization header must read `vapid t=<JWT>, k=<base64url public key>` (RFC 8292 §3)",
        )
    };
    let (scheme, parameters) = authorization.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("vapid") {
        return Err(Rejection::unauthorized(
            "BadAuthorization",
            format!("authorization scheme {scheme:?} is not supported; use `vapid` (RFC 8292 §3)"),
        ));
    }
    let (mut token, mut key) = (None, None);
    for parameter in parameters.split(',') {
        match parameter.trim().split_once('=') {
            Some(("t", value)) => token = Some(value.trim()),
            Some(("k", value)) => key = Some(value.trim()),
            _ => return Err(malformed()),
        }
    }
    match (token, key) {
        (Some(token), Some(key)) if !token.is_empty() && !key.is_empty() => Ok((token, key)),
        _ => Err(malformed()),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_parameters_in_any_order() {
        assert_eq!(parse("vapid t=a.b.c, k=BKEY").unwrap(), ("a.b.c", "BKEY"));
        assert_eq!(parse("vapid k=BKEY,t=a.b.c").unwrap(), ("a.b.c", "BKEY"));
        assert_eq!(parse("WebPush a.b.c").unwrap_err().status, 401);
        assert_eq!(parse("vapid t=a.b.c").unwrap_err().status, 401);
        assert_eq!(parse("vapid t=, k=B").unwrap_err().status, 401);
    }

    #[test]
    fn subject_must_be_a_contact() {
        assert!(check_subject("mailto:ops@example.com").is_ok());
        assert!(check_subject("https://shop.example").is_ok());
        assert!(check_subject("mailto:nobody").is_err());
        assert!(check_subject("http://shop.example").is_err());
        assert!(check_subject("ops@example.com").is_err());
    }

    #[test]
    fn missing_header_is_401_and_garbage_key_is_403() {
        let verifier = VapidVerifier::new();
        let authority = "127.0.0.1:1";
        assert_eq!(
            verifier
                .check(&HeaderMap::new(), authority)
                .unwrap_err()
                .status,
            401
        );
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "vapid t=a.b.c, k=!!".parse().unwrap());
        let rejection = verifier.check(&headers, authority).unwrap_err();
        assert_eq!(
            (rejection.status.as_u16(), rejection.reason),
            (403, "BadPublicKey")
        );
        assert_eq!(verifier.distinct_tokens(), 0);
    }
}
