//! What the engine prepares once per process rather than once per message: a notification's
//! push options, compiled templates and variants' split, and an app's VAPID signer and receipt
//! key, each kept in a cache of the engine.

use std::sync::Arc;

use super::Engine;
use crate::notify::Notification;
use crate::notify::model::Status;
use crate::notify::payload::PayloadTemplate;
use crate::notify::template::EventProperties;
use crate::notify::variants::Split;
use crate::push::vapid::DEFAULT_VALIDITY;
use crate::push::{PushOptions, RequestHead, Topic, Ttl, Urgency, VapidHeaderCache, VapidKey};
use crate::store::{Store, StoreError};

/// A notification ready to send: parsed once per process, not once per message.
pub(super) struct Prepared {
    pub(super) notification: Notification,
    /// One payload per A/B variant, in their order (one without variants): each variant's
    /// templates compiled once.
    pub(super) templates: Vec<PayloadTemplate>,
    /// How the audience splits over the variants (`None` without variants).
    pub(super) split: Option<Split>,
    /// The winner of its winner test, once this process has read or decided it (it never
    /// changes after).
    pub(super) winner: std::sync::OnceLock<usize>,
    /// The RFC 8030 headers of its requests (`TTL`, `Urgency`, `Topic`), built once.
    pub(super) head: RequestHead,
    /// A triggered push's event properties, converted once for all its renderings.
    pub(super) event: Option<EventProperties>,
}

impl Engine {
    pub(super) async fn prepare(
        &self,
        store: &dyn Store,
        notification_id: &str,
    ) -> Result<Option<Arc<Prepared>>, StoreError> {
        if let Some(prepared) = self.notifications.get(notification_id) {
            return Ok(Some(prepared));
        }
        let Some(notification) = store.get_notification(notification_id).await? else {
            return Ok(None);
        };
        let options = PushOptions {
            ttl: Ttl::from_secs(u64::from(notification.ttl)).unwrap_or(PushOptions::default().ttl),
            urgency: notification
                .urgency
                .as_deref()
                .and_then(|u| u.parse::<Urgency>().ok())
                .or_else(|| crate::policy::gate::default_urgency(&notification)),
            topic: notification
                .topic
                .as_deref()
                .and_then(|t| t.parse::<Topic>().ok()),
        };
        // The app's receipt secret signs each payload's token.
        let key = self
            .app_keys(store, &notification.app_id)
            .await?
            .receipt
            .clone();
        let split = (!notification.variants.is_empty()).then(|| {
            let weights: Vec<u32> = notification.variants.iter().map(|v| v.weight).collect();
            Split::new(&notification.id, &weights, notification.winner.as_ref())
        });
        let prepared = Arc::new(Prepared {
            templates: PayloadTemplate::all(&notification, key),
            split,
            winner: std::sync::OnceLock::new(),
            event: notification.event.as_ref().map(EventProperties::new),
            notification,
            head: RequestHead::new(&options),
        });
        // A cancelled one is not kept: its next task (if any) reads it again.
        if prepared.notification.status != Status::Cancelled {
            self.notifications
                .insert(notification_id.to_owned(), prepared.clone());
        }
        Ok(Some(prepared))
    }

    /// The app's VAPID signer and receipt key, read from the store once per
    /// [`APPS_TTL`](super::APPS_TTL).
    pub(super) async fn app_keys(
        &self,
        store: &dyn Store,
        app_id: &str,
    ) -> Result<Arc<AppKeys>, StoreError> {
        if let Some(keys) = self.apps.get(app_id) {
            return Ok(keys);
        }
        let app = store
            .get_app(app_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("app {app_id}")))?;
        let key = VapidKey::from_private_scalar(&app.vapid_private_key)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let vapid = Arc::new(
            VapidHeaderCache::new(key, self.config.vapid_subject.clone(), DEFAULT_VALIDITY)
                .map_err(|e| StoreError::Invalid(e.to_string()))?,
        );
        let keys = Arc::new(AppKeys {
            vapid,
            receipt: crate::notify::receipt::ReceiptKey::new(&app.receipt_secret),
        });
        self.apps.insert(app_id.to_owned(), keys.clone());
        Ok(keys)
    }
}

/// What the engine keeps of an app: it signs every push request and every receipt token.
pub(super) struct AppKeys {
    pub(super) vapid: Arc<VapidHeaderCache>,
    pub(super) receipt: crate::notify::receipt::ReceiptKey,
}
