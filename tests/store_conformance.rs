//! One conformance suite for every store backend: the embedded store, a single Redis and a
//! Redis Cluster (both started by the tests on free loopback ports).

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aviso::notify::life::CancelOutcome;
use aviso::notify::model::{Audience, Content, Notification, Status};
use aviso::store::Phase;
use aviso::store::{
    Activity, App, AppStore, AttributeValue, BatchOutcome, ClaimedTask, CountOnce, KeyClaim, Lane,
    Lease, LedgerStore, NewNotification, NotificationStore, ProfileUpdate, Progress, Refused,
    Replaced, SHARDS, ScanCursor, Scheduled, Settle, Store, StoreError, Subscription,
    SubscriptionId, SubscriptionStore, Task, TaskStep, TaskTarget, Upserted, hash_api_key,
};
use aviso::store::{Bucket, Profile, ProfileRef, Replacing, ShardAt, StateSave, WebhookRef};
use aviso::triggers::model::{PendingSend, Repeat, SendRef, Trigger, TriggerRef, TriggerRequest};
use aviso::webhooks::{DeadLetter, EventType, OutboxEntry, Webhook, WebhookState};

fn app(id: &str) -> App {
    App {
        id: id.into(),
        name: format!("App {id}"),
        origins: vec!["https://shop.example".into()],
        vapid_private_key: vec![1; 32],
        identity_secret: vec![2; 32],
        receipt_secret: vec![3; 32],
        api_keys: vec![aviso::store::ApiKey {
            hash: hash_api_key(&format!("key-{id}")),
            scope: aviso::store::Scope::Send,
            expires_at_ms: None,
            created_at_ms: 0,
        }],
        created_at: 1,
        demo: false,
        expire_after_secs: 0,
    }
}

fn subscription(app_id: &str, n: usize) -> Subscription {
    let endpoint = format!(
        "https://fcm.googleapis.com/fcm/send/tok{n}:APA91b{}",
        "x".repeat(140)
    );
    let mut p256dh = [4u8; 65];
    p256dh[1..9].copy_from_slice(&(n as u64).to_be_bytes());
    Subscription::new(app_id, &endpoint, p256dh, [n as u8; 16], 1_700_000_000)
}

/// A stored notification whose title tells versions apart.
fn note(app_id: &str, id: &str, version: u32) -> Notification {
    Notification {
        id: id.into(),
        app_id: app_id.into(),
        audience: Audience::All,
        content: Content {
            title: format!("v{version}"),
            body: None,
            icon: None,
            image: None,
            badge: None,
            url: None,
            actions: Vec::new(),
            tag: None,
            require_interaction: false,
            data: None,
        },
        variants: Vec::new(),
        winner: None,
        ttl: 60,
        urgency: None,
        topic: None,
        send_at_ms: 0,
        created_at_ms: 1,
        status: Status::Queued,
        life: Default::default(),
        policy: Default::default(),
        event: None,
    }
}

fn counted<'a>(counters: &'a [(&'a str, i64)], step: TaskStep<'a>) -> BatchOutcome<'a> {
    BatchOutcome {
        counters,
        ..BatchOutcome::step(step)
    }
}

/// Nothing sent: the task's progress saved and its lease extended.
fn checkpoint(progress: &Progress, lease: Duration) -> BatchOutcome<'_> {
    BatchOutcome::step(checkpointed(progress, lease))
}

fn held_by(worker: &str, ttl: Duration) -> Lease<'_> {
    Lease { worker, ttl }
}

/// Saves `progress` and extends the lease by `lease`.
fn checkpointed(progress: &Progress, lease: Duration) -> TaskStep<'_> {
    TaskStep::Checkpoint { progress, lease }
}

/// The next due task of `lane`, claimed by `worker` for `ttl`.
async fn claim_next(
    store: &dyn Store,
    lane: Lane,
    worker: &str,
    ttl: Duration,
) -> Option<ClaimedTask> {
    store.claim_task(lane, held_by(worker, ttl)).await.unwrap()
}

/// Records a batch of `claim` that the store must accept.
async fn record(store: &dyn Store, claim: &ClaimedTask, outcome: BatchOutcome<'_>) {
    store.record_batch(claim, outcome).await.unwrap();
}

/// Asserts that a write was fenced: its holder had lost the lease.
fn assert_lease_lost<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(matches!(result, Err(StoreError::LeaseLost)), "{result:?}");
}

/// Sleeps until a lease of `lease` taken now has run out (with 100 ms to spare).
async fn outlive(lease: Duration) {
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
}

/// Links subscription `id` to the profile `to`.
async fn link(store: &dyn Store, to: ProfileRef<'_>, id: SubscriptionId) {
    store.link_subscription(to, id).await.unwrap();
}

/// The subscription `id` of `app_id` as stored, if it is.
async fn find_subscription(
    store: &dyn Store,
    app_id: &str,
    id: SubscriptionId,
) -> Option<Subscription> {
    store.get_subscription(app_id, id).await.unwrap()
}

/// The id of the app whose API key hashes to `hash`, if any.
async fn app_id_by_key(store: &dyn Store, hash: &[u8; 32]) -> Option<String> {
    store.app_by_api_key(hash).await.unwrap().map(|a| a.id)
}

/// The delivery state of webhook `hook`, leased by `worker` for `ttl` (`None`: held by another).
async fn lease_hook(
    store: &dyn Store,
    hook: WebhookRef<'_>,
    worker: &str,
    ttl: Duration,
) -> Option<WebhookState> {
    store
        .lease_webhook(hook, held_by(worker, ttl))
        .await
        .unwrap()
}

/// Replaces the subscription `id` (proved by `auth`) with `with`: the store's answer.
async fn replace(
    store: &dyn Store,
    id: SubscriptionId,
    auth: &[u8; 16],
    with: &Subscription,
) -> Replaced {
    store
        .replace_subscription(Replacing::new(id, auth), with)
        .await
        .unwrap()
}

/// The stored profile, which must exist.
async fn profile_of(store: &dyn Store, profile: ProfileRef<'_>) -> Profile {
    store.get_profile(profile).await.unwrap().unwrap()
}

fn once<'a>(id: &'a str, member: &'a str, counters: &'a [&'a str], until: u64) -> CountOnce<'a> {
    CountOnce {
        notification_id: id,
        member,
        counters,
        keep_until_ms: until,
    }
}

fn key_claim<'a>(app_id: &'a str, key: &'a str, holder: &'a str) -> KeyClaim<'a> {
    KeyClaim {
        app_id,
        key,
        holder,
    }
}

/// A claim of an idempotency key: the holder that had it, if any.
async fn claim(store: &dyn Store, key: KeyClaim<'_>, ttl: Duration) -> Option<String> {
    store.claim_idempotency_key(key, ttl).await.unwrap()
}

async fn settle(store: &dyn Store, key: KeyClaim<'_>, settle: Settle) {
    store.settle_idempotency_key(key, settle).await.unwrap();
}

async fn scan_all(store: &dyn Store, app_id: &str, limit: usize) -> Vec<SubscriptionId> {
    let mut ids = Vec::new();
    for shard in 0..SHARDS {
        let mut cursor = ScanCursor::start();
        loop {
            let batch = store
                .scan_shard(ShardAt::new(app_id, shard, &cursor), limit)
                .await
                .unwrap();
            assert!(batch.subscriptions.iter().all(|s| s.id.shard() == shard));
            ids.extend(batch.subscriptions.iter().map(|s| s.id));
            match batch.next {
                Some(next) => cursor = next,
                None => break,
            }
        }
    }
    ids
}

pub async fn apps(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    store.put_app(&app("a1")).await.unwrap();
    store.put_app(&app("a2")).await.unwrap();
    assert_eq!(store.get_app("a1").await.unwrap(), Some(app("a1")));
    assert_eq!(store.get_app("missing").await.unwrap(), None);
    let mut ids: Vec<_> = store
        .list_apps()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["a1", "a2"]);
    assert_eq!(
        app_id_by_key(store.as_ref(), &hash_api_key("key-a2")).await,
        Some("a2".into())
    );
    // Rotating the key: the old one stops working.
    let mut rotated = app("a2");
    rotated.api_keys[0].hash = hash_api_key("new-key");
    store.put_app(&rotated).await.unwrap();
    assert_eq!(
        app_id_by_key(store.as_ref(), &hash_api_key("key-a2")).await,
        None
    );
    assert_eq!(
        app_id_by_key(store.as_ref(), &hash_api_key("new-key")).await,
        Some("a2".into())
    );
    // Deleting an app: its record, keys, subscriptions and count go; other apps stay.
    let subs: Vec<_> = (0..20).map(|n| subscription("a2", n)).collect();
    store.insert_subscriptions(&subs).await.unwrap();
    store
        .upsert_subscription(&subscription("a1", 1))
        .await
        .unwrap();
    assert!(store.delete_app("a2").await.unwrap());
    assert!(!store.delete_app("a2").await.unwrap());
    assert_eq!(store.get_app("a2").await.unwrap(), None);
    assert_eq!(
        app_id_by_key(store.as_ref(), &hash_api_key("new-key")).await,
        None
    );
    assert_eq!(store.count_subscriptions("a2").await.unwrap(), 0);
    assert_eq!(
        find_subscription(store.as_ref(), "a2", subs[0].id).await,
        None
    );
    assert_eq!(store.count_subscriptions("a1").await.unwrap(), 1);
    assert_eq!(store.get_app("a1").await.unwrap(), Some(app("a1")));
}

pub async fn subscriptions(store: Arc<dyn Store>) {
    let mut sub = subscription("s", 1);
    sub.locale = "pt-BR".into();
    sub.timezone = "Europe/Lisbon".into();
    sub.tags.insert("plan".into(), "pro".into());
    assert_eq!(
        store.upsert_subscription(&sub).await.unwrap(),
        Upserted::Created
    );
    // The same endpoint again: same record, creation time kept.
    let mut again = sub.clone();
    again.created_at = 1_800_000_000;
    again.last_seen = 1_800_000_000;
    assert_eq!(
        store.upsert_subscription(&again).await.unwrap(),
        Upserted::Updated
    );
    // New keys without proof are refused, and nothing changes.
    let mut stranger = again.clone();
    stranger.auth = [9; 16];
    stranger.tags.clear();
    assert_eq!(
        store.upsert_subscription(&stranger).await.unwrap(),
        Upserted::Refused(Refused::KeysDiffer)
    );
    // With the current auth as proof, they change.
    assert_eq!(
        replace(store.as_ref(), sub.id, &[9; 16], &again).await,
        Replaced::Refused(Refused::WrongAuth)
    );
    let mut rekeyed = again.clone();
    rekeyed.auth = [9; 16];
    rekeyed.tags.clear();
    assert_eq!(
        replace(store.as_ref(), sub.id, &sub.auth, &rekeyed).await,
        Replaced::Moved { created: false }
    );
    let stored = find_subscription(store.as_ref(), "s", sub.id)
        .await
        .unwrap();
    assert_eq!(stored.auth, [9; 16]);
    assert_eq!(stored.created_at, 1_700_000_000);
    assert_eq!(stored.last_seen, 1_800_000_000);
    assert_eq!(stored.tags, sub.tags);
    assert_eq!(stored.locale, "pt-BR");
    assert_eq!(store.count_subscriptions("s").await.unwrap(), 1);

    let more: Vec<_> = (2..=50).map(|n| subscription("s", n)).collect();
    store.insert_subscriptions(&more).await.unwrap();
    assert_eq!(store.count_subscriptions("s").await.unwrap(), 50);
    assert_eq!(store.count_subscriptions("other-app").await.unwrap(), 0);
    let wanted = [more[0].id, more[10].id, SubscriptionId(12345)];
    let got = store.get_subscriptions("s", &wanted).await.unwrap();
    assert_eq!(
        got.iter().map(|s| s.id).collect::<Vec<_>>(),
        [more[0].id, more[10].id]
    );
    assert_eq!(got[0], more[0]);

    assert!(store.delete_subscription("s", sub.id).await.unwrap());
    assert!(!store.delete_subscription("s", sub.id).await.unwrap());
    assert_eq!(find_subscription(store.as_ref(), "s", sub.id).await, None);
    assert_eq!(store.count_subscriptions("s").await.unwrap(), 49);
    let endpoint_id = SubscriptionId::for_endpoint("s", &more[5].endpoint);
    assert!(
        store.delete_subscription("s", endpoint_id).await.unwrap(),
        "delete by endpoint"
    );
}

