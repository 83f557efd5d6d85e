//! The RFC 8030/8291 header and body checks a strict push service makes before accepting a
//! message: `TTL`, `Urgency`, `Topic`, `Content-Encoding` and the shape of the `aes128gcm`
//! header.

use http::{HeaderMap, StatusCode};

use crate::rejection::Rejection;

/// RFC 8188 §2.1: salt(16) | rs(4) | idlen(1).
const AES128GCM_FIXED_HEADER: usize = 21;
/// RFC 8291 §4: the keyid is the sender's uncompressed P-256 public key.
const WEB_PUSH_KEY_ID_LEN: usize = 65;
/// A record holds at least the padding delimiter and the 16-byte AES-GCM tag (RFC 8188 §2).
const MIN_RECORD: usize = 17;

/// The delivery options a push request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PushHeaders {
    /// `TTL`, in seconds.
    pub(crate) ttl: u64,
    /// `Urgency`, if given.
    pub(crate) urgency: Option<String>,
    /// `Topic`, if given.
    pub(crate) topic: Option<String>,
}

/// Checks everything about a push request except its authorization; `body` is the whole body.
pub(crate) fn check(headers: &HeaderMap, body: &[u8]) -> Result<PushHeaders, Rejection> {
    let ttl = ttl(headers)?;
    content_encoding(headers, body)?;
    let urgency = optional_text(headers, "urgency")?;
    if let Some(value) = &urgency
        && !matches!(value.as_str(), "very-low" | "low" | "normal" | "high")
    {
        return Err(Rejection::bad_request(
            "BadUrgency",
            format!("Urgency {value:?} is not one of very-low, low, normal, high (RFC 8030 §5.3)"),
        ));
    }
    let topic = optional_text(headers, "topic")?;
    if let Some(value) = &topic {
        check_topic(value)?;
    }
    Ok(PushHeaders {
        ttl,
        urgency,
        topic,
    })
}

fn ttl(headers: &HeaderMap) -> Result<u64, Rejection> {
    let Some(value) = optional_text(headers, "ttl")? else {
        return Err(Rejection::bad_request(
            "MissingTtl",
            "the TTL header is required (RFC 8030 §5.2)",
        ));
    };
    // u64::from_str would accept a leading '+'; RFC 8030 wants delta-seconds, digits only.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::bad_request(
            "BadTtl",
            format!("TTL {value:?} is not a non-negative integer number of seconds"),
        ));
    }
    value.parse().map_err(|_| {
        Rejection::bad_request("BadTtl", format!("TTL {value:?} is too large a number"))
    })
}

fn content_encoding(headers: &HeaderMap, body: &[u8]) -> Result<(), Rejection> {
    let encoding = optional_text(headers, "content-encoding")?;
    match encoding.as_deref() {
        // RFC 8030 §5: a push message without a payload needs no encoding.
        None if body.is_empty() => Ok(()),
        None => Err(Rejection::bad_request(
            "MissingContentEncoding",
            "a push message with a body needs Content-Encoding: aes128gcm (RFC 8291 §4)",
        )),
        Some(value) if value.eq_ignore_ascii_case("aes128gcm") => aes128gcm_shape(body),
        Some(other) => Err(Rejection::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedContentEncoding",
            format!("Content-Encoding {other:?} is not supported; use aes128gcm (RFC 8291)"),
        )),
    }
}

/// The structural rules of RFC 8291 §4 that can be checked without the subscriber's keys.
fn aes128gcm_shape(body: &[u8]) -> Result<(), Rejection> {
    let bad = |message: String| Rejection::bad_request("BadEncryptionHeader", message);
    let Some(fixed) = body.get(..AES128GCM_FIXED_HEADER) else {
        return Err(bad(format!(
            "the body ({} bytes) is shorter than an aes128gcm header",
            body.len()
        )));
    };
    let rs = u32::from_be_bytes([fixed[16], fixed[17], fixed[18], fixed[19]]) as usize;
    let id_len = usize::from(fixed[20]);
    if id_len != WEB_PUSH_KEY_ID_LEN {
        return Err(bad(format!(
            "the aes128gcm keyid is {id_len} bytes; Web Push puts the sender's 65-byte public key there (RFC 8291 §4)"
        )));
    }
    if body.get(AES128GCM_FIXED_HEADER) != Some(&0x04) {
        return Err(bad(
            "the aes128gcm keyid is not an uncompressed P-256 point".to_owned(),
        ));
    }
    if rs < 18 {
        return Err(bad(format!(
            "record size {rs} is below the minimum of 18 (RFC 8188 §2.1)"
        )));
    }
    let header_len = AES128GCM_FIXED_HEADER + WEB_PUSH_KEY_ID_LEN;
    let record = body.len().saturating_sub(header_len);
    if record < MIN_RECORD {
        return Err(bad(format!(
            "the ciphertext after the header is {record} bytes; at least {MIN_RECORD} are needed"
        )));
    }
    if record > rs {
        return Err(bad(format!(
            "the ciphertext ({record} bytes) spans more than one record of {rs} bytes; Web Push allows one (RFC 8291 §4)"
        )));
    }
    Ok(())
}

