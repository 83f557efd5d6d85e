//! Test helpers shared by the integration tests.
#![allow(dead_code)]

pub mod faulty_store;
pub mod push_service;
pub mod redis;
pub mod server;
