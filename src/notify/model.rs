//! The notification as the API accepts it ([`NotificationRequest`]) and as the store keeps it
//! ([`Notification`]), with every check a client's mistake needs, each naming the field.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::payload;
use super::segment::Filter;
use super::variants::{self, Variant, Winner};
use crate::push::{Topic, Ttl, Urgency};
use crate::store::SubscriptionId;

/// At most this many recipients may be named in one `external_ids`/`subscription_ids` audience
/// (the server endpoints' body limit, `api::SERVER_MAX_BODY`, holds that many of the longest).
pub const MAX_DIRECT_RECIPIENTS: usize = 10_000;
/// Longest external id, idempotency key, action id or title of a button, in bytes.
pub const MAX_ID_LEN: usize = 128;
/// Longest URL of an icon, image, badge or click target, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// A validation failure: which field, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a use case over the store (a notification's, a trigger's) failed in a way every use
/// case can: the request is wrong, the store failed, or what it names does not exist.
#[derive(Debug, thiserror::Error)]
pub enum UseCaseError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// `what` names it: ``notification `ID` ``, ``trigger `NAME` ``.
    #[error("{0} does not exist")]
    NotFound(String),
}

/// Who receives a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Audience {
    /// Every subscriber of the app: `"all"`.
    All,
    /// Subscribers matching a filter.
    Segment(Filter),
    /// Every subscription of these CRM profiles (one-to-one pushes travel in the priority lane):
    /// 1 to 10,000 ids of 1 to 128 bytes.
    ExternalIds(Vec<String>),
    /// These subscriptions: 1 to 10,000 ids (16 hex digits, as `POST /subscriptions` answers).
    SubscriptionIds(Vec<String>),
}

impl Audience {
    /// Checks the recipients' ids and the segment, as every use of an audience takes them (a
    /// notification, an estimate).
    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            Audience::All => {}
            Audience::Segment(filter) => filter
                .validate()
                .map_err(|m| FieldError::new("audience.segment", m))?,
            Audience::ExternalIds(ids) => {
                if ids.is_empty() || ids.len() > MAX_DIRECT_RECIPIENTS {
                    return Err(FieldError::new(
                        "audience.external_ids",
                        format!("give 1 to {MAX_DIRECT_RECIPIENTS} ids"),
                    ));
                }
                for (i, id) in ids.iter().enumerate() {
                    check_length(&format!("audience.external_ids[{i}]"), id, 1, MAX_ID_LEN)?;
                }
            }
            Audience::SubscriptionIds(ids) => {
                if ids.is_empty() || ids.len() > MAX_DIRECT_RECIPIENTS {
                    return Err(FieldError::new(
                        "audience.subscription_ids",
                        format!("give 1 to {MAX_DIRECT_RECIPIENTS} ids"),
                    ));
                }
                for id in ids {
                    id.parse::<SubscriptionId>()
                        .map_err(|e| FieldError::new("audience.subscription_ids", e.to_string()))?;
                }
            }
        }
        Ok(())
    }
}

/// A notification's button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Identifier reported back when clicked.
    #[schema(min_length = 1, max_length = 128)]
    pub action: String,
    #[schema(min_length = 1, max_length = 128)]
    pub title: String,
    /// Opened on click; defaults to the notification's `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048)]
    pub url: Option<String>,
}

/// What the notification shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Content {
    /// Not blank. The whole payload must fit a push message (3993 bytes): a larger one is
    /// refused with `field: content`.
    #[schema(min_length = 1)]
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048)]
    pub icon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048)]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048)]
    pub badge: Option<String>,
    /// Opened when the notification is clicked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    /// At most 2.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 2)]
    pub actions: Vec<Action>,
    /// A newer notification with the same tag replaces an older one on the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default)]
    pub require_interaction: bool,
    /// Any JSON, handed to the page's service worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Value)]
    pub data: Option<serde_json::Value>,
}

