//! A/B variants: a notification sent as 2 to 5 contents, each subscriber getting one by a
//! deterministic split, and optionally a test-then-winner mode (only a fraction of the audience
//! gets the variants; after a while the variant with the best rate is sent to everyone else).
//!
//! The split is a pure function of the notification id and the subscription id
//! (SHA-256 of `NOTIFICATION_ID` NUL `SUBSCRIPTION_ID as 8 bytes big-endian`): a retried batch,
//! a task resumed by another instance, and a receipt's check all give a subscriber the same
//! variant. The digest's first 8 bytes (as a big-endian `u64`) place the subscriber in or out
//! of a winner test; its next 8 map it onto the weights. Contract: docs/PUBLIC-API.md.

use std::collections::BTreeMap;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::model::{Content, FieldError};
use crate::store::{Phase, SubscriptionId};

/// Variants of one notification: at least, at most.
pub const MIN_VARIANTS: usize = 2;
pub const MAX_VARIANTS: usize = 5;
/// Largest weight of a variant.
pub const MAX_WEIGHT: u32 = 10_000;
/// Shortest and longest wait of a winner test, seconds (a week: the receipt window is longer).
pub const MIN_AFTER_SECS: u64 = 1;
pub const MAX_AFTER_SECS: u64 = 7 * 24 * 3600;

/// One content of an A/B test, sent to `weight / sum of weights` of the audience.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// A positive integer: the variant's share of the audience is its weight over the sum.
    #[schema(minimum = 1, maximum = 10000)]
    pub weight: u32,
    /// Checked as a notification's `content` is.
    pub content: Content,
}

/// What a winner test compares: receipts of this type per delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Clicked,
    Shown,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clicked => "clicked",
            Self::Shown => "shown",
        }
    }
}

/// Test-then-winner: only `fraction` of the audience gets the variants; `after_secs` after the
/// send time, the variant with the best rate of `metric` (per delivery; a tie goes to the
/// lowest index) is sent to everyone else, once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Winner {
    /// Share of the audience in the test, more than 0 and less than 1.
    #[schema(exclusive_minimum = 0, exclusive_maximum = 1)]
    pub fraction: f64,
    pub metric: Metric,
    /// Seconds from the send time to the choice of the winner (1 to 604800).
    #[schema(minimum = 1, maximum = 604800)]
    pub after_secs: u64,
}

/// Checks the variants (and the winner test) of a request; each content by `check_content`,
/// the one rule a notification's content has, whose errors (`content.title`) are named here
/// under the variant (`variants[1].content.title`).
pub fn validate(
    variants: &[Variant],
    winner: Option<&Winner>,
    check_content: impl Fn(&Content) -> Result<(), FieldError>,
) -> Result<(), FieldError> {
    if !(MIN_VARIANTS..=MAX_VARIANTS).contains(&variants.len()) {
        return Err(FieldError::new(
            "variants",
            format!("give {MIN_VARIANTS} to {MAX_VARIANTS} variants"),
        ));
    }
    for (i, variant) in variants.iter().enumerate() {
        if !(1..=MAX_WEIGHT).contains(&variant.weight) {
            return Err(FieldError::new(
                format!("variants[{i}].weight"),
                format!("must be a whole number from 1 to {MAX_WEIGHT}"),
            ));
        }
        check_content(&variant.content).map_err(|e| FieldError {
            field: format!("variants[{i}].{}", e.field),
            message: e.message,
        })?;
    }
    if let Some(winner) = winner {
        if !(winner.fraction > 0.0 && winner.fraction < 1.0) {
            return Err(FieldError::new(
                "winner.fraction",
                "must be more than 0 and less than 1 (the share of the audience in the test)",
            ));
        }
        if !(MIN_AFTER_SECS..=MAX_AFTER_SECS).contains(&winner.after_secs) {
            return Err(FieldError::new(
                "winner.after_secs",
                format!("must be {MIN_AFTER_SECS} to {MAX_AFTER_SECS} seconds"),
            ));
        }
    }
    Ok(())
}

/// The digest a subscriber's place in a notification's split comes from.
fn digest_of(notification_id: &str, subscription: SubscriptionId) -> [u64; 2] {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(notification_id.as_bytes());
    context.update(&[0]);
    context.update(&subscription.0.to_be_bytes());
    let digest = context.finish();
    let bytes = digest.as_ref();
    let word = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_be_bytes(word)
    };
    [word(0), word(8)]
}

