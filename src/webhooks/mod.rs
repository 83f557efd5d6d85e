//! Webhooks into the CRM: what happened to each person and notification, posted to the app's
//! endpoints under the Standard Webhooks specification (<https://www.standardwebhooks.com/>).
//!
//! - [`model`]: a webhook (target, event filter, secret), the event types, an outbox entry, a
//!   webhook's delivery state and its dead letters; the rules of each.
//! - [`sign`]: the `webhook-id`, `webhook-timestamp` and `webhook-signature` headers.
//! - [`target`]: which target URLs and addresses may be posted to (SSRF rules).
//! - [`events`]: the outbox entries that each part of Aviso writes (one per rare event, one per
//!   delivery batch for the frequent ones).
//! - [`sender`]: the task that drains the outbox into the targets, with retries, backoff and
//!   a dead-letter list.
//!
//! The outbox itself is a store concern (`store::WebhookStore`): durable, in every backend.

pub mod events;
pub mod model;
pub mod sender;
pub mod sign;
pub mod target;

pub use model::{DeadLetter, EventType, OutboxEntry, Webhook, WebhookState};