pub async fn shard_scans_hand_out_everything_once(store: Arc<dyn Store>) {
    let subs: Vec<_> = (0..3000).map(|n| subscription("scan", n)).collect();
    for chunk in subs.chunks(500) {
        store.insert_subscriptions(chunk).await.unwrap();
    }
    let ids = scan_all(store.as_ref(), "scan", 7).await;
    let unique: HashSet<_> = ids.iter().copied().collect();
    assert_eq!(unique.len(), 3000);
    // Redis's HSCAN may repeat an entry while a hash is being resized; nothing here resizes.
    assert_eq!(ids.len(), 3000);
    assert_eq!(unique, subs.iter().map(|s| s.id).collect());
    assert!(scan_all(store.as_ref(), "nobody", 100).await.is_empty());
}

pub async fn profiles(store: Arc<dyn Store>) {
    let subs: Vec<_> = (0..3).map(|n| subscription("p", n)).collect();
    let crm_1 = ProfileRef::new("p", "crm-1");
    store.insert_subscriptions(&subs).await.unwrap();
    let mut update = ProfileUpdate {
        external_id: "crm-1".into(),
        ..Default::default()
    };
    update
        .attributes
        .insert("age".into(), Some(AttributeValue::Number(41.0)));
    update
        .attributes
        .insert("vip".into(), Some(AttributeValue::Bool(true)));
    update.tags.insert("city".into(), Some("Porto".into()));
    let profile = store.update_profile("p", &update).await.unwrap();
    assert_eq!(profile.attributes["age"], AttributeValue::Number(41.0));
    let mut removal = ProfileUpdate {
        external_id: "crm-1".into(),
        ..Default::default()
    };
    removal.attributes.insert("vip".into(), None);
    store.update_profile("p", &removal).await.unwrap();

    link(store.as_ref(), crm_1, subs[0].id).await;
    link(store.as_ref(), crm_1, subs[1].id).await;
    link(store.as_ref(), crm_1, subs[1].id).await;
    let profile = profile_of(store.as_ref(), crm_1).await;
    assert_eq!(profile.subscriptions, [subs[0].id, subs[1].id]);
    assert!(!profile.attributes.contains_key("vip"));
    assert_eq!(profile.tags["city"], "Porto");
    assert_eq!(
        find_subscription(store.as_ref(), "p", subs[0].id)
            .await
            .unwrap()
            .external_id
            .as_deref(),
        Some("crm-1")
    );
    assert!(matches!(
        store.link_subscription(crm_1, SubscriptionId(7)).await,
        Err(StoreError::NotFound(_))
    ));
    // Deleting a subscription unlinks it.
    store.delete_subscription("p", subs[1].id).await.unwrap();
    assert_eq!(
        profile_of(store.as_ref(), crm_1).await.subscriptions,
        [subs[0].id]
    );

    // GDPR erasure: the profile and its subscriptions go; others stay.
    link(store.as_ref(), crm_1, subs[2].id).await;
    assert_eq!(store.erase_profile(crm_1).await.unwrap(), 2);
    assert_eq!(store.get_profile(crm_1).await.unwrap(), None);
    assert_eq!(store.count_subscriptions("p").await.unwrap(), 0);
    assert_eq!(store.erase_profile(crm_1).await.unwrap(), 0);
}

/// A receipt counts once per (notification, member), atomically under concurrency; its
/// counters move only when it is new; another notification's set is apart.
pub async fn receipts_are_counted_once(store: Arc<dyn Store>) {
    let until = aviso::store::now_ms() + 3_600_000;
    let member = "clicked:00000000000000a1";
    let tries = (0..16).map(|_| {
        let store = store.clone();
        async move {
            store
                .count_once(once("r1", member, &["clicked", "clicked.buy"], until))
                .await
                .unwrap()
        }
    });
    let counted = futures::future::join_all(tries).await;
    assert_eq!(counted.iter().filter(|c| **c).count(), 1, "{counted:?}");
    assert!(
        store
            .count_once(once("r1", "shown:00000000000000a1", &["shown"], until))
            .await
            .unwrap()
    );
    assert!(
        store
            .count_once(once("r2", member, &["clicked"], until))
            .await
            .unwrap()
    );
    let counters = store.counters("r1").await.unwrap();
    assert_eq!(counters.get("clicked"), Some(&1));
    assert_eq!(counters.get("clicked.buy"), Some(&1));
    assert_eq!(counters.get("shown"), Some(&1));
    assert_eq!(store.counters("r2").await.unwrap().get("clicked"), Some(&1));
}

pub async fn notifications_counters_and_limits(store: Arc<dyn Store>) {
    store.put_notification(&note("n", "n1", 1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.put_notification(&note("n", "n2", 2)).await.unwrap();
    store.put_notification(&note("n", "n1", 3)).await.unwrap();
    assert_eq!(
        store.get_notification("n1").await.unwrap().unwrap(),
        note("n", "n1", 3)
    );
    assert_eq!(store.get_notification("zz").await.unwrap(), None);
    let listed = store.list_notifications("n", 10).await.unwrap();
    assert_eq!(
        listed,
        [note("n", "n2", 2), note("n", "n1", 3)],
        "newest first"
    );
    assert_eq!(store.list_notifications("n", 1).await.unwrap().len(), 1);

    store
        .add_counters("n1", &[("sent", 5), ("delivered", 4)])
        .await
        .unwrap();
    store
        .add_counters("n1", &[("delivered", 1), ("failed.rejected", 2)])
        .await
        .unwrap();
    let counters = store.counters("n1").await.unwrap();
    assert_eq!(
        counters,
        BTreeMap::from([
            ("delivered".into(), 5),
            ("failed.rejected".into(), 2),
            ("sent".into(), 5)
        ])
    );
    assert!(store.counters("n2").await.unwrap().is_empty());

    let ttl = Duration::from_secs(60);
    assert_eq!(claim(&*store, key_claim("n", "k1", "n1"), ttl).await, None);
    assert_eq!(
        claim(&*store, key_claim("n", "k1", "n9"), ttl).await,
        Some("n1".into())
    );
    assert_eq!(
        claim(&*store, key_claim("other", "k1", "n9"), ttl).await,
        None
    );
}

/// Stores `notification` with its first tasks and counters (as the create service does).
async fn create(
    store: &dyn Store,
    notification: &Notification,
    tasks: &[Task],
    counters: &[(&str, i64)],
) {
    store
        .create_notification(NewNotification {
            notification,
            tasks,
            counters,
        })
        .await
        .unwrap();
}

/// Stores a broadcast `id` with one task (for shard 0) and no counters yet.
async fn create_broadcast(store: &dyn Store, id: &str) {
    let tasks = [task(id, "s0", Lane::Bulk, TaskTarget::Shard(0))];
    create(store, &note("l", id, 1), &tasks, &[]).await;
}

fn task(notification: &str, suffix: &str, lane: Lane, target: TaskTarget) -> Task {
    Task {
        id: format!("{notification}:{suffix}"),
        app_id: "l".into(),
        notification_id: notification.into(),
        lane,
        target,
        not_before_ms: 0,
        phase: Phase::Whole,
    }
}

/// A task of `notification` for the one subscription `id`.
fn task_for(notification: &str, suffix: &str, lane: Lane, id: u64) -> Task {
    let target = TaskTarget::Subscriptions(vec![SubscriptionId(id)]);
    task(notification, suffix, lane, target)
}

/// A/B variants: the document keeps its variants and winner test, the ledger each task's phase
/// (a winner test's follow-up is claimed as a follow-up, due when the test ends), and of many
/// instances racing to record a winner only the first counts (`count_once`), as the engine uses it.
pub async fn variants_phases_and_one_winner(store: Arc<dyn Store>) {
    let mut notification = note("l", "ab1", 1);
    notification.variants = serde_json::from_value(serde_json::json!([
        {"weight": 1, "content": {"title": "A"}},
        {"weight": 3, "content": {"title": "B"}},
    ]))
    .unwrap();
    notification.winner = Some(
        serde_json::from_value(
            serde_json::json!({"fraction": 0.2, "metric": "clicked", "after_secs": 60}),
        )
        .unwrap(),
    );
    let test = Task {
        phase: Phase::Test,
        ..task("ab1", "s0", Lane::Bulk, TaskTarget::Shard(0))
    };
    let rest_due = aviso::store::now_ms() + 300;
    let rest = Task {
        phase: Phase::Rest,
        not_before_ms: rest_due,
        ..task("ab1", "rest.s0", Lane::Bulk, TaskTarget::Shard(0))
    };
    create(
        store.as_ref(),
        &notification,
        &[test.clone(), rest.clone()],
        &[],
    )
    .await;
    assert_eq!(
        store.get_notification("ab1").await.unwrap(),
        Some(notification)
    );
    let first = claim_next(store.as_ref(), Lane::Bulk, "w1", Duration::from_secs(30))
        .await
        .expect("the test task is due");
    assert_eq!(first.task, test);
    assert!(
        claim_next(store.as_ref(), Lane::Bulk, "w1", Duration::from_secs(30))
            .await
            .is_none(),
        "the follow-up waits for the test's end"
    );
    tokio::time::sleep(Duration::from_millis(
        rest_due.saturating_sub(aviso::store::now_ms()) + 50,
    ))
    .await;
    let second = claim_next(store.as_ref(), Lane::Bulk, "w2", Duration::from_secs(30))
        .await
        .expect("the follow-up is due");
    assert_eq!(second.task, rest);
    for claim in [&first, &second] {
        record(
            store.as_ref(),
            claim,
            BatchOutcome::step(TaskStep::Complete),
        )
        .await;
    }
    let until = aviso::store::now_ms() + 60_000;
    let deciders = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let name = format!("winner.{}", i % 2);
            store
                .count_once(once("ab1", "winner", &[name.as_str()], until))
                .await
                .unwrap()
        })
    });
    let firsts = futures::future::join_all(deciders)
        .await
        .into_iter()
        .filter(|first| *first.as_ref().unwrap())
        .count();
    assert_eq!(firsts, 1, "one decision counts");
    let counters = store.counters("ab1").await.unwrap();
    let recorded: Vec<_> = counters
        .iter()
        .filter(|(name, _)| name.starts_with("winner."))
        .collect();
    assert_eq!(recorded.len(), 1, "{counters:?}");
    assert_eq!(*recorded[0].1, 1);
}