/// `POST /v1/notifications`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationRequest {
    pub audience: Audience,
    /// What the notification shows; required unless `variants` is given (then absent).
    #[serde(default)]
    pub content: Option<Content>,
    /// A/B variants instead of `content`: 2 to 5, each subscriber getting one, split by a hash
    /// of the subscription and notification ids in proportion to the weights.
    #[serde(default)]
    #[schema(min_items = 2, max_items = 5)]
    pub variants: Option<Vec<Variant>>,
    /// With `variants`: test first on a fraction of the audience, then send the best variant
    /// to everyone else.
    #[serde(default)]
    pub winner: Option<Winner>,
    /// Seconds the push service keeps the message for an offline browser (default 4 weeks).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2419200)]
    pub ttl: Option<u64>,
    /// very-low | low | normal | high.
    #[serde(default)]
    #[schema(pattern = "^(very-low|low|normal|high)$")]
    pub urgency: Option<String>,
    /// Replaces an undelivered message with the same topic (1 to 32 URL-safe base64 characters).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub topic: Option<String>,
    /// When to send (RFC 3339, e.g. 2026-11-22T18:00:00Z); absent or past = now.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub send_at: Option<String>,
    /// A retried create with the same key returns the first notification (kept 24 h).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub idempotency_key: Option<String>,
    /// Caps count per category (`marketing` unless given); `transactional` bypasses caps and
    /// quiet hours unless the policy says otherwise (`GET /v1/policy`).
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9_-]{1,32}$")]
    pub category: Option<String>,
    /// Local time at which each subscriber gets it in their own time zone
    /// (`2026-12-02T10:00`, no offset); instead of `send_at`.
    #[serde(default)]
    #[schema(example = "2026-12-02T10:00")]
    pub send_at_local: Option<String>,
    /// Send rate over every instance, a minute (overrides the policy's `max_per_minute`).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000000)]
    pub max_per_minute: Option<u32>,
    /// The triggering event's properties (`{{ event.* }}`), for triggered pushes only: set by
    /// the trigger runner, never read from a request body.
    #[serde(skip)]
    pub event: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Where a notification is in its life (`super::life`): `queued → sending → completed |
/// cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Cancelled,
    /// Its first task was claimed.
    Sending,
    /// Every task was counted through its end: the counters are final.
    Completed,
}

/// A notification as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    pub id: String,
    pub app_id: String,
    pub audience: Audience,
    /// With variants: the first variant's (what lists show).
    pub content: Content,
    /// A/B variants (`notify::variants`); empty for a notification of one content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
    /// The winner test of the variants, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner: Option<Winner>,
    pub ttl: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Unix milliseconds.
    pub send_at_ms: u64,
    pub created_at_ms: u64,
    pub status: Status,
    /// When it started sending, completed or was cancelled (kept by the store apart from the
    /// document, and filled in when it is read).
    #[serde(default, flatten)]
    pub life: super::life::Life,
    /// Category, local time and rate (`crate::policy`).
    #[serde(default, flatten)]
    pub policy: crate::policy::model::Options,
    /// The triggering event's properties, which its content renders as `{{ event.* }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `value` is `min` to `max` bytes long.
/// The one length rule for text from outside: `min` to `max` characters (Unicode scalar
/// values), as the OpenAPI document's `minLength`/`maxLength` count them, so the schema and
/// the server agree on every string.
pub fn check_length(field: &str, value: &str, min: usize, max: usize) -> Result<(), FieldError> {
    if (min..=max).contains(&value.chars().count()) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("must be {min} to {max} characters"),
        ))
    }
}

/// What a content URL (`url`, `icon`, `image`, `badge`, an action's `url`) must be, for the
/// server and the OpenAPI document alike (one pattern, so that what the document allows the
/// server takes): an absolute `http(s)://` URL whose host is an ASCII name whose last label
/// starts with a letter (an internationalised name in its `xn--` form) or a dotted IPv4
/// address, with an optional port up to 65535, no user name, and no space or control
/// character. Only ASCII is checked by hand; the rest of the URL is the WHATWG parser's (the
/// `url` crate, as browsers read it), which percent-encodes what needs it.
pub const CONTENT_URL_PATTERN: &str = concat!(
    r"^https?://",
    r"(?:(?:[A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*\.?",
    r"|(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))",
    r"(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?",
    r"(?:[/?#][^\x00-\x20\x7F]*)?$",
);

