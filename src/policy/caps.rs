//! Frequency caps over a batch: who each subscriber counts against (its profile, or itself
//! when it has none), each holder asked once per batch however many of its browsers the batch
//! holds. The counting itself is the store's, atomic across instances
//! ([`crate::store::PolicyStore::take_caps`]); [`take`] is the rule for one holder, for the
//! backends that keep the counts in Rust (the embedded store; Redis runs it as a script).

use std::collections::HashMap;
use std::sync::Arc;

use super::model::Window;
use crate::store::{CapHolder, Subscription};

/// One notification counted against a holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub at_ms: u64,
    pub category: Arc<str>,
    pub notification: Arc<str>,
}

/// What [`take`] decided for one holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Counted for this notification before (a batch redone, another of its browsers): sent,
    /// not counted again.
    Already,
    /// Every window had room: sent, and counted now.
    Counted,
    /// A window is full.
    Capped,
}

impl Take {
    pub fn allowed(self) -> bool {
        self != Take::Capped
    }
}

/// The cap rule for one holder's `counts`: forgets those older than the longest window;
/// [`Take::Already`] when `notification` is counted, else [`Take::Counted`] (and counts it at
/// `now_ms`) when every window holds fewer than its `max` notifications of `category`, else
/// [`Take::Capped`].
pub fn take(
    counts: &mut Vec<Counted>,
    category: &Arc<str>,
    notification: &Arc<str>,
    windows: &[Window],
    now_ms: u64,
) -> Take {
    let longest = windows.iter().map(|w| w.per_ms).max().unwrap_or(0);
    counts.retain(|c| c.at_ms > now_ms.saturating_sub(longest));
    if counts
        .iter()
        .any(|c| c.category == *category && c.notification == *notification)
    {
        return Take::Already;
    }
    let room = windows.iter().all(|window| {
        let from = now_ms.saturating_sub(window.per_ms);
        let sent = counts
            .iter()
            .filter(|c| c.at_ms > from && c.category == *category)
            .count();
        sent < window.max as usize
    });
    if !room {
        return Take::Capped;
    }
    counts.push(Counted {
        at_ms: now_ms,
        category: category.clone(),
        notification: notification.clone(),
    });
    Take::Counted
}

/// The holder a subscription's sends count against.
pub fn holder_of(subscription: &Subscription) -> CapHolder {
    match &subscription.external_id {
        Some(external_id) => CapHolder::Profile(external_id.clone()),
        None => CapHolder::Subscription(subscription.id),
    }
}

/// A batch's distinct holders, and for each subscription the index of its holder among them.
pub fn holders(subscriptions: &[Subscription]) -> (Vec<CapHolder>, Vec<usize>) {
    let mut distinct: Vec<CapHolder> = Vec::new();
    let mut index: HashMap<CapHolder, usize> = HashMap::new();
    let of = subscriptions
        .iter()
        .map(|subscription| {
            let holder = holder_of(subscription);
            *index.entry(holder.clone()).or_insert_with(|| {
                distinct.push(holder);
                distinct.len() - 1
            })
        })
        .collect();
    (distinct, of)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_counts_once_per_notification_and_forgets_past_the_longest_window() {
        const HOUR: u64 = 3_600_000;
        let windows = [
            Window {
                max: 1,
                per_ms: HOUR,
            },
            Window {
                max: 2,
                per_ms: 24 * HOUR,
            },
        ];
        let (marketing, news): (Arc<str>, Arc<str>) = ("marketing".into(), "news".into());
        let id = |n: &str| -> Arc<str> { n.into() };
        let mut counts = Vec::new();
        let t0 = 100 * HOUR;
        assert_eq!(
            take(&mut counts, &marketing, &id("n1"), &windows, t0),
            Take::Counted
        );
        assert_eq!(
            take(&mut counts, &marketing, &id("n1"), &windows, t0 + 1),
            Take::Already
        );
        // The hour's window is full; another category counts apart.
        assert_eq!(
            take(&mut counts, &marketing, &id("n2"), &windows, t0 + 2),
            Take::Capped
        );
        assert_eq!(
            take(&mut counts, &news, &id("n3"), &windows, t0 + 3),
            Take::Counted
        );
        assert_eq!(
            take(&mut counts, &marketing, &id("n4"), &windows, t0 + HOUR + 1),
            Take::Counted
        );
        // The day's window is full now.
        assert_eq!(
            take(&mut counts, &marketing, &id("n5"), &windows, t0 + 3 * HOUR),
            Take::Capped
        );
        assert!(!Take::Capped.allowed() && Take::Already.allowed());
        // A day on, the counts older than it are gone.
        assert_eq!(
            take(
                &mut counts,
                &marketing,
                &id("n6"),
                &windows,
                t0 + 25 * HOUR + 2
            ),
            Take::Counted
        );
        assert_eq!(counts.len(), 1, "{counts:?}");
    }

    #[test]
    fn a_profiles_browsers_share_one_holder() {
        let sub = |n: u8, profile: Option<&str>| {
            let mut s = Subscription::new(
                "a",
                &format!("https://fcm.googleapis.com/fcm/send/{n}"),
                [4; 65],
                [n; 16],
                0,
            );
            s.external_id = profile.map(str::to_owned);
            s
        };
        let batch = [sub(1, Some("ann")), sub(2, None), sub(3, Some("ann"))];
        let (distinct, of) = holders(&batch);
        assert_eq!(distinct.len(), 2);
        assert_eq!(distinct[0], CapHolder::Profile("ann".into()));
        assert_eq!(distinct[1], CapHolder::Subscription(batch[1].id));
        assert_eq!(of, vec![0, 1, 0]);
    }
}
