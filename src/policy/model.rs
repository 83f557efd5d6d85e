//! An app's delivery policy as the API takes it ([`Policy`]), a notification's own options
//! ([`Options`]), every check a client's mistake needs (each naming the field), and the
//! compiled [`Rules`] the engine applies.

use std::time::Duration;

use jiff::civil::{DateTime, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::notify::model::FieldError;

/// The category of a notification that is not given one.
pub const DEFAULT_CATEGORY: &str = "marketing";
/// The category that bypasses caps and quiet hours unless the policy says otherwise.
pub const TRANSACTIONAL: &str = "transactional";
/// Longest category name, in bytes.
pub const MAX_CATEGORY_LEN: usize = 32;
/// Most cap windows a policy may have.
pub const MAX_CAPS: usize = 8;
/// Longest cap window: a month.
pub const MAX_CAP_WINDOW: Duration = Duration::from_secs(31 * 24 * 3600);
/// Most sends one cap window may allow.
pub const MAX_CAP: u32 = 1000;
/// Most categories a policy may exempt.
pub const MAX_EXEMPT: usize = 16;
/// Highest `max_per_minute` (a million a minute is beyond any one Redis' broadcast).
pub const MAX_PER_MINUTE: u32 = 10_000_000;

/// A notification's category: 1 to 32 lowercase letters, digits, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, pattern = "^[a-z0-9_-]{1,32}$", example = "marketing")]
pub struct Category(String);

impl Category {
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        let valid = (1..=MAX_CATEGORY_LEN).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(FieldError::new(
                field,
                format!(
                    "`{text}` is not a category: use 1 to {MAX_CATEGORY_LEN} of a-z, 0-9, `_`, `-` (e.g. marketing, transactional)"
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Category {
    fn default() -> Self {
        Self(DEFAULT_CATEGORY.to_owned())
    }
}

/// One frequency-cap window: at most `max` notifications of a category per `per`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cap {
    /// 1 to 1000.
    #[schema(minimum = 1, maximum = 1000)]
    pub max: u32,
    /// The window, sliding: a number and a unit, `s`, `m`, `h` or `d` (`1h`, `1d`, `7d`; at
    /// most 31 days).
    #[schema(pattern = "^[1-9][0-9]{0,6}[smhd]$", example = "1d")]
    pub per: String,
}

/// Hours when marketing pushes wait, in the subscriber's time zone (`21:00` to `08:00` wraps
/// over midnight).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// `HH:MM`, 24-hour.
    #[schema(pattern = "^[0-2][0-9]:[0-5][0-9]$", example = "21:00")]
    pub start: String,
    /// `HH:MM`, 24-hour; not equal to `start`.
    #[schema(pattern = "^[0-2][0-9]:[0-5][0-9]$", example = "08:00")]
    pub end: String,
}

fn default_exempt() -> Vec<Category> {
    vec![Category(TRANSACTIONAL.to_owned())]
}

/// `GET/PUT /v1/policy`: an app's delivery policy. Every field may be left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Frequency caps, all of which must hold: counted per profile (per subscription when it
    /// has none) across the notifications of one category. At most 8.
    #[serde(default)]
    #[schema(max_items = 8)]
    pub caps: Vec<Cap>,
    /// Categories that bypass caps and quiet hours (default `["transactional"]`; `[]` caps
    /// every category).
    #[serde(default = "default_exempt")]
    #[schema(max_items = 16)]
    pub exempt_categories: Vec<Category>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    /// IANA time zone of subscribers whose own is unknown (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "Europe/Paris")]
    pub default_time_zone: Option<String>,
    /// Default send rate of a broadcast or segment, over every instance (absent: as fast as
    /// the push services take it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10000000)]
    pub max_per_minute: Option<u32>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            caps: Vec::new(),
            exempt_categories: default_exempt(),
            quiet_hours: None,
            default_time_zone: None,
            max_per_minute: None,
        }
    }
}

/// A notification's own policy options (stored with it; the API takes them as top-level
/// fields of `POST /v1/notifications`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Options {
    /// `marketing` unless given.
    #[serde(default)]
    pub category: Category,
    /// Local civil time (`2026-12-02T10:00`) at which each subscriber gets it, in their own
    /// time zone (its schema pattern is [`LOCAL_TIME_PATTERN`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at_local: Option<String>,
    /// This notification's send rate over every instance (overrides the policy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_minute: Option<u32>,
}

impl Options {
    /// Checks the request's fields and makes the options to store.
    pub fn from_request(
        category: Option<&str>,
        send_at_local: Option<&str>,
        max_per_minute: Option<u32>,
    ) -> Result<Self, FieldError> {
        let category = category
            .map(|c| Category::parse("category", c))
            .transpose()?
            .unwrap_or_default();
        if let Some(text) = send_at_local {
            parse_local(text)?;
        }
        check_rate("max_per_minute", max_per_minute)?;
        Ok(Self {
            category,
            send_at_local: send_at_local.map(str::to_owned),
            max_per_minute,
        })
    }