pub async fn a_created_notification_is_claimable_with_its_document_and_counters(
    store: Arc<dyn Store>,
) {
    let direct = task_for("c1", "direct", Lane::Priority, 7);
    create(
        store.as_ref(),
        &note("l", "c1", 1),
        std::slice::from_ref(&direct),
        &[("targeted", 1)],
    )
    .await;
    let claim = claim_next(
        store.as_ref(),
        Lane::Priority,
        "w1",
        Duration::from_secs(30),
    )
    .await
    .expect("the created task is claimable");
    assert_eq!(claim.task, direct);
    // Its document as stored, its life begun with the claim.
    let read = store.get_notification("c1").await.unwrap().unwrap();
    assert_eq!(read.status, Status::Sending);
    assert!(read.life.sending_at_ms.is_some());
    assert_eq!(
        Notification {
            status: Status::Queued,
            life: Default::default(),
            ..read
        },
        note("l", "c1", 1)
    );
    assert_eq!(store.list_notifications("l", 10).await.unwrap().len(), 1);
    assert_eq!(
        store.counters("c1").await.unwrap(),
        BTreeMap::from([("targeted".to_owned(), 1)])
    );
    assert!(
        claim_next(
            store.as_ref(),
            Lane::Priority,
            "w2",
            Duration::from_secs(30)
        )
        .await
        .is_none(),
        "claimed once"
    );

    // A broadcast: tasks but no counters yet (they grow as shards are read).
    create_broadcast(store.as_ref(), "c2").await;
    assert!(store.counters("c2").await.unwrap().is_empty());
    assert_eq!(store.pending_tasks(Lane::Bulk).await.unwrap(), 1);
}

pub async fn ledger_leases_fence_and_lanes_are_separate(store: Arc<dyn Store>) {
    let lease = Duration::from_millis(300);
    let mut later = task("n1", "later", Lane::Bulk, TaskTarget::Shard(1));
    later.not_before_ms = aviso::store::now_ms() + 60_000;
    store
        .enqueue_tasks(&[
            task("n1", "0", Lane::Bulk, TaskTarget::Shard(0)),
            later,
            task_for("n2", "p", Lane::Priority, 7),
        ])
        .await
        .unwrap();
    assert_eq!(store.pending_tasks(Lane::Bulk).await.unwrap(), 2);
    assert_eq!(store.pending_tasks(Lane::Priority).await.unwrap(), 1);

    let p = claim_next(store.as_ref(), Lane::Priority, "w1", lease)
        .await
        .unwrap();
    assert_eq!(
        p.task.target,
        TaskTarget::Subscriptions(vec![SubscriptionId(7)])
    );
    assert!(
        claim_next(store.as_ref(), Lane::Priority, "w2", lease)
            .await
            .is_none()
    );
    // A batch's counters go with the task's completion.
    record(
        store.as_ref(),
        &p,
        counted(&[("sent", 1), ("delivered", 1)], TaskStep::Complete),
    )
    .await;
    assert_eq!(store.pending_tasks(Lane::Priority).await.unwrap(), 0);
    assert_eq!(store.counters("n2").await.unwrap()["delivered"], 1);
    // Recorded again (a crash cut the first record short of its answer): counted once.
    assert_lease_lost(
        store
            .record_batch(
                &p,
                counted(&[("sent", 1), ("delivered", 1)], TaskStep::Complete),
            )
            .await,
    );
    assert_eq!(store.counters("n2").await.unwrap()["delivered"], 1);

    let a = claim_next(store.as_ref(), Lane::Bulk, "w1", lease)
        .await
        .unwrap();
    assert_eq!(a.task.id, "n1:0");
    assert_eq!(a.previous_claims, 0);
    assert!(
        claim_next(store.as_ref(), Lane::Bulk, "w2", lease)
            .await
            .is_none(),
        "leased, and the other is not due"
    );
    let progress = Progress {
        cursor: ScanCursor(vec![1, 2, 3]),
        processed: 10,
        ..Progress::default()
    };
    record(store.as_ref(), &a, checkpoint(&progress, lease)).await;

    // The lease runs out: another worker takes over from the checkpoint; the old claim is fenced.
    outlive(lease).await;
    let b = claim_next(store.as_ref(), Lane::Bulk, "w2", lease)
        .await
        .unwrap();
    assert_eq!(b.task.id, "n1:0");
    assert_eq!(b.progress, progress);
    assert_eq!(b.previous_claims, 1);
    assert_lease_lost(store.record_batch(&a, checkpoint(&progress, lease)).await);
    // The fenced worker's last batch went out: its counters count, its checkpoint does not.
    let further = Progress {
        cursor: ScanCursor(vec![9]),
        processed: 20,
        ..Progress::default()
    };
    let step = checkpointed(&further, lease);
    assert_lease_lost(store.record_batch(&a, counted(&[("sent", 3)], step)).await);
    assert_eq!(store.counters("n1").await.unwrap()["sent"], 3);
    // The new claim repeats that batch (it resumes from the checkpoint): counted once.
    record(store.as_ref(), &b, counted(&[("sent", 3)], step)).await;
    assert_eq!(store.counters("n1").await.unwrap()["sent"], 3);
    // Its next batch reaches further: counted.
    let next = Progress {
        cursor: ScanCursor(vec![10]),
        processed: 30,
        ..Progress::default()
    };
    let step = checkpointed(&next, lease);
    record(store.as_ref(), &b, counted(&[("sent", 2)], step)).await;
    assert_eq!(store.counters("n1").await.unwrap()["sent"], 5);
    // A late record of an earlier batch by the fenced claim counts nothing more.
    let earlier = checkpointed(&further, lease);
    assert_lease_lost(
        store
            .record_batch(&a, counted(&[("sent", 3)], earlier))
            .await,
    );
    assert_eq!(store.counters("n1").await.unwrap()["sent"], 5);
    // The fenced claim's completion is fenced too, and its last batch counts (its messages went
    // out), through the task's end: once, however often it is recorded.
    for _ in 0..2 {
        assert_lease_lost(
            store
                .record_batch(&a, counted(&[("sent", 1)], TaskStep::Complete))
                .await,
        );
        assert_eq!(store.counters("n1").await.unwrap()["sent"], 6);
    }

    // Cancelling removes every task of the notification; the holder loses its lease.
    assert_eq!(store.cancel_tasks("n1").await.unwrap(), 2);
    assert_lease_lost(store.record_batch(&b, checkpoint(&progress, lease)).await);
    assert_eq!(store.pending_tasks(Lane::Bulk).await.unwrap(), 0);
    assert_eq!(store.cancel_tasks("n1").await.unwrap(), 0);
}

/// Issue 3's crash test: a worker stops checkpointing mid-shard; another takes the task over
/// after the lease and resumes from the checkpoint. Every subscription is handed out, and none
/// more than once beyond the one batch that was not checkpointed.
pub async fn a_dead_workers_task_is_resumed_from_its_checkpoint(store: Arc<dyn Store>) {
    let subs: Vec<_> = (0..8000).map(|n| subscription("t", n)).collect();
    for chunk in subs.chunks(1000) {
        store.insert_subscriptions(chunk).await.unwrap();
    }
    let shard = 3;
    let in_shard: HashSet<_> = subs
        .iter()
        .map(|s| s.id)
        .filter(|id| id.shard() == shard)
        .collect();
    assert!(in_shard.len() > 20, "{} in shard", in_shard.len());
    let lease = Duration::from_millis(300);
    let batch = 4;
    store
        .enqueue_tasks(&[Task {
            id: "crash:3".into(),
            app_id: "t".into(),
            notification_id: "crash".into(),
            lane: Lane::Bulk,
            target: TaskTarget::Shard(shard),
            not_before_ms: 0,
            phase: Phase::Whole,
        }])
        .await
        .unwrap();

    let mut handed_out: HashMap<SubscriptionId, usize> = HashMap::new();
    let mut unsaved_batch = 0;
    // Worker A: three checkpointed batches, then a fourth it hands out but dies before saving.
    let a = claim_next(store.as_ref(), Lane::Bulk, "worker-a", lease)
        .await
        .unwrap();
    let mut progress = a.progress.clone();
    for round in 0..4 {
        let scanned = store
            .scan_shard(ShardAt::new("t", shard, &progress.cursor), batch)
            .await
            .unwrap();
        for sub in &scanned.subscriptions {
            *handed_out.entry(sub.id).or_default() += 1;
        }
        if round == 3 {
            // Killed: no checkpoint for this batch. (A scan's batch size is a hint: Redis may
            // hand out a few more than asked, so the bound is this batch's real size.)
            unsaved_batch = scanned.subscriptions.len();
            break;
        }
        progress.cursor = scanned.next.clone().unwrap();
        progress.processed += scanned.subscriptions.len() as u64;
        record(store.as_ref(), &a, checkpoint(&progress, lease)).await;
    }

    // Worker B: after the lease runs out, resumes and finishes.
    assert!(
        claim_next(store.as_ref(), Lane::Bulk, "worker-b", lease)
            .await
            .is_none()
    );
    outlive(lease).await;
    let b = claim_next(store.as_ref(), Lane::Bulk, "worker-b", lease)
        .await
        .unwrap();
    assert_eq!(b.progress, progress);
    let mut resumed = b.progress.clone();
    loop {
        let scanned = store
            .scan_shard(ShardAt::new("t", shard, &resumed.cursor), batch)
            .await
            .unwrap();
        for sub in &scanned.subscriptions {
            *handed_out.entry(sub.id).or_default() += 1;
        }
        resumed.processed += scanned.subscriptions.len() as u64;
        match scanned.next {
            Some(next) => {
                resumed.cursor = next;
                record(store.as_ref(), &b, checkpoint(&resumed, lease)).await;
            }
            None => break,
        }
    }
    record(store.as_ref(), &b, BatchOutcome::step(TaskStep::Complete)).await;

    assert_eq!(
        handed_out.keys().copied().collect::<HashSet<_>>(),
        in_shard,
        "nobody missed"
    );
    let duplicates = handed_out.values().filter(|n| **n > 1).count();
    assert!(unsaved_batch > 0);
    assert!(
        duplicates <= unsaved_batch,
        "{duplicates} duplicates, more than the unsaved batch of {unsaved_batch}"
    );
    assert!(handed_out.values().all(|n| *n <= 2));
    assert_eq!(store.pending_tasks(Lane::Bulk).await.unwrap(), 0);
}

/// Links each of `subs` to `to` from a task of its own, spawned as the iterator is drawn.
fn links_at_once<'a>(
    store: &'a Arc<dyn Store>,
    to: ProfileRef<'static>,
    subs: &'a [Subscription],
) -> impl Iterator<Item = tokio::task::JoinHandle<Result<(), StoreError>>> + 'a {
    subs.iter().map(move |sub| {
        let store = store.clone();
        let id = sub.id;
        tokio::spawn(async move { store.link_subscription(to, id).await })
    })
}

/// Forty subscriptions of one person linked at once (a CRM integration's first sync): every
/// link is kept, on the profile and on each subscription.
pub async fn concurrent_links_to_one_profile_are_all_kept(store: Arc<dyn Store>) {
    let subs: Vec<_> = (0..40).map(|n| subscription("cl", n)).collect();
    store.insert_subscriptions(&subs).await.unwrap();
    let links = links_at_once(&store, ProfileRef::new("cl", "crm-ana"), &subs);
    for link in futures::future::join_all(links).await {
        link.unwrap().unwrap();
    }
    let profile = profile_of(store.as_ref(), ProfileRef::new("cl", "crm-ana")).await;
    let listed: HashSet<_> = profile.subscriptions.iter().copied().collect();
    assert_eq!(
        listed.len(),
        40,
        "the profile lists {} of 40 linked subscriptions",
        listed.len()
    );
    assert_eq!(profile.subscriptions.len(), 40, "listed once each");
    for sub in &subs {
        let stored = find_subscription(store.as_ref(), "cl", sub.id)
            .await
            .unwrap();
        assert_eq!(stored.external_id.as_deref(), Some("crm-ana"));
    }
}