/// Text that is not blank: it holds a character that is not white space. The class is the
/// Unicode `White_Space` set that Rust's `trim` removes, written out so that the OpenAPI
/// document's `pattern` means the same in every regex dialect (ECMA-262's `\S` lets U+0085
/// through, Python's does not; schemathesis seed 829996601 sent a title of U+0085 alone).
pub const NOT_BLANK_PATTERN: &str =
    r"[^\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";

fn not_blank() -> &'static regex::Regex {
    static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(NOT_BLANK_PATTERN).expect("NOT_BLANK_PATTERN is a valid regex")
    });
    &PATTERN
}

fn content_url() -> &'static regex::Regex {
    static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(CONTENT_URL_PATTERN).expect("CONTENT_URL_PATTERN is a valid regex")
    });
    &PATTERN
}

fn check_url(field: &str, url: &Option<String>) -> Result<(), FieldError> {
    if let Some(url) = url {
        check_length(field, url, 1, MAX_URL_LEN)?;
        if !content_url().is_match(url) {
            return Err(FieldError::new(
                field,
                "must be an absolute http(s) URL with an ASCII host name or IPv4 address (an internationalised name in its xn-- form), no user name and no spaces, e.g. https://shop.example/sale",
            ));
        }
        url::Url::parse(url).map_err(|e| {
            FieldError::new(field, format!("not an absolute URL ({e}): use https://…"))
        })?;
    }
    Ok(())
}

/// The one rule of a notification's content (its own, or each variant's): a title, http(s)
/// URLs, at most 2 actions with their ids and titles, templates that compile. Fields are named
/// `content.…`; a variant's errors are named under it (`variants[1].content.title`). Whether
/// the payload fits a push message is checked with the whole notification (`check_fits`).
pub fn check_content(content: &Content) -> Result<(), FieldError> {
    if !not_blank().is_match(&content.title) {
        return Err(FieldError::new("content.title", "must not be empty"));
    }
    for (field, url) in [
        ("content.icon", &content.icon),
        ("content.image", &content.image),
        ("content.badge", &content.badge),
        ("content.url", &content.url),
    ] {
        check_url(field, url)?;
    }
    if content.actions.len() > 2 {
        return Err(FieldError::new(
            "content.actions",
            "at most 2 actions: browsers show no more",
        ));
    }
    for (i, action) in content.actions.iter().enumerate() {
        check_length(
            &format!("content.actions[{i}].action"),
            &action.action,
            1,
            MAX_ID_LEN,
        )?;
        check_length(
            &format!("content.actions[{i}].title"),
            &action.title,
            1,
            MAX_ID_LEN,
        )?;
        check_url(&format!("content.actions[{i}].url"), &action.url)?;
    }
    super::template::ContentTemplate::compile(content)?;
    Ok(())
}

