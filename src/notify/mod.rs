//! Notifications: what a marketer or CRM asks to send, validated once at the edge, and how it
//! becomes ledger tasks and per-subscriber payloads.
//!
//! - [`life`]: where a notification stands, its accounting, its counters over time;
//! - [`model`]: the notification, its audience and content, as the API accepts them;
//! - [`segment`]: segment filters over tags and profile attributes;
//! - [`payload`]: the Declarative Web Push payload each subscriber receives;
//! - [`template`]: Liquid templates in the content, rendered per subscriber from its profile;
//! - [`receipt`]: the tokens that prove a shown/clicked/closed report;
//! - [`variants`]: A/B variants, their deterministic split and the winner test;
//! - [`plan`]: from a notification to tasks in the ledger;
//! - [`service`]: the use cases (create, read, list, cancel) that the API and the engine share.

pub mod life;
pub mod model;
pub mod payload;
pub mod plan;
pub mod receipt;
pub mod segment;
pub mod service;
pub mod template;
pub mod variants;

pub use model::{Audience, Content, Notification, NotificationRequest, Status};
