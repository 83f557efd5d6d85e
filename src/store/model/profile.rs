//! CRM profiles: a person known to the site, their attributes and tags, and the rules for
//! changing one (how an update merges, how big a profile may grow, which subscriptions it
//! lists). Both backends apply these rules; neither writes its own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::SubscriptionId;
use crate::store::StoreError;

/// A value of a CRM profile attribute.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AttributeValue {
    Bool(bool),
    Number(f64),
    Text(String),
}

/// What `#[serde(untagged)]` would read, but a mistake says what an attribute may be ("expected
/// a string, a number, or true or false") instead of "data did not match any variant of
/// untagged enum AttributeValue".
impl<'de> Deserialize<'de> for AttributeValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Value;
        impl serde::de::Visitor<'_> for Value {
            type Value = AttributeValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, a number, or true or false")
            }
            fn visit_bool<E>(self, v: bool) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Number(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Number(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Text(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Text(v))
            }
        }
        deserializer.deserialize_any(Value)
    }
}

/// A CRM profile: a person known to the site, with any number of subscriptions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Profile {
    pub external_id: String,
    pub attributes: BTreeMap<String, AttributeValue>,
    pub tags: BTreeMap<String, String>,
    pub subscriptions: Vec<SubscriptionId>,
    pub updated_at: u64,
}

/// A change to a profile: attributes and tags set (a `None` removes the key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileUpdate {
    pub external_id: String,
    pub attributes: BTreeMap<String, Option<AttributeValue>>,
    pub tags: BTreeMap<String, Option<String>>,
}

/// Most attributes and tags one profile keeps, together: a CRM profile, not a data lake.
pub const MAX_PROFILE_FIELDS: usize = 512;
/// Longest text value of one attribute or tag, in bytes.
pub const MAX_PROFILE_TEXT: usize = 1024;

impl Profile {
    /// An empty profile, as a first update or link creates it.
    pub fn new(external_id: &str) -> Self {
        Self {
            external_id: external_id.to_owned(),
            ..Self::default()
        }
    }

    /// Applies an update: `None` removes a key. An update that would grow the profile past
    /// [`MAX_PROFILE_FIELDS`] or store a text longer than [`MAX_PROFILE_TEXT`] is refused
    /// whole, and the profile is left as it was.
    pub fn apply(&mut self, update: &ProfileUpdate, now: u64) -> Result<(), StoreError> {
        let mut next = self.clone();
        for (key, value) in &update.attributes {
            match value {
                Some(value) => next.attributes.insert(key.clone(), value.clone()),
                None => next.attributes.remove(key),
            };
        }
        for (key, value) in &update.tags {
            match value {
                Some(value) => next.tags.insert(key.clone(), value.clone()),
                None => next.tags.remove(key),
            };
        }
        let fields = next.attributes.len() + next.tags.len();
        if fields > MAX_PROFILE_FIELDS {
            return Err(StoreError::Invalid(format!(
                "profile `{}` would have {fields} attributes and tags; the limit is \
                 {MAX_PROFILE_FIELDS}: remove some (set them to null) first",
                self.external_id
            )));
        }
        let texts = update
            .attributes
            .iter()
            .filter_map(|(k, v)| match v {
                Some(AttributeValue::Text(t)) => Some((k, t)),
                _ => None,
            })
            .chain(
                update
                    .tags
                    .iter()
                    .filter_map(|(k, v)| v.as_ref().map(|t| (k, t))),
            );
        for (key, text) in texts {
            if text.len() > MAX_PROFILE_TEXT {
                return Err(StoreError::Invalid(format!(
                    "`{key}` is {} bytes; values are limited to {MAX_PROFILE_TEXT} bytes",
                    text.len()
                )));
            }
        }
        next.updated_at = now;
        *self = next;
        Ok(())
    }

    /// Lists a linked subscription (once); answers whether it was new here.
    pub fn list_subscription(&mut self, id: SubscriptionId) -> bool {
        let new = !self.subscriptions.contains(&id);
        if new {
            self.subscriptions.push(id);
        }
        new
    }

    /// Stops listing a subscription (deleted, or linked to someone else).
    pub fn unlist_subscription(&mut self, id: SubscriptionId) {
        self.subscriptions.retain(|listed| *listed != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_past_the_limits_changes_nothing() {
        let mut profile = Profile::new("p");
        let mut update = ProfileUpdate::default();
        for n in 0..MAX_PROFILE_FIELDS {
            update
                .attributes
                .insert(format!("a{n}"), Some(AttributeValue::Number(n as f64)));
        }
        profile.apply(&update, 1).unwrap();
        let mut one_more = ProfileUpdate::default();
        one_more.tags.insert("t".into(), Some("x".into()));
        assert!(matches!(
            profile.apply(&one_more, 2),
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(profile.tags.len(), 0);
        assert_eq!(profile.updated_at, 1);
        // Removing makes room.
        let mut swap = one_more.clone();
        swap.attributes.insert("a0".into(), None);
        profile.apply(&swap, 3).unwrap();
        assert_eq!(
            profile.attributes.len() + profile.tags.len(),
            MAX_PROFILE_FIELDS
        );

        let mut long = ProfileUpdate::default();
        long.attributes.insert(
            "bio".into(),
            Some(AttributeValue::Text("x".repeat(MAX_PROFILE_TEXT + 1))),
        );
        assert!(profile.apply(&long, 4).is_err());
    }

    #[test]
    fn subscriptions_are_listed_once_in_link_order() {
        let mut profile = Profile::new("p");
        assert!(profile.list_subscription(SubscriptionId(2)));
        assert!(profile.list_subscription(SubscriptionId(1)));
        assert!(!profile.list_subscription(SubscriptionId(2)));
        assert_eq!(
            profile.subscriptions,
            [SubscriptionId(2), SubscriptionId(1)]
        );
        profile.unlist_subscription(SubscriptionId(2));
        assert_eq!(profile.subscriptions, [SubscriptionId(1)]);
    }
}
