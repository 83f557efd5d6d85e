//! The policy as the delivery engine applies it, per batch: which subscribers are sent now,
//! which wait in a slice (quiet hours, local time), which are capped or dropped, and the
//! shared rate a broadcast is held to. The engine calls [`Gate::admit`] before it renders a
//! batch and [`Gate::pace`] as it sends one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;

use jiff::tz::TimeZone;
use tokio_util::sync::CancellationToken;

use super::caps;
use super::model::{Rules, time_zone};
use super::quiet::{self, When};
use crate::notify::Notification;
use crate::notify::model::Audience;
use crate::push::Urgency;
use crate::store::{
    Bucket, CapCheck, CapScope, Store, StoreResult, Subscription, Task, TaskTarget,
};

/// How long a policy read from the store is used before it is read again: a change holds on
/// every instance within this.
const RULES_TTL: Duration = Duration::from_secs(5);

/// A batch after the policy: who is sent now, the slices the others wait in (ledger tasks to
/// enqueue), and the counters of what happened.
#[derive(Default)]
pub struct Admitted {
    pub send: Vec<Subscription>,
    pub slices: Vec<Task>,
    pub counts: Vec<(String, i64)>,
}

/// The policy of every app, cached. Its rules read the application's clock
/// (`store::clock`, which tests shift).
pub struct Gate {
    rules: moka::sync::Cache<String, Arc<Rules>>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            rules: crate::cache::bounded(RULES_TTL),
        }
    }
}

/// The urgency a notification is sent with when it names none: one-to-one pushes (the priority
/// lane) go `high`, since phones in Doze hold `normal` ones for minutes.
pub fn default_urgency(notification: &Notification) -> Option<Urgency> {
    match notification.audience {
        Audience::ExternalIds(_) | Audience::SubscriptionIds(_) => Some(Urgency::High),
        Audience::All | Audience::Segment(_) => None,
    }
}

/// The suffix of a slice task's id (after the notification id): `l` and the instant.
fn slice_suffix(due_ms: u64) -> String {
    format!("l{due_ms}")
}

/// The instant a slice task was planned for, when `task` is one.
fn slice_of(task: &Task) -> Option<u64> {
    let suffix = task
        .id
        .strip_prefix(&task.notification_id)?
        .strip_prefix(':')?;
    suffix.strip_prefix('l')?;
    Some(task.not_before_ms)
}

/// Whether `task` is a slice (subscribers of another task's batch, deferred to their time):
/// they were counted as targeted by that task.
pub fn is_slice(task: &Task) -> bool {
    slice_of(task).is_some()
}

impl Gate {
    pub fn now_ms(&self) -> u64 {
        crate::store::now_ms()
    }

    /// The app's compiled policy (the default when it set none, or when the stored one no
    /// longer compiles, which is logged).
    pub async fn rules(&self, store: &dyn Store, app_id: &str) -> StoreResult<Arc<Rules>> {
        if let Some(rules) = self.rules.get(app_id) {
            return Ok(rules);
        }
        let rules = match store.get_policy(app_id).await? {
            None => Rules::default(),
            Some(policy) => policy.compile().unwrap_or_else(|error| {
                tracing::warn!(app = app_id, %error, "the stored policy does not compile; using the default");
                Rules::default()
            }),
        };
        let rules = Arc::new(rules);
        self.rules.insert(app_id.to_owned(), rules.clone());
        Ok(rules)
    }

    /// Applies the policy to a batch of `task`: quiet hours and local time first (who waits,
    /// in which slice), then the caps of those sent now, checked and counted in one store call.
    pub async fn admit(
        &self,
        store: &dyn Store,
        task: &Task,
        notification: &Notification,
        subscriptions: Vec<Subscription>,
    ) -> StoreResult<Admitted> {
        let rules = self.rules(store, &notification.app_id).await?;
        let options = &notification.policy;
        let exempt = rules.is_exempt(&options.category);
        let local = options.local_time();
        // A slice runs at its instant: by the store's clock, which may be a little ahead of
        // this one; it sends, never defers again.
        let now = self.now_ms().max(slice_of(task).unwrap_or(0));
        let mut admitted = Admitted::default();
        let mut count = |name: String, n: usize| {
            if n > 0 {
                admitted.counts.push((name, n as i64));
            }
        };
        let mut send = subscriptions;
        if local.is_some() || (!exempt && rules.quiet.is_some()) {
            let expires_ms = notification.send_at_ms + u64::from(notification.ttl) * 1000;
            // Everything `decide` reads is the batch's but the zone: decided once per zone
            // name (a batch holds a handful), not per subscriber.
            let mut decided: HashMap<String, When> = HashMap::new();
            let mut waiting: BTreeMap<u64, Vec<Subscription>> = BTreeMap::new();
            let mut dropped = 0;
            let mut now_ones = Vec::with_capacity(send.len());
            for subscription in send {
                let when = match decided.get(subscription.timezone.as_str()) {
                    Some(when) => *when,
                    None => {
                        let zone: TimeZone = time_zone(&subscription.timezone)
                            .unwrap_or_else(|| rules.default_time_zone.clone());
                        let when = quiet::decide(&rules, exempt, local, &zone, now, expires_ms);
                        decided.insert(subscription.timezone.clone(), when);
                        when
                    }
                };
                match when {
                    When::Now => now_ones.push(subscription),
                    When::At(due) => waiting.entry(due).or_default().push(subscription),
                    When::DroppedQuietHours => dropped += 1,
                }
            }
            count("dropped_quiet_hours".to_owned(), dropped);
            for (due, subscriptions) in waiting {
                count("deferred".to_owned(), subscriptions.len());
                count(
                    format!("{}.deferred", quiet::slice_name(due)),
                    subscriptions.len(),
                );
                admitted.slices.push(slice_task(task, due, subscriptions));
            }
            send = now_ones;
        }
        if !exempt && !rules.caps.is_empty() && !send.is_empty() {
            let (holders, of) = caps::holders(&send);
            let check = CapCheck {
                scope: CapScope::Policy,
                app_id: &notification.app_id,
                category: &options.category,
                notification_id: &notification.id,
                windows: &rules.caps,
                now_ms: now,
            };
            let allowed = store.take_caps(check, &holders).await?;
            let before = send.len();
            let mut index = of.into_iter();
            send.retain(|_| {
                index
                    .next()
                    .and_then(|holder| allowed.get(holder).copied())
                    .unwrap_or(false)
            });
            count("capped".to_owned(), before - send.len());
        }
        if let Some(due) = slice_of(task) {
            count(format!("{}.sent", quiet::slice_name(due)), send.len());
        }
        for (name, n) in &admitted.counts {
            if !name.starts_with("slice.") {
                metrics::counter!("aviso_policy_outcomes_total", "outcome" => name.clone())
                    .increment(*n as u64);
            }
        }
        admitted.send = send;
        Ok(admitted)
    }

