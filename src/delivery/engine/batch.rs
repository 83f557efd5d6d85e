//! One batch of a task before it is sent: the segment's filter, the winner test's part of the
//! audience, stale subscriptions, the policy gate, and each subscriber's payload; then the
//! batch goes out ([`Engine::send_all`]) and its outcomes are counted.

use std::time::{Duration, Instant};

use super::Engine;
use super::choice::Choice;
use super::lifecycle::BatchActivity;
use super::prepared::Prepared;
use super::record::Recorded;
use crate::delivery::sender::{Batch, Delivery, Failure, Sender};
use crate::notify::model::Audience;
use crate::notify::payload::PayloadTemplate;
use crate::notify::segment::Filter;
use crate::notify::variants;
use crate::push::VapidHeaderCache;
use crate::store::{Phase, ProfileReads, Store, StoreError, Subscription, now_ms};

impl Engine {
    pub(super) async fn deliver_batch(
        &self,
        (store, task): (&dyn Store, &crate::store::Task),
        prepared: &Prepared,
        vapid: &VapidHeaderCache,
        sender: &Sender,
        subscriptions: Vec<Subscription>,
        batch: &Batch,
    ) -> Result<Recorded, StoreError> {
        let notification = &prepared.notification;
        let read = subscriptions.len();
        // The batch's profiles, read once for the segment and the payloads together.
        let mut profiles = ProfileReads::new(store, &notification.app_id);
        let targeted = match &notification.audience {
            Audience::Segment(filter) => self.filter(&mut profiles, filter, subscriptions).await?,
            _ => subscriptions,
        };
        let choice = self.choice(store, task.phase, prepared).await?;
        let mut targeted = targeted;
        if prepared.split.is_some() && task.phase != Phase::Whole {
            // Each task of a winner test is for its part of the audience only.
            targeted.retain(|subscription| choice.of(subscription.id).is_some());
        }
        let window = self.expiry.of(store, &notification.app_id).await?;
        let matched = targeted.len();
        let (targeted, activity) = BatchActivity::split(window, (now_ms() / 1000) as u32, targeted);
        let mut recorded = Recorded {
            series_bucket_ms: crate::notify::life::series_bucket(notification.send_at_ms, now_ms()),
            ..Recorded::default()
        };
        // Who the batch targets, each to end in one final outcome (`notify::life`): a
        // broadcast's or a segment's subscribers as they are read (named recipients were
        // counted when planned, a slice's by the task that deferred them, of which those that
        // no longer match the segment end here).
        if crate::policy::gate::is_slice(task) {
            recorded.count("left_segment", read - matched);
        } else if matches!(notification.audience, Audience::All | Audience::Segment(_)) {
            recorded.count("targeted", matched);
        }
        recorded.count("skipped_stale", activity.stale.len());
        recorded.activity = activity;
        let admitted = self
            .policy
            .admit(store, task, notification, targeted)
            .await?;
        if !admitted.slices.is_empty() {
            store.enqueue_tasks(&admitted.slices).await?;
        }
        // Added, not inserted: a batch deferred into several slices counts `deferred` once each.
        for (counter, n) in admitted.counts {
            *recorded.counts.entry(counter).or_default() += n;
        }
        let targeted = admitted.send;
        if targeted.is_empty() {
            return Ok(recorded);
        }
        let expires_at = Instant::now()
            + Duration::from_millis(
                (notification.send_at_ms + u64::from(notification.ttl) * 1000)
                    .saturating_sub(now_ms()),
            );
        let (ready, mut outcomes) = self
            .personalise(&mut profiles, prepared, choice, targeted)
            .await?;
        let mut pace = self
            .policy
            .pace(store, notification, ready.len(), batch.stop_token())
            .await?;
        outcomes.extend(
            self.send_all(
                (prepared, vapid, sender),
                expires_at,
                ready,
                batch,
                pace.as_mut(),
            )
            .await,
        );
        let waited = pace.map_or(Duration::ZERO, |pace| pace.waited());
        if !waited.is_zero() {
            recorded
                .counts
                .insert("throttled_ms".to_owned(), waited.as_millis() as i64);
        }
        // Counted when the batch's answers are in (its retries may take minutes).
        recorded.series_bucket_ms =
            crate::notify::life::series_bucket(notification.send_at_ms, now_ms());

        // Only for an app with a webhook: the store keeps none otherwise, and at a broadcast's
        // rate each message's event JSON is a cost of its own (docs/BENCHMARKS.md).
        if store.has_webhooks(&notification.app_id).await? {
            recorded.webhook_events =
                crate::webhooks::events::for_deliveries(notification, &outcomes);
        }
        recorded.count("sent", outcomes.len());
        let mut per_variant = [0i64; variants::MAX_VARIANTS];
        let (mut delivered, mut expired) = (0, 0);
        for (subscription, delivery) in outcomes {
            match delivery {
                Delivery::Delivered => {
                    if prepared.split.is_some()
                        && let Some(slot) = choice
                            .of(subscription.id)
                            .and_then(|i| per_variant.get_mut(i))
                    {
                        *slot += 1;
                    }
                    recorded.activity.delivered(subscription);
                    delivered += 1;
                }
                Delivery::Expired => {
                    // The push service says this subscription is gone for good: deleted with
                    // the batch's record.
                    recorded.gone.push(subscription);
                    expired += 1;
                }
                // One counter per reason, named after the sender's own label.
                Delivery::Failed(failure) => {
                    let counter = format!("failed.{}", failure.label());
                    *recorded.counts.entry(counter).or_default() += 1;
                }
            }
        }
        recorded.count("delivered", delivered);
        recorded.count("expired", expired);
        for (i, delivered) in per_variant.into_iter().enumerate() {
            if delivered > 0 {
                recorded
                    .counts
                    .insert(variants::counter(i, "delivered"), delivered);
            }
        }
        Ok(recorded)
    }