/// How a notification's audience is split: built once per notification, asked per subscriber
/// without allocating.
#[derive(Debug, Clone)]
pub struct Split {
    notification_id: String,
    /// Running sums of the weights: variant `i` takes `[cumulative[i-1], cumulative[i])`.
    cumulative: Vec<u64>,
    /// Subscribers whose first digest word is below this are in the winner test.
    test_below: Option<u64>,
}

impl Split {
    /// The split of these weights (and winner test) for `notification_id`.
    pub fn new(notification_id: &str, weights: &[u32], winner: Option<&Winner>) -> Self {
        let cumulative = weights
            .iter()
            .scan(0u64, |sum, w| {
                *sum += u64::from(*w);
                Some(*sum)
            })
            .collect();
        Self {
            notification_id: notification_id.to_owned(),
            cumulative,
            // `fraction` of the u64 range (validated to 0 < fraction < 1).
            test_below: winner.map(|w| (w.fraction * u64::MAX as f64) as u64),
        }
    }

    /// The variant `subscription` gets by weight (whether or not it is in a winner test).
    pub fn variant_of(&self, subscription: SubscriptionId) -> usize {
        self.place(subscription).1
    }

    /// Whether `subscription` is in the winner test (always, without one).
    pub fn in_test(&self, subscription: SubscriptionId) -> bool {
        self.place(subscription).0
    }

    fn place(&self, subscription: SubscriptionId) -> (bool, usize) {
        let [test, pick] = digest_of(&self.notification_id, subscription);
        let in_test = self.test_below.is_none_or(|below| test < below);
        let total = self.cumulative.last().copied().unwrap_or(1).max(1);
        // `pick` scaled onto 0..total without the bias of a modulo.
        let point = ((u128::from(pick) * u128::from(total)) >> 64) as u64;
        let variant = self.cumulative.partition_point(|&end| end <= point);
        (
            in_test,
            variant.min(self.cumulative.len().saturating_sub(1)),
        )
    }

    /// The variant a subscriber gets in a task of `phase`, or `None` when the task is not for
    /// it (a test task for someone outside the test, a follow-up for a test member).
    /// `winner` is the decided variant, which every follow-up (`Phase::Rest`) sends.
    pub fn pick(
        &self,
        phase: Phase,
        winner: Option<usize>,
        subscription: SubscriptionId,
    ) -> Option<usize> {
        let (in_test, variant) = self.place(subscription);
        match phase {
            Phase::Whole => Some(variant),
            Phase::Test => in_test.then_some(variant),
            Phase::Rest => (!in_test).then_some(winner?),
        }
    }
}

/// The counter of `what` (`delivered`, `shown`, `clicked`, `closed`) of variant `index`.
pub fn counter(index: usize, what: &str) -> String {
    format!("variants.{index}.{what}")
}

/// The counter that records the decided winner once (`count_once` member [`WINNER_MEMBER`]).
pub fn winner_counter(index: usize) -> String {
    format!("winner.{index}")
}

/// The member whose first counting decides a winner test.
pub const WINNER_MEMBER: &str = "winner";

/// The winner a notification's counters record, if decided.
pub fn decided(counters: &BTreeMap<String, i64>) -> Option<usize> {
    counters
        .iter()
        .filter(|(_, count)| **count > 0)
        .find_map(|(name, _)| name.strip_prefix("winner.")?.parse().ok())
}

/// The best variant by `metric` per delivery (a tie, or no deliveries, goes to the lowest
/// index), over `variants` variants.
pub fn best(variants: usize, metric: Metric, counters: &BTreeMap<String, i64>) -> usize {
    let get = |i: usize, what: &str| counters.get(&counter(i, what)).copied().unwrap_or(0);
    let mut best = 0;
    // Compared as fractions a/b > c/d ⇔ a·d > c·b (no float ties), 0 deliveries as rate 0.
    let rate = |i: usize| {
        let delivered = get(i, "delivered");
        if delivered <= 0 {
            (0i128, 1i128)
        } else {
            (
                i128::from(get(i, metric.as_str()).max(0)),
                i128::from(delivered),
            )
        }
    };
    for i in 1..variants {
        let (a, b) = rate(i);
        let (c, d) = rate(best);
        if a * d > c * b {
            best = i;
        }
    }
    best
}

/// One variant's figures, as `GET /v1/notifications/{id}` shows them.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VariantFigures {
    pub weight: u32,
    pub delivered: i64,
    pub shown: i64,
    pub clicked: i64,
    pub closed: i64,
}

