//! Test helpers shared by the integration tests.
#![allow(dead_code)]

pub mod push_service;
pub mod redis;
pub mod server;
