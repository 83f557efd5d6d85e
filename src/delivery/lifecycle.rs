//! Stale-subscription expiry in the delivery engine. An app that sets a window
//! (`App::expire_after_secs`) has its subscriptions' activity kept: a batch's subscribers to which
//! pushes were delivered for the whole window with no receipt are stale — not sent to, deleted
//! with the batch's record and counted `expired_stale` — and each delivery that changes what a
//! subscription's activity keeps is written with that same record (no round trip of its own).
//! The rules are `store::Activity`'s; this module only applies them to a batch.

use std::time::Duration;

use crate::store::{Store, StoreError, Subscription};

/// How long an app's window is used before it is read again: a change through the admin API
/// holds within this.
const REFRESH: Duration = Duration::from_secs(30);

/// The apps' windows, read from the store at most once per [`REFRESH`].
pub struct Windows {
    cache: moka::sync::Cache<String, u32>,
}

impl Default for Windows {
    fn default() -> Self {
        Self {
            cache: crate::cache::bounded(REFRESH),
        }
    }
}

impl Windows {
    /// The app's stale-expiry window in seconds (0 = off).
    pub async fn of(&self, store: &dyn Store, app_id: &str) -> Result<u32, StoreError> {
        if let Some(window) = self.cache.get(app_id) {
            return Ok(window);
        }
        let window = store
            .get_app(app_id)
            .await?
            .map_or(0, |app| app.expire_after_secs);
        self.cache.insert(app_id.to_owned(), window);
        Ok(window)
    }
}

/// What a batch leaves to its subscriptions' activity (see `store::BatchOutcome`).
#[derive(Default, Clone)]
pub struct BatchActivity {
    /// The app's window (0: nothing is kept).
    window: u32,
    /// When the batch was sent (Unix seconds).
    pub at: u32,
    pub delivered: Vec<Subscription>,
    pub stale: Vec<Subscription>,
    /// The batch's live subscribers: the room [`BatchActivity::delivered`] takes at its first
    /// record (a broadcast's first delivery changes every subscriber's activity, and growing
    /// the vector copied each batch's records, large ones, several times over).
    live: usize,
}

impl BatchActivity {
    /// Splits a batch's subscribers at `now` into those to send to and this record of the
    /// stale ones.
    pub fn split(
        window: u32,
        now: u32,
        subscriptions: Vec<Subscription>,
    ) -> (Vec<Subscription>, Self) {
        let mut activity = Self {
            window,
            at: now,
            ..Self::default()
        };
        if window == 0 {
            return (subscriptions, activity);
        }
        let (stale, live) = subscriptions
            .into_iter()
            .partition(|s| s.activity.is_stale(now, window));
        activity.stale = stale;
        activity.live = live.len();
        (live, activity)
    }

    /// A successful delivery: kept when it changes the subscription's activity.
    pub fn delivered(&mut self, subscription: Subscription) {
        if self.window > 0 && subscription.activity.needs_write_after_delivery(self.at) {
            if self.delivered.is_empty() {
                self.delivered.reserve(self.live);
            }
            self.delivered.push(subscription);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Activity;

    fn sub(n: u8, activity: Activity) -> Subscription {
        let mut sub = Subscription::new(
            "a",
            &format!("https://push.example/{n}"),
            [4; 65],
            [n; 16],
            1,
        );
        sub.activity = activity;
        sub
    }

    #[test]
    fn stale_ones_are_split_off_and_deliveries_kept_only_when_they_change_something() {
        let fresh = Activity::default();
        let unanswered = Activity {
            delivered_at: 1_000,
            receipt_at: 0,
            unanswered_since: 1_000,
        };
        let subs = vec![sub(1, fresh), sub(2, unanswered)];
        let (live, mut batch) = BatchActivity::split(500, 1_499, subs.clone());
        assert_eq!(live.len(), 2, "not yet a whole window");
        let (live, batch_later) = BatchActivity::split(500, 1_500, subs.clone());
        assert_eq!(live.iter().map(|s| s.id).collect::<Vec<_>>(), [subs[0].id]);
        assert_eq!(batch_later.stale[0].id, subs[1].id);
        batch.delivered(subs[0].clone());
        batch.delivered(subs[1].clone());
        // The first one starts its unanswered stretch; the second's was started and its last
        // delivery is under an hour old.
        assert_eq!(batch.delivered.len(), 1);
        let (all, mut off) = BatchActivity::split(0, u32::MAX, subs.clone());
        assert_eq!(all.len(), 2);
        off.delivered(subs[0].clone());
        assert!(
            off.delivered.is_empty() && off.stale.is_empty(),
            "nothing kept when off"
        );
    }

    #[test]
    fn a_receipt_ends_the_stretch_and_one_newer_than_the_send_never_starts_it() {
        let a = Activity::default().delivered(100);
        assert_eq!(a.unanswered_since, 100);
        assert!(a.is_stale(200, 100) && !a.is_stale(199, 100));
        let b = a.receipted(150);
        assert_eq!((b.receipt_at, b.unanswered_since), (150, 0));
        assert!(!b.is_stale(10_000, 100));
        // The engine records a delivery after the browser already answered it.
        let c = Activity::default().receipted(300).delivered(290);
        assert_eq!(c.unanswered_since, 0);
        assert_eq!(c.delivered_at, 290);
    }
}
