//! RFC 8030 request options and the push request itself.
//!
//! [`build_request`] assembles what goes on the wire; sending it is the caller's business. A
//! sender of many messages with the same options builds their [`RequestHead`] once and each
//! request from it.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};

use super::encryption::MAX_BODY_LEN;
use super::subscription::PushSubscription;

/// The longest TTL that every major push service honours (FCM's 28 days; Mozilla allows 30).
pub const MAX_TTL_SECONDS: u32 = 28 * 24 * 3600;
/// RFC 8030 §5.4: at most 32 characters of the URL-safe base64 alphabet.
pub const MAX_TOPIC_LEN: usize = 32;

/// A bad request option, named so a person knows what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(
        "TTL must be a whole number of seconds from 0 to {MAX_TTL_SECONDS} (28 days), got `{0}`"
    )]
    Ttl(String),
    #[error("urgency must be one of very-low, low, normal, high; got `{0}`")]
    Urgency(String),
    #[error(
        "topic must be 1 to {MAX_TOPIC_LEN} characters of A-Z a-z 0-9 - _ (URL-safe base64); got `{0}`"
    )]
    Topic(String),
}

/// How long the push service keeps an undelivered message, in seconds (RFC 8030 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ttl(u32);

impl Ttl {
    pub fn from_secs(seconds: u64) -> Result<Self, RequestError> {
        u32::try_from(seconds)
            .ok()
            .filter(|s| *s <= MAX_TTL_SECONDS)
            .map(Self)
            .ok_or_else(|| RequestError::Ttl(seconds.to_string()))
    }

    pub fn as_secs(self) -> u32 {
        self.0
    }
}

impl FromStr for Ttl {
    type Err = RequestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<u64>()
            .map_err(|_| RequestError::Ttl(s.to_owned()))
            .and_then(Self::from_secs)
    }
}

/// RFC 8030 §5.3 message urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Urgency {
    VeryLow,
    Low,
    Normal,
    High,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VeryLow => "very-low",
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
        }
    }
}

impl fmt::Display for Urgency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Urgency {
    type Err = RequestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "very-low" => Ok(Self::VeryLow),
            "low" => Ok(Self::Low),
            "normal" => Ok(Self::Normal),
            "high" => Ok(Self::High),
            other => Err(RequestError::Urgency(other.to_owned())),
        }
    }
}

/// RFC 8030 §5.4 topic: a newer message with the same topic replaces an undelivered one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic(String);

impl Topic {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Topic {
    type Err = RequestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = (1..=MAX_TOPIC_LEN).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(RequestError::Topic(s.to_owned()))
        }
    }
}

/// The per-message options of a push request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOptions {
    pub ttl: Ttl,
    pub urgency: Option<Urgency>,
    pub topic: Option<Topic>,
}

impl Default for PushOptions {
    /// Four weeks, like the npm `web-push` library's default.
    fn default() -> Self {
        Self {
            ttl: Ttl(MAX_TTL_SECONDS),
            urgency: None,
            topic: None,
        }
    }
}

static TTL: HeaderName = HeaderName::from_static("ttl");
static URGENCY: HeaderName = HeaderName::from_static("urgency");
static TOPIC: HeaderName = HeaderName::from_static("topic");

/// Builds the push request for one subscriber: its endpoint, the encrypted body, the VAPID
/// `Authorization` and the RFC 8030 headers of `options`.
pub fn build_request(
    subscription: &PushSubscription,
    encrypted_body: Bytes,
    authorization: HeaderValue,
    options: &PushOptions,
) -> Request<Bytes> {
    RequestHead::new(options).request(subscription, encrypted_body, authorization)
}

/// The headers that every request with the same [`PushOptions`] shares, built once: each
/// request then clones one map (two allocations) and sets its length and `Authorization` in
/// place, where building the map anew cost six allocations a message and a hash per header.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Every header a request has, `Content-Length` and `Authorization` as placeholders, so
    /// that setting them replaces an entry and the cloned map never grows.
    headers: HeaderMap,
}

