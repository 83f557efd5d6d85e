//! Aviso: a self-hosted, high-throughput Web Push delivery server.
//!
//! The library is split the way `DESIGN.md` splits the system:
//! - [`push`]: the Web Push protocol (RFC 8030, 8291, 8292), no I/O;
//! - [`transport`]: HTTPS to push services (hyper + rustls);
//! - [`delivery`]: the fan-out engine: send, retry, outcomes;
//! - [`triggers`]: CRM events in, delayed and cancellable pushes out;
//! - [`policy`]: frequency caps, quiet hours, local time, throttled broadcasts;
//! - [`webhooks`]: events out to the CRM (Standard Webhooks), from a durable outbox;
//! - [`cli`]: the `aviso` command line;
//! - [`words`]: serde's expectations in our words, for every edge that reports a mistake.

pub mod api;
pub mod apps;
pub mod cache;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod migrate;
pub mod notify;
pub mod policy;
pub mod push;
pub mod refs;
pub mod store;
pub mod transport;
pub mod triggers;
pub mod webhooks;
pub mod words;
