//! Triggers as the API takes them and the store keeps them: a rule ("on event E, wait, then
//! send this content to the person, unless a cancelling event with the same key comes
//! first"), the events a CRM sends, and the pending sends between the two. Every check of
//! outside input is here, each naming the field.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::notify::model::{Content, FieldError, check_length};
use crate::notify::{Audience, NotificationRequest};
use crate::push::request::MAX_TTL_SECONDS;
pub use crate::refs::TriggerRef;

/// Longest delay of a trigger: 30 days.
pub const MAX_DELAY_SECS: u64 = 30 * 24 * 3600;
/// Most cancelling events of one trigger.
pub const MAX_CANCEL_ON: usize = 16;
/// Longest name of a trigger, an event or a key, in bytes.
pub const MAX_NAME: usize = 128;
/// Largest `properties` of one event, as JSON, in bytes.
pub const MAX_PROPERTIES: usize = 4096;
/// Longest `once_per_hours` of a trigger: 31 days, as the policy's cap windows.
pub const MAX_ONCE_PER_HOURS: u32 = 31 * 24;
/// Most events in one batch request.
pub const MAX_BATCH: usize = 5000;

/// What a second event does while a send of the same trigger, person and key is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Repeat {
    /// Keeps the pending send as it is (the first event counts): the default.
    #[default]
    Ignore,
    /// Starts the delay again from this event, with its properties.
    Rearm,
}

/// `PUT /v1/triggers/{name}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// The event that schedules a send, e.g. `cart_abandoned`.
    pub event: String,
    /// Seconds between the event and the send (0 to 30 days).
    #[schema(maximum = 2_592_000)]
    pub delay_secs: u64,
    /// What the push shows; its text may use `{{ profile.NAME }}` and `{{ event.NAME }}`.
    pub content: Content,
    /// Events that cancel a pending send with the same key (e.g. `purchase`); not `event`
    /// itself (`repeat` says what a repeated event does).
    #[serde(default)]
    pub cancel_on: Vec<String>,
    /// What a repeated event does while a send is pending.
    #[serde(default)]
    pub repeat: Repeat,
    /// Seconds after its due time (the event plus `delay_secs`) by which the push must be
    /// delivered, if at all (1 to 28 days, the longest TTL): the push's TTL is then the time
    /// left, and its urgency `high`.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2419200)]
    pub deliver_within_secs: Option<u64>,
    /// Seconds the push service keeps the message for an offline browser (default 1 day).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2419200)]
    pub ttl: Option<u64>,
    /// At most one push of this trigger per profile in this many hours (1 to 744): a send
    /// that comes due sooner after the last one is not sent and counts as `capped`.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 744)]
    pub once_per_hours: Option<u32>,
}

/// A trigger as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Trigger {
    pub app_id: String,
    pub name: String,
    pub event: String,
    pub delay_secs: u64,
    pub content: Content,
    pub cancel_on: Vec<String>,
    pub repeat: Repeat,
    /// Rules stored before 2026-12-02 said `deliver_by_secs` (counted from the event, so
    /// always more than `delay_secs`): read as a window from the due time, such a rule keeps
    /// its push `delay_secs` longer than it asked, never shorter.
    #[serde(
        default,
        alias = "deliver_by_secs",
        skip_serializing_if = "Option::is_none"
    )]
    pub deliver_within_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub once_per_hours: Option<u32>,
    pub updated_at_ms: u64,
}

/// Default TTL of a triggered push: a reminder is stale after a day.
const DEFAULT_TTL_SECS: u64 = 24 * 3600;

fn check_name(field: &str, name: &str) -> Result<(), FieldError> {
    let fine = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if fine {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("1 to {MAX_NAME} characters of A-Z, a-z, 0-9 and _ - . :"),
        ))
    }
}

