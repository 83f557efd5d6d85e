//! CRM triggers: events in, delayed and cancellable pushes out, personalised per person.
//!
//! - [`model`]: the rules, events and pending sends, with every check of outside input;
//! - [`service`]: what an event does (schedule, re-arm, cancel), shared by the API;
//! - [`runner`]: claims due pending sends, in any instance exactly once, and makes each a
//!   one-to-one notification through the notification service (priority lane).

pub mod model;
pub mod runner;
pub mod service;
