//! Test helpers shared by the integration tests.
#![allow(dead_code)]

pub mod command;
pub mod faulty_store;
pub mod http;
pub mod push_service;
pub mod redis;
pub mod rig;
pub mod seed;
pub mod server;
pub mod wait;
pub mod webhook_receiver;

/// One test per backend for each named `async fn(Aviso)`: `embedded_store::NAME` and
/// `redis_store::NAME` (a `redis-server` of its own).
#[allow(unused_macros)]
macro_rules! backends {
    ($($name:ident),*) => {
        mod embedded_store {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(Aviso::start(None, &[])).await;
                }
            )*
        }
        mod redis_store {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let redis = support::redis::RedisServer::start();
                    super::$name(Aviso::start(Some(&redis.url()), &[])).await;
                }
            )*
        }
    };
}
