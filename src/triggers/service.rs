//! What events do: each event schedules a send for every trigger it starts (or re-arms or
//! leaves a pending one, as the trigger says) and cancels the pending sends it cancels. Events
//! change nothing else. Shared by the API; counters per trigger are added once per batch.

use std::collections::BTreeMap;

use super::model::{Event, PendingSend, SendRef, Trigger, TriggerRef, TriggerRequest};
use crate::notify::model::UseCaseError;
use crate::store::{App, Scheduled, Store};
use crate::webhooks::EventType;
use crate::webhooks::events as hooks;

/// Why a trigger use case failed: only as every use case can.
pub type TriggerError = UseCaseError;

/// What a batch of events did, in total.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Ingested {
    /// Events taken.
    pub events: u64,
    /// Sends newly scheduled.
    pub scheduled: u64,
    /// Pending sends started again (`repeat: rearm`).
    pub rearmed: u64,
    /// Repeated events that found a send pending and left it (`repeat: ignore`).
    pub ignored: u64,
    /// Pending sends cancelled.
    pub cancelled: u64,
}

/// The trigger use cases, over one store.
#[derive(Clone, Copy)]
pub struct TriggerService<'a> {
    store: &'a dyn Store,
}

impl<'a> TriggerService<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    /// Creates or replaces a trigger of `app`.
    pub async fn put(
        &self,
        app: &App,
        name: &str,
        request: TriggerRequest,
        now_ms: u64,
    ) -> Result<Trigger, TriggerError> {
        let trigger = request.into_trigger(&app.id, name, now_ms)?;
        self.store.put_trigger(&trigger).await?;
        Ok(trigger)
    }

    pub async fn get(&self, app: &App, name: &str) -> Result<Trigger, TriggerError> {
        self.store
            .get_trigger(TriggerRef::new(&app.id, name))
            .await?
            .ok_or_else(|| TriggerError::NotFound(format!("trigger `{name}`")))
    }

    pub async fn delete(&self, app: &App, name: &str) -> Result<(), TriggerError> {
        if self
            .store
            .delete_trigger(TriggerRef::new(&app.id, name))
            .await?
        {
            Ok(())
        } else {
            Err(TriggerError::NotFound(format!("trigger `{name}`")))
        }
    }

    /// Takes a batch of (validated) events that arrived at `now_ms` (and happened then, unless
    /// they say when).
    pub async fn ingest(
        &self,
        app: &App,
        events: &[Event],
        now_ms: u64,
    ) -> Result<Ingested, TriggerError> {
        let triggers = self.store.list_triggers(&app.id).await?;
        let mut total = Ingested::default();
        let mut counts: BTreeMap<&str, BTreeMap<&'static str, i64>> = BTreeMap::new();
        let mut webhook_events = Vec::new();
        for event in events {
            total.events += 1;
            for trigger in &triggers {
                if trigger.event == event.name {
                    let send = PendingSend {
                        app_id: app.id.clone(),
                        trigger: trigger.name.clone(),
                        external_id: event.external_id.clone(),
                        key: event.key().to_owned(),
                        event_at_ms: event.occurred_ms(now_ms),
                        due_ms: event.occurred_ms(now_ms) + trigger.delay_secs * 1000,
                        properties: event.properties.clone(),
                    };
                    let outcome = self.store.schedule_send(&send, trigger.repeat).await?;
                    let (counter, tally) = match outcome {
                        Scheduled::New => ("scheduled", &mut total.scheduled),
                        Scheduled::Rearmed => ("rearmed", &mut total.rearmed),
                        Scheduled::AlreadyPending => ("ignored", &mut total.ignored),
                    };
                    *tally += 1;
                    if outcome == Scheduled::New {
                        webhook_events.push(hooks::trigger(
                            EventType::TriggerScheduled,
                            &trigger.name,
                            &event.external_id,
                            event.key(),
                            None,
                            now_ms,
                        ));
                    }
                    let count = counts.entry(&trigger.name).or_default();
                    *count.entry("matched").or_default() += 1;
                    *count.entry(counter).or_default() += 1;
                }
                if trigger.cancel_on.contains(&event.name)
                    && self
                        .store
                        .cancel_send(SendRef::new(
                            TriggerRef::new(&app.id, &trigger.name),
                            &event.external_id,
                            event.key(),
                        ))
                        .await?
                {
                    total.cancelled += 1;
                    webhook_events.push(hooks::trigger(
                        EventType::TriggerCancelled,
                        &trigger.name,
                        &event.external_id,
                        event.key(),
                        None,
                        now_ms,
                    ));
                    *counts
                        .entry(&trigger.name)
                        .or_default()
                        .entry("cancelled")
                        .or_default() += 1;
                }
            }
        }
        for (trigger, count) in counts {
            let deltas: Vec<(&str, i64)> = count.into_iter().collect();
            for (counter, delta) in &deltas {
                metrics::counter!("aviso_trigger_events_total", "outcome" => *counter)
                    .increment(*delta as u64);
            }
            self.store
                .add_trigger_counters(TriggerRef::new(&app.id, trigger), &deltas)
                .await?;
        }
        // One write for the whole batch of events.
        match webhook_events.into_iter().collect::<Option<Vec<_>>>() {
            Some(entries) => self.store.append_webhook_events(&app.id, &entries).await?,
            None => tracing::warn!("the random generator failed: trigger webhook events are lost"),
        }
        Ok(total)
    }
}