impl TriggerRequest {
    /// Validates everything and makes the trigger to store.
    pub fn into_trigger(
        self,
        app_id: &str,
        name: &str,
        now_ms: u64,
    ) -> Result<Trigger, FieldError> {
        check_name("name", name)?;
        check_name("event", &self.event)?;
        if self.delay_secs > MAX_DELAY_SECS {
            return Err(FieldError::new(
                "delay_secs",
                format!("at most {MAX_DELAY_SECS} (30 days)"),
            ));
        }
        if self.cancel_on.len() > MAX_CANCEL_ON {
            return Err(FieldError::new(
                "cancel_on",
                format!("at most {MAX_CANCEL_ON} events"),
            ));
        }
        for (i, event) in self.cancel_on.iter().enumerate() {
            check_name(&format!("cancel_on[{i}]"), event)?;
            if *event == self.event {
                return Err(FieldError::new(
                    format!("cancel_on[{i}]"),
                    "the triggering event cannot cancel itself: use `repeat` for repeated events",
                ));
            }
        }
        // Checked here as well as in the notification below: with `deliver_within_secs` the
        // notification's TTL is the time left, not this.
        if let Some(ttl) = self.ttl
            && ttl > u64::from(MAX_TTL_SECONDS)
        {
            return Err(FieldError::new(
                "ttl",
                format!("at most {MAX_TTL_SECONDS} (28 days)"),
            ));
        }
        if let Some(within) = self.deliver_within_secs
            && !(1..=u64::from(MAX_TTL_SECONDS)).contains(&within)
        {
            return Err(FieldError::new(
                "deliver_within_secs",
                format!(
                    "1 to {MAX_TTL_SECONDS} seconds (28 days, the longest TTL) after the due time"
                ),
            ));
        }
        if let Some(hours) = self.once_per_hours
            && !(1..=MAX_ONCE_PER_HOURS).contains(&hours)
        {
            return Err(FieldError::new(
                "once_per_hours",
                format!("1 to {MAX_ONCE_PER_HOURS} hours (31 days)"),
            ));
        }
        let trigger = Trigger {
            app_id: app_id.to_owned(),
            name: name.to_owned(),
            event: self.event,
            delay_secs: self.delay_secs,
            content: self.content,
            cancel_on: self.cancel_on,
            repeat: self.repeat,
            deliver_within_secs: self.deliver_within_secs,
            ttl: self.ttl,
            once_per_hours: self.once_per_hours,
            updated_at_ms: now_ms,
        };
        // The content is checked as the notification it will become.
        trigger
            .notification_request(
                "check",
                "check",
                trigger.delay_secs * 1000,
                &serde_json::Map::new(),
            )
            .into_notification("check".into(), app_id.to_owned(), now_ms)?;
        Ok(trigger)
    }
}

impl Trigger {
    /// The trigger's own cap as a cap window (one per `once_per_hours`), if it has one.
    pub fn cap_window(&self) -> Option<crate::policy::model::Window> {
        self.once_per_hours
            .map(|hours| crate::policy::model::Window {
                max: 1,
                per_ms: u64::from(hours) * 3_600_000,
            })
    }

    /// The one-to-one notification a pending send becomes, `late_ms` after its event. Its
    /// idempotency key is the pending send's: a send claimed twice makes one notification.
    pub fn notification_request(
        &self,
        external_id: &str,
        idempotency_key: &str,
        late_ms: u64,
        event: &serde_json::Map<String, serde_json::Value>,
    ) -> NotificationRequest {
        let (ttl, urgency) = match self.deliver_within_secs {
            Some(within) => {
                let deadline_ms = (self.delay_secs + within) * 1000;
                let left = deadline_ms.saturating_sub(late_ms) / 1000;
                (Some(left.max(1)), Some("high".to_owned()))
            }
            None => (
                Some(self.ttl.unwrap_or(DEFAULT_TTL_SECS)),
                Some("high".to_owned()),
            ),
        };
        NotificationRequest {
            audience: Audience::ExternalIds(vec![external_id.to_owned()]),
            content: Some(self.content.clone()),
            variants: None,
            winner: None,
            ttl,
            urgency,
            topic: None,
            send_at: None,
            idempotency_key: Some(idempotency_key.to_owned()),
            category: None,
            send_at_local: None,
            max_per_minute: None,
            event: Some(event.clone()),
        }
    }
}

/// One event from the CRM or the site's backend (`POST /v1/events`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// The person it is about.
    #[schema(min_length = 1, max_length = 128)]
    pub external_id: String,
    /// What happened, e.g. `cart_abandoned`.
    pub name: String,
    /// Ties a cancelling event to the send it cancels (e.g. the cart id); empty when absent.
    #[serde(default)]
    pub key: Option<String>,
    /// Values the push's text can use as `{{ event.NAME }}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub properties: serde_json::Map<String, serde_json::Value>,
    /// When it happened (RFC 3339); the delay runs from then. Absent: when it arrives. A time
    /// ahead of the server's clock counts as when it arrives.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub occurred_at: Option<String>,
}

