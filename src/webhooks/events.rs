//! The outbox entries each part of Aviso writes: one entry per rare event (a subscription
//! created, identified or unsubscribed; a receipt; a trigger's send scheduled, cancelled or
//! made), and, for the frequent ones of a broadcast (`notification.delivered`, `.failed`,
//! `subscription.expired`), one entry per delivery batch and type, up to
//! [`MAX_BATCH_ITEMS`] events in `data.items`. Every entry is written with the store change
//! it reports, or right before it (duplicates after a crash, never a loss).

use serde_json::{Value, json};

use super::model::MAX_BATCH_ITEMS;
use super::{EventType, OutboxEntry};
use crate::delivery::Delivery;
use crate::notify::Notification;
use crate::store::{Store, Subscription, SubscriptionId, now_ms};

/// What became of one subscriber of a delivery batch.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    Delivered,
    /// The push service said the subscription is gone (404/410).
    Expired,
    /// Failed, with the engine's reason label.
    Failed(&'a str),
}

/// A subscription as events describe it.
fn subscription_data(subscription: &Subscription) -> Value {
    json!({
        "subscription_id": subscription.id.to_string(),
        "external_id": subscription.external_id,
    })
}

/// The entries of one delivery batch of `notification_id`: one per type present, each of at
/// most [`MAX_BATCH_ITEMS`] events. `None` only when the random generator fails.
pub fn of_batch<'a>(
    notification_id: &str,
    at_ms: u64,
    outcomes: impl IntoIterator<Item = (&'a Subscription, Outcome<'a>)>,
) -> Option<Vec<OutboxEntry>> {
    let (mut delivered, mut failed, mut expired) = (Vec::new(), Vec::new(), Vec::new());
    for (subscription, outcome) in outcomes {
        let mut item = subscription_data(subscription);
        match outcome {
            Outcome::Delivered => delivered.push(item),
            Outcome::Expired => expired.push(item),
            Outcome::Failed(reason) => {
                item["reason"] = Value::from(reason);
                failed.push(item);
            }
        }
    }
    let mut entries = Vec::new();
    for (kind, items) in [
        (EventType::NotificationDelivered, delivered),
        (EventType::NotificationFailed, failed),
        (EventType::SubscriptionExpired, expired),
    ] {
        for chunk in items.chunks(MAX_BATCH_ITEMS) {
            let data = json!({
                "notification_id": notification_id,
                "count": chunk.len(),
                "items": chunk,
            });
            entries.push(OutboxEntry::new(kind, at_ms, data)?);
        }
    }
    Some(entries)
}

/// The entries of a delivery batch as the engine has its outcomes (empty, and counted as lost,
/// when the random generator fails).
pub fn for_deliveries(
    notification: &Notification,
    outcomes: &[(Subscription, Delivery)],
) -> Vec<OutboxEntry> {
    let outcomes = outcomes.iter().map(|(subscription, delivery)| {
        let outcome = match delivery {
            Delivery::Delivered => Outcome::Delivered,
            Delivery::Expired => Outcome::Expired,
            Delivery::Failed(failure) => Outcome::Failed(failure.label()),
        };
        (subscription, outcome)
    });
    of_batch(&notification.id, now_ms(), outcomes).unwrap_or_else(|| {
        metrics::counter!("aviso_webhook_events_lost_total").increment(1);
        tracing::warn!("the random generator failed: a batch's webhook events are lost");
        Vec::new()
    })
}

/// A subscription was created, identified (linked to `external_id`) or unsubscribed.
pub fn subscription(
    kind: EventType,
    subscription: &Subscription,
    external_id: Option<&str>,
    at_ms: u64,
) -> Option<OutboxEntry> {
    let mut data = subscription_data(subscription);
    if let Some(external_id) = external_id {
        data["external_id"] = Value::from(external_id);
    }
    OutboxEntry::new(kind, at_ms, data)
}

/// A receipt from the service worker (`shown`, `clicked` with its action, `closed`).
pub fn receipt(
    kind: EventType,
    notification_id: &str,
    subscription_id: SubscriptionId,
    action: Option<&str>,
    at_ms: u64,
) -> Option<OutboxEntry> {
    let mut data = json!({
        "notification_id": notification_id,
        "subscription_id": subscription_id.to_string(),
    });
    if kind == EventType::NotificationClicked {
        data["action"] = action.map_or(Value::Null, Value::from);
    }
    OutboxEntry::new(kind, at_ms, data)
}

/// A trigger's send was scheduled, cancelled or made (`notification_id` then).
pub fn trigger(
    kind: EventType,
    trigger: &str,
    external_id: &str,
    key: &str,
    notification_id: Option<&str>,
    at_ms: u64,
) -> Option<OutboxEntry> {
    let mut data = json!({ "trigger": trigger, "external_id": external_id, "key": key });
    if let Some(id) = notification_id {
        data["notification_id"] = Value::from(id);
    }
    OutboxEntry::new(kind, at_ms, data)
}

/// Writes an app's event, logging rather than failing: a caller whose own change is made must
/// not fail its request because the report of it could not be written (the loss is logged and
/// counted in `aviso_webhook_events_lost_total`).
pub async fn record(store: &dyn Store, app_id: &str, entry: Option<OutboxEntry>) {
    let Some(entry) = entry else {
        metrics::counter!("aviso_webhook_events_lost_total").increment(1);
        tracing::warn!("the random generator failed: a webhook event is lost");
        return;
    };
    if let Err(error) = store.append_webhook_events(app_id, &[entry]).await {
        metrics::counter!("aviso_webhook_events_lost_total").increment(1);
        tracing::warn!(%error, app_id, "cannot write webhook events; they are lost");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_one_entry_per_type_of_at_most_a_thousand() {
        let subs: Vec<Subscription> = (0..2500)
            .map(|i| {
                Subscription::new(
                    "a",
                    &format!("https://fcm.googleapis.com/fcm/send/{i}"),
                    [4; 65],
                    [1; 16],
                    1,
                )
            })
            .collect();
        let outcomes = subs.iter().enumerate().map(|(i, s)| {
            let outcome = match i % 5 {
                0 => Outcome::Expired,
                1 => Outcome::Failed("rejected"),
                _ => Outcome::Delivered,
            };
            (s, outcome)
        });
        let entries = of_batch("n1", 5, outcomes).unwrap();
        let counts: Vec<(EventType, u64)> = entries
            .iter()
            .map(|e| (e.kind, e.data["count"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            counts,
            [
                (EventType::NotificationDelivered, 1000),
                (EventType::NotificationDelivered, 500),
                (EventType::NotificationFailed, 500),
                (EventType::SubscriptionExpired, 500),
            ]
        );
        assert_eq!(entries[2].data["items"][0]["reason"], "rejected");
        let ids: std::collections::HashSet<_> = entries.iter().map(|e| &e.id).collect();
        assert_eq!(ids.len(), entries.len());
    }
}