/// Attribute updates of one profile from many requests at once: none is lost.
pub async fn concurrent_profile_updates_are_all_kept(store: Arc<dyn Store>) {
    let updates = (0..40).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut update = ProfileUpdate {
                external_id: "crm-bo".into(),
                ..Default::default()
            };
            update
                .attributes
                .insert(format!("a{n}"), Some(AttributeValue::Number(n as f64)));
            update.tags.insert(format!("t{n}"), Some("x".into()));
            store.update_profile("cu", &update).await
        })
    });
    for update in futures::future::join_all(updates).await {
        update.unwrap().unwrap();
    }
    let profile = profile_of(store.as_ref(), ProfileRef::new("cu", "crm-bo")).await;
    assert_eq!(
        (profile.attributes.len(), profile.tags.len()),
        (40, 40),
        "attributes and tags kept of 40 concurrent updates"
    );
}

/// The same endpoint subscribed from many requests at once (a page open in several tabs),
/// while it is linked to a profile: one record, counted once, the link and creation time kept.
pub async fn concurrent_upserts_of_one_endpoint_make_one_subscription(store: Arc<dyn Store>) {
    let first = subscription("cs", 1);
    store.upsert_subscription(&first).await.unwrap();
    link(store.as_ref(), ProfileRef::new("cs", "crm-cy"), first.id).await;
    let upserts = (0..30).map(|n| {
        let store = store.clone();
        let mut again = first.clone();
        again.created_at = 1_800_000_000 + n;
        again.last_seen = 1_800_000_000 + n;
        again.locale = format!("l{n}");
        tokio::spawn(async move { store.upsert_subscription(&again).await })
    });
    // Moved to another profile while the upserts run: only links change the link.
    let relink = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .link_subscription(ProfileRef::new("cs", "crm-cy2"), first.id)
                .await
        })
    };
    for upsert in futures::future::join_all(upserts).await {
        upsert.unwrap().unwrap();
    }
    relink.await.unwrap().unwrap();
    assert_eq!(store.count_subscriptions("cs").await.unwrap(), 1);
    let stored = find_subscription(store.as_ref(), "cs", first.id)
        .await
        .unwrap();
    assert_eq!(stored.created_at, first.created_at, "creation time kept");
    assert_eq!(stored.external_id.as_deref(), Some("crm-cy2"), "link kept");
    let profile = profile_of(store.as_ref(), ProfileRef::new("cs", "crm-cy2")).await;
    assert_eq!(profile.subscriptions, [first.id]);
    let old = store
        .get_profile(ProfileRef::new("cs", "crm-cy"))
        .await
        .unwrap();
    assert!(
        old.as_ref().is_none_or(|p| p.subscriptions.is_empty()),
        "{old:?}"
    );
}

/// GDPR erasure while the person's browsers are being linked: afterwards no subscription is
/// linked to a profile that does not list it, and every subscription linked before the erasure
/// began is gone.
pub async fn erase_while_linking_leaves_no_linked_subscription_behind(store: Arc<dyn Store>) {
    let before: Vec<_> = (0..20).map(|n| subscription("ce", n)).collect();
    let during: Vec<_> = (20..60).map(|n| subscription("ce", n)).collect();
    store.insert_subscriptions(&before).await.unwrap();
    store.insert_subscriptions(&during).await.unwrap();
    for sub in &before {
        link(store.as_ref(), ProfileRef::new("ce", "crm-di"), sub.id).await;
    }
    let links = links_at_once(&store, ProfileRef::new("ce", "crm-di"), &during);
    let erase = {
        let store = store.clone();
        tokio::spawn(async move { store.erase_profile(ProfileRef::new("ce", "crm-di")).await })
    };
    for link in futures::future::join_all(links).await {
        // A link may find its subscription already erased: that is an answer, not a fault.
        match link.unwrap() {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(other) => panic!("link failed: {other}"),
        }
    }
    erase.await.unwrap().unwrap();
    for sub in &before {
        assert_eq!(
            find_subscription(store.as_ref(), "ce", sub.id).await,
            None,
            "a subscription linked before the erasure survived it"
        );
    }
    let listed: HashSet<SubscriptionId> = store
        .get_profile(ProfileRef::new("ce", "crm-di"))
        .await
        .unwrap()
        .map(|p| p.subscriptions.into_iter().collect())
        .unwrap_or_default();
    let mut orphans = 0;
    for sub in &during {
        if let Some(stored) = find_subscription(store.as_ref(), "ce", sub.id).await
            && stored.external_id.as_deref() == Some("crm-di")
            && !listed.contains(&sub.id)
        {
            orphans += 1;
        }
    }
    assert_eq!(
        orphans, 0,
        "subscriptions linked to crm-di that its profile does not list"
    );
}

/// A batch's gone subscriptions (404/410) are deleted in its record, unlisted from their
/// profiles, and stay deleted even when the lease was lost meanwhile (the messages went out).
pub async fn a_batch_record_deletes_its_gone_subscriptions(store: Arc<dyn Store>) {
    let subs: Vec<_> = (0..4).map(|n| subscription("g", n)).collect();
    store.insert_subscriptions(&subs).await.unwrap();
    link(store.as_ref(), ProfileRef::new("g", "crm-go"), subs[0].id).await;
    link(store.as_ref(), ProfileRef::new("g", "crm-go"), subs[1].id).await;
    let linked = find_subscription(store.as_ref(), "g", subs[0].id)
        .await
        .unwrap();
    let lease = Duration::from_millis(200);
    store
        .enqueue_tasks(&[task("gn", "0", Lane::Bulk, TaskTarget::Shard(0))])
        .await
        .unwrap();
    let claim = claim_next(store.as_ref(), Lane::Bulk, "w", lease)
        .await
        .unwrap();
    let gone = [linked, subs[2].clone()];
    let progress = Progress::default();
    let step = checkpointed(&progress, lease);
    let outcome = BatchOutcome {
        counters: &[("sent", 2), ("expired", 2)],
        gone: &gone,
        ..BatchOutcome::step(step)
    };
    record(store.as_ref(), &claim, outcome).await;
    assert_eq!(
        find_subscription(store.as_ref(), "g", subs[0].id).await,
        None
    );
    assert_eq!(
        find_subscription(store.as_ref(), "g", subs[2].id).await,
        None
    );
    assert_eq!(store.count_subscriptions("g").await.unwrap(), 2);
    assert_eq!(
        profile_of(store.as_ref(), ProfileRef::new("g", "crm-go"))
            .await
            .subscriptions,
        [subs[1].id]
    );
    assert_eq!(store.counters("gn").await.unwrap()["expired"], 2);

    // A fenced claim's gone subscriptions are deleted too.
    outlive(lease).await;
    let _taken_over = claim_next(store.as_ref(), Lane::Bulk, "w2", lease)
        .await
        .unwrap();
    let late = [subs[3].clone()];
    let outcome = BatchOutcome {
        counters: &[("expired", 1)],
        gone: &late,
        ..BatchOutcome::step(TaskStep::Complete)
    };
    assert_lease_lost(store.record_batch(&claim, outcome).await);
    assert_eq!(
        find_subscription(store.as_ref(), "g", subs[3].id).await,
        None
    );
    assert_eq!(store.count_subscriptions("g").await.unwrap(), 1);
}

/// Records `counters` in series bucket `bucket` with `step`.
fn in_bucket<'a>(
    counters: &'a [(&'a str, i64)],
    bucket: u64,
    step: TaskStep<'a>,
) -> BatchOutcome<'a> {
    BatchOutcome {
        counters,
        series_bucket_ms: bucket,
        ..BatchOutcome::step(step)
    }
}

async fn status_of(store: &dyn Store, id: &str) -> Notification {
    store.get_notification(id).await.unwrap().unwrap()
}

