//! Webhooks and their outbox, as the store keeps them, and the rules they follow: which events
//! a webhook receives, what its secret looks like, how its retries back off and when an entry
//! gives up and becomes a dead letter.

use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Webhooks one app may have.
pub const MAX_WEBHOOKS_PER_APP: usize = 20;
/// Most events in one `notification.delivered` (or other batched) POST.
pub const MAX_BATCH_ITEMS: usize = 1000;

/// The kinds of event Aviso posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "subscription.created")]
    SubscriptionCreated,
    #[serde(rename = "subscription.identified")]
    SubscriptionIdentified,
    #[serde(rename = "subscription.unsubscribed")]
    SubscriptionUnsubscribed,
    #[serde(rename = "subscription.expired")]
    SubscriptionExpired,
    #[serde(rename = "notification.delivered")]
    NotificationDelivered,
    #[serde(rename = "notification.failed")]
    NotificationFailed,
    #[serde(rename = "notification.shown")]
    NotificationShown,
    #[serde(rename = "notification.clicked")]
    NotificationClicked,
    #[serde(rename = "notification.closed")]
    NotificationClosed,
    #[serde(rename = "trigger.scheduled")]
    TriggerScheduled,
    #[serde(rename = "trigger.cancelled")]
    TriggerCancelled,
    #[serde(rename = "trigger.sent")]
    TriggerSent,
    /// Sent by the test-fire endpoint only, whatever the webhook's filter.
    #[serde(rename = "webhook.test")]
    WebhookTest,
}

impl EventType {
    /// Every type a webhook may subscribe to.
    pub const ALL: [Self; 12] = [
        Self::SubscriptionCreated,
        Self::SubscriptionIdentified,
        Self::SubscriptionUnsubscribed,
        Self::SubscriptionExpired,
        Self::NotificationDelivered,
        Self::NotificationFailed,
        Self::NotificationShown,
        Self::NotificationClicked,
        Self::NotificationClosed,
        Self::TriggerScheduled,
        Self::TriggerCancelled,
        Self::TriggerSent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SubscriptionCreated => "subscription.created",
            Self::SubscriptionIdentified => "subscription.identified",
            Self::SubscriptionUnsubscribed => "subscription.unsubscribed",
            Self::SubscriptionExpired => "subscription.expired",
            Self::NotificationDelivered => "notification.delivered",
            Self::NotificationFailed => "notification.failed",
            Self::NotificationShown => "notification.shown",
            Self::NotificationClicked => "notification.clicked",
            Self::NotificationClosed => "notification.closed",
            Self::TriggerScheduled => "trigger.scheduled",
            Self::TriggerCancelled => "trigger.cancelled",
            Self::TriggerSent => "trigger.sent",
            Self::WebhookTest => "webhook.test",
        }
    }

    /// Parses a filter entry; the error lists what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|kind| kind.as_str()).collect();
                format!(
                    "`{text:.40}` is not an event type; use one of {}",
                    known.join(", ")
                )
            })
    }

    /// Whether one entry carries many events (`data.items`, up to [`MAX_BATCH_ITEMS`]).
    pub fn is_batched(self) -> bool {
        matches!(
            self,
            Self::NotificationDelivered | Self::NotificationFailed | Self::SubscriptionExpired
        )
    }
}

/// A webhook: where an app's events go, which of them, and the secret they are signed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// `wh_` and 16 hex digits.
    pub id: String,
    pub app_id: String,
    pub url: String,
    /// The event types it receives; empty = every type.
    pub events: Vec<EventType>,
    /// `whsec_` and the base64 of 24 random bytes (Standard Webhooks' form).
    pub secret: String,
    pub description: Option<String>,
    pub created_at_ms: u64,
}

impl Webhook {
    /// Whether it receives an entry: one addressed to it (a test fire), or one of a type it
    /// subscribed to.
    pub fn wants(&self, entry: &OutboxEntry) -> bool {
        match &entry.only {
            Some(id) => *id == self.id,
            None => self.events.is_empty() || self.events.contains(&entry.kind),
        }
    }

    /// The HMAC key: the secret's bytes after `whsec_`.
    pub fn key(&self) -> Option<Vec<u8>> {
        let encoded = self.secret.strip_prefix(SECRET_PREFIX)?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
    }
}

/// Standard Webhooks' secret prefix.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new secret: `whsec_` + base64 of 24 random bytes.
pub fn new_secret() -> Option<String> {
    let mut key = [0u8; 24];
    aws_lc_rs::rand::fill(&mut key).ok()?;
    Some(format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    ))
}

/// A new random id with a prefix (`wh_`, `msg_`), 16 hex digits after it.
pub fn new_id(prefix: &str) -> Option<String> {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).ok()?;
    Some(format!("{prefix}{}", crate::apps::hex(&bytes)))
}

/// One message of an app's outbox: the `webhook-id` and the body every webhook that wants its
/// type receives (`{"type", "timestamp", "data"}`, as Standard Webhooks has it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// `msg_` and 16 hex digits; the same on every retry, so receivers de-duplicate by it.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub timestamp_ms: u64,
    pub data: serde_json::Value,
    /// Addressed to this webhook alone (the test-fire endpoint's entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<String>,
}

impl OutboxEntry {
    /// A new entry with a fresh id; `None` only when the system's random generator fails.
    pub fn new(kind: EventType, timestamp_ms: u64, data: serde_json::Value) -> Option<Self> {
        Some(Self {
            id: new_id("msg_")?,
            kind,
            timestamp_ms,
            data,
            only: None,
        })
    }

