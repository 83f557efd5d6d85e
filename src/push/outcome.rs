//! What a push service's answer means for the sender (RFC 8030 §5–§8 and what services do).
//!
//! Pure classification: the caller decides what to do (retry, delete, alarm). Keeping the table
//! here means the one-shot CLI and the delivery engine cannot disagree about a status code.

use std::time::Duration;

use http::{HeaderMap, StatusCode};

/// The meaning of one push service answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `201 Created` (or another 2xx): the push service accepted the message.
    Delivered,
    /// `404`/`410`: the subscription no longer exists. Delete it.
    Gone,
    /// `413`: the body was too large for this push service.
    PayloadTooLarge,
    /// `429`, or WNS's `406` with `x-wns-status: appthrottled`: slow down the whole origin,
    /// waiting at least `retry_after` when the service said so.
    Throttled { retry_after: Option<Duration> },
    /// `5xx`: a transient failure; retry with backoff while the TTL lasts.
    Unavailable { retry_after: Option<Duration> },
    /// `400`/`401`/`403`: almost always the sender's configuration (keys, JWT, headers), not a
    /// dead subscriber. Raise an alarm; never delete the subscription for it.
    Rejected { status: StatusCode },
    /// Anything else a push service should not answer.
    Unexpected { status: StatusCode },
}

impl Outcome {
    /// Classifies a status and its headers.
    pub fn classify(status: StatusCode, headers: &HeaderMap) -> Self {
        match status.as_u16() {
            200..=299 => Self::Delivered,
            404 | 410 => Self::Gone,
            413 => Self::PayloadTooLarge,
            429 => Self::Throttled {
                retry_after: retry_after(headers),
            },
            406 if headers
                .get("x-wns-status")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"appthrottled")) =>
            {
                Self::Throttled {
                    retry_after: retry_after(headers),
                }
            }
            400 | 401 | 403 => Self::Rejected { status },
            500..=599 => Self::Unavailable {
                retry_after: retry_after(headers),
            },
            _ => Self::Unexpected { status },
        }
    }

    /// Whether sending the same message again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Unavailable { .. })
    }

    /// What a person should do about this answer, in one sentence.
    pub fn advice(&self) -> &'static str {
        match self {
            Self::Delivered => "accepted by the push service",
            Self::Gone => {
                "the subscription has expired or was revoked by the user: delete it and stop sending to it"
            }
            Self::PayloadTooLarge => {
                "the push service refused the size of the message: send a shorter payload"
            }
            Self::Throttled { .. } => {
                "the push service is rate limiting this sender: wait (see Retry-After) and send more slowly"
            }
            Self::Unavailable { .. } => {
                "the push service had a transient failure: retry later with backoff"
            }
            Self::Rejected { status } if status.as_u16() == 400 => {
                "the push service rejected the request as malformed: check TTL/Urgency/Topic and the subscription's keys"
            }
            Self::Rejected { .. } => {
                "the push service rejected the VAPID authorization: check that the private key matches the applicationServerKey the browser subscribed with, and that the subject is a real mailto:/https: contact"
            }
            Self::Unexpected { .. } => "the push service gave an unexpected answer",
        }
    }
}

/// `Retry-After` as delta-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, headers: &[(&'static str, &'static str)]) -> Outcome {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, http::HeaderValue::from_static(v));
        }
        Outcome::classify(StatusCode::from_u16(status).unwrap(), &map)
    }

    #[test]
    fn maps_statuses_to_what_the_sender_must_do() {
        assert_eq!(classify(201, &[]), Outcome::Delivered);
        assert_eq!(classify(410, &[]), Outcome::Gone);
        assert_eq!(classify(404, &[]), Outcome::Gone);
        assert_eq!(classify(413, &[]), Outcome::PayloadTooLarge);
        assert_eq!(
            classify(429, &[("retry-after", "7")]),
            Outcome::Throttled {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            classify(406, &[("x-wns-status", "appthrottled")]),
            Outcome::Throttled { retry_after: None }
        );
        assert!(matches!(classify(406, &[]), Outcome::Unexpected { .. }));
        assert!(matches!(classify(403, &[]), Outcome::Rejected { .. }));
        assert!(classify(503, &[]).is_retryable());
        assert!(!classify(401, &[]).is_retryable());
        assert_eq!(
            classify(503, &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
            Outcome::Unavailable {
                retry_after: Some(Duration::ZERO)
            }
        );
    }
}