/// `queued → sending → completed`: sending from the first claim, completed when the last task
/// (a slice enqueued on the way included) is counted through its end, once however often it
/// is recorded; a completed one is not cancelled; the series holds every batch's counters.
pub async fn a_notifications_life_follows_its_tasks_and_its_series_sums_to_its_counters(
    store: Arc<dyn Store>,
) {
    let lease = Duration::from_secs(30);
    let bulk = task("lf", "s0", Lane::Bulk, TaskTarget::Shard(0));
    let direct = task_for("lf", "p0", Lane::Priority, 7);
    create(
        store.as_ref(),
        &note("l", "lf", 1),
        &[bulk.clone(), direct.clone()],
        &[("targeted", 5)],
    )
    .await;
    let queued = status_of(store.as_ref(), "lf").await;
    assert_eq!(
        (queued.status, queued.life),
        (Status::Queued, Default::default())
    );
    assert_eq!(
        store.list_notifications("l", 10).await.unwrap()[0].status,
        Status::Queued
    );

    let first = claim_next(store.as_ref(), Lane::Bulk, "w", lease)
        .await
        .unwrap();
    let sending = status_of(store.as_ref(), "lf").await;
    assert_eq!(sending.status, Status::Sending);
    let sending_at = sending
        .life
        .sending_at_ms
        .expect("sending from the first claim");
    assert_eq!(
        store.list_notifications("l", 10).await.unwrap()[0].life,
        sending.life
    );

    let progress = Progress {
        processed: 2,
        ..Progress::default()
    };
    let step = checkpointed(&progress, lease);
    let counts = [("sent", 2), ("delivered", 1), ("expired", 1)];
    record(store.as_ref(), &first, in_bucket(&counts, 60_000, step)).await;
    // A slice deferred on the way, enqueued twice (the batch that deferred it was redone):
    // registered once.
    let slice = task_for("lf", "l99.s0.x", Lane::Bulk, 9);
    store
        .enqueue_tasks(std::slice::from_ref(&slice))
        .await
        .unwrap();
    store
        .enqueue_tasks(std::slice::from_ref(&slice))
        .await
        .unwrap();
    let counts = [("sent", 1), ("delivered", 1)];
    record(
        store.as_ref(),
        &first,
        in_bucket(&counts, 120_000, TaskStep::Complete),
    )
    .await;
    // The same completion again (a stale claim's late record): counted and closed once.
    assert_lease_lost(
        store
            .record_batch(&first, in_bucket(&counts, 120_000, TaskStep::Complete))
            .await,
    );
    assert_eq!(
        status_of(store.as_ref(), "lf").await.status,
        Status::Sending
    );

    let claim = claim_next(store.as_ref(), Lane::Priority, "w", lease)
        .await
        .unwrap();
    assert_eq!(claim.task, direct);
    let counts = [("missing", 1)];
    record(
        store.as_ref(),
        &claim,
        in_bucket(&counts, 120_000, TaskStep::Complete),
    )
    .await;
    assert_eq!(
        status_of(store.as_ref(), "lf").await.status,
        Status::Sending,
        "the slice is still open"
    );
    // The slice's claim is taken over: the stale claim's completion counts and closes it, the
    // new one's neither (else the notification would close twice).
    let short = Duration::from_millis(300);
    let stale = claim_next(store.as_ref(), Lane::Bulk, "w1", short)
        .await
        .unwrap();
    assert_eq!(stale.task, slice);
    outlive(short).await;
    let current = claim_next(store.as_ref(), Lane::Bulk, "w2", lease)
        .await
        .unwrap();
    let counts = [("capped", 1)];
    assert_lease_lost(
        store
            .record_batch(&stale, in_bucket(&counts, 180_000, TaskStep::Complete))
            .await,
    );
    let completed = status_of(store.as_ref(), "lf").await;
    assert_eq!(completed.status, Status::Completed);
    let completed_at = completed.life.completed_at_ms.unwrap();
    assert!(completed_at >= sending_at);
    assert_eq!(completed.life.sending_at_ms, Some(sending_at));
    record(
        store.as_ref(),
        &current,
        in_bucket(&counts, 180_000, TaskStep::Complete),
    )
    .await;
    assert_eq!(status_of(store.as_ref(), "lf").await.life, completed.life);

    let counters = store.counters("lf").await.unwrap();
    let expected: BTreeMap<String, i64> = [
        ("targeted", 5),
        ("sent", 3),
        ("delivered", 2),
        ("expired", 1),
        ("missing", 1),
        ("capped", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(counters, expected);
    let accounting = aviso::notify::life::Accounting::of(&counters);
    assert_eq!((accounting.settled, accounting.outstanding), (5, 0));
    let series = store.series("lf").await.unwrap();
    let by = |pairs: &[(&str, i64)]| -> BTreeMap<String, i64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };
    assert_eq!(
        series,
        BTreeMap::from([
            (60_000, by(&[("sent", 2), ("delivered", 1), ("expired", 1)])),
            (
                120_000,
                by(&[("sent", 1), ("delivered", 1), ("missing", 1)])
            ),
            (180_000, by(&[("capped", 1)])),
        ])
    );
    let mut summed: BTreeMap<String, i64> = BTreeMap::new();
    for counts in series.values() {
        for (counter, n) in counts {
            *summed.entry(counter.clone()).or_default() += n;
        }
    }
    summed.insert("targeted".into(), 5);
    assert_eq!(summed, counters, "the series sums to the counters");

    // Completed: a cancel changes nothing.
    assert_eq!(
        store.cancel_notification("lf").await.unwrap(),
        CancelOutcome::Completed(completed_at)
    );
    assert_eq!(
        status_of(store.as_ref(), "lf").await.life.cancelled_at_ms,
        None
    );

    // Named recipients of which none exists: no task, completed at once.
    create(
        store.as_ref(),
        &note("l", "none", 1),
        &[],
        &[("targeted", 0)],
    )
    .await;
    let none = status_of(store.as_ref(), "none").await;
    assert_eq!(none.status, Status::Completed);
    assert!(none.life.completed_at_ms.is_some() && none.life.sending_at_ms.is_none());
    assert!(store.series("none").await.unwrap().is_empty());
}

/// A cancel is atomic with the last task's completion: whichever comes first wins, the other
/// changes nothing, however they interleave. A cancelled notification stays cancelled when a
/// task it still had completes, and a second cancel answers the first's time.
pub async fn a_cancel_and_the_last_completion_are_one_before_the_other(store: Arc<dyn Store>) {
    let lease = Duration::from_secs(30);
    create_broadcast(store.as_ref(), "lc").await;
    let claim = claim_next(store.as_ref(), Lane::Bulk, "w", lease)
        .await
        .unwrap();
    let CancelOutcome::Cancelled(at) = store.cancel_notification("lc").await.unwrap() else {
        panic!("a sending notification is cancelled");
    };
    assert_eq!(
        store.cancel_notification("lc").await.unwrap(),
        CancelOutcome::AlreadyCancelled(at)
    );
    record(
        store.as_ref(),
        &claim,
        in_bucket(&[("sent", 1)], 0, TaskStep::Complete),
    )
    .await;
    let cancelled = status_of(store.as_ref(), "lc").await;
    assert_eq!(cancelled.status, Status::Cancelled);
    assert_eq!(
        (
            cancelled.life.cancelled_at_ms,
            cancelled.life.completed_at_ms
        ),
        (Some(at), None)
    );

    for round in 0..20 {
        let id = format!("race{round}");
        create(
            store.as_ref(),
            &note("l", &id, 1),
            &[task_for(&id, "p", Lane::Priority, 1)],
            &[],
        )
        .await;
        let claim = claim_next(store.as_ref(), Lane::Priority, "w", lease)
            .await
            .unwrap();
        let (cancel, complete) = tokio::join!(
            store.cancel_notification(&id),
            store.record_batch(&claim, in_bucket(&[("sent", 1)], 0, TaskStep::Complete))
        );
        complete.unwrap();
        let life = status_of(store.as_ref(), &id).await.life;
        match cancel.unwrap() {
            CancelOutcome::Cancelled(at) => {
                assert_eq!(
                    (life.cancelled_at_ms, life.completed_at_ms),
                    (Some(at), None)
                )
            }
            CancelOutcome::Completed(at) => {
                assert_eq!(
                    (life.cancelled_at_ms, life.completed_at_ms),
                    (None, Some(at))
                )
            }
            other => panic!("{other:?}"),
        }
    }
}

/// An idempotency key is released for a retry, or kept for its window; only its holder can
/// do either.
pub async fn idempotency_keys_are_kept_or_released_by_their_holder(store: Arc<dyn Store>) {
    let short = Duration::from_secs(30);
    assert_eq!(
        claim(&*store, key_claim("ik", "k", "n1"), short).await,
        None
    );
    // Someone else cannot release it.
    settle(&*store, key_claim("ik", "k", "n2"), Settle::Release).await;
    assert_eq!(
        claim(&*store, key_claim("ik", "k", "n2"), short).await,
        Some("n1".into())
    );
    settle(&*store, key_claim("ik", "k", "n1"), Settle::Release).await;
    assert_eq!(
        claim(&*store, key_claim("ik", "k", "n3"), short).await,
        None
    );
    // Kept: it outlives its first, short claim.
    let brief = Duration::from_millis(200);
    assert_eq!(
        claim(&*store, key_claim("ik", "k2", "n4"), brief).await,
        None
    );
    let keep = Settle::Keep(Duration::from_secs(60));
    settle(&*store, key_claim("ik", "k2", "n4"), keep).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        claim(&*store, key_claim("ik", "k2", "n5"), short).await,
        Some("n4".into())
    );
}

/// Issue 11: a create whose store write failed can be retried with the same idempotency key,
/// and creates the notification (the key was not burned); a second retry answers that one.
pub async fn an_idempotent_create_can_be_retried_after_a_failed_write(store: Arc<dyn Store>) {
    use aviso::notify::service::{Created, NotificationService};
    let faulty = support::faulty_store::FaultyStore::new(store.clone());
    let service = NotificationService::new(&faulty, None);
    let request = || -> aviso::notify::NotificationRequest {
        serde_json::from_value(serde_json::json!({
            "audience": "all",
            "content": {"title": "Sale"},
            "idempotency_key": "campaign-7"
        }))
        .unwrap()
    };
    let app = app("ir");
    faulty.fail_next_creates(1);
    let failed = service.create(&app, request()).await;
    assert!(failed.is_err(), "the injected fault reaches the caller");
    let retried = service.create(&app, request()).await.unwrap();
    let Created::New { notification, .. } = retried else {
        panic!("the retry found the key taken: {retried:?}");
    };
    assert!(
        store
            .get_notification(&notification.id)
            .await
            .unwrap()
            .is_some()
    );
    let again = service.create(&app, request()).await.unwrap();
    let Created::Earlier(earlier) = again else {
        panic!("a second retry created anew: {again:?}");
    };
    assert_eq!(earlier.id, notification.id);
    assert_eq!(store.list_notifications("ir", 10).await.unwrap().len(), 1);
}

fn pending(app_id: &str, trigger: &str, person: &str, key: &str, due_ms: u64) -> PendingSend {
    PendingSend {
        app_id: app_id.into(),
        trigger: trigger.into(),
        external_id: person.into(),
        key: key.into(),
        event_at_ms: due_ms.saturating_sub(1000),
        due_ms,
        properties: serde_json::Map::new(),
    }
}

