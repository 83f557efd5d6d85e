//! The HTTP side of sending: HTTP/2 pools that respect the server's stream limit, HTTP/1.1
//! fallback, and the sender's retries and outcomes, against a loopback push service.

mod support;

use std::time::{Duration, Instant};

use aviso::delivery::{Delivery, Failure, Message, RetryPolicy, Sender};
use aviso::push::vapid::{DEFAULT_VALIDITY, VapidSubject};
use aviso::push::{
    PushOptions, PushSubscription, RequestHead, VapidHeaderCache, VapidKey, build_request, encrypt,
};
use aviso::transport::{ClientConfig, PushClient, TransportError};
use bytes::Bytes;
use http::StatusCode;
use support::push_service::{self, MockConfig, MockExt, MockPushService};

fn client(
    service: &MockPushService,
    dir: &tempfile::TempDir,
    max_connections: usize,
) -> PushClient {
    let ca = dir.path().join("ca.pem");
    service.write_ca(&ca);
    PushClient::new(&ClientConfig {
        extra_ca_files: vec![ca],
        max_connections_per_origin: max_connections,
        ..ClientConfig::default()
    })
    .unwrap()
}

/// A mock allowing `streams` concurrent streams per HTTP/2 connection and answering after
/// `latency`, and a client allowing `max_connections` per origin (with the CA it trusts kept in
/// the returned directory).
async fn h2_service(
    streams: u32,
    latency: Duration,
    max_connections: usize,
) -> (MockPushService, tempfile::TempDir, PushClient) {
    let service = push_service::start(
        MockConfig::default()
            .max_concurrent_streams(streams)
            .latency(latency, Duration::ZERO),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(&service, &dir, max_connections);
    (service, dir, client)
}

fn vapid() -> VapidHeaderCache {
    VapidHeaderCache::new(
        VapidKey::generate().unwrap(),
        VapidSubject::parse("mailto:ops@example.com").unwrap(),
        DEFAULT_VALIDITY,
    )
    .unwrap()
}

fn subscription(service: &MockPushService, id: &str) -> PushSubscription {
    PushSubscription::from_json(service.subscribe(id).to_string().as_bytes()).unwrap()
}

async fn send_many(service: &MockPushService, client: &PushClient, n: usize) {
    send_many_from(service, client, 0, n).await;
}

/// Sends one message each to new subscribers `c{first}`, `c{first + 1}`, … at once.
async fn send_many_from(service: &MockPushService, client: &PushClient, first: usize, n: usize) {
    let vapid = vapid();
    let requests: Vec<_> = (first..first + n)
        .map(|i| {
            let sub = subscription(service, &format!("c{i}"));
            let body = Bytes::from(encrypt(sub.keys(), format!("message {i}").as_bytes()).unwrap());
            build_request(
                &sub,
                body,
                vapid.authorization(&sub.audience()).unwrap(),
                &PushOptions::default(),
            )
        })
        .collect();
    for answer in send_at_once(client, requests).await {
        assert_eq!(answer.unwrap().status, StatusCode::CREATED);
    }
}

/// Sends the requests at once, each from a task of its own, and collects the answers.
async fn send_at_once(
    client: &PushClient,
    requests: Vec<http::Request<Bytes>>,
) -> Vec<Result<aviso::transport::PushResponse, TransportError>> {
    futures_join_all(requests.into_iter().map(|r| {
        let client = client.clone();
        async move { client.send(r).await }
    }))
    .await
}

/// Runs the futures concurrently (as separate tasks) and collects their outputs.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for future in futures {
        set.spawn(future);
    }
    let mut out = Vec::new();
    while let Some(result) = set.join_next().await {
        out.push(result.unwrap());
    }
    out
}

/// Every message of the `c{i}` subscribers was accepted, decrypted, over `version`.
fn all_decrypted(service: &MockPushService, n: usize, version: http::Version) {
    let stats = service.stats();
    assert_eq!(stats.requests, n as u64);
    assert_eq!(stats.decrypted, n as u64, "{stats:?}");
    for i in 0..n {
        let deliveries = service.deliveries(&format!("c{i}"));
        assert!(
            deliveries.iter().all(|d| d.version == version),
            "{deliveries:?}"
        );
    }
}

/// The TCP connections the mock accepted.
fn connections(service: &MockPushService) -> u64 {
    service.stats().connections
}

/// The connections a client bounded to `max_connections` opens for `n` requests sent at once to
/// a cold [`h2_service`], each of them delivered over HTTP/2.
async fn connections_for_burst(
    streams: u32,
    latency: Duration,
    max_connections: usize,
    n: usize,
) -> u64 {
    let (service, _dir, client) = h2_service(streams, latency, max_connections).await;
    send_many(&service, &client, n).await;
    all_decrypted(&service, n, http::Version::HTTP_2);
    connections(&service)
}

