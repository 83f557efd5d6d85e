//! Segment filters: which subscribers of an app a notification is for, by their tags and their
//! profile's attributes and tags.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::{AttributeValue, Profile, Subscription};

/// How deep a filter may nest; deeper ones are refused as a client mistake, not a stack risk.
pub const MAX_DEPTH: usize = 8;

/// A condition on a subscriber. Combine with `all`, `any` and `not`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[schema(no_recursion)]
pub enum Filter {
    /// Every condition holds.
    All(Vec<Filter>),
    /// At least one condition holds.
    Any(Vec<Filter>),
    /// The condition does not hold.
    Not(Box<Filter>),
    /// A tag (of the subscription or of its profile) has this value, or exists when `value` is absent.
    Tag(TagCondition),
    /// A profile attribute compares to a value.
    Attribute(AttributeCondition),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagCondition {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributeCondition {
    pub key: String,
    pub op: Comparison,
    #[schema(value_type = Object)]
    pub value: AttributeValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl Filter {
    /// Checks the filter's shape; the error names what to change.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_at(0)
    }

    fn validate_at(&self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "segment filter nests deeper than {MAX_DEPTH} levels: flatten it"
            ));
        }
        match self {
            Self::All(parts) | Self::Any(parts) => {
                if parts.is_empty() {
                    return Err("`all`/`any` needs at least one condition".into());
                }
                parts.iter().try_for_each(|p| p.validate_at(depth + 1))
            }
            Self::Not(inner) => inner.validate_at(depth + 1),
            Self::Tag(tag) if tag.key.is_empty() => Err("a tag condition needs a `key`".into()),
            Self::Attribute(attribute) if attribute.key.is_empty() => {
                Err("an attribute condition needs a `key`".into())
            }
            Self::Attribute(AttributeCondition {
                op,
                value: AttributeValue::Bool(_) | AttributeValue::Text(_),
                ..
            }) if !matches!(op, Comparison::Eq | Comparison::Ne) => Err(
                "only `eq` and `ne` compare text or true/false; `lt`/`gt`… need a number".into(),
            ),
            _ => Ok(()),
        }
    }

    /// Whether a subscriber (and its profile, when it has one) matches.
    pub fn matches(&self, subscription: &Subscription, profile: Option<&Profile>) -> bool {
        match self {
            Self::All(parts) => parts.iter().all(|p| p.matches(subscription, profile)),
            Self::Any(parts) => parts.iter().any(|p| p.matches(subscription, profile)),
            Self::Not(inner) => !inner.matches(subscription, profile),
            Self::Tag(TagCondition { key, value }) => {
                let found = subscription
                    .tags
                    .get(key)
                    .or_else(|| profile.and_then(|p| p.tags.get(key)));
                match (found, value) {
                    (Some(found), Some(wanted)) => found == wanted,
                    (Some(_), None) => true,
                    (None, _) => false,
                }
            }
            Self::Attribute(AttributeCondition { key, op, value }) => {
                let Some(actual) = profile.and_then(|p| p.attributes.get(key)) else {
                    return false;
                };
                compare(actual, *op, value)
            }
        }
    }

    /// Whether evaluating needs profiles (so the engine loads them only when it must).
    pub fn needs_profiles(&self) -> bool {
        match self {
            Self::All(parts) | Self::Any(parts) => parts.iter().any(Self::needs_profiles),
            Self::Not(inner) => inner.needs_profiles(),
            Self::Tag(_) | Self::Attribute(_) => true,
        }
    }
}

fn compare(actual: &AttributeValue, op: Comparison, wanted: &AttributeValue) -> bool {
    use std::cmp::Ordering;
    let ordering = match (actual, wanted) {
        (AttributeValue::Number(a), AttributeValue::Number(b)) => a.partial_cmp(b),
        (AttributeValue::Text(a), AttributeValue::Text(b)) => Some(a.cmp(b)),
        (AttributeValue::Bool(a), AttributeValue::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    };
    match (ordering, op) {
        (None, Comparison::Ne) => true,
        (None, _) => false,
        (Some(o), Comparison::Eq) => o == Ordering::Equal,
        (Some(o), Comparison::Ne) => o != Ordering::Equal,
        (Some(o), Comparison::Lt) => o == Ordering::Less,
        (Some(o), Comparison::Lte) => o != Ordering::Greater,
        (Some(o), Comparison::Gt) => o == Ordering::Greater,
        (Some(o), Comparison::Gte) => o != Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Subscription;

    fn parse(json: &str) -> Filter {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn matches_tags_and_attributes() {
        let mut sub = Subscription::new("a", "https://push.example/1", [4; 65], [0; 16], 0);
        sub.tags.insert("plan".into(), "pro".into());
        let mut profile = Profile::default();
        profile
            .attributes
            .insert("age".into(), AttributeValue::Number(41.0));
        profile.tags.insert("city".into(), "Porto".into());
        let filter = parse(
            r#"{"all": [{"tag": {"key": "plan", "value": "pro"}},
                        {"any": [{"attribute": {"key": "age", "op": "gte", "value": 40}},
                                 {"tag": {"key": "vip"}}]},
                        {"not": {"tag": {"key": "city", "value": "Lisbon"}}}]}"#,
        );
        filter.validate().unwrap();
        assert!(filter.matches(&sub, Some(&profile)));
        assert!(!filter.matches(&sub, None), "age needs a profile");
        profile.tags.insert("city".into(), "Lisbon".into());
        assert!(!filter.matches(&sub, Some(&profile)));
    }

    #[test]
    fn refuses_malformed_filters() {
        assert!(serde_json::from_str::<Filter>(r#"{"tagg": {"key": "x"}}"#).is_err());
        assert!(serde_json::from_str::<Filter>(r#"{"tag": {"key": "x", "extra": 1}}"#).is_err());
        assert!(parse(r#"{"all": []}"#).validate().is_err());
        assert!(
            parse(r#"{"attribute": {"key": "name", "op": "gt", "value": "b"}}"#)
                .validate()
                .is_err()
        );
        let mut deep = r#"{"tag": {"key": "x"}}"#.to_owned();
        for _ in 0..10 {
            deep = format!(r#"{{"not": {deep}}}"#);
        }
        assert!(parse(&deep).validate().unwrap_err().contains("deeper"));
    }
}