impl RequestHead {
    pub fn new(options: &PushOptions) -> Self {
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(TTL.clone(), HeaderValue::from(options.ttl.as_secs()));
        if let Some(urgency) = options.urgency {
            headers.insert(URGENCY.clone(), HeaderValue::from_static(urgency.as_str()));
        }
        if let Some(topic) = &options.topic {
            // Topics are checked to be URL-safe base64, always a valid header value.
            if let Ok(value) = HeaderValue::from_str(topic.as_str()) {
                headers.insert(TOPIC.clone(), value);
            }
        }
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("aes128gcm"));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static(""));
        Self { headers }
    }

    /// The request for one subscriber, with these headers.
    pub fn request(
        &self,
        subscription: &PushSubscription,
        encrypted_body: Bytes,
        authorization: HeaderValue,
    ) -> Request<Bytes> {
        let mut request = Request::new(Bytes::new());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = subscription.endpoint().clone();
        let mut headers = self.headers.clone();
        headers.insert(CONTENT_LENGTH, content_length(encrypted_body.len()));
        headers.insert(AUTHORIZATION, authorization);
        *request.headers_mut() = headers;
        *request.body_mut() = encrypted_body;
        request
    }
}

/// The `Content-Length` value of a body of `len` bytes. Each length a push body can have is
/// made once per process and then shared (a clone is a reference count): made per message,
/// the value cost two allocations.
fn content_length(len: usize) -> HeaderValue {
    static LENGTHS: [OnceLock<HeaderValue>; MAX_BODY_LEN + 1] =
        [const { OnceLock::new() }; MAX_BODY_LEN + 1];
    match LENGTHS.get(len) {
        Some(value) => value.get_or_init(|| HeaderValue::from(len)).clone(),
        None => HeaderValue::from(len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::SubscriptionKeys;

    #[test]
    fn options_are_validated() {
        assert_eq!("60".parse::<Ttl>().unwrap().as_secs(), 60);
        assert!("-1".parse::<Ttl>().is_err());
        assert!("1.5".parse::<Ttl>().is_err());
        assert!(Ttl::from_secs(u64::from(MAX_TTL_SECONDS) + 1).is_err());
        assert_eq!("very-low".parse::<Urgency>().unwrap(), Urgency::VeryLow);
        assert!("urgent".parse::<Urgency>().is_err());
        assert!("cart_reminder-1".parse::<Topic>().is_ok());
        assert!("".parse::<Topic>().is_err());
        assert!("a".repeat(33).parse::<Topic>().is_err());
        assert!("no spaces".parse::<Topic>().is_err());
        assert!("a=b".parse::<Topic>().is_err());
    }

    /// A subscriber at `endpoint`, with RFC 8291's test keys.
    fn subscription(endpoint: &str) -> PushSubscription {
        use crate::push::encryption::rfc8291::{AUTH, UA_PUBLIC};
        let keys = SubscriptionKeys::from_base64url(UA_PUBLIC, AUTH).unwrap();
        PushSubscription::new(endpoint, keys).unwrap()
    }

    #[test]
    fn request_carries_the_rfc8030_headers() {
        let sub = subscription("https://push.example/p/1");
        let options = PushOptions {
            ttl: Ttl::from_secs(60).unwrap(),
            urgency: Some(Urgency::High),
            topic: Some("t1".parse().unwrap()),
        };
        let req = build_request(
            &sub,
            Bytes::from_static(b"xyz"),
            HeaderValue::from_static("vapid t=a, k=b"),
            &options,
        );
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri(), "https://push.example/p/1");
        let h = req.headers();
        assert_eq!(h["ttl"], "60");
        assert_eq!(h["urgency"], "high");
        assert_eq!(h["topic"], "t1");
        assert_eq!(h["content-encoding"], "aes128gcm");
        assert_eq!(h["content-length"], "3");
        assert_eq!(h["authorization"], "vapid t=a, k=b");
    }

    /// One head serves many requests: each gets its own length and `Authorization`, and the
    /// placeholders never reach the wire.
    #[test]
    fn one_head_many_requests() {
        let sub = subscription("https://push.example/p/2");
        let head = RequestHead::new(&PushOptions::default());
        for (len, auth) in [
            (3, "vapid a"),
            (4096, "vapid b"),
            (3, "vapid c"),
            (5000, "vapid d"),
        ] {
            let req = head.request(
                &sub,
                Bytes::from(vec![7; len]),
                HeaderValue::from_static(auth),
            );
            let h = req.headers();
            assert_eq!(h["content-length"], len.to_string().as_str());
            assert_eq!(h["authorization"], auth);
            assert_eq!(h["ttl"], MAX_TTL_SECONDS.to_string().as_str());
            assert_eq!(h.len(), 5, "{h:?}");
            assert!(h.get("urgency").is_none() && h.get("topic").is_none());
        }
    }
}