#[tokio::test]
async fn full_connections_make_the_pool_open_more_instead_of_queueing() {
    let (service, _dir, client) = h2_service(4, Duration::from_millis(300), 8).await;
    // Settle the server's SETTINGS on a first connection, then burst 24 requests.
    send_many(&service, &client, 1).await;
    send_many_from(&service, &client, 1, 24).await;
    all_decrypted(&service, 25, http::Version::HTTP_2);
    // 24 requests over connections allowing 4 streams each: 6 connections, within the bound 8.
    let opened = connections(&service);
    assert!((6..=8).contains(&opened), "{opened} connections");
}

#[tokio::test]
async fn a_bound_of_one_connection_queues_and_still_delivers_everything() {
    assert_eq!(
        connections_for_burst(2, Duration::from_millis(20), 1, 20).await,
        1
    );
}

#[tokio::test]
async fn a_service_without_http2_gets_http1() {
    let service = push_service::start(MockConfig::default().http1_only(true)).await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(&service, &dir, 4);
    send_many(&service, &client, 3).await;
    all_decrypted(&service, 3, http::Version::HTTP_11);
}

#[tokio::test]
async fn the_sender_retries_transient_failures_and_reports_final_outcomes() {
    let service = push_service::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let sender = Sender::new(
        client(&service, &dir, 4),
        RetryPolicy {
            initial_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
            max_attempts: 4,
        },
    );
    let vapid = vapid();
    let head = RequestHead::new(&PushOptions::default());
    let deliver = |sub: PushSubscription| {
        let vapid = &vapid;
        let head = &head;
        let sender = &sender;
        async move {
            let message = Message {
                subscription: &sub,
                head,
                vapid,
                expires_at: Instant::now() + Duration::from_secs(60),
            };
            sender.deliver(&message, b"hello").await
        }
    };

    let flaky = subscription(&service, "flaky");
    service.answer_next("flaky", StatusCode::SERVICE_UNAVAILABLE, 2);
    assert_eq!(deliver(flaky).await, Delivery::Delivered);

    let throttled = subscription(&service, "throttled");
    service.answer_next("throttled", StatusCode::TOO_MANY_REQUESTS, 1);
    let started = Instant::now();
    assert_eq!(deliver(throttled).await, Delivery::Delivered);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured"
    );

    let gone = subscription(&service, "gone");
    service.answer_next("gone", StatusCode::GONE, 1);
    assert_eq!(deliver(gone).await, Delivery::Expired);

    let misconfigured = subscription(&service, "misconfigured");
    service.answer_next("misconfigured", StatusCode::FORBIDDEN, 1);
    let Delivery::Failed(Failure::Rejected { status, reason }) = deliver(misconfigured).await
    else {
        panic!("a 403 is a rejection");
    };
    assert_eq!(status, 403);
    // The service's reason is kept for the operator.
    assert!(reason.contains("answer queued by the test"), "{reason}");

    let down = subscription(&service, "down");
    service.answer_next("down", StatusCode::BAD_GATEWAY, 10);
    assert!(matches!(
        deliver(down).await,
        Delivery::Failed(Failure::RetriesExhausted { attempts: 4, .. })
    ));

    let per_id = |id: &str| service.requests_for(id);
    assert_eq!(per_id("flaky"), 3);
    assert_eq!(per_id("throttled"), 2);
    assert_eq!(per_id("gone"), 1);
    assert_eq!(
        per_id("misconfigured"),
        1,
        "a configuration error is not retried"
    );
    assert_eq!(per_id("down"), 4);
    // Every message that got through decrypted to what was sent.
    assert_eq!(service.stats().verification_failures, 0);
    for id in ["flaky", "throttled"] {
        assert_eq!(service.plaintexts(id), [b"hello".to_vec()]);
    }
}

#[tokio::test]
async fn a_cold_burst_opens_one_connection_and_waits_for_its_stream_limit() {
    // The server allows 100 streams, but until its SETTINGS arrive the client assumes 1: a burst
    // on a cold origin must wait for them instead of opening a connection per early request.
    assert_eq!(
        connections_for_burst(100, Duration::from_millis(50), 8, 60).await,
        1
    );
}

#[tokio::test]
async fn a_burst_to_an_origin_that_never_finishes_its_handshake_fails_on_one_attempt() {
    // A listener that accepts TCP and never answers the TLS handshake, counting its accepts.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    let client = PushClient::new(&ClientConfig {
        connect_timeout: Duration::from_millis(300),
        max_connections_per_origin: 8,
        ..ClientConfig::default()
    })
    .unwrap();
    let requests: Vec<_> = (0..20)
        .map(|i| {
            http::Request::post(format!("https://127.0.0.1:{port}/push/{i}"))
                .body(Bytes::from_static(b"x"))
                .unwrap()
        })
        .collect();
    for answer in send_at_once(&client, requests).await {
        let error = answer.unwrap_err();
        assert!(matches!(error, TransportError::Connect { .. }), "{error}");
    }
    // Every request waited for the one handshake in flight and got its error.
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    holder.abort();
}