/// Trigger rules, and pending sends: scheduled once per (trigger, person, key) unless re-armed,
/// cancelled by key, listed per person, never claimable early, claimed by many claimers at once
/// exactly once, fenced after a re-arm, taken over after a lease.
pub async fn pending_sends_are_claimed_once_and_cancelled_by_key(store: Arc<dyn Store>) {
    let rule: Trigger = serde_json::from_value::<TriggerRequest>(serde_json::json!({
        "event": "cart_abandoned", "delay_secs": 60, "cancel_on": ["purchase"],
        "content": {"title": "Your cart"}
    }))
    .unwrap()
    .into_trigger("tr", "cart", 1)
    .unwrap();
    store.put_trigger(&rule).await.unwrap();
    assert_eq!(
        store
            .get_trigger(TriggerRef::new("tr", "cart"))
            .await
            .unwrap(),
        Some(rule.clone())
    );
    assert_eq!(store.list_triggers("tr").await.unwrap(), [rule]);
    assert_eq!(store.list_triggers("other").await.unwrap(), []);

    let now = aviso::store::now_ms();
    let later = pending("tr", "cart", "ana", "c1", now + 60_000);
    assert_eq!(
        store.schedule_send(&later, Repeat::Ignore).await.unwrap(),
        Scheduled::New
    );
    assert_eq!(
        store.schedule_send(&later, Repeat::Ignore).await.unwrap(),
        Scheduled::AlreadyPending
    );
    let other_cart = pending("tr", "cart", "ana", "c2", now + 30_000);
    store
        .schedule_send(&other_cart, Repeat::Ignore)
        .await
        .unwrap();
    let listed = store
        .pending_sends_of(ProfileRef::new("tr", "ana"))
        .await
        .unwrap();
    assert_eq!(listed, [other_cart.clone(), later.clone()], "soonest first");
    assert!(
        store
            .claim_due_sends(held_by("w", Duration::from_secs(30)), 10)
            .await
            .unwrap()
            .is_empty(),
        "none is due"
    );
    assert!(
        store
            .next_due_ms()
            .await
            .unwrap()
            .is_some_and(|due| due <= now + 30_000)
    );
    let c2 = SendRef::new(TriggerRef::new("tr", "cart"), "ana", "c2");
    assert!(store.cancel_send(c2).await.unwrap());
    assert!(!store.cancel_send(c2).await.unwrap());
    assert_eq!(
        store
            .pending_sends_of(ProfileRef::new("tr", "ana"))
            .await
            .unwrap(),
        [later]
    );

    // 200 due sends, four claimers at once: each claimed exactly once.
    for n in 0..200 {
        let send = pending("tr", "cart", &format!("p{n}"), "", now.saturating_sub(10));
        store.schedule_send(&send, Repeat::Ignore).await.unwrap();
    }
    let claimers = (0..4).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_due_sends(held_by(&format!("w{w}"), Duration::from_secs(30)), 7)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
                for claim in batch {
                    store.finish_send(&claim).await.unwrap();
                    mine.push(claim.send.external_id);
                }
            }
        })
    });
    let mut claimed: Vec<String> = Vec::new();
    for claimer in futures::future::join_all(claimers).await {
        claimed.extend(claimer.unwrap());
    }
    claimed.sort();
    let unique: HashSet<_> = claimed.iter().collect();
    assert_eq!(
        (claimed.len(), unique.len()),
        (200, 200),
        "claimed exactly once each"
    );

    // A re-armed send fences the claim of its first event; a lost lease lets another take it.
    let lease = Duration::from_millis(200);
    let due = pending("tr", "cart", "bo", "k", now.saturating_sub(10));
    store.schedule_send(&due, Repeat::Ignore).await.unwrap();
    let first = store
        .claim_due_sends(held_by("w1", lease), 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let mut again = due.clone();
    again.event_at_ms += 1;
    assert_eq!(
        store.schedule_send(&again, Repeat::Rearm).await.unwrap(),
        Scheduled::Rearmed
    );
    assert_lease_lost(store.finish_send(&first[0]).await);
    let rearmed = store
        .claim_due_sends(held_by("w2", lease), 10)
        .await
        .unwrap();
    assert_eq!(rearmed.len(), 1);
    assert_eq!(rearmed[0].send, again);
    outlive(lease).await;
    let taken_over = store
        .claim_due_sends(held_by("w3", lease), 10)
        .await
        .unwrap();
    assert_eq!(taken_over.len(), 1, "claimable again after its lease");
    assert_lease_lost(store.finish_send(&rearmed[0]).await);
    store.finish_send(&taken_over[0]).await.unwrap();
    assert!(
        store
            .pending_sends_of(ProfileRef::new("tr", "bo"))
            .await
            .unwrap()
            .is_empty()
    );

    store
        .add_trigger_counters(
            TriggerRef::new("tr", "cart"),
            &[("matched", 2), ("sent", 1)],
        )
        .await
        .unwrap();
    store
        .add_trigger_counters(TriggerRef::new("tr", "cart"), &[("sent", 1)])
        .await
        .unwrap();
    assert_eq!(
        store
            .trigger_counters(TriggerRef::new("tr", "cart"))
            .await
            .unwrap(),
        BTreeMap::from([("matched".to_owned(), 2), ("sent".to_owned(), 2)])
    );
    assert!(
        store
            .delete_trigger(TriggerRef::new("tr", "cart"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_trigger(TriggerRef::new("tr", "cart"))
            .await
            .unwrap()
    );
}

async fn policies_and_caps_count_each_notification_once_per_holder(store: Arc<dyn Store>) {
    use aviso::policy::Category;
    use aviso::policy::model::Window;
    use aviso::store::{CapCheck, CapHolder, CapScope};
    assert_eq!(store.get_policy("pc").await.unwrap(), None);
    let policy: aviso::policy::Policy = serde_json::from_value(serde_json::json!({
        "caps": [{"max": 2, "per": "1d"}],
        "quiet_hours": {"start": "21:00", "end": "08:00"},
    }))
    .unwrap();
    store.put_policy("pc", &policy).await.unwrap();
    assert_eq!(store.get_policy("pc").await.unwrap(), Some(policy));
    assert_eq!(store.get_policy("other").await.unwrap(), None);

    let marketing = Category::default();
    let transactional = Category::parse("c", "transactional").unwrap();
    let windows = [Window {
        max: 2,
        per_ms: 86_400_000,
    }];
    let holders = [
        CapHolder::Profile("ann".into()),
        CapHolder::Subscription(SubscriptionId(7)),
        CapHolder::Profile("bob".into()),
    ];
    let day = 86_400_000;
    let now = 1_000 * day;
    let check = |category, notification_id, now_ms| CapCheck {
        scope: CapScope::Policy,
        app_id: "pc",
        category,
        notification_id,
        windows: &windows,
        now_ms,
    };
    let take = |category, id, at, holders: &[CapHolder]| {
        let store = store.clone();
        let holders = holders.to_vec();
        async move {
            store
                .take_caps(check(category, id, at), &holders)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        take(&marketing, "n1", now, &holders[..2]).await,
        [true, true]
    );
    // Asked again for the same notification (a redone batch, a second browser): allowed,
    // not counted twice.
    assert_eq!(
        take(&marketing, "n1", now + 1, &holders[..2]).await,
        [true, true]
    );
    assert_eq!(
        take(&marketing, "n2", now + 2, &holders).await,
        [true, true, true]
    );
    assert_eq!(
        take(&marketing, "n3", now + 3, &holders).await,
        [false, false, true]
    );
    assert_eq!(
        take(&marketing, "n4", now + 4, &holders).await,
        [false, false, false]
    );
    // Another category has counts of its own.
    assert_eq!(
        take(&transactional, "t1", now + 5, &holders[..1]).await,
        [true]
    );
    // Another app too.
    let other = CapCheck {
        app_id: "pc2",
        ..check(&marketing, "n3", now + 6)
    };
    assert_eq!(store.take_caps(other, &holders[..1]).await.unwrap(), [true]);
    // The window slides: a day after n1, one send is free again; after n2 too, two.
    assert_eq!(
        take(&marketing, "n5", now + day + 1, &holders[..1]).await,
        [true]
    );
    assert_eq!(
        take(&marketing, "n6", now + day + 1, &holders[..1]).await,
        [false]
    );
    assert_eq!(
        take(&marketing, "n7", now + 2 * day + 10, &holders[..1]).await,
        [true]
    );
}

/// A trigger's own cap (one a week) keeps its counts apart from the policy's (two a day): the
/// policy's checks, pruning by their longest window, never forget the trigger's count, and
/// the policy's counts never fill the trigger's cap; two triggers are apart from each other.
async fn a_triggers_cap_keeps_counts_apart_from_the_policys(store: Arc<dyn Store>) {
    use aviso::policy::Category;
    use aviso::policy::model::Window;
    use aviso::store::{CapCheck, CapHolder, CapScope};
    let day = 86_400_000;
    let now = 1_000 * day;
    let category = Category::default();
    let policy_windows = [Window {
        max: 2,
        per_ms: day,
    }];
    let week = [Window {
        max: 1,
        per_ms: 7 * day,
    }];
    let ann = [
        CapHolder::Profile("ann".into()),
        CapHolder::Subscription(SubscriptionId(9)),
    ];
    let take = |scope, windows, id: &'static str, at: u64| {
        let (store, category, ann) = (store.clone(), category.clone(), ann.clone());
        async move {
            let check = CapCheck {
                scope,
                app_id: "tc",
                category: &category,
                notification_id: id,
                windows,
                now_ms: at,
            };
            store.take_caps(check, &ann).await.unwrap()
        }
    };
    let cart = CapScope::Trigger("cart");
    let policy = CapScope::Policy;
    assert_eq!(take(cart, &week, "s1", now).await, [true, true]);
    // The same pending send asked again (a redone claim): allowed, not counted twice.
    assert_eq!(take(cart, &week, "s1", now + 1).await, [true, true]);
    assert_eq!(take(cart, &week, "s2", now + 2).await, [false, false]);
    // The policy's caps still have room, and are counted on their own.
    assert_eq!(
        take(policy, &policy_windows, "n1", now + 3).await,
        [true, true]
    );
    // Two days later the policy's check prunes what is older than a day from its own
    // counts; the trigger's count of s1 is still there.
    assert_eq!(
        take(policy, &policy_windows, "n2", now + 2 * day).await,
        [true, true]
    );
    assert_eq!(
        take(cart, &week, "s3", now + 2 * day + 1).await,
        [false, false]
    );
    // Another trigger has counts of its own, even with a name that looks like a key.
    let other = CapScope::Trigger("cart:p:ann");
    assert_eq!(
        take(other, &week, "s4", now + 2 * day + 2).await,
        [true, true]
    );
    // A week after s1 the trigger's cap has room again.
    assert_eq!(
        take(cart, &week, "s5", now + 7 * day + 1).await,
        [true, true]
    );
}

async fn concurrent_cap_checks_never_pass_the_cap(store: Arc<dyn Store>) {
    use aviso::policy::Category;
    use aviso::policy::model::Window;
    use aviso::store::{CapCheck, CapHolder, CapScope};
    let windows = [Window {
        max: 3,
        per_ms: 3_600_000,
    }];
    let holders: Vec<CapHolder> = (0..40)
        .map(|i| {
            if i % 2 == 0 {
                CapHolder::Profile(format!("p{i}"))
            } else {
                CapHolder::Subscription(SubscriptionId(i))
            }
        })
        .collect();
    let category = Category::default();
    let runs = (0..12).map(|n| {
        let (store, holders, category) = (store.clone(), holders.clone(), category.clone());
        tokio::spawn(async move {
            let id = format!("n{n}");
            let check = CapCheck {
                scope: CapScope::Policy,
                app_id: "cc",
                category: &category,
                notification_id: &id,
                windows: &windows,
                now_ms: 10_000_000,
            };
            store.take_caps(check, &holders).await.unwrap()
        })
    });
    let answers: Vec<Vec<bool>> = futures::future::try_join_all(runs).await.unwrap();
    for i in 0..holders.len() {
        let allowed = answers.iter().filter(|a| a[i]).count();
        assert_eq!(allowed, 3, "holder {i}");
    }
}

async fn token_buckets_grant_the_rate_and_say_when_to_come_back(store: Arc<dyn Store>) {
    // 60,000 a minute: a full bucket holds a twentieth of a second's worth.
    let first = store
        .take_tokens(Bucket::new("tb", "n1", 60_000), 1_500)
        .await
        .unwrap();
    assert_eq!(first.granted, 50, "{first:?}");
    // One a minute: one token, then a wait of up to a minute.
    let one = store
        .take_tokens(Bucket::new("tb", "n2", 1), 5)
        .await
        .unwrap();
    assert_eq!(one.granted, 1);
    let none = store
        .take_tokens(Bucket::new("tb", "n2", 1), 5)
        .await
        .unwrap();
    assert_eq!(none.granted, 0);
    assert!((59_000..=60_000).contains(&none.retry_after_ms), "{none:?}");
    // Concurrent takers share one bucket: 20 of 5 each from a bucket of 10 (12,000 a minute,
    // 200 a second) get 10 between them plus at most the refill while they run (bounded by the
    // time they took, measured, so that a slow machine cannot fail it), never the 100 they
    // asked for.
    let started = std::time::Instant::now();
    let takes = (0..20).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .take_tokens(Bucket::new("tb", "n3", 12_000), 5)
                .await
                .unwrap()
                .granted
        })
    });
    let granted: u32 = futures::future::try_join_all(takes)
        .await
        .unwrap()
        .iter()
        .sum();
    let refill = (200.0 * started.elapsed().as_secs_f64()).ceil() as u32;
    assert!(
        (10..=10 + refill + 1).contains(&granted),
        "{granted} granted; 10 in the bucket, {refill} refilled at most"
    );
    assert!(granted < 100, "{granted}: the bucket did not hold");
}

fn webhook(app_id: &str, id: &str) -> Webhook {
    Webhook {
        id: id.into(),
        app_id: app_id.into(),
        url: format!("https://crm.example/{id}"),
        events: Vec::new(),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        description: None,
        created_at_ms: 1,
    }
}

fn entry(n: usize) -> OutboxEntry {
    OutboxEntry::new(
        EventType::NotificationClicked,
        n as u64,
        serde_json::json!({ "n": n }),
    )
    .unwrap()
}