    /// The body posted: `{"type", "timestamp" (RFC 3339), "data"}`.
    pub fn body(&self) -> Vec<u8> {
        let timestamp = jiff::Timestamp::from_millisecond(self.timestamp_ms as i64)
            .map(|t| t.to_string())
            .unwrap_or_default();
        serde_json::to_vec(&serde_json::json!({
            "type": self.kind.as_str(),
            "timestamp": timestamp,
            "data": self.data,
        }))
        .unwrap_or_default()
    }
}

/// How far a webhook's delivery got, and how its current failure stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookState {
    /// The last outbox sequence number dealt with (delivered, skipped or dead-lettered).
    pub cursor: u64,
    /// When the entry after the cursor first failed; `None` while nothing fails.
    pub failing_since_ms: Option<u64>,
    /// Failed attempts at that entry.
    pub attempts: u32,
    /// Not retried before this time (Unix ms).
    pub next_attempt_ms: u64,
    /// The last failure, for the API.
    pub last_error: Option<String>,
}

/// How retries back off and when they stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryRule {
    /// First wait after a failure; doubled after each further one.
    pub first: Duration,
    /// Longest wait between two attempts.
    pub max_wait: Duration,
    /// How long an entry is retried before it becomes a dead letter.
    pub give_up_after: Duration,
}

impl Default for RetryRule {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            max_wait: Duration::from_secs(600),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time (Unix ms).
    RetryAt(u64),
    /// Retried long enough: dead-letter the entry and go on.
    GiveUp,
}

impl WebhookState {
    /// Records a failed attempt at the entry after the cursor, at `now_ms`.
    pub fn failed(&mut self, rule: RetryRule, now_ms: u64, error: String) -> AfterFailure {
        let since = *self.failing_since_ms.get_or_insert(now_ms);
        self.attempts = self.attempts.saturating_add(1);
        self.last_error = Some(error);
        if now_ms.saturating_sub(since) >= rule.give_up_after.as_millis() as u64 {
            return AfterFailure::GiveUp;
        }
        let doubling = 2u32.saturating_pow(self.attempts.saturating_sub(1).min(30));
        let wait = rule.first.saturating_mul(doubling).min(rule.max_wait);
        // Jitter (up to a fifth of the wait) so that many webhooks failing together do not
        // come back together.
        let jitter = fastrand::u64(0..=(wait.as_millis() as u64 / 5).max(1));
        self.next_attempt_ms = now_ms + wait.as_millis() as u64 + jitter;
        AfterFailure::RetryAt(self.next_attempt_ms)
    }

    /// The entry at `seq` is dealt with: the cursor moves past it and any failure is over.
    pub fn passed(&mut self, seq: u64) {
        self.cursor = self.cursor.max(seq);
        self.failing_since_ms = None;
        self.attempts = 0;
        self.next_attempt_ms = 0;
    }
}

/// An entry a webhook gave up on, kept for the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub webhook_id: String,
    pub entry: OutboxEntry,
    pub attempts: u32,
    pub first_failure_ms: u64,
    pub dead_at_ms: u64,
    pub last_error: String,
}

/// Dead letters kept per webhook (the oldest go first).
pub const MAX_DEAD_LETTERS: usize = 10_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_then_gives_up() {
        let rule = RetryRule {
            first: Duration::from_secs(1),
            max_wait: Duration::from_secs(8),
            give_up_after: Duration::from_secs(60),
        };
        let mut state = WebhookState::default();
        let mut waits = Vec::new();
        for _ in 0..6 {
            match state.failed(rule, 1_000, "500".into()) {
                AfterFailure::RetryAt(at) => waits.push(at - 1_000),
                AfterFailure::GiveUp => panic!("too early"),
            }
        }
        for (wait, base) in waits.into_iter().zip([1, 2, 4, 8, 8, 8]) {
            let base = base * 1000;
            assert!(
                (base..=base + base / 5).contains(&wait),
                "{wait} for {base}"
            );
        }
        assert_eq!(
            state.failed(rule, 61_000, "500".into()),
            AfterFailure::GiveUp
        );
        state.passed(7);
        assert_eq!(
            (state.cursor, state.attempts, state.failing_since_ms),
            (7, 0, None)
        );
    }

    #[test]
    fn filters_and_secrets() {
        let secret = new_secret().unwrap();
        let hook = Webhook {
            id: "wh_1".into(),
            app_id: "a".into(),
            url: "https://crm.example/hooks".into(),
            events: vec![EventType::NotificationClicked],
            secret,
            description: None,
            created_at_ms: 0,
        };
        assert_eq!(hook.key().unwrap().len(), 24);
        let entry = |kind| OutboxEntry::new(kind, 0, serde_json::Value::Null).unwrap();
        assert!(hook.wants(&entry(EventType::NotificationClicked)));
        assert!(!hook.wants(&entry(EventType::NotificationDelivered)));
        let mut test = entry(EventType::WebhookTest);
        assert!(!hook.wants(&test));
        test.only = Some("wh_1".into());
        assert!(hook.wants(&test));
        test.only = Some("wh_2".into());
        assert!(!hook.wants(&test));
        assert!(EventType::parse("notification.clicked").is_ok());
        assert!(EventType::parse("webhook.test").is_err());
        assert!(
            EventType::parse("nope")
                .unwrap_err()
                .contains("subscription.created")
        );
    }
}