impl NotificationRequest {
    /// Validates everything and makes the notification to store.
    pub fn into_notification(
        self,
        id: String,
        app_id: String,
        now_ms: u64,
    ) -> Result<Notification, FieldError> {
        let (content, variants) = match (self.content, self.variants) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    "variants",
                    "give content or variants, not both",
                ));
            }
            (None, None) => return Err(FieldError::new("content", "`content` is required")),
            (Some(content), None) => {
                check_content(&content)?;
                (content, Vec::new())
            }
            (None, Some(variants)) => {
                variants::validate(&variants, self.winner.as_ref(), check_content)?;
                (variants[0].content.clone(), variants)
            }
        };
        if self.winner.is_some() && variants.is_empty() {
            return Err(FieldError::new(
                "winner",
                "a winner test needs `variants` to choose from",
            ));
        }
        let ttl = match self.ttl {
            Some(seconds) => {
                Ttl::from_secs(seconds).map_err(|e| FieldError::new("ttl", e.to_string()))?
            }
            None => crate::push::PushOptions::default().ttl,
        };
        if let Some(urgency) = &self.urgency {
            urgency
                .parse::<Urgency>()
                .map_err(|e| FieldError::new("urgency", e.to_string()))?;
        }
        if let Some(key) = &self.idempotency_key {
            check_length("idempotency_key", key, 1, MAX_ID_LEN)?;
        }
        if let Some(topic) = &self.topic {
            topic
                .parse::<Topic>()
                .map_err(|e| FieldError::new("topic", e.to_string()))?;
        }
        let send_at_ms = match &self.send_at {
            None => now_ms,
            Some(text) => {
                let when = parse_rfc3339(text).ok_or_else(|| {
                    FieldError::new(
                        "send_at",
                        "not an RFC 3339 time such as 2026-11-22T18:00:00Z",
                    )
                })?;
                when.max(now_ms)
            }
        };
        self.audience.validate()?;
        let policy = crate::policy::model::Options::from_request(
            self.category.as_deref(),
            self.send_at_local.as_deref(),
            self.max_per_minute,
        )?;
        if self.winner.is_some() && policy.send_at_local.is_some() {
            return Err(FieldError::new(
                "winner",
                "a winner test cannot be combined with send_at_local (the test must end before the rest is due)",
            ));
        }
        if self.send_at.is_some() && policy.send_at_local.is_some() {
            return Err(FieldError::new(
                "send_at_local",
                "give send_at or send_at_local, not both",
            ));
        }
        let send_at_ms = match policy.local_time() {
            Some(local) => crate::policy::quiet::earliest(local).max(now_ms),
            None => send_at_ms,
        };
        let notification = Notification {
            id,
            app_id,
            audience: self.audience,
            content,
            variants,
            winner: self.winner,
            ttl: ttl.as_secs(),
            urgency: self.urgency,
            topic: self.topic,
            send_at_ms,
            created_at_ms: now_ms,
            status: Status::Queued,
            life: Default::default(),
            policy,
            event: self.event,
        };
        payload::check_fits(&notification).map_err(|(variant, m)| match variant {
            Some(i) => FieldError::new(format!("variants[{i}].content"), m),
            None => FieldError::new("content", m),
        })?;
        Ok(notification)
    }
}