    /// Each subscriber's payload: the notification's, with its id spliced in, or — when the
    /// content has template variables — rendered from the subscriber's profile, the batch's
    /// profiles read in one store call (none for those the segment's filter read). A rendering
    /// that cannot be sent (too large for Web Push) is that subscriber's outcome, never the
    /// batch's.
    async fn personalise(
        &self,
        profiles: &mut ProfileReads<'_>,
        prepared: &Prepared,
        choice: Choice<'_>,
        subscriptions: Vec<Subscription>,
    ) -> Result<(Vec<(Subscription, Vec<u8>)>, Vec<(Subscription, Delivery)>), StoreError> {
        let templates = &prepared.templates;
        // Only subscribers the task is for reach here: `choice` names a payload for each.
        let template_of = |subscription: &Subscription| {
            let index = choice.of(subscription.id).unwrap_or(0);
            templates.get(index).unwrap_or(&templates[0])
        };
        if !templates.iter().any(PayloadTemplate::uses_variables) {
            let ready = subscriptions
                .into_iter()
                .map(|subscription| {
                    let payload = template_of(&subscription).render(subscription.id);
                    (subscription, payload)
                })
                .collect();
            return Ok((ready, Vec::new()));
        }
        profiles.load(&subscriptions).await?;
        let mut ready = Vec::with_capacity(subscriptions.len());
        let mut failed = Vec::new();
        for subscription in subscriptions {
            let profile = profiles.of(&subscription);
            match template_of(&subscription).render_subscriber(
                &subscription,
                profile,
                prepared.event.as_ref(),
            ) {
                Ok(payload) => ready.push((subscription, payload)),
                Err(error) => failed.push((
                    subscription,
                    Delivery::Failed(Failure::Personalisation(error)),
                )),
            }
        }
        Ok((ready, failed))
    }

    /// Keeps the subscriptions that match a segment, reading the batch's profiles in one store
    /// call only when the filter needs them.
    async fn filter(
        &self,
        profiles: &mut ProfileReads<'_>,
        filter: &Filter,
        mut subscriptions: Vec<Subscription>,
    ) -> Result<Vec<Subscription>, StoreError> {
        if filter.needs_profiles() {
            profiles.load(&subscriptions).await?;
        }
        subscriptions
            .retain(|subscription| filter.matches(subscription, profiles.of(subscription)));
        Ok(subscriptions)
    }
}
