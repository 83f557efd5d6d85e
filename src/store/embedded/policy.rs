//! Delivery policies in the embedded store: `app` → policy JSON, `(app, bucket)` → a token
//! bucket, and the frequency-cap counts ([`caps`]: in memory, a log row per batch), each
//! holder under a key of its scope (a trigger's own cap apart). A batch's check-and-count
//! runs on the writer thread, one after another, so concurrent batches never both take a
//! holder's last send.

use super::tables::get_json;
use super::{EmbeddedStore, caps};
use crate::policy::model::Policy;
use crate::store::{
    Bucket, CapCheck, CapHolder, CapScope, PolicyStore, StoreResult, TokenGrant, now_ms, to_json,
};
use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition, TableError};

/// app → policy (JSON).
const POLICIES: TableDefinition<&str, &[u8]> = TableDefinition::new("policies");
/// (app, bucket) → (tokens in thousandths, last refill ms).
const BUCKETS: TableDefinition<(&str, &str), (u64, u64)> = TableDefinition::new("token_buckets");

/// The record of a holder's counts in `scope`: the policy's as `p:EXT` / `s:ID`, a
/// trigger's apart as `t:LEN:NAME:` before that (the name's length keeps names with `:`
/// from running into the holder).
fn holder_key(scope: CapScope<'_>, holder: &CapHolder) -> String {
    let holder = match holder {
        CapHolder::Profile(external_id) => format!("p:{external_id}"),
        CapHolder::Subscription(id) => format!("s:{id}"),
    };
    match scope {
        CapScope::Policy => holder,
        CapScope::Trigger(name) => format!("t:{}:{name}:{holder}", name.len()),
    }
}

#[async_trait]
impl PolicyStore for EmbeddedStore {
    async fn get_policy(&self, app_id: &str) -> StoreResult<Option<Policy>> {
        let app_id = app_id.to_owned();
        self.read(move |txn| {
            let table = match txn.open_table(POLICIES) {
                Ok(table) => table,
                Err(TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            get_json(&table, app_id.as_str(), "policy")
        })
        .await
    }

    async fn put_policy(&self, app_id: &str, policy: &Policy) -> StoreResult<()> {
        let (app_id, json) = (app_id.to_owned(), to_json(policy)?);
        self.write(move |txn| {
            txn.open_table(POLICIES)?
                .insert(app_id.as_str(), json.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn take_caps(
        &self,
        check: CapCheck<'_>,
        holders: &[CapHolder],
    ) -> StoreResult<Vec<bool>> {
        let check = caps::Check {
            app_id: check.app_id.to_owned(),
            category: check.category.as_str().to_owned(),
            notification: check.notification_id.to_owned(),
            windows: check.windows.to_vec(),
            now_ms: check.now_ms,
            keys: holders.iter().map(|h| holder_key(check.scope, h)).collect(),
        };
        // Not flushed to disk on its own (see `caps`): the durable write of the sends it
        // admits carries it.
        let caps = self.caps.clone();
        self.writer
            .write(false, move |txn| caps.take(txn, check))
            .await
    }

    async fn take_tokens(&self, bucket: Bucket<'_>, wanted: u32) -> StoreResult<TokenGrant> {
        let per_minute = bucket.per_minute;
        let (app_id, bucket) = (bucket.app_id.to_owned(), bucket.name.to_owned());
        self.write(move |txn| {
            let mut table = txn.open_table(BUCKETS)?;
            let state = table
                .get((app_id.as_str(), bucket.as_str()))?
                .map(|v| v.value());
            let (tokens, at) = crate::policy::bucket::refill(state, per_minute, now_ms());
            let (grant, left) = crate::policy::bucket::take(tokens, per_minute, wanted);
            table.insert((app_id.as_str(), bucket.as_str()), (left, at))?;
            Ok(grant)
        })
        .await
    }
}