    /// The pace a batch of `wanted` messages is sent at: the notification's rate (or the
    /// app's default), shared by every instance on the store, or `None` without one.
    ///
    /// The tokens are granted as they come, a fortieth of a second's worth at a time, and the
    /// sender starts each message on its token: the rate holds within the second, not only
    /// over a batch (docs/POLICY.md). The grants end when `stop` comes (shutdown).
    pub async fn pace<'a>(
        &self,
        store: &'a dyn Store,
        notification: &Notification,
        wanted: usize,
        stop: &'a CancellationToken,
    ) -> StoreResult<Option<Pace<'a>>> {
        let rules = self.rules(store, &notification.app_id).await?;
        let Some(rate) = notification.policy.max_per_minute.or(rules.max_per_minute) else {
            return Ok(None);
        };
        let chunk = super::bucket::chunk(rate);
        let bucket: Arc<(String, String)> =
            Arc::new((notification.app_id.clone(), notification.id.clone()));
        let waited = Arc::new(AtomicU64::new(0));
        let waited_here = waited.clone();
        let left = u32::try_from(wanted).unwrap_or(u32::MAX);
        let grants = futures::stream::unfold(left, move |left| {
            let (bucket, waited) = (bucket.clone(), waited_here.clone());
            async move {
                if left == 0 {
                    return None;
                }
                loop {
                    let grant = match store
                        .take_tokens(Bucket::new(&bucket.0, &bucket.1, rate), left.min(chunk))
                        .await
                    {
                        Ok(grant) => grant,
                        // The error ends the grants: what was not granted is not sent.
                        Err(error) => return Some((Err(error), 0)),
                    };
                    if grant.granted > 0 {
                        let granted = grant.granted.min(left);
                        return Some((Ok(granted), left - granted));
                    }
                    let pause = Duration::from_millis(grant.retry_after_ms.clamp(1, 1000));
                    tokio::select! {
                        biased;
                        _ = stop.cancelled() => return None,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    let ms = pause.as_millis() as u64;
                    waited.fetch_add(ms, Ordering::Relaxed);
                    metrics::counter!("aviso_policy_throttled_ms_total").increment(ms);
                }
            }
        });
        Ok(Some(Pace {
            grants: grants.boxed(),
            chunk: chunk as usize,
            waited,
        }))
    }
}

/// The tokens of a batch's rate, granted as they come ([`Gate::pace`]).
pub struct Pace<'a> {
    grants: BoxStream<'a, StoreResult<u32>>,
    chunk: usize,
    waited: Arc<AtomicU64>,
}

impl Pace<'_> {
    /// The next grant of tokens: `None` once all were granted or the stop came, an error when
    /// the store could not be asked (the grants end there).
    pub fn poll_grant(&mut self, cx: &mut Context<'_>) -> Poll<Option<StoreResult<u32>>> {
        self.grants.poll_next_unpin(cx)
    }

    /// Tokens to hold in hand at most before asking for more: one grant's worth, so that
    /// tokens are not hoarded by one batch (and sent late, in a burst) while others wait.
    pub fn ahead(&self) -> usize {
        self.chunk
    }

    /// How long the grants waited for the bucket to fill, so far.
    pub fn waited(&self) -> Duration {
        Duration::from_millis(self.waited.load(Ordering::Relaxed))
    }
}

/// The ledger task of a slice: `subscriptions` of `task`'s batch, due at `due_ms`. Its id is
/// the same whenever the same batch is deferred again (a batch redone after a crash), so that
/// the slice is enqueued once.
fn slice_task(task: &Task, due_ms: u64, subscriptions: Vec<Subscription>) -> Task {
    let first = subscriptions
        .first()
        .map(|s| s.id.to_string())
        .unwrap_or_default();
    let source = task
        .id
        .strip_prefix(&task.notification_id)
        .unwrap_or(&task.id)
        .trim_start_matches(':');
    Task {
        id: format!(
            "{}:{}.{source}.{first}",
            task.notification_id,
            slice_suffix(due_ms)
        ),
        app_id: task.app_id.clone(),
        notification_id: task.notification_id.clone(),
        lane: task.lane,
        target: TaskTarget::Subscriptions(subscriptions.into_iter().map(|s| s.id).collect()),
        not_before_ms: due_ms,
        phase: task.phase,
    }
}
