//! A batch's messages on their way: sealed (encrypted) in runs, one batch of cryptography per
//! run, and sent concurrently within the window, under the notification's rate when it has one.

use std::task::Poll;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::Engine;
use super::prepared::Prepared;
use crate::delivery::sender::{Batch, Delivery, Failure, Message, Sender};
use crate::policy::gate::Pace;
use crate::push::{PushSubscription, SubscriptionKeys, VapidHeaderCache};
use crate::store::Subscription;

impl Engine {
    /// Sends to each subscriber, [`EngineConfig::concurrency`](super::EngineConfig::concurrency)
    /// messages in flight at most.
    ///
    /// Messages are encrypted and handed to the connections in runs of a quarter of that window,
    /// not one per answer received: each connection's task then writes a run's requests with one
    /// system call and one TLS record instead of one each, which costs less CPU per message
    /// (docs/BENCHMARKS.md has the figures). The first run is smaller, one call of the batch
    /// backend, so that the batch's first request is on its way soon.
    ///
    /// A message waiting for its retry or for its origin's pause does not count as in flight:
    /// the rest of the batch keeps going meanwhile (at most the batch is waiting, which bounds
    /// the memory). Under a rate (`pace`), a message starts only on a token of the shared
    /// bucket; tokens are asked for ahead while the others send, one grant ahead.
    ///
    /// Once `batch` is stopping no message starts; those never started are given up as
    /// [`Failure::Stopped`] and the batch as interrupted (its task's next holder sends it
    /// again). So are they when the store cannot grant the rate's tokens.
    pub(super) async fn send_all(
        &self,
        (prepared, vapid, sender): (&Prepared, &VapidHeaderCache, &Sender),
        expires_at: Instant,
        subscriptions: Vec<(Subscription, Vec<u8>)>,
        batch: &Batch,
        mut pace: Option<&mut Pace<'_>>,
    ) -> Vec<(Subscription, Delivery)> {
        let window = self.config.concurrency.max(1);
        let run = (window / 4).max(1);
        let mut outcomes = Vec::with_capacity(subscriptions.len());
        let mut waiting = subscriptions.into_iter();
        let mut in_flight = FuturesUnordered::new();
        // Messages that may start: all without a rate, else the tokens granted and not used.
        let mut allowed = if pace.is_some() { 0 } else { usize::MAX };
        loop {
            let granting = pace.is_some();
            if waiting.len() > 0 && (batch.is_stopping() || (!granting && allowed == 0)) {
                batch.give_up();
                outcomes.extend(
                    waiting
                        .by_ref()
                        .map(|(s, _)| (s, Delivery::Failed(Failure::Stopped))),
                );
            }
            let sending = in_flight.len() - batch.parked().min(in_flight.len());
            // A whole run, or what the rate allows now (a slow rate never grants a run).
            if sending + run.min(allowed) <= window && allowed > 0 {
                // The batch's first run is one call's worth of the batch backend: its first
                // request leaves after a few encryptions, not after a window's (the first of
                // a small broadcast waited ~3.5 ms for 96 of them, 8 tasks at once).
                let opening = outcomes.is_empty() && in_flight.is_empty();
                let room = (window - sending).min(allowed);
                let room = if opening {
                    room.min(sender.batch_lanes().max(1))
                } else {
                    room
                };
                // Whole multiples of the batch backend's lanes, so that no lane is wasted.
                let room = if room == allowed {
                    room
                } else {
                    room - room % sender.batch_lanes().min(room)
                };
                let before = waiting.len();
                let mut run_of = Vec::with_capacity(room.min(before));
                for (subscription, payload) in waiting.by_ref().take(room) {
                    let keys =
                        SubscriptionKeys::from_validated(subscription.p256dh, subscription.auth);
                    let push_subscription =
                        match PushSubscription::from_stored(&subscription.endpoint, keys) {
                            Ok(push_subscription) => push_subscription,
                            Err(error) => {
                                let failure = Failure::Encryption(error.to_string());
                                outcomes.push((subscription, Delivery::Failed(failure)));
                                continue;
                            }
                        };
                    run_of.push((subscription, push_subscription, payload));
                }
                if allowed != usize::MAX {
                    allowed -= before - waiting.len();
                }
                // The run's encryption is one batch (docs/BENCHMARKS.md, batched cryptography).
                let sealing: Vec<_> = run_of.iter().map(|(_, s, p)| (s, p.as_slice())).collect();
                let sealed = sender.seal_batch(&sealing);
                drop(sealing);
                for ((subscription, push_subscription, _), sealed) in run_of.into_iter().zip(sealed)
                {
                    match sealed {
                        Ok(body) => in_flight.push(async move {
                            let message = Message {
                                subscription: &push_subscription,
                                head: &prepared.head,
                                vapid,
                                expires_at,
                            };
                            let delivery = sender.send_in(&message, body, batch).await;
                            (subscription, delivery)
                        }),
                        Err(failed) => outcomes.push((subscription, failed)),
                    }
                }
            }
            if waiting.len() == 0 && in_flight.is_empty() {
                return outcomes;
            }
            // The next answer, a grant of tokens, or room in the window: a message that began
            // to wait while the others were polled leaves room for one more.
            let parked_before = batch.parked();
            // An answer, or `None`: room to start more.
            let answer = futures::future::poll_fn(|cx| {
                if let Some(granting) = pace.as_deref_mut().filter(|pace| allowed < pace.ahead()) {
                    match granting.poll_grant(cx) {
                        Poll::Ready(Some(Ok(granted))) => {
                            allowed += granted as usize;
                            return Poll::Ready(None);
                        }
                        Poll::Ready(Some(Err(error))) => {
                            tracing::warn!(%error, "cannot take the rate's tokens; the batch is sent again later");
                            pace = None;
                            return Poll::Ready(None);
                        }
                        Poll::Ready(None) => {
                            pace = None;
                            return Poll::Ready(None);
                        }
                        Poll::Pending => {}
                    }
                }
                if in_flight.is_empty() {
                    // Nothing to answer: start more if tokens are left, else wait for a grant.
                    return if allowed > 0 {
                        Poll::Ready(None)
                    } else {
                        Poll::Pending
                    };
                }
                let polled = in_flight.poll_next_unpin(cx);
                if waiting.len() == 0 && batch.parked() >= in_flight.len() {
                    batch.idle();
                }
                match polled {
                    Poll::Ready(Some(outcome)) => Poll::Ready(Some(outcome)),
                    Poll::Pending if waiting.len() > 0 && batch.parked() > parked_before => {
                        Poll::Ready(None)
                    }
                    Poll::Ready(None) | Poll::Pending => Poll::Pending,
                }
            })
            .await;
            outcomes.extend(answer);
        }
    }
}