impl Event {
    /// When the event happened, in Unix milliseconds, given that it arrived at `now_ms`.
    pub fn occurred_ms(&self, now_ms: u64) -> u64 {
        self.occurred_at
            .as_deref()
            .and_then(crate::notify::model::parse_rfc3339)
            .map_or(now_ms, |at| at.min(now_ms))
    }

    /// Checks the event; `at` names it in a batch (`events[3]`).
    pub fn validate(&self, at: &str) -> Result<(), FieldError> {
        let field = |name: &str| {
            if at.is_empty() {
                name.to_owned()
            } else {
                format!("{at}.{name}")
            }
        };
        check_length(&field("external_id"), &self.external_id, 1, MAX_NAME)?;
        check_name(&field("name"), &self.name)?;
        if let Some(key) = &self.key {
            check_length(&field("key"), key, 1, MAX_NAME)?;
        }
        if let Some(at) = &self.occurred_at
            && crate::notify::model::parse_rfc3339(at).is_none()
        {
            return Err(FieldError::new(
                field("occurred_at"),
                "an RFC 3339 time with its offset, e.g. 2026-12-02T10:00:00Z",
            ));
        }
        let size = serde_json::to_vec(&self.properties).map_or(usize::MAX, |v| v.len());
        if size > MAX_PROPERTIES {
            return Err(FieldError::new(
                field("properties"),
                format!("{size} bytes of JSON; at most {MAX_PROPERTIES}"),
            ));
        }
        Ok(())
    }

    /// The key, `""` when the event has none.
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or("")
    }
}

/// A send waiting for its time: what the store keeps between an event and its push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingSend {
    pub app_id: String,
    pub trigger: String,
    pub external_id: String,
    pub key: String,
    /// When the event came (Unix ms).
    pub event_at_ms: u64,
    /// When the push is due (Unix ms).
    pub due_ms: u64,
    /// The event's properties, for the push's text.
    pub properties: serde_json::Map<String, serde_json::Value>,
}

impl PendingSend {
    /// Unique per (app, trigger, person, key): the store's key, and the idempotency key of the
    /// notification it becomes.
    pub fn id(&self) -> String {
        self.send_ref().id()
    }

    /// Which send this is, without its timing and properties.
    pub fn send_ref(&self) -> SendRef<'_> {
        SendRef::new(
            TriggerRef::new(&self.app_id, &self.trigger),
            &self.external_id,
            &self.key,
        )
    }
}

impl<'a> From<&'a Trigger> for TriggerRef<'a> {
    fn from(trigger: &'a Trigger) -> Self {
        Self::new(&trigger.app_id, &trigger.name)
    }
}

/// The pending send of a trigger for a person and key (at most one is pending at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRef<'a> {
    pub trigger: TriggerRef<'a>,
    pub external_id: &'a str,
    pub key: &'a str,
}

impl<'a> SendRef<'a> {
    pub const fn new(trigger: TriggerRef<'a>, external_id: &'a str, key: &'a str) -> Self {
        Self {
            trigger,
            external_id,
            key,
        }
    }