/// With no webhook, an event appended to the app's outbox is not kept: a read of up to
/// `limit` from the start finds nothing.
async fn nothing_kept(store: &dyn Store, app_id: &str, entry: OutboxEntry, limit: usize) {
    store.append_webhook_events(app_id, &[entry]).await.unwrap();
    assert!(
        store
            .read_webhook_events(app_id, 0, limit)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn webhook_outboxes_are_ordered_leased_and_trimmed(store: Arc<dyn Store>) {
    let (wh_1, wh_2) = (WebhookRef::new("wa", "wh_1"), WebhookRef::new("wa", "wh_2"));
    // No webhook: nothing is kept.
    assert!(!store.has_webhooks("wa").await.unwrap());
    nothing_kept(&*store, "wa", entry(0), 10).await;
    assert_eq!(
        lease_hook(store.as_ref(), wh_1, "w1", Duration::from_secs(5)).await,
        None
    );

    store.put_webhook(&webhook("wa", "wh_1")).await.unwrap();
    store.put_webhook(&webhook("wb", "wh_other")).await.unwrap();
    assert_eq!(
        store.list_webhooks("wa").await.unwrap(),
        [webhook("wa", "wh_1")]
    );
    assert!(store.has_webhooks("wa").await.unwrap());
    assert!(store.has_webhooks("wb").await.unwrap());
    assert!(!store.has_webhooks("wc_none").await.unwrap());
    let first: Vec<OutboxEntry> = (1..=5).map(entry).collect();
    store.append_webhook_events("wa", &first).await.unwrap();
    let read = store.read_webhook_events("wa", 0, 10).await.unwrap();
    assert_eq!(
        read.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        read.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
        first
    );
    assert_eq!(store.read_webhook_events("wa", 3, 1).await.unwrap()[0].0, 4);
    assert!(
        store
            .read_webhook_events("wb", 0, 10)
            .await
            .unwrap()
            .is_empty(),
        "apps apart"
    );

    // One worker at a time; the lease fences saves; it can be taken over once it runs out.
    let lease = Duration::from_millis(300);
    let mut state = lease_hook(store.as_ref(), wh_1, "w1", lease).await.unwrap();
    assert_eq!(state, WebhookState::default());
    assert_eq!(lease_hook(store.as_ref(), wh_1, "w2", lease).await, None);
    assert!(
        lease_hook(store.as_ref(), wh_1, "w1", lease)
            .await
            .is_some(),
        "renewed"
    );
    state.passed(2);
    store
        .save_webhook_state(wh_1, StateSave::new("w1", &state, &[]))
        .await
        .unwrap();
    assert_lease_lost(
        store
            .save_webhook_state(wh_1, StateSave::new("w2", &state, &[]))
            .await,
    );
    // Passed by the only webhook: gone from the outbox.
    assert_eq!(
        store.read_webhook_events("wa", 0, 10).await.unwrap()[0].0,
        3
    );
    outlive(lease).await;
    let mut taken = lease_hook(store.as_ref(), wh_1, "w2", lease).await.unwrap();
    assert_eq!(taken.cursor, 2, "resumes from the saved cursor");
    assert_lease_lost(
        store
            .save_webhook_state(wh_1, StateSave::new("w1", &state, &[]))
            .await,
    );

    // A second webhook starts at the end, and holds back the trim of what it has not passed.
    store.put_webhook(&webhook("wa", "wh_2")).await.unwrap();
    assert_eq!(store.webhook_state(wh_2).await.unwrap().unwrap().cursor, 5);
    store
        .append_webhook_events("wa", &[entry(6), entry(7)])
        .await
        .unwrap();
    taken.passed(7);
    taken.failing_since_ms = Some(9);
    let dead = DeadLetter {
        webhook_id: "wh_1".into(),
        entry: entry(3),
        attempts: 4,
        first_failure_ms: 1,
        dead_at_ms: 2,
        last_error: "answered 500".into(),
    };
    store
        .save_webhook_state(
            wh_1,
            StateSave::new("w2", &taken, std::slice::from_ref(&dead)),
        )
        .await
        .unwrap();
    assert_eq!(store.webhook_state(wh_1).await.unwrap().unwrap(), taken);
    assert_eq!(store.dead_letters(wh_1, 10).await.unwrap(), [dead]);
    let left = store.read_webhook_events("wa", 0, 10).await.unwrap();
    assert_eq!(left.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [6, 7]);

    // Deleting the webhook that held the trim back lets it go.
    assert!(store.delete_webhook(wh_2).await.unwrap());
    assert!(!store.delete_webhook(wh_2).await.unwrap());
    assert!(
        store
            .read_webhook_events("wa", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.delete_webhook(wh_1).await.unwrap());
    assert!(store.dead_letters(wh_1, 10).await.unwrap().is_empty());
    assert!(store.list_webhooks("wa").await.unwrap().is_empty());
    assert!(!store.has_webhooks("wa").await.unwrap());
    assert!(store.has_webhooks("wb").await.unwrap());
    nothing_kept(&*store, "wa", entry(8), 100).await;
}

async fn concurrent_webhook_appends_are_numbered_without_gaps(store: Arc<dyn Store>) {
    store.put_webhook(&webhook("wc", "wh_1")).await.unwrap();
    let appends = (0..20).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let entries: Vec<OutboxEntry> = (0..10).map(|j| entry(i * 10 + j)).collect();
            store.append_webhook_events("wc", &entries).await.unwrap();
        })
    });
    for append in appends.collect::<Vec<_>>() {
        append.await.unwrap();
    }
    let read = store.read_webhook_events("wc", 0, 1000).await.unwrap();
    assert_eq!(
        read.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        (1..=200).collect::<Vec<u64>>()
    );
    let mut seen: Vec<u64> = read
        .iter()
        .map(|(_, e)| e.data["n"].as_u64().unwrap())
        .collect();
    // Each append's entries stay together and in order.
    for chunk in seen.chunks(10) {
        assert!(
            chunk.windows(2).all(|w| w[1] == w[0] + 1) && chunk[0] % 10 == 0,
            "{chunk:?}"
        );
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..200).collect::<Vec<u64>>());
    // Two workers racing for one lease: one wins.
    let races = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            lease_hook(
                store.as_ref(),
                WebhookRef::new("wc", "wh_1"),
                &format!("w{i}"),
                Duration::from_secs(30),
            )
            .await
            .is_some()
        })
    });
    let mut winners = 0;
    for race in races.collect::<Vec<_>>() {
        winners += usize::from(race.await.unwrap());
    }
    assert_eq!(winners, 1);
}

pub async fn a_renewal_moves_tags_link_and_activity_and_the_old_one_goes(store: Arc<dyn Store>) {
    let mut old = subscription("rn", 1);
    old.tags.insert("plan".into(), "pro".into());
    old.locale = "pt-BR".into();
    old.timezone = "Europe/Lisbon".into();
    store.upsert_subscription(&old).await.unwrap();
    link(store.as_ref(), ProfileRef::new("rn", "ana"), old.id).await;
    store
        .record_receipt("rn", old.id, 1_700_000_500)
        .await
        .unwrap();
    let other = subscription("rn", 3);
    store.upsert_subscription(&other).await.unwrap();
    link(store.as_ref(), ProfileRef::new("rn", "ana"), other.id).await;

    // The browser's new subscription: another endpoint, new keys, nothing else.
    let mut new = subscription("rn", 2);
    new.tags.insert("source".into(), "renewal".into());
    assert_eq!(
        replace(store.as_ref(), old.id, &[7; 16], &new).await,
        Replaced::Refused(Refused::WrongAuth),
        "a stranger cannot move it"
    );
    assert!(
        find_subscription(store.as_ref(), "rn", new.id)
            .await
            .is_none()
    );
    assert_eq!(
        replace(store.as_ref(), old.id, &old.auth, &new).await,
        Replaced::Moved { created: true }
    );
    assert_eq!(find_subscription(store.as_ref(), "rn", old.id).await, None);
    let renewed = find_subscription(store.as_ref(), "rn", new.id)
        .await
        .unwrap();
    assert_eq!(renewed.auth, new.auth);
    assert_eq!(renewed.p256dh, new.p256dh);
    assert_eq!(renewed.external_id.as_deref(), Some("ana"));
    assert_eq!(renewed.tags["plan"], "pro");
    assert_eq!(renewed.tags["source"], "renewal");
    assert_eq!(renewed.locale, "pt-BR");
    assert_eq!(renewed.timezone, "Europe/Lisbon");
    assert_eq!(renewed.created_at, old.created_at);
    assert_eq!(renewed.activity.receipt_at, 1_700_000_500);
    let profile = profile_of(store.as_ref(), ProfileRef::new("rn", "ana")).await;
    let mut listed = profile.subscriptions.clone();
    listed.sort();
    let mut expected = vec![other.id, new.id];
    expected.sort();
    assert_eq!(
        listed, expected,
        "the profile lists the new one, not the old one"
    );
    assert_eq!(store.count_subscriptions("rn").await.unwrap(), 2);

    // Again (the worker retried): the old one is gone, nothing is written.
    assert_eq!(
        replace(store.as_ref(), old.id, &old.auth, &new).await,
        Replaced::OldNotFound
    );
}

