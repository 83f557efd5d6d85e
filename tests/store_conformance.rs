//! One conformance suite for every store backend: the embedded store, a single Redis and a
//! Redis Cluster (both started by the tests on free loopback ports).

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aviso::store::{
    App, AttributeValue, Lane, NewNotification, ProfileUpdate, Progress, SHARDS, ScanCursor, Store,
    StoreError, Subscription, SubscriptionId, Task, TaskStep, TaskTarget, Upserted, hash_api_key,
};

fn app(id: &str) -> App {
    App {
        id: id.into(),
        name: format!("App {id}"),
        origins: vec!["https://shop.example".into()],
        vapid_private_key: vec![1; 32],
        identity_secret: vec![2; 32],
        api_keys: vec![aviso::store::ApiKey {
            hash: hash_api_key(&format!("key-{id}")),
            scope: aviso::store::Scope::Send,
            expires_at_ms: None,
            created_at_ms: 0,
        }],
        created_at: 1,
        demo: false,
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

async fn scan_all(store: &dyn Store, app_id: &str, limit: usize) -> Vec<SubscriptionId> {
    let mut ids = Vec::new();
    for shard in 0..SHARDS {
        let mut cursor = ScanCursor::start();
        loop {
            let batch = store
                .scan_shard(app_id, shard, &cursor, limit)
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
        store
            .app_by_api_key(&hash_api_key("key-a2"))
            .await
            .unwrap()
            .map(|a| a.id),
        Some("a2".into())
    );
    // Rotating the key: the old one stops working.
    let mut rotated = app("a2");
    rotated.api_keys[0].hash = hash_api_key("new-key");
    store.put_app(&rotated).await.unwrap();
    assert_eq!(
        store.app_by_api_key(&hash_api_key("key-a2")).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .app_by_api_key(&hash_api_key("new-key"))
            .await
            .unwrap()
            .map(|a| a.id),
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
        store
            .app_by_api_key(&hash_api_key("new-key"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.count_subscriptions("a2").await.unwrap(), 0);
    assert_eq!(
        store.get_subscription("a2", subs[0].id).await.unwrap(),
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
    // The same endpoint again: new keys, same record, creation time kept.
    let mut again = sub.clone();
    again.auth = [9; 16];
    again.created_at = 1_800_000_000;
    again.last_seen = 1_800_000_000;
    assert_eq!(
        store.upsert_subscription(&again).await.unwrap(),
        Upserted::Updated
    );
    let stored = store.get_subscription("s", sub.id).await.unwrap().unwrap();
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
    assert_eq!(store.get_subscription("s", sub.id).await.unwrap(), None);
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

    store
        .link_subscription("p", "crm-1", subs[0].id)
        .await
        .unwrap();
    store
        .link_subscription("p", "crm-1", subs[1].id)
        .await
        .unwrap();
    store
        .link_subscription("p", "crm-1", subs[1].id)
        .await
        .unwrap();
    let profile = store.get_profile("p", "crm-1").await.unwrap().unwrap();
    assert_eq!(profile.subscriptions, [subs[0].id, subs[1].id]);
    assert!(!profile.attributes.contains_key("vip"));
    assert_eq!(profile.tags["city"], "Porto");
    assert_eq!(
        store
            .get_subscription("p", subs[0].id)
            .await
            .unwrap()
            .unwrap()
            .external_id
            .as_deref(),
        Some("crm-1")
    );
    assert!(matches!(
        store
            .link_subscription("p", "crm-1", SubscriptionId(7))
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Deleting a subscription unlinks it.
    store.delete_subscription("p", subs[1].id).await.unwrap();
    assert_eq!(
        store
            .get_profile("p", "crm-1")
            .await
            .unwrap()
            .unwrap()
            .subscriptions,
        [subs[0].id]
    );

    // GDPR erasure: the profile and its subscriptions go; others stay.
    store
        .link_subscription("p", "crm-1", subs[2].id)
        .await
        .unwrap();
    assert_eq!(store.erase_profile("p", "crm-1").await.unwrap(), 2);
    assert_eq!(store.get_profile("p", "crm-1").await.unwrap(), None);
    assert_eq!(store.count_subscriptions("p").await.unwrap(), 0);
    assert_eq!(store.erase_profile("p", "crm-1").await.unwrap(), 0);
}

pub async fn notifications_counters_and_limits(store: Arc<dyn Store>) {
    store
        .put_notification("n", "n1", b"{\"v\":1}")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    store
        .put_notification("n", "n2", b"{\"v\":2}")
        .await
        .unwrap();
    store
        .put_notification("n", "n1", b"{\"v\":3}")
        .await
        .unwrap();
    assert_eq!(
        store.get_notification("n1").await.unwrap().unwrap(),
        b"{\"v\":3}"
    );
    assert_eq!(store.get_notification("zz").await.unwrap(), None);
    let listed = store.list_notifications("n", 10).await.unwrap();
    assert_eq!(
        listed,
        [b"{\"v\":2}".to_vec(), b"{\"v\":3}".to_vec()],
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
    assert_eq!(
        store
            .claim_idempotency_key("n", "k1", "n1", ttl)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .claim_idempotency_key("n", "k1", "n9", ttl)
            .await
            .unwrap(),
        Some("n1".into())
    );
    assert_eq!(
        store
            .claim_idempotency_key("other", "k1", "n9", ttl)
            .await
            .unwrap(),
        None
    );

    let window = Duration::from_secs(3600);
    assert_eq!(
        store
            .count_profile_send("n", "crm-1", window)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .count_profile_send("n", "crm-1", window)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .count_profile_send("n", "crm-2", window)
            .await
            .unwrap(),
        1
    );
}

fn task(notification: &str, suffix: &str, lane: Lane, target: TaskTarget) -> Task {
    Task {
        id: format!("{notification}:{suffix}"),
        app_id: "l".into(),
        notification_id: notification.into(),
        lane,
        target,
        not_before_ms: 0,
    }
}

pub async fn a_created_notification_is_claimable_with_its_document_and_counters(
    store: Arc<dyn Store>,
) {
    let direct = task(
        "c1",
        "direct",
        Lane::Priority,
        TaskTarget::Subscriptions(vec![SubscriptionId(7)]),
    );
    store
        .create_notification(NewNotification {
            app_id: "l",
            id: "c1",
            document: b"{\"c\":1}",
            tasks: std::slice::from_ref(&direct),
            counters: &[("targeted", 1)],
        })
        .await
        .unwrap();
    let claim = store
        .claim_task(Lane::Priority, "w1", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the created task is claimable");
    assert_eq!(claim.task, direct);
    assert_eq!(
        store.get_notification("c1").await.unwrap().as_deref(),
        Some(&b"{\"c\":1}"[..])
    );
    assert_eq!(store.list_notifications("l", 10).await.unwrap().len(), 1);
    assert_eq!(
        store.counters("c1").await.unwrap(),
        BTreeMap::from([("targeted".to_owned(), 1)])
    );
    assert!(
        store
            .claim_task(Lane::Priority, "w2", Duration::from_secs(30))
            .await
            .unwrap()
            .is_none(),
        "claimed once"
    );

    // A broadcast: tasks but no counters yet (they grow as shards are read).
    store
        .create_notification(NewNotification {
            app_id: "l",
            id: "c2",
            document: b"{}",
            tasks: &[task("c2", "0", Lane::Bulk, TaskTarget::Shard(0))],
            counters: &[],
        })
        .await
        .unwrap();
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
            task(
                "n2",
                "p",
                Lane::Priority,
                TaskTarget::Subscriptions(vec![SubscriptionId(7)]),
            ),
        ])
        .await
        .unwrap();
    assert_eq!(store.pending_tasks(Lane::Bulk).await.unwrap(), 2);
    assert_eq!(store.pending_tasks(Lane::Priority).await.unwrap(), 1);

    let p = store
        .claim_task(Lane::Priority, "w1", lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        p.task.target,
        TaskTarget::Subscriptions(vec![SubscriptionId(7)])
    );
    assert!(
        store
            .claim_task(Lane::Priority, "w2", lease)
            .await
            .unwrap()
            .is_none()
    );
    // A batch's counters go with the task's completion.
    store
        .record_batch(&p, &[("sent", 1), ("delivered", 1)], TaskStep::Complete)
        .await
        .unwrap();
    assert_eq!(store.pending_tasks(Lane::Priority).await.unwrap(), 0);
    assert_eq!(store.counters("n2").await.unwrap()["delivered"], 1);

    let a = store
        .claim_task(Lane::Bulk, "w1", lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.task.id, "n1:0");
    assert_eq!(a.previous_claims, 0);
    assert!(
        store
            .claim_task(Lane::Bulk, "w2", lease)
            .await
            .unwrap()
            .is_none(),
        "leased, and the other is not due"
    );
    let progress = Progress {
        cursor: ScanCursor(vec![1, 2, 3]),
        processed: 10,
    };
    store.checkpoint_task(&a, &progress, lease).await.unwrap();

    // The lease runs out: another worker takes over from the checkpoint; the old claim is fenced.
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    let b = store
        .claim_task(Lane::Bulk, "w2", lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.task.id, "n1:0");
    assert_eq!(b.progress, progress);
    assert_eq!(b.previous_claims, 1);
    assert!(matches!(
        store.checkpoint_task(&a, &progress, lease).await,
        Err(StoreError::LeaseLost)
    ));
    assert!(matches!(
        store.complete_task(&a).await,
        Err(StoreError::LeaseLost)
    ));
    // The fenced worker's last batch went out: its counters count, its checkpoint does not.
    let further = Progress {
        cursor: ScanCursor(vec![9]),
        processed: 20,
    };
    let step = TaskStep::Checkpoint {
        progress: &further,
        lease,
    };
    assert!(matches!(
        store.record_batch(&a, &[("sent", 3)], step).await,
        Err(StoreError::LeaseLost)
    ));
    assert_eq!(store.counters("n1").await.unwrap()["sent"], 3);
    store.record_batch(&b, &[("sent", 2)], step).await.unwrap();
    assert_eq!(store.counters("n1").await.unwrap()["sent"], 5);

    // Cancelling removes every task of the notification; the holder loses its lease.
    assert_eq!(store.cancel_tasks("n1").await.unwrap(), 2);
    assert!(matches!(
        store.checkpoint_task(&b, &progress, lease).await,
        Err(StoreError::LeaseLost)
    ));
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
        }])
        .await
        .unwrap();

    let mut handed_out: HashMap<SubscriptionId, usize> = HashMap::new();
    let mut unsaved_batch = 0;
    // Worker A: three checkpointed batches, then a fourth it hands out but dies before saving.
    let a = store
        .claim_task(Lane::Bulk, "worker-a", lease)
        .await
        .unwrap()
        .unwrap();
    let mut progress = a.progress.clone();
    for round in 0..4 {
        let scanned = store
            .scan_shard("t", shard, &progress.cursor, batch)
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
        store.checkpoint_task(&a, &progress, lease).await.unwrap();
    }

    // Worker B: after the lease runs out, resumes and finishes.
    assert!(
        store
            .claim_task(Lane::Bulk, "worker-b", lease)
            .await
            .unwrap()
            .is_none()
    );
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    let b = store
        .claim_task(Lane::Bulk, "worker-b", lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.progress, progress);
    let mut resumed = b.progress.clone();
    loop {
        let scanned = store
            .scan_shard("t", shard, &resumed.cursor, batch)
            .await
            .unwrap();
        for sub in &scanned.subscriptions {
            *handed_out.entry(sub.id).or_default() += 1;
        }
        resumed.processed += scanned.subscriptions.len() as u64;
        match scanned.next {
            Some(next) => {
                resumed.cursor = next;
                store.checkpoint_task(&b, &resumed, lease).await.unwrap();
            }
            None => break,
        }
    }
    store.complete_task(&b).await.unwrap();

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
            case!(a_created_notification_is_claimable_with_its_document_and_counters);
            case!(ledger_leases_fence_and_lanes_are_separate);
            case!(a_dead_workers_task_is_resumed_from_its_checkpoint);
        }
    };
}

async fn embedded() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = aviso::store::embedded::EmbeddedStore::open(dir.path()).unwrap();
    (Arc::new(store), dir)
}

conformance!(embedded_store, embedded());

async fn single_redis() -> (Arc<dyn Store>, support::redis::RedisServer) {
    let server = support::redis::RedisServer::start();
    let store = aviso::store::redis::RedisStore::connect(&server.url())
        .await
        .unwrap();
    (Arc::new(store), server)
}

conformance!(single_redis_store, single_redis());

async fn redis_cluster() -> (Arc<dyn Store>, support::redis::RedisCluster) {
    let cluster = support::redis::RedisCluster::start();
    let store = aviso::store::redis::RedisStore::connect(&cluster.url())
        .await
        .unwrap();
    (Arc::new(store), cluster)
}

conformance!(redis_cluster_store, redis_cluster());

#[tokio::test]
async fn a_redis_outage_is_a_clear_error_and_the_pool_recovers() {
    let mut server = support::redis::RedisServer::start();
    let store = aviso::store::redis::RedisStore::connect(&server.url())
        .await
        .unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let sub = subscription("r", 1);
    {
        let store = aviso::store::embedded::EmbeddedStore::open(dir.path()).unwrap();
        store.put_app(&app("r")).await.unwrap();
        store.upsert_subscription(&sub).await.unwrap();
        store.link_subscription("r", "crm-9", sub.id).await.unwrap();
        store.put_notification("r", "n1", b"doc").await.unwrap();
        store.add_counters("n1", &[("sent", 3)]).await.unwrap();
        store
            .enqueue_tasks(&[task("n1", "0", Lane::Bulk, TaskTarget::Shard(0))])
            .await
            .unwrap();
    }
    let store = aviso::store::embedded::EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.get_app("r").await.unwrap(), Some(app("r")));
    let mut linked = sub.clone();
    linked.external_id = Some("crm-9".into());
    assert_eq!(
        store.get_subscription("r", sub.id).await.unwrap(),
        Some(linked)
    );
    assert_eq!(store.count_subscriptions("r").await.unwrap(), 1);
    assert_eq!(
        store
            .get_profile("r", "crm-9")
            .await
            .unwrap()
            .unwrap()
            .subscriptions,
        [sub.id]
    );
    assert_eq!(
        store.get_notification("n1").await.unwrap().as_deref(),
        Some(&b"doc"[..])
    );
    assert_eq!(store.counters("n1").await.unwrap()["sent"], 3);
    assert_eq!(store.pending_tasks(Lane::Bulk).await.unwrap(), 1);
}
