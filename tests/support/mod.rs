//! Test helpers shared by the integration tests.
#![allow(dead_code)]

pub mod redis;
pub mod server;
pub mod verifying_push_service;