pub async fn concurrent_renewals_and_erasures_leave_no_orphan(store: Arc<dyn Store>) {
    for round in 0..8usize {
        let app_id = format!("rc{round}");
        let old = subscription(&app_id, 1);
        store.upsert_subscription(&old).await.unwrap();
        link(store.as_ref(), ProfileRef::new(&app_id, "bo"), old.id).await;
        let new = subscription(&app_id, 2);
        // Several renewals of the same subscription at once (the worker and a retry), and an
        // erasure of the person racing them.
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (store, new, auth) = (store.clone(), new.clone(), old.auth);
            tasks.push(tokio::spawn(async move {
                store
                    .replace_subscription(Replacing::new(old.id, &auth), &new)
                    .await
                    .map(|_| 0)
            }));
        }
        if round % 2 == 0 {
            let (store, app_id) = (store.clone(), app_id.clone());
            tasks.push(tokio::spawn(async move {
                store.erase_profile(ProfileRef::new(&app_id, "bo")).await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(
            find_subscription(store.as_ref(), &app_id, old.id).await,
            None
        );
        let listed = store
            .get_profile(ProfileRef::new(&app_id, "bo"))
            .await
            .unwrap()
            .map(|p| p.subscriptions)
            .unwrap_or_default();
        if let Some(renewed) = find_subscription(store.as_ref(), &app_id, new.id).await {
            if renewed.external_id.as_deref() == Some("bo") {
                assert_eq!(
                    listed,
                    [new.id],
                    "round {round}: a linked subscription is listed, once"
                );
            }
        } else {
            assert!(
                round % 2 == 0,
                "round {round}: only an erasure deletes the new one"
            );
        }
        assert!(
            !listed.contains(&old.id),
            "round {round}: the old id is not listed"
        );
    }
}

pub async fn deliveries_and_receipts_keep_activity_and_stale_ones_expire(store: Arc<dyn Store>) {
    let subs: Vec<_> = (1..=4).map(|n| subscription("ac", n)).collect();
    store.insert_subscriptions(&subs).await.unwrap();
    link(store.as_ref(), ProfileRef::new("ac", "cy"), subs[0].id).await;
    store
        .put_notification(&note("ac", "n-ac", 1))
        .await
        .unwrap();
    store
        .enqueue_tasks(&[task("n-ac", "0", Lane::Bulk, TaskTarget::Shard(0))])
        .await
        .unwrap();
    let claim = claim_next(store.as_ref(), Lane::Bulk, "w", Duration::from_secs(30))
        .await
        .unwrap();
    // A first delivery to all four at t=1000 starts their unanswered stretch.
    let progress = Progress::default();
    let lease = Duration::from_secs(30);
    let outcome = BatchOutcome {
        delivered: &subs,
        delivered_at: 1_000,
        ..checkpoint(&progress, lease)
    };
    record(store.as_ref(), &claim, outcome).await;
    let read = store
        .get_subscriptions("ac", &subs.iter().map(|s| s.id).collect::<Vec<_>>())
        .await
        .unwrap();
    for sub in &read {
        assert_eq!(
            sub.activity,
            Activity {
                delivered_at: 1_000,
                receipt_at: 0,
                unanswered_since: 1_000
            }
        );
        assert_eq!(
            sub.tags, subs[0].tags,
            "the rest of the record is untouched"
        );
    }
    // The second browser answers; the third one's tags change (neither blocks the other).
    assert!(store.record_receipt("ac", subs[1].id, 1_100).await.unwrap());
    assert!(
        !store
            .record_receipt("ac", SubscriptionId(1), 1_100)
            .await
            .unwrap()
    );
    let receipted = find_subscription(store.as_ref(), "ac", subs[1].id)
        .await
        .unwrap();
    assert_eq!(
        (
            receipted.activity.receipt_at,
            receipted.activity.unanswered_since
        ),
        (1_100, 0)
    );
    // Judged stale as read: the first (linked) and the second (whose receipt came since, so it
    // stays) and the fourth.
    let stale = [read[0].clone(), read[1].clone(), read[3].clone()];
    let outcome = BatchOutcome {
        stale: &stale,
        delivered_at: 2_000,
        ..BatchOutcome::step(TaskStep::Complete)
    };
    record(store.as_ref(), &claim, outcome).await;
    assert_eq!(
        find_subscription(store.as_ref(), "ac", subs[0].id).await,
        None
    );
    assert!(
        find_subscription(store.as_ref(), "ac", subs[1].id)
            .await
            .is_some()
    );
    assert!(
        find_subscription(store.as_ref(), "ac", subs[2].id)
            .await
            .is_some()
    );
    assert_eq!(
        find_subscription(store.as_ref(), "ac", subs[3].id).await,
        None
    );
    assert_eq!(store.count_subscriptions("ac").await.unwrap(), 2);
    assert_eq!(store.counters("n-ac").await.unwrap()["expired_stale"], 2);
    let listed = store
        .get_profile(ProfileRef::new("ac", "cy"))
        .await
        .unwrap()
        .map(|p| p.subscriptions)
        .unwrap_or_default();
    assert!(listed.is_empty(), "the expired one is unlisted: {listed:?}");
}

macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let (store, _guard) = $make.await;
                        super::$name(store).await;
                    }
                };
            }

            case!(apps);
            case!(subscriptions);
            case!(shard_scans_hand_out_everything_once);
            case!(profiles);
            case!(notifications_counters_and_limits);
            case!(receipts_are_counted_once);
            case!(a_created_notification_is_claimable_with_its_document_and_counters);
            case!(a_notifications_life_follows_its_tasks_and_its_series_sums_to_its_counters);
            case!(a_cancel_and_the_last_completion_are_one_before_the_other);
            case!(variants_phases_and_one_winner);
            case!(ledger_leases_fence_and_lanes_are_separate);
            case!(a_dead_workers_task_is_resumed_from_its_checkpoint);
            case!(concurrent_links_to_one_profile_are_all_kept);
            case!(concurrent_profile_updates_are_all_kept);
            case!(concurrent_upserts_of_one_endpoint_make_one_subscription);
            case!(erase_while_linking_leaves_no_linked_subscription_behind);
            case!(a_batch_record_deletes_its_gone_subscriptions);
            case!(idempotency_keys_are_kept_or_released_by_their_holder);
            case!(an_idempotent_create_can_be_retried_after_a_failed_write);
            case!(pending_sends_are_claimed_once_and_cancelled_by_key);
            case!(policies_and_caps_count_each_notification_once_per_holder);
            case!(concurrent_cap_checks_never_pass_the_cap);
            case!(a_triggers_cap_keeps_counts_apart_from_the_policys);
            case!(token_buckets_grant_the_rate_and_say_when_to_come_back);
            case!(webhook_outboxes_are_ordered_leased_and_trimmed);
            case!(concurrent_webhook_appends_are_numbered_without_gaps);
            case!(a_renewal_moves_tags_link_and_activity_and_the_old_one_goes);
            case!(concurrent_renewals_and_erasures_leave_no_orphan);
            case!(deliveries_and_receipts_keep_activity_and_stale_ones_expire);
        }
    };
}

async fn embedded() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = aviso::store::embedded::EmbeddedStore::open(dir.path()).unwrap();
    (Arc::new(store), dir)
}

conformance!(embedded_store, embedded());

/// A Redis store connected to `url`.
async fn redis_at(url: &str) -> Arc<dyn Store> {
    Arc::new(aviso::store::redis::RedisStore::connect(url).await.unwrap())
}

async fn single_redis() -> (Arc<dyn Store>, support::redis::RedisServer) {
    let server = support::redis::RedisServer::start();
    (redis_at(&server.url()).await, server)
}

conformance!(single_redis_store, single_redis());

async fn redis_cluster() -> (Arc<dyn Store>, support::redis::RedisCluster) {
    let cluster = support::redis::RedisCluster::start();
    (redis_at(&cluster.url()).await, cluster)
}

conformance!(redis_cluster_store, redis_cluster());

#[tokio::test]
async fn a_redis_outage_is_a_clear_error_and_the_store_recovers() {
    let mut server = support::redis::RedisServer::start();
    let store = redis_at(&server.url()).await;
    store.put_app(&app("o")).await.unwrap();
    server.stop();
    let error = store.get_app("o").await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(error.to_string().contains("Redis"), "{error}");
    server.restart();
    // The data is gone (no persistence in tests); the point is that the store answers again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match store.ping().await {
            Ok(()) => break,
            Err(e) => assert!(std::time::Instant::now() < deadline, "no recovery: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.put_app(&app("o")).await.unwrap();
    assert_eq!(store.get_app("o").await.unwrap(), Some(app("o")));
}

#[tokio::test]
async fn redis_connection_errors_name_the_problem() {
    let error = match aviso::store::redis::RedisStore::connect("redis://127.0.0.1:1").await {
        Ok(_) => panic!("connected to a closed port"),
        Err(e) => e,
    };
    assert!(error.to_string().contains("Redis is running"), "{error}");
}

#[tokio::test]
async fn the_embedded_store_keeps_everything_across_a_restart() {
    use aviso::policy::{Category, model::Window};
    use aviso::store::{CapCheck, CapHolder, CapScope, PolicyStore};
    let dir = tempfile::tempdir().unwrap();
    let sub = subscription("r", 1);
    let (marketing, ann) = (Category::default(), [CapHolder::Profile("ann".into())]);
    let windows = [Window {
        max: 1,
        per_ms: 86_400_000,
    }];
    let one_a_day = |notification_id| CapCheck {
        scope: CapScope::Policy,
        app_id: "r",
        category: &marketing,
        notification_id,
        windows: &windows,
        now_ms: aviso::store::now_ms(),
    };
    {
        let store = aviso::store::embedded::EmbeddedStore::open(dir.path()).unwrap();
        store.put_app(&app("r")).await.unwrap();
        store.upsert_subscription(&sub).await.unwrap();
        link(&store, ProfileRef::new("r", "crm-9"), sub.id).await;
        store.put_notification(&note("r", "n1", 1)).await.unwrap();
        // A cap count is not flushed on its own; the durable writes after it carry it.
        assert_eq!(
            store.take_caps(one_a_day("n1"), &ann).await.unwrap(),
            [true]
        );
        store.add_counters("n1", &[("sent", 3)]).await.unwrap();
        store
            .enqueue_tasks(&[task("n1", "0", Lane::Bulk, TaskTarget::Shard(0))])
            .await
            .unwrap();
    }
    let store = aviso::store::embedded::EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(
        store.take_caps(one_a_day("n2"), &ann).await.unwrap(),
        [false],
        "n1's count was kept: n2 is capped"
    );
    assert_eq!(store.get_app("r").await.unwrap(), Some(app("r")));
    let mut linked = sub.clone();
    linked.external_id = Some("crm-9".into());
    assert_eq!(find_subscription(&store, "r", sub.id).await, Some(linked));
    assert_eq!(store.count_subscriptions("r").await.unwrap(), 1);
    assert_eq!(
        profile_of(&store, ProfileRef::new("r", "crm-9"))
            .await
            .subscriptions,
        [sub.id]
    );
    assert_eq!(
        store.get_notification("n1").await.unwrap(),
        Some(note("r", "n1", 1))
    );
    assert_eq!(store.counters("n1").await.unwrap()["sent"], 3);
    assert_eq!(store.pending_tasks(Lane::Bulk).await.unwrap(), 1);
}

#[tokio::test]
async fn the_embedded_store_refuses_a_data_file_that_is_not_its_own() {
    // Empty (a failed copy, a full disk): refused, and left as it was.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aviso.redb");
    std::fs::write(&path, b"").unwrap();
    let error = aviso::store::embedded::EmbeddedStore::open(dir.path())
        .err()
        .expect("an empty data file is refused");
    assert!(error.to_string().contains("empty"), "{error}");
    assert!(error.to_string().contains("backup"), "{error}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "left untouched");

    // Truncated, or another program's file.
    std::fs::write(&path, b"not a database at all, some other program's notes").unwrap();
    let error = aviso::store::embedded::EmbeddedStore::open(dir.path())
        .err()
        .expect("a foreign file is refused");
    assert!(
        error.to_string().contains("restore it from a backup"),
        "{error}"
    );

    // A store that was written, then cut short.
    let dir = tempfile::tempdir().unwrap();
    {
        let store = aviso::store::embedded::EmbeddedStore::open(dir.path()).unwrap();
        store.put_app(&app("t")).await.unwrap();
    }
    let path = dir.path().join("aviso.redb");
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() / 3]).unwrap();
    assert!(aviso::store::embedded::EmbeddedStore::open(dir.path()).is_err());
}

/// A broadcast's checkpoint inside a large shard holds the backend's scan cursor. Redis may be
/// restarted between two batches (its append-only file keeps every subscription): the resumed
/// scan must still hand out every subscriber of the shard (a restarted Redis hashes with a new
/// seed, so an HSCAN cursor from before means nothing; handing some out twice is allowed).
#[tokio::test]
async fn a_shard_scan_resumed_across_a_redis_restart_misses_nobody() {
    let mut server = support::redis::RedisServer::start_durable();
    let store = redis_at(&server.url()).await;
    let crowded: Vec<Subscription> = (0..1_000_000)
        .map(|n| subscription("rs", n))
        .filter(|s| s.id.shard() == 5)
        .take(3_000)
        .collect();
    assert_eq!(crowded.len(), 3_000);
    store.insert_subscriptions(&crowded).await.unwrap();

    let mut handed_out: HashSet<SubscriptionId> = HashSet::new();
    let mut cursor = ScanCursor::start();
    for _ in 0..3 {
        let batch = store
            .scan_shard(ShardAt::new("rs", 5, &cursor), 500)
            .await
            .unwrap();
        handed_out.extend(batch.subscriptions.iter().map(|s| s.id));
        cursor = batch.next.expect("the shard holds more than three batches");
    }
    server.stop();
    server.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut next = Some(cursor);
    while let Some(cursor) = next.take() {
        match store.scan_shard(ShardAt::new("rs", 5, &cursor), 500).await {
            Ok(batch) => {
                handed_out.extend(batch.subscriptions.iter().map(|s| s.id));
                next = batch.next;
            }
            Err(error) => {
                assert!(std::time::Instant::now() < deadline, "no recovery: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                next = Some(cursor);
            }
        }
    }
    let missed = crowded
        .iter()
        .filter(|s| !handed_out.contains(&s.id))
        .count();
    assert_eq!(
        missed, 0,
        "{missed} of 3,000 never handed out after the restart"
    );
}
