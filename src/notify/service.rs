//! The notification use cases — create, read, list, cancel — over the store, shared by every
//! caller that makes notifications (the server API, the demo endpoint, and the trigger engine
//! to come): validate once, plan, store, wake the workers. HTTP handlers only parse and answer.

use std::collections::BTreeMap;
use std::time::Duration;

use super::life::CancelOutcome;
use super::model::{FieldError, Status, UseCaseError};
use super::{Notification, NotificationRequest, plan};
use crate::store::{App, KeyClaim, NewNotification, Settle, Store, StoreError, Task, now_ms};

/// How long an idempotency key keeps answering with the first notification.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How long a key is held while its notification is being created: if the process dies in
/// between, a retry after this creates it anew rather than waiting a day.
const CREATING_WINDOW: Duration = Duration::from_secs(30);

/// Told when tasks were enqueued by this process, so its idle workers look at once.
pub trait TasksPlanned: Send + Sync {
    fn tasks_planned(&self, tasks: &[Task]);
}

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Invalid, the store failed, or no such notification.
    #[error(transparent)]
    UseCase(#[from] UseCaseError),
    #[error(
        "the notification of this idempotency key is still being created; retry in a few seconds"
    )]
    BeingCreated,
    #[error("the random generator failed")]
    Random,
    /// A cancel came after the notification completed: nothing is left to cancel.
    #[error(
        "notification `{id}` completed at {at_ms} (Unix ms): every message has its outcome and its counters are final, so there is nothing to cancel; read them with GET /v1/notifications/{id}"
    )]
    Completed { id: String, at_ms: u64 },
}

// A store failure or an invalid field is a use case's, for `?` in the methods below.
impl From<StoreError> for NotifyError {
    fn from(e: StoreError) -> Self {
        Self::UseCase(e.into())
    }
}

impl From<FieldError> for NotifyError {
    fn from(e: FieldError) -> Self {
        Self::UseCase(e.into())
    }
}

/// What [`NotificationService::create`] did.
#[derive(Debug)]
pub enum Created {
    /// A new notification, with the counters it starts with (`targeted` when known up front).
    New {
        notification: Notification,
        counters: BTreeMap<String, i64>,
    },
    /// The idempotency key named an earlier notification (whose counters have moved since).
    Earlier(Notification),
}

impl Created {
    pub fn into_notification(self) -> Notification {
        match self {
            Self::New { notification, .. } | Self::Earlier(notification) => notification,
        }
    }
}

/// The use cases, over one store (cheap to make: two references).
#[derive(Clone, Copy)]
pub struct NotificationService<'a> {
    store: &'a dyn Store,
    planned: Option<&'a dyn TasksPlanned>,
}

impl<'a> NotificationService<'a> {
    pub fn new(store: &'a dyn Store, planned: Option<&'a dyn TasksPlanned>) -> Self {
        Self { store, planned }
    }

    /// Validates, plans and stores a notification of `app`. With an idempotency key, a retry
    /// answers the first notification; a create that failed leaves the key free for the retry.
    pub async fn create(
        &self,
        app: &App,
        request: NotificationRequest,
    ) -> Result<Created, NotifyError> {
        let mut id_bytes = [0u8; 10];
        aws_lc_rs::rand::fill(&mut id_bytes).map_err(|_| NotifyError::Random)?;
        let id = crate::apps::hex(&id_bytes);
        let idempotency_key = request.idempotency_key.clone();
        let notification = request.into_notification(id, app.id.clone(), now_ms())?;
        let Some(key) = idempotency_key else {
            return self.store_new(notification).await;
        };
        let claim = KeyClaim {
            app_id: &app.id,
            key: &key,
            holder: &notification.id,
        };
        let claimed = self
            .store
            .claim_idempotency_key(claim, CREATING_WINDOW)
            .await?;
        if let Some(holder) = claimed {
            let first = self
                .store
                .get_notification(&holder)
                .await?
                .ok_or(NotifyError::BeingCreated)?;
            return Ok(Created::Earlier(first));
        }
        let (app_id, id) = (app.id.clone(), notification.id.clone());
        let claim = KeyClaim {
            app_id: &app_id,
            key: &key,
            holder: &id,
        };
        let created = self.store_new(notification).await;
        let settle = match &created {
            Ok(_) => Settle::Keep(IDEMPOTENCY_WINDOW),
            Err(_) => Settle::Release,
        };
        let settled = self.store.settle_idempotency_key(claim, settle).await;
        match (created, settled) {
            (Err(error), _) => Err(error),
            (Ok(created), Ok(())) => Ok(created),
            (Ok(created), Err(error)) => {
                // Stored and queued: answer it. The key then lapses after CREATING_WINDOW
                // instead of a day.
                tracing::warn!(%error, notification = %id, "created, but its idempotency key could not be kept");
                Ok(created)
            }
        }
    }

    async fn store_new(&self, notification: Notification) -> Result<Created, NotifyError> {
        let plan = plan::plan(self.store, &notification).await?;
        let targeted: Vec<(&str, i64)> = plan
            .targeted
            .map(|n| ("targeted", n as i64))
            .into_iter()
            .collect();
        self.store
            .create_notification(NewNotification {
                notification: &notification,
                tasks: &plan.tasks,
                counters: &targeted,
            })
            .await?;
        if let Some(planned) = self.planned {
            planned.tasks_planned(&plan.tasks);
        }
        metrics::counter!("aviso_notifications_created_total").increment(1);
        let counters = targeted
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        Ok(Created::New {
            notification,
            counters,
        })
    }

    /// A notification of `app` (another app's is not found).
    pub async fn get(&self, app: &App, id: &str) -> Result<Notification, NotifyError> {
        match self.store.get_notification(id).await? {
            Some(notification) if notification.app_id == app.id => Ok(notification),
            _ => Err(UseCaseError::NotFound(format!("notification `{id}`")).into()),
        }
    }

    /// A notification of `app` with its counters.
    pub async fn with_counters(
        &self,
        notification: Notification,
    ) -> Result<(Notification, BTreeMap<String, i64>), NotifyError> {
        let counters = self.store.counters(&notification.id).await?;
        Ok((notification, counters))
    }

    /// The app's newest notifications.
    pub async fn list(&self, app: &App, limit: usize) -> Result<Vec<Notification>, NotifyError> {
        Ok(self.store.list_notifications(&app.id, limit).await?)
    }

    /// Cancels a notification: its tasks leave the ledger (workers stop at their next batch).
    /// A completed one is refused ([`NotifyError::Completed`]); a cancelled one is cancelled
    /// again, which changes nothing but finishes a cancel that a crash cut short.
    pub async fn cancel(&self, app: &App, id: &str) -> Result<Notification, NotifyError> {
        let mut notification = self.get(app, id).await?;
        match self.store.cancel_notification(&notification.id).await? {
            CancelOutcome::Completed(at_ms) => {
                return Err(NotifyError::Completed {
                    id: notification.id,
                    at_ms,
                });
            }
            CancelOutcome::Cancelled(_) | CancelOutcome::AlreadyCancelled(_) => {}
        }
        self.store.cancel_tasks(&notification.id).await?;
        // The document says so too: a worker that reads it stops.
        notification.status = Status::Cancelled;
        self.store.put_notification(&notification).await?;
        self.get(app, id).await
    }

    /// A notification's counters over time, in time order.
    pub async fn series(
        &self,
        notification: &Notification,
    ) -> Result<Vec<super::life::SeriesPoint>, NotifyError> {
        let buckets = self.store.series(&notification.id).await?;
        Ok(super::life::series_points(notification.send_at_ms, buckets))
    }
}