    /// The local civil time to send at, when one was given (checked on the way in).
    pub fn local_time(&self) -> Option<DateTime> {
        self.send_at_local
            .as_deref()
            .and_then(|t| parse_local(t).ok())
    }
}

/// What [`parse_local`] takes, as a JSON Schema pattern (for the OpenAPI document): a civil
/// date and time, minutes or seconds, no offset. It leaves out 29 February, which
/// `parse_local` takes in leap years (no pattern of reasonable size knows them).
pub const LOCAL_TIME_PATTERN: &str = r"^[0-9]{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9])?$";

/// Parses `send_at_local`: a civil date and time without an offset, `2026-12-02T10:00`.
pub fn parse_local(text: &str) -> Result<DateTime, FieldError> {
    let bad = || {
        FieldError::new(
            "send_at_local",
            format!(
                "`{text}` is not a local date and time such as 2026-12-02T10:00 (no offset: each subscriber's own time zone applies)"
            ),
        )
    };
    if text.len() > 32
        || !text.contains('T')
        || text.contains(['Z', 'z', '+', '['])
        || text.matches('-').count() > 2
    {
        return Err(bad());
    }
    text.parse::<DateTime>().map_err(|_| bad())
}

fn check_rate(field: &str, rate: Option<u32>) -> Result<(), FieldError> {
    match rate {
        Some(rate) if rate == 0 || rate > MAX_PER_MINUTE => Err(FieldError::new(
            field,
            format!("must be 1 to {MAX_PER_MINUTE} messages a minute"),
        )),
        _ => Ok(()),
    }
}

/// Parses a cap window: `30s`, `15m`, `1h`, `1d`.
fn parse_window(field: &str, text: &str) -> Result<Duration, FieldError> {
    let bad = || {
        FieldError::new(
            field,
            format!(
                "`{text}` is not a window: use a number and s, m, h or d, e.g. 1h or 1d, at most 31d"
            ),
        )
    };
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at_checked(split).ok_or_else(bad)?;
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let window = Duration::from_secs(number.checked_mul(unit).ok_or_else(bad)?);
    if window.is_zero() || window > MAX_CAP_WINDOW {
        return Err(bad());
    }
    Ok(window)
}

fn parse_clock(field: &str, text: &str) -> Result<Time, FieldError> {
    let bad = || FieldError::new(field, format!("`{text}` is not a time such as 21:00"));
    if text.len() != 5 {
        return Err(bad());
    }
    text.parse::<Time>().map_err(|_| bad())
}

/// An IANA time zone by name (`Europe/Paris`, `UTC`).
pub fn time_zone(name: &str) -> Option<TimeZone> {
    if name.is_empty() || name.len() > 64 {
        return None;
    }
    TimeZone::get(name).ok()
}

/// One compiled cap window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub max: u32,
    pub per_ms: u64,
}

/// Compiled quiet hours: from `start` (inclusive) to `end` (exclusive), local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quiet {
    pub start: Time,
    pub end: Time,
}

/// A policy checked and compiled: what the engine applies.
#[derive(Debug, Clone)]
pub struct Rules {
    pub caps: Vec<Window>,
    pub exempt: Vec<Category>,
    pub quiet: Option<Quiet>,
    pub default_time_zone: TimeZone,
    pub max_per_minute: Option<u32>,
}

/// The rules of the default policy (an app that set none).
impl Default for Rules {
    fn default() -> Self {
        Policy::default()
            .compile()
            .expect("the default policy compiles")
    }
}

impl Rules {
    /// Whether `category` bypasses caps and quiet hours.
    pub fn is_exempt(&self, category: &Category) -> bool {
        self.exempt.contains(category)
    }

    /// The longest cap window, in milliseconds (0 without caps).
    pub fn longest_window_ms(&self) -> u64 {
        self.caps.iter().map(|w| w.per_ms).max().unwrap_or(0)
    }
}