/// Where a winner test stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestState {
    /// The variants go to the test's members; the winner is chosen at `decides_at_ms`.
    Testing,
    /// The winner is chosen and goes (or went) to everyone outside the test.
    Decided,
}

/// A winner test's state.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TestReport {
    pub state: TestState,
    /// Unix ms at which the winner is chosen.
    pub decides_at_ms: u64,
    /// The index of the winning variant, once decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub winner: Option<usize>,
}

/// A notification's variants with their counters, and its winner test.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VariantReport {
    pub variants: Vec<VariantFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<TestReport>,
}

/// The report of a notification with variants (`None` without).
pub fn report(
    notification: &super::Notification,
    counters: &BTreeMap<String, i64>,
) -> Option<VariantReport> {
    if notification.variants.is_empty() {
        return None;
    }
    let get = |i: usize, what: &str| counters.get(&counter(i, what)).copied().unwrap_or(0);
    let variants = notification
        .variants
        .iter()
        .enumerate()
        .map(|(i, variant)| VariantFigures {
            weight: variant.weight,
            delivered: get(i, "delivered"),
            shown: get(i, "shown"),
            clicked: get(i, "clicked"),
            closed: get(i, "closed"),
        })
        .collect();
    let test = notification.winner.as_ref().map(|test| {
        let winner = decided(counters);
        TestReport {
            state: match winner {
                Some(_) => TestState::Decided,
                None => TestState::Testing,
            },
            decides_at_ms: decides_at_ms(notification.send_at_ms, test),
            winner,
        }
    });
    Some(VariantReport { variants, test })
}

/// When a winner test starting at `send_at_ms` chooses its winner.
pub fn decides_at_ms(send_at_ms: u64, test: &Winner) -> u64 {
    send_at_ms.saturating_add(test.after_secs.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_follows_the_weights_and_is_stable() {
        let split = Split::new("n1", &[1, 3], None);
        let again = Split::new("n1", &[1, 3], None);
        let mut counts = [0usize; 2];
        for id in 0..40_000u64 {
            let variant = split.variant_of(SubscriptionId(id));
            assert_eq!(variant, again.variant_of(SubscriptionId(id)));
            counts[variant] += 1;
        }
        // 10,000 and 30,000 expected; a binomial's σ is about 87.
        assert!((9_500..=10_500).contains(&counts[0]), "{counts:?}");
        // Another notification splits the same subscribers otherwise.
        let other = Split::new("n2", &[1, 3], None);
        let moved = (0..1_000u64)
            .filter(|&id| {
                other.variant_of(SubscriptionId(id)) != split.variant_of(SubscriptionId(id))
            })
            .count();
        assert!(moved > 200, "{moved}");
    }

    #[test]
    fn test_and_rest_partition_the_audience() {
        let winner = Winner {
            fraction: 0.2,
            metric: Metric::Clicked,
            after_secs: 60,
        };
        let split = Split::new("n1", &[1, 1], Some(&winner));
        let mut in_test = 0;
        for id in 0..10_000u64 {
            let id = SubscriptionId(id);
            let test = split.pick(Phase::Test, None, id);
            let rest = split.pick(Phase::Rest, Some(1), id);
            assert!(test.is_some() != rest.is_some(), "exactly one part");
            assert_eq!(split.pick(Phase::Rest, None, id), None);
            in_test += usize::from(test.is_some());
            if rest.is_some() {
                assert_eq!(rest, Some(1));
            }
        }
        assert!((1_850..=2_150).contains(&in_test), "{in_test}");
    }

    #[test]
    fn best_rate_wins_and_ties_go_to_the_lowest() {
        let counters = |pairs: &[(&str, i64)]| -> BTreeMap<String, i64> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
        };
        let c = counters(&[
            ("variants.0.delivered", 100),
            ("variants.0.clicked", 10),
            ("variants.1.delivered", 50),
            ("variants.1.clicked", 6),
        ]);
        assert_eq!(best(2, Metric::Clicked, &c), 1);
        assert_eq!(best(2, Metric::Shown, &c), 0);
        let tie = counters(&[
            ("variants.0.delivered", 100),
            ("variants.0.clicked", 10),
            ("variants.1.delivered", 10),
            ("variants.1.clicked", 1),
        ]);
        assert_eq!(best(2, Metric::Clicked, &tie), 0);
        assert_eq!(best(3, Metric::Clicked, &BTreeMap::new()), 0);
        assert_eq!(decided(&counters(&[("winner.2", 1)])), Some(2));
        assert_eq!(decided(&c), None);
    }
}
