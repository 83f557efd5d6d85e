//! What the store holds, and the rules for changing it: apps, subscriptions (with their
//! compact binary record), CRM profiles. The backends store and index these; every rule about
//! what a change keeps (an upsert's merge, a link, an erasure, a profile's limits) lives here,
//! once, and both backends call it.

mod app;
mod endpoint;
mod profile;
mod record;
mod subscription;

pub use app::{ApiKey, App, Scope, hash_api_key};
pub use profile::{AttributeValue, MAX_PROFILE_FIELDS, MAX_PROFILE_TEXT, Profile, ProfileUpdate};
pub use subscription::{Activity, MAX_ENDPOINT_LEN, Refused, SHARDS, Subscription, SubscriptionId};