impl Policy {
    /// Checks every field (naming the one at fault) and compiles the policy.
    pub fn compile(&self) -> Result<Rules, FieldError> {
        if self.caps.len() > MAX_CAPS {
            return Err(FieldError::new(
                "caps",
                format!("at most {MAX_CAPS} windows"),
            ));
        }
        let mut caps = Vec::with_capacity(self.caps.len());
        for (i, cap) in self.caps.iter().enumerate() {
            if cap.max == 0 || cap.max > MAX_CAP {
                return Err(FieldError::new(
                    format!("caps[{i}].max"),
                    format!("must be 1 to {MAX_CAP}"),
                ));
            }
            let per = parse_window(&format!("caps[{i}].per"), &cap.per)?;
            caps.push(Window {
                max: cap.max,
                per_ms: per.as_millis() as u64,
            });
        }
        if self.exempt_categories.len() > MAX_EXEMPT {
            return Err(FieldError::new(
                "exempt_categories",
                format!("at most {MAX_EXEMPT} categories"),
            ));
        }
        for (i, category) in self.exempt_categories.iter().enumerate() {
            Category::parse(&format!("exempt_categories[{i}]"), category.as_str())?;
        }
        let quiet = match &self.quiet_hours {
            None => None,
            Some(hours) => {
                let start = parse_clock("quiet_hours.start", &hours.start)?;
                let end = parse_clock("quiet_hours.end", &hours.end)?;
                if start == end {
                    return Err(FieldError::new(
                        "quiet_hours.end",
                        "must differ from start (leave quiet_hours out for none)",
                    ));
                }
                Some(Quiet { start, end })
            }
        };
        let default_time_zone = match &self.default_time_zone {
            None => TimeZone::UTC,
            Some(name) => time_zone(name).ok_or_else(|| {
                FieldError::new(
                    "default_time_zone",
                    format!("`{name}` is not an IANA time zone such as Europe/Paris or UTC"),
                )
            })?,
        };
        check_rate("max_per_minute", self.max_per_minute)?;
        Ok(Rules {
            caps,
            exempt: self.exempt_categories.clone(),
            quiet,
            default_time_zone,
            max_per_minute: self.max_per_minute,
        })
    }
}

/// The policy of a JSON document, compiled: how the tests write one.
#[cfg(test)]
pub(crate) fn compile_json(json: serde_json::Value) -> Result<Rules, FieldError> {
    serde_json::from_value::<Policy>(json)
        .expect("a policy document")
        .compile()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(json: serde_json::Value) -> String {
        compile_json(json).unwrap_err().field
    }

    #[test]
    fn default_rules_are_those_of_the_default_policy() {
        let rules = Rules::default();
        assert!(rules.caps.is_empty());
        assert_eq!(rules.exempt, default_exempt());
        assert!(rules.quiet.is_none());
        assert_eq!(rules.default_time_zone.iana_name(), Some("UTC"));
        assert_eq!(rules.max_per_minute, None);
    }

    #[test]
    fn checks_each_field() {
        let policy: Policy = serde_json::from_value(serde_json::json!({
            "caps": [{"max": 3, "per": "1d"}, {"max": 1, "per": "1h"}],
            "quiet_hours": {"start": "21:00", "end": "08:00"},
            "default_time_zone": "Europe/Paris",
        }))
        .unwrap();
        let rules = policy.compile().unwrap();
        assert_eq!(rules.caps[0].per_ms, 86_400_000);
        assert_eq!(rules.longest_window_ms(), 86_400_000);
        assert!(rules.is_exempt(&Category(TRANSACTIONAL.into())));
        assert!(!rules.is_exempt(&Category::default()));
        assert_eq!(
            field(serde_json::json!({"caps": [{"max": 0, "per": "1d"}]})),
            "caps[0].max"
        );
        for per in [
            "",
            "d",
            "1w",
            "0h",
            "32d",
            "é",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert_eq!(
                field(serde_json::json!({"caps": [{"max": 1, "per": per}]})),
                "caps[0].per",
                "{per}"
            );
        }
        assert_eq!(
            field(serde_json::json!({"quiet_hours": {"start": "25:00", "end": "08:00"}})),
            "quiet_hours.start"
        );
        assert_eq!(
            field(serde_json::json!({"quiet_hours": {"start": "08:00", "end": "08:00"}})),
            "quiet_hours.end"
        );
        assert_eq!(
            field(serde_json::json!({"default_time_zone": "Mars/Olympus"})),
            "default_time_zone"
        );
        assert_eq!(
            field(serde_json::json!({"exempt_categories": ["Bad Name"]})),
            "exempt_categories[0]"
        );
        assert_eq!(
            field(serde_json::json!({"max_per_minute": 0})),
            "max_per_minute"
        );
        assert!(serde_json::from_value::<Policy>(serde_json::json!({"cap": []})).is_err());
    }

    #[test]
    fn parses_local_times() {
        assert!(parse_local("2026-12-02T10:00").is_ok());
        for bad in [
            "2026-12-02T10:00Z",
            "2026-12-02T10:00+01:00",
            "2026-12-02",
            "tomorrow",
            "2026-02-30T10:00",
        ] {
            assert_eq!(
                parse_local(bad).unwrap_err().field,
                "send_at_local",
                "{bad}"
            );
        }
    }
}