    /// See [`PendingSend::id`].
    pub fn id(&self) -> String {
        let (app_id, trigger) = (self.trigger.app_id, self.trigger.name);
        let (external_id, key) = (self.external_id, self.key);
        // Lengths first, so that no choice of names makes two ids alike.
        format!(
            "{}:{}:{}:{}:{app_id}{trigger}{external_id}{key}",
            app_id.len(),
            trigger.len(),
            external_id.len(),
            key.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: serde_json::Value) -> Result<Trigger, FieldError> {
        serde_json::from_value::<TriggerRequest>(json)
            .map_err(|e| FieldError::new("body", e.to_string()))?
            .into_trigger("app", "cart", 1)
    }

    #[test]
    fn a_trigger_is_checked_field_by_field() {
        let ok = request(serde_json::json!({
            "event": "cart_abandoned", "delay_secs": 3600, "cancel_on": ["purchase"],
            "content": {"title": "Your cart is waiting"}
        }))
        .unwrap();
        assert_eq!(ok.repeat, Repeat::Ignore);
        let field = |json| request(json).unwrap_err().field;
        assert_eq!(
            field(serde_json::json!({"event": "a b", "delay_secs": 1, "content": {"title": "x"}})),
            "event"
        );
        assert_eq!(
            field(
                serde_json::json!({"event": "a", "delay_secs": MAX_DELAY_SECS + 1, "content": {"title": "x"}})
            ),
            "delay_secs"
        );
        assert_eq!(
            field(serde_json::json!({"event": "a", "delay_secs": 1, "content": {"title": ""}})),
            "content.title"
        );
        assert_eq!(
            field(
                serde_json::json!({"event": "a", "delay_secs": 1, "cancel_on": ["a"], "content": {"title": "x"}})
            ),
            "cancel_on[0]"
        );
        assert_eq!(
            field(
                serde_json::json!({"event": "a", "delay_secs": 10, "deliver_within_secs": 0, "content": {"title": "x"}})
            ),
            "deliver_within_secs"
        );
        assert_eq!(
            field(serde_json::json!({"event": "a", "delay": 10, "content": {"title": "x"}})),
            "body"
        );
    }

    #[test]
    fn a_deadline_becomes_the_ttl_left() {
        let trigger = request(serde_json::json!({
            "event": "e", "delay_secs": 60, "deliver_within_secs": 540, "content": {"title": "x"}
        }))
        .unwrap();
        let late = trigger.notification_request("p", "k", 100_000, &serde_json::Map::new());
        assert_eq!(late.ttl, Some(500));
        assert_eq!(late.urgency.as_deref(), Some("high"));
        // A rule stored as `deliver_by_secs` still loads.
        let stored: Trigger = serde_json::from_value(serde_json::json!({
            "app_id": "a", "name": "n", "event": "e", "delay_secs": 60, "deliver_by_secs": 600,
            "content": {"title": "x"}, "cancel_on": [], "repeat": "ignore", "updated_at_ms": 1
        }))
        .unwrap();
        assert_eq!(stored.deliver_within_secs, Some(600));
    }

    #[test]
    fn an_event_says_when_it_happened_or_happened_on_arrival() {
        let at = |occurred_at: serde_json::Value| -> Event {
            serde_json::from_value(
                serde_json::json!({"external_id": "a", "name": "e", "occurred_at": occurred_at}),
            )
            .unwrap()
        };
        let now = 1_764_670_000_000; // 2025-12-02T10:06:40Z
        assert_eq!(at(serde_json::Value::Null).occurred_ms(now), now);
        let earlier = at(serde_json::json!("2025-12-02T10:00:00Z"));
        earlier.validate("").unwrap();
        assert_eq!(earlier.occurred_ms(now), 1_764_669_600_000);
        assert_eq!(
            at(serde_json::json!("2099-01-01T00:00:00Z")).occurred_ms(now),
            now,
            "ahead of the clock: now"
        );
        for bad in ["yesterday", "2026-02-30T00:00:00Z", "2026-12-02T10:00:00"] {
            assert_eq!(
                at(serde_json::json!(bad))
                    .validate("events[1]")
                    .unwrap_err()
                    .field,
                "events[1].occurred_at",
                "{bad}"
            );
        }
    }

    fn pending_id(app_id: &str, trigger: &str, external_id: &str, key: &str) -> String {
        let trigger = TriggerRef::new(app_id, trigger);
        SendRef::new(trigger, external_id, key).id()
    }

    #[test]
    fn events_are_checked_and_pending_ids_never_collide() {
        let event: Event = serde_json::from_value(serde_json::json!({
            "external_id": "ana", "name": "cart_abandoned", "key": "cart-1",
            "properties": {"items": 2, "total": 59.9}
        }))
        .unwrap();
        event.validate("").unwrap();
        let mut big = event.clone();
        big.properties
            .insert("blob".into(), "x".repeat(MAX_PROPERTIES).into());
        assert_eq!(
            big.validate("events[2]").unwrap_err().field,
            "events[2].properties"
        );
        assert_ne!(
            pending_id("a", "b:c", "d", ""),
            pending_id("a", "b", "c:d", "")
        );
    }
}
