//! The one read-modify-write loop of the Redis store: read a hash field, apply the model's rule
//! in Rust, write only if the field still holds what was read (`lua/cas_field.lua`), else read
//! again. Lock-free, and safe on a Cluster (one key per change).

use redis::AsyncCommands;

use super::RedisStore;
use crate::store::{StoreError, StoreResult};

/// How many times a change is tried against concurrent writers before giving up.
const ATTEMPTS: usize = 64;

/// What a rule decides for the field, with the answer to hand back.
pub(super) enum Change<T> {
    Write(Vec<u8>, T),
    Delete(T),
    Keep(T),
}

impl RedisStore {
    /// Changes one field of `key` by `decide` (called with the current value, again after
    /// each conflict), atomically.
    pub(super) async fn change_field<T>(
        &self,
        key: &str,
        field: &[u8],
        what: &str,
        mut decide: impl FnMut(Option<&[u8]>) -> StoreResult<Change<T>>,
    ) -> StoreResult<T> {
        let mut conn = self.conn();
        for _ in 0..ATTEMPTS {
            let current: Option<Vec<u8>> = conn.hget(key, field).await?;
            let (op, value, answer) = match decide(current.as_deref())? {
                Change::Keep(answer) => return Ok(answer),
                Change::Write(value, answer) => ("set", value, answer),
                Change::Delete(answer) => ("del", Vec::new(), answer),
            };
            let written: u8 = self
                .scripts
                .cas_field
                .key(key)
                .arg(field)
                .arg(if current.is_some() { "1" } else { "0" })
                .arg(current.as_deref().unwrap_or_default())
                .arg(op)
                .arg(value)
                .invoke_async(&mut conn)
                .await?;
            if written == 1 {
                return Ok(answer);
            }
        }
        Err(StoreError::Contended(what.to_owned()))
    }
}