fn check_topic(topic: &str) -> Result<(), Rejection> {
    let url_safe = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if topic.is_empty() || topic.len() > 32 || !topic.bytes().all(url_safe) {
        return Err(Rejection::bad_request(
            "BadTopic",
            format!(
                "Topic {topic:?} must be 1 to 32 characters of the URL-safe base64 alphabet (RFC 8030 §5.4)"
            ),
        ));
    }
    Ok(())
}

fn optional_text(headers: &HeaderMap, name: &'static str) -> Result<Option<String>, Rejection> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|text| Some(text.trim().to_owned()))
            .map_err(|_| {
                Rejection::bad_request(
                    "BadHeader",
                    format!("the {name} header is not visible ASCII"),
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    /// A body with a well-formed aes128gcm header and `record` bytes of ciphertext.
    fn body(rs: u32, record: usize) -> Vec<u8> {
        let mut body = vec![0u8; 16];
        body.extend_from_slice(&rs.to_be_bytes());
        body.push(65);
        body.push(0x04);
        body.extend_from_slice(&[7u8; 64]);
        body.extend(std::iter::repeat_n(1u8, record));
        body
    }

    #[test]
    fn accepts_a_well_formed_request() {
        let parsed = check(
            &headers(&[
                ("ttl", "60"),
                ("content-encoding", "aes128gcm"),
                ("urgency", "high"),
                ("topic", "cart_reminder-1"),
            ]),
            &body(4096, 100),
        )
        .unwrap();
        assert_eq!(parsed.ttl, 60);
        assert_eq!(parsed.urgency.as_deref(), Some("high"));
        assert_eq!(parsed.topic.as_deref(), Some("cart_reminder-1"));
    }

    #[test]
    fn ttl_must_be_digits() {
        for bad in ["", "-1", "+5", "1.5", "soon", "99999999999999999999999"] {
            let rejection = check(
                &headers(&[("ttl", bad), ("content-encoding", "aes128gcm")]),
                &body(4096, 100),
            )
            .unwrap_err();
            assert_eq!(rejection.status, StatusCode::BAD_REQUEST, "TTL {bad:?}");
            assert_eq!(rejection.reason, "BadTtl");
        }
        let missing = check(
            &headers(&[("content-encoding", "aes128gcm")]),
            &body(4096, 100),
        );
        assert_eq!(missing.unwrap_err().reason, "MissingTtl");
    }

    #[test]
    fn encoding_rules() {
        let missing = check(&headers(&[("ttl", "0")]), &body(4096, 100)).unwrap_err();
        assert_eq!(missing.status, StatusCode::BAD_REQUEST);
        let legacy = check(
            &headers(&[("ttl", "0"), ("content-encoding", "aesgcm")]),
            &body(4096, 100),
        )
        .unwrap_err();
        assert_eq!(legacy.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            check(&headers(&[("ttl", "0")]), &[]).is_ok(),
            "no payload, no encoding"
        );
    }

    #[test]
    fn aes128gcm_header_shape() {
        let encoded = |body: &[u8]| {
            check(
                &headers(&[("ttl", "0"), ("content-encoding", "aes128gcm")]),
                body,
            )
        };
        assert!(encoded(&body(4096, 17)).is_ok());
        assert!(encoded(&body(4096, 16)).is_err(), "no room for the tag");
        assert!(encoded(&body(100, 101)).is_err(), "two records");
        assert!(encoded(&body(17, 17)).is_err(), "rs below 18");
        assert!(encoded(&[0u8; 10]).is_err(), "truncated header");
        let mut short_key = body(4096, 100);
        short_key[20] = 32;
        assert!(encoded(&short_key).is_err());
    }

    #[test]
    fn urgency_and_topic_rules() {
        let with =
            |name: &'static str, value: &str| check(&headers(&[("ttl", "0"), (name, value)]), &[]);
        assert!(with("urgency", "very-low").is_ok());
        assert_eq!(with("urgency", "urgent").unwrap_err().reason, "BadUrgency");
        assert!(with("topic", &"a".repeat(32)).is_ok());
        assert_eq!(
            with("topic", &"a".repeat(33)).unwrap_err().reason,
            "BadTopic"
        );
        assert_eq!(with("topic", "a+b").unwrap_err().reason, "BadTopic");
        assert_eq!(with("topic", "").unwrap_err().reason, "BadTopic");
    }
}
