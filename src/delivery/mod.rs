//! The delivery engine: from a notification to requests at push services, and what to do with
//! their answers.
//!
//! - [`sender`]: one message to one subscriber, with retries and outcome handling;
//! - [`backoff`]: the retry schedule;
//! - [`throttle`]: per-origin pauses when a push service says "slow down";
//! - [`waker`]: the API's signal to idle workers that it enqueued tasks.

pub mod backoff;
pub mod engine;
pub mod lifecycle;
pub mod sender;
pub mod throttle;
pub mod waker;

pub use backoff::RetryPolicy;
pub use engine::{Engine, EngineConfig};
pub use sender::{Delivery, Failure, Message, Sender};
pub use waker::EngineWaker;