/// Parses an RFC 3339 time (`2026-11-22T18:00:00Z`, with an offset or a fraction) to Unix
/// milliseconds (before 1970: 0). `jiff` checks every part: the day exists in its month, the
/// offset is a real one, and any text at all is an error, never a panic.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let when = text.parse::<jiff::Timestamp>().ok()?;
    Some(u64::try_from(when.as_millisecond()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-11-22T18:00:00Z"),
            Some(1_795_370_400_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T19:00:00.5+01:00"),
            Some(1_795_370_400_500)
        );
        for bad in [
            "tomorrow",
            "2026-13-01T00:00:00Z",
            "2026-11-22T18:00:00",
            "2026-11-22",
            // Issue 16: a multi-byte character where the offset's digits go panicked the
            // hand-written parser (byte slicing); a day and an offset that do not exist passed.
            "2026-11-22T18:00:00+0é00",
            "2026-11-22T18:00:00+é",
            "2026-02-30T00:00:00Z",
            "2026-11-22T18:00:00+99:99",
            "2026-11-22T24:00:01Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    fn request(json: serde_json::Value) -> Result<Notification, FieldError> {
        serde_json::from_value::<NotificationRequest>(json)
            .map_err(|e| FieldError::new("body", e.to_string()))?
            .into_notification("n1".into(), "a1".into(), 1_000)
    }

    #[test]
    fn validates_each_field() {
        let ok =
            request(serde_json::json!({"audience": "all", "content": {"title": "Hi"}})).unwrap();
        assert_eq!(ok.ttl, 2_419_200);
        assert_eq!(ok.send_at_ms, 1_000);
        let field = |json| request(json).unwrap_err().field;
        assert_eq!(
            field(serde_json::json!({"audience": "all", "content": {"title": " "}})),
            "content.title"
        );
        assert_eq!(
            field(
                serde_json::json!({"audience": "all", "content": {"title": "x", "icon": "nope"}})
            ),
            "content.icon"
        );
        assert_eq!(
            field(
                serde_json::json!({"audience": "all", "ttl": 99999999, "content": {"title": "x"}})
            ),
            "ttl"
        );
        assert_eq!(
            field(
                serde_json::json!({"audience": "all", "urgency": "now", "content": {"title": "x"}})
            ),
            "urgency"
        );
        assert_eq!(
            field(
                serde_json::json!({"audience": "all", "topic": "a b", "content": {"title": "x"}})
            ),
            "topic"
        );
        assert_eq!(
            field(
                serde_json::json!({"audience": "all", "send_at": "soon", "content": {"title": "x"}})
            ),
            "send_at"
        );
        assert_eq!(
            field(
                serde_json::json!({"audience": {"subscription_ids": ["zz"]}, "content": {"title": "x"}})
            ),
            "audience.subscription_ids"
        );
        assert_eq!(
            field(serde_json::json!({"audience": {"external_ids": []}, "content": {"title": "x"}})),
            "audience.external_ids"
        );
        assert_eq!(
            field(
                serde_json::json!({"audience": "all", "content": {"title": "x", "body": "y".repeat(4000)}})
            ),
            "content"
        );
        let actions = serde_json::json!([{"action": "a", "title": "A"}, {"action": "b", "title": "B"}, {"action": "c", "title": "C"}]);
        assert_eq!(
            field(
                serde_json::json!({"audience": "all", "content": {"title": "x", "actions": actions}})
            ),
            "content.actions"
        );
    }

    /// The content-URL pattern takes the URLs sites use and refuses what browsers would not
    /// open or a person did not mean; everything it takes the WHATWG parser takes too.
    #[test]
    fn content_urls_are_the_pattern_and_the_parser_agrees() {
        let check = |url: &str| check_url("content.url", &Some(url.to_owned()));
        for good in [
            "https://shop.example/sale?utm=push#top",
            "http://127.0.0.1:8080/",
            "https://localhost",
            "https://xn--mnchen-3ya.de/bilder/ä.png",
            "https://cdn.shop.example.:443/a",
            "https://a-b.c0.example/%zz\\back",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for bad in [
            "https://münchen.de/",
            "ftp://shop.example/",
            "https://user@shop.example/",
            "https://shop.example/a b",
            "https://shop.example:65536/",
            "https://shop.example:/",
            "https://999.1.1.1/",
            "https://a.1/",
            "https://[::1]/",
            "http://\u{10}",
            " https://shop.example/",
            "//shop.example/",
            // Matches the pattern, which cannot check Punycode; the parser refuses it by name.
            "http://xN--.a",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }

    /// The title's pattern and Rust's idea of white space agree on every character, so the
    /// OpenAPI document's `pattern` refuses exactly the titles that `check_content` refuses.
    #[test]
    fn not_blank_is_any_character_but_unicode_white_space() {
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let text = c.to_string();
            assert_eq!(
                not_blank().is_match(&text),
                !c.is_whitespace(),
                "U+{:04X}",
                c as u32
            );
        }
        assert!(not_blank().is_match(" \u{85} x "));
        assert!(!not_blank().is_match(" \u{85}\u{3000}\t"));
        assert!(!not_blank().is_match(""));
    }

    proptest::proptest! {
        /// Whatever matches the pattern (drawn from the pattern itself) the parser reads as an
        /// absolute http(s) URL: no request the OpenAPI document allows is refused later.
        #[test]
        fn what_the_pattern_takes_the_parser_takes(
            url in proptest::string::string_regex(
                CONTENT_URL_PATTERN.trim_start_matches('^').trim_end_matches('$')
            ).expect("a pattern proptest can draw from")
        ) {
            // An `xn--` label is Punycode, which no pattern checks (proptest found `xN--.a`):
            // the parser's answer for those is a 400 naming the field (the case above).
            let host = url.split("://").nth(1).unwrap_or("");
            let host = host.split(['/', '?', '#', ':']).next().unwrap_or("");
            proptest::prop_assume!(!host.split('.').any(|label| {
                label.len() >= 4 && label.is_char_boundary(4) && label[..4].eq_ignore_ascii_case("xn--")
            }));
            let parsed = url::Url::parse(&url);
            proptest::prop_assert!(parsed.is_ok(), "{url}: {parsed:?}");
            proptest::prop_assert!(matches!(parsed.unwrap().scheme(), "http" | "https"));
        }
    }
}
