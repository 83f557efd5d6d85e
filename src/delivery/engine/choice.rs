//! Which payload each subscriber of a task gets when a notification has A/B variants, and the
//! winner of its winner test, decided once across all instances.

use super::Engine;
use super::prepared::Prepared;
use crate::notify::variants::{self, Split};
use crate::store::{Phase, Store, StoreError, SubscriptionId};

/// Which payload each subscriber of one task gets: a pure function of the subscription id
/// (`notify::variants::Split`), asked again when the outcomes are counted, without allocating.
#[derive(Clone, Copy)]
pub(super) struct Choice<'a> {
    split: Option<&'a Split>,
    phase: Phase,
    /// The decided winner, for a follow-up task (`Phase::Rest`).
    winner: Option<usize>,
}

impl Choice<'_> {
    /// The index of the subscriber's payload, or `None` when this task is not for it.
    pub(super) fn of(&self, subscription: SubscriptionId) -> Option<usize> {
        match self.split {
            None => Some(0),
            Some(split) => split.pick(self.phase, self.winner, subscription),
        }
    }
}

impl Engine {
    /// How one task of `phase` picks each subscriber's payload; a follow-up of a winner test
    /// first reads the decided winner, or decides it (see [`Engine::winner`]).
    pub(super) async fn choice<'p>(
        &self,
        store: &dyn Store,
        phase: Phase,
        prepared: &'p Prepared,
    ) -> Result<Choice<'p>, StoreError> {
        let winner = match (phase, &prepared.split) {
            (Phase::Rest, Some(_)) => Some(self.winner(store, prepared).await?),
            _ => None,
        };
        Ok(Choice {
            split: prepared.split.as_ref(),
            phase,
            winner,
        })
    }

    /// The winner of a notification's test: the one recorded in its counters, or, the first
    /// time any instance asks (when the first follow-up task runs, after the test's time), the
    /// best by the test's metric, recorded with `count_once` so that exactly one decision
    /// counts however many instances race to it; a loser reads the recorded one.
    async fn winner(&self, store: &dyn Store, prepared: &Prepared) -> Result<usize, StoreError> {
        if let Some(winner) = prepared.winner.get() {
            return Ok(*winner);
        }
        let notification = &prepared.notification;
        let counters = store.counters(&notification.id).await?;
        let winner = match variants::decided(&counters) {
            Some(winner) => winner,
            None => {
                let metric = notification
                    .winner
                    .as_ref()
                    .map_or(variants::Metric::Clicked, |test| test.metric);
                let best = variants::best(notification.variants.len(), metric, &counters);
                let name = variants::winner_counter(best);
                let until = crate::notify::receipt::counted_until_ms(notification);
                let first = store
                    .count_once(crate::store::CountOnce {
                        notification_id: &notification.id,
                        member: variants::WINNER_MEMBER,
                        counters: &[&name],
                        keep_until_ms: until,
                    })
                    .await?;
                if first {
                    tracing::info!(notification = %notification.id, winner = best, "winner test decided");
                    best
                } else {
                    variants::decided(&store.counters(&notification.id).await?).ok_or_else(
                        || {
                            StoreError::Corrupt(format!(
                                "notification {}: a winner was counted but none is recorded",
                                notification.id
                            ))
                        },
                    )?
                }
            }
        };
        let winner = winner.min(prepared.templates.len().saturating_sub(1));
        Ok(*prepared.winner.get_or_init(|| winner))
    }
}
