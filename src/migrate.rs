//! Store migrations that need the protocol's rules, run by `aviso migrate-endpoints`.
//!
//! Endpoints are canonicalised before they are hashed into a subscription's id (host case,
//! default port, trailing dot: `push::subscription::canonical_endpoint`); subscriptions stored
//! before that keep their old spelling and id, and the same browser may have a second record
//! under the canonical one. This moves each such subscription to its canonical id by the store's
//! renewal (`SubscriptionStore::replace_subscription`, proved with its own auth): tags, profile
//! link and activity carried over, merged into the canonical record when there is one (whose
//! keys win when the browser sent them more recently), the old record deleted. Idempotent, and
//! safe while servers run: a renewal is atomic or ordered like any other.

use crate::push::subscription::canonical_endpoint;
use crate::store::{
    Replaced, Replacing, SHARDS, ScanCursor, ShardAt, Store, StoreResult, Subscription,
};

/// What a migration did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EndpointMigration {
    pub scanned: u64,
    /// Moved to their canonical id.
    pub moved: u64,
    /// …of which merged into a record that already had the canonical spelling.
    pub merged: u64,
    /// Endpoints that are not URLs at all any more (left as they are; the push service's 404
    /// will delete them).
    pub unparsable: u64,
}

/// Subscriptions read per scan step.
const BATCH: usize = 500;

/// Moves every subscription of every app whose endpoint is not canonical.
pub async fn canonicalise_endpoints(store: &dyn Store) -> StoreResult<EndpointMigration> {
    let mut report = EndpointMigration::default();
    for app in store.list_apps().await? {
        for shard in 0..SHARDS {
            let mut cursor = ScanCursor::start();
            loop {
                let batch = store
                    .scan_shard(ShardAt::new(&app.id, shard, &cursor), BATCH)
                    .await?;
                for sub in &batch.subscriptions {
                    report.scanned += 1;
                    move_to_canonical(store, sub, &mut report).await?;
                }
                match batch.next {
                    Some(next) => cursor = next,
                    None => break,
                }
            }
        }
    }
    Ok(report)
}

async fn move_to_canonical(
    store: &dyn Store,
    sub: &Subscription,
    report: &mut EndpointMigration,
) -> StoreResult<()> {
    let Ok(canonical) = canonical_endpoint(&sub.endpoint) else {
        report.unparsable += 1;
        return Ok(());
    };
    if canonical == sub.endpoint {
        return Ok(());
    }
    let mut target =
        Subscription::new(&sub.app_id, &canonical, sub.p256dh, sub.auth, sub.last_seen);
    target.tags = sub.tags.clone();
    target.locale.clone_from(&sub.locale);
    target.timezone.clone_from(&sub.timezone);
    let existing = store.get_subscription(&sub.app_id, target.id).await?;
    if let Some(existing) = &existing
        && existing.last_seen >= sub.last_seen
    {
        // The browser subscribed again under the canonical spelling since: its keys are the
        // current ones.
        target = existing.clone();
    }
    if let Replaced::Moved { .. } = store
        .replace_subscription(Replacing::new(sub.id, &sub.auth), &target)
        .await?
    {
        report.moved += 1;
        if existing.is_some() {
            report.merged += 1;
        }
    }
    Ok(())
}
