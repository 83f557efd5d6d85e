//! Frequency caps over a batch: who each subscriber counts against (its profile, or itself
//! when it has none), each holder asked once per batch however many of its browsers the batch
//! holds. The counting itself is the store's, atomic across instances
//! ([`crate::store::PolicyStore::take_caps`]).

use std::collections::HashMap;

use crate::store::{CapHolder, Subscription};

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
