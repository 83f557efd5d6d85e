//! The trigger runner: in every instance that sends, it claims the pending sends that are due
//! (exactly once across instances, under a lease) and makes each a one-to-one notification of
//! its trigger's content through the notification service, so it travels in the priority
//! lane. A send whose push was made but whose removal was lost (a crash in between) is claimed
//! again after its lease; the notification's idempotency key (the send's id and event time)
//! makes that a no-op rather than a second push.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::model::{PendingSend, Trigger, TriggerRef};
use crate::notify::model::UseCaseError;
use crate::notify::service::{NotificationService, NotifyError, TasksPlanned};
use crate::store::{CapCheck, CapHolder, CapScope, ClaimedSend, Lease, Store, StoreError, now_ms};

/// How the runner runs.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Names this process's claims.
    pub worker_id: String,
    /// How long a claim lasts before another instance may take the send over.
    pub lease: Duration,
    /// Longest wait between looks when nothing is due sooner (other instances schedule too).
    pub poll_interval: Duration,
    /// Sends claimed per look.
    pub batch: usize,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            worker_id: "runner".into(),
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(20),
            batch: 256,
        }
    }
}

/// Claims due sends and makes their pushes.
pub struct TriggerRunner {
    store: Arc<dyn Store>,
    planned: Option<Arc<dyn TasksPlanned>>,
    config: RunnerConfig,
}

/// The idempotency key of a send's notification: the send and the event it came from (a
/// re-armed send is a new push).
pub fn idempotency_key(send: &PendingSend) -> String {
    format!("trigger:{}@{}", send.id(), send.event_at_ms)
}

impl TriggerRunner {
    pub fn new(
        store: Arc<dyn Store>,
        planned: Option<Arc<dyn TasksPlanned>>,
        config: RunnerConfig,
    ) -> Self {
        Self {
            store,
            planned,
            config,
        }
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let claimed = self
                .store
                .claim_due_sends(
                    Lease {
                        worker: &self.config.worker_id,
                        ttl: self.config.lease,
                    },
                    self.config.batch,
                )
                .await;
            let wait = match claimed {
                Ok(claims) if !claims.is_empty() => {
                    let fired = claims.iter().map(|claim| self.fire(claim));
                    for result in futures::future::join_all(fired).await {
                        if let Err(error) = result {
                            tracing::warn!(%error, "a triggered send failed; it is retried after its lease");
                        }
                    }
                    continue;
                }
                Ok(_) => self.until_next_due().await,
                Err(error) => {
                    tracing::warn!(%error, "cannot claim triggered sends; retrying");
                    self.config.poll_interval * 10
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// How long to wait before the next look: until the next send is due, at most a poll.
    async fn until_next_due(&self) -> Duration {
        let poll = self.config.poll_interval;
        match self.store.next_due_ms().await {
            Ok(Some(due)) => Duration::from_millis(due.saturating_sub(now_ms())).min(poll),
            _ => poll,
        }
    }

    /// Makes one claimed send's push, then removes the send.
    async fn fire(&self, claim: &ClaimedSend) -> Result<(), StoreError> {
        let send = &claim.send;
        let trigger = self
            .store
            .get_trigger(TriggerRef::new(&send.app_id, &send.trigger))
            .await?;
        let app = self.store.get_app(&send.app_id).await?;
        let (Some(trigger), Some(app)) = (trigger, app) else {
            // The trigger (or its app) was deleted since: nothing to send.
            return self.finish(claim, None).await;
        };
        let key = idempotency_key(send);
        if !self.within_cap(&trigger, send, &key).await? {
            self.store
                .add_trigger_counters(send.send_ref().trigger, &[("capped", 1)])
                .await?;
            return self.finish(claim, None).await;
        }
        let late_ms = now_ms().saturating_sub(send.event_at_ms);
        let request =
            trigger.notification_request(&send.external_id, &key, late_ms, &send.properties);
        let service = NotificationService::new(self.store.as_ref(), self.planned.as_deref());
        match service.create(&app, request).await {
            Ok(created) => {
                let notification = created.into_notification();
                tracing::debug!(trigger = %trigger.name, notification = %notification.id, "triggered push made");
                let event = crate::webhooks::events::trigger(
                    crate::webhooks::EventType::TriggerSent,
                    &trigger.name,
                    &send.external_id,
                    &send.key,
                    Some(&notification.id),
                    now_ms(),
                );
                crate::webhooks::events::record(self.store.as_ref(), &app.id, event).await;
                self.finish(claim, Some(&trigger)).await
            }
            Err(NotifyError::UseCase(UseCaseError::Store(error))) => Err(error),
            Err(other) => {
                // The content no longer makes a valid notification (it was valid when stored):
                // retrying cannot help.
                tracing::error!(trigger = %trigger.name, error = %other, "a triggered push cannot be made; dropped");
                self.store
                    .add_trigger_counters(send.send_ref().trigger, &[("failed", 1)])
                    .await?;
                self.finish(claim, None).await
            }
        }
    }

    /// Whether the trigger's own cap (`once_per_hours`) lets this send's push go to its
    /// profile, counting it when it does: the store's cap check in the trigger's own scope,
    /// keyed by the send's idempotency key so that a send claimed again is not counted twice.
    async fn within_cap(
        &self,
        trigger: &Trigger,
        send: &PendingSend,
        key: &str,
    ) -> Result<bool, StoreError> {
        let Some(window) = trigger.cap_window() else {
            return Ok(true);
        };
        let category = crate::policy::Category::default();
        let check = CapCheck {
            scope: CapScope::Trigger(&trigger.name),
            app_id: &send.app_id,
            category: &category,
            notification_id: key,
            windows: std::slice::from_ref(&window),
            now_ms: now_ms(),
        };
        let holder = [CapHolder::Profile(send.external_id.clone())];
        let allowed = self.store.take_caps(check, &holder).await?;
        Ok(allowed.first().copied().unwrap_or(true))
    }

    async fn finish(&self, claim: &ClaimedSend, sent: Option<&Trigger>) -> Result<(), StoreError> {
        match self.store.finish_send(claim).await {
            // Re-armed or cancelled while its push was being made: the new one goes on.
            Ok(()) | Err(StoreError::LeaseLost) => {}
            Err(error) => return Err(error),
        }
        if let Some(trigger) = sent {
            metrics::counter!("aviso_trigger_sends_total").increment(1);
            let late = now_ms().saturating_sub(claim.send.due_ms) as f64 / 1000.0;
            metrics::histogram!("aviso_trigger_lateness_seconds").record(late);
            self.store
                .add_trigger_counters(TriggerRef::from(trigger), &[("sent", 1)])
                .await?;
        }
        Ok(())
    }
}
