//! Respectful delivery: what may be sent to whom, and when (issue 13).
//!
//! - [`model`]: an app's policy as the API takes it, its checks, and the compiled [`Rules`]
//!   the engine applies;
//! - [`caps`]: frequency caps, per profile (or per subscription without one) and category,
//!   checked and counted atomically by the store per batch;
//! - [`quiet`]: quiet hours and local-time delivery in each subscriber's time zone, as slices
//!   of the audience that are due at one instant;
//! - [`gate`]: the few lines the engine calls per batch, joining the above.
//!
//! Everything here but [`gate`] is free of I/O, and every rule takes the time as an argument,
//! so that tests control the clock.

pub mod bucket;
pub mod caps;
pub mod gate;
pub mod model;
pub mod quiet;

pub use model::{Category, Policy, Rules};
