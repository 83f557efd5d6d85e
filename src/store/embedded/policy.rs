//! Delivery policies in the embedded store: `app` → policy JSON, `(app, holder)` → the
//! holder's counted notifications in the longest cap window (a trigger's own cap under a key
//! of its own), `(app, bucket)` → a token
//! bucket. A batch's check-and-count is one write transaction (the writer runs them one after
//! another, so concurrent batches never both take a holder's last send).

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition, TableError};
use serde::{Deserialize, Serialize};

use super::EmbeddedStore;
use crate::policy::model::Policy;
use crate::store::{
    CapCheck, CapHolder, CapScope, PolicyStore, StoreResult, TokenGrant, from_json, now_ms, to_json,
};

/// app → policy (JSON).
const POLICIES: TableDefinition<&str, &[u8]> = TableDefinition::new("policies");
/// (app, holder) → [`Counted`] (JSON).
const CAP_COUNTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("cap_counts");
/// (app, bucket) → (tokens in thousandths, last refill ms).
const BUCKETS: TableDefinition<(&str, &str), (u64, u64)> = TableDefinition::new("token_buckets");

/// One holder's counted notifications: (when, category, notification id).
#[derive(Default, Serialize, Deserialize)]
struct Counted(Vec<(u64, String, String)>);

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
            let value = table.get(app_id.as_str())?;
            value.map(|v| from_json(v.value(), "policy")).transpose()
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
        let app_id = check.app_id.to_owned();
        let category = check.category.as_str().to_owned();
        let notification = check.notification_id.to_owned();
        let windows = check.windows.to_vec();
        let now = check.now_ms;
        let longest = windows.iter().map(|w| w.per_ms).max().unwrap_or(0);
        let keys: Vec<String> = holders.iter().map(|h| holder_key(check.scope, h)).collect();
        // Not flushed to disk on its own: every send it admits is followed by a durable write
        // of that send (the batch's record, the trigger's send), and a durable commit carries
        // every commit before it. A crash before that write loses the counts of sends that
        // are then made again (their batch, or trigger, is redone and counts again), so caps
        // stay exact; it spares the sender one fsync per batch.
        self.writer
            .write(false, move |txn| {
                let mut table = txn.open_table(CAP_COUNTS)?;
                let mut answers = Vec::with_capacity(keys.len());
                for key in &keys {
                    let mut counted = match table.get((app_id.as_str(), key.as_str()))? {
                        Some(v) => from_json::<Counted>(v.value(), "cap counts")?,
                        None => Counted::default(),
                    };
                    counted
                        .0
                        .retain(|(at, _, _)| *at > now.saturating_sub(longest));
                    let already = counted
                        .0
                        .iter()
                        .any(|(_, c, n)| *c == category && *n == notification);
                    let allowed = already
                        || windows.iter().all(|window| {
                            let from = now.saturating_sub(window.per_ms);
                            let sent = counted
                                .0
                                .iter()
                                .filter(|(at, c, _)| *at > from && *c == category)
                                .count();
                            sent < window.max as usize
                        });
                    if allowed && !already {
                        counted
                            .0
                            .push((now, category.clone(), notification.clone()));
                    }
                    if counted.0.is_empty() {
                        table.remove((app_id.as_str(), key.as_str()))?;
                    } else {
                        let json = to_json(&counted)?;
                        table.insert((app_id.as_str(), key.as_str()), json.as_slice())?;
                    }
                    answers.push(allowed);
                }
                Ok(answers)
            })
            .await
    }

    async fn take_tokens(
        &self,
        app_id: &str,
        bucket: &str,
        per_minute: u32,
        wanted: u32,
    ) -> StoreResult<TokenGrant> {
        let (app_id, bucket) = (app_id.to_owned(), bucket.to_owned());
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
