//! The policy as the delivery engine applies it, per batch: which subscribers are sent now,
//! which wait in a slice (quiet hours, local time), which are capped or dropped, and the
//! shared rate a broadcast is held to. The engine calls [`Gate::admit`] before it renders a
//! batch and [`Gate::throttle`] before it sends one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;

use super::caps;
use super::model::{Rules, time_zone};
use super::quiet::{self, When};
use crate::notify::Notification;
use crate::notify::model::Audience;
use crate::push::Urgency;
use crate::store::{CapCheck, Store, StoreResult, Subscription, Task, TaskTarget};

/// How long a policy read from the store is used before it is read again: a change holds on
/// every instance within this.
const RULES_TTL: Duration = Duration::from_secs(5);
/// Tokens asked for at once, at most: a twentieth of a second of the rate, so that instances
/// share the bucket finely.
const TOKEN_CHUNK_SECONDS_DIVISOR: u32 = 20;

/// The time, for rules that depend on it: the system's, or a test's.
pub trait Clock: Send + Sync {
    /// Unix milliseconds.
    fn now_ms(&self) -> u64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::store::now_ms()
    }
}

/// A batch after the policy: who is sent now, the slices the others wait in (ledger tasks to
/// enqueue), and the counters of what happened.
#[derive(Default)]
pub struct Admitted {
    pub send: Vec<Subscription>,
    pub slices: Vec<Task>,
    pub counts: Vec<(String, i64)>,
}

/// The policy of every app, cached, and the clock the rules read.
pub struct Gate {
    clock: Arc<dyn Clock>,
    rules: moka::sync::Cache<String, Arc<Rules>>,
}

impl Default for Gate {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
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

impl Gate {
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            rules: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(RULES_TTL)
                .build(),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
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
            let mut zones: HashMap<String, TimeZone> = HashMap::new();
            let mut waiting: BTreeMap<u64, Vec<Subscription>> = BTreeMap::new();
            let mut dropped = 0;
            let mut now_ones = Vec::with_capacity(send.len());
            for subscription in send {
                let zone = zones
                    .entry(subscription.timezone.clone())
                    .or_insert_with(|| {
                        time_zone(&subscription.timezone)
                            .unwrap_or_else(|| rules.default_time_zone.clone())
                    });
                match quiet::decide(&rules, exempt, local, zone, now, expires_ms) {
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

    /// Holds a batch of `wanted` messages to the notification's rate (or the app's default),
    /// shared by every instance on the store: returns once the shared bucket granted them all,
    /// with the time spent waiting (zero without a rate).
    pub async fn throttle(
        &self,
        store: &dyn Store,
        notification: &Notification,
        wanted: usize,
    ) -> StoreResult<Duration> {
        let rules = self.rules(store, &notification.app_id).await?;
        let Some(rate) = notification.policy.max_per_minute.or(rules.max_per_minute) else {
            return Ok(Duration::ZERO);
        };
        let chunk = (rate / 60 / TOKEN_CHUNK_SECONDS_DIVISOR).max(1);
        let mut waited = Duration::ZERO;
        let mut left = u32::try_from(wanted).unwrap_or(u32::MAX);
        while left > 0 {
            let grant = store
                .take_tokens(
                    &notification.app_id,
                    &notification.id,
                    rate,
                    left.min(chunk),
                )
                .await?;
            left -= grant.granted.min(left);
            if grant.granted == 0 {
                let pause = Duration::from_millis(grant.retry_after_ms.clamp(1, 1000));
                tokio::time::sleep(pause).await;
                waited += pause;
            }
        }
        if !waited.is_zero() {
            metrics::counter!("aviso_policy_throttled_ms_total")
                .increment(waited.as_millis() as u64);
        }
        Ok(waited)
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
    }
}
