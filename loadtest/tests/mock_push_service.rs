//! The mock push service over real HTTPS on loopback: what it accepts, what it refuses and why,
//! its configured error mix, and what it counts.

mod support;

use std::time::Duration;

use aviso_loadtest::{
    Behaviour, MockConfig, MockPushService, Stats, TestSubscriber, Throttle, Unavailable,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, StatusCode, Version};
use support::{Sender, VapidKey, unix_now};

async fn start(config: MockConfig) -> MockPushService {
    MockPushService::start(config).await.unwrap()
}

/// A mock started with `config`, and a sender (h2 and HTTP/1.1) that trusts its CA.
async fn start_with_sender(config: MockConfig) -> (MockPushService, Sender) {
    let mock = start(config).await;
    let sender = Sender::new(mock.ca_cert_pem());
    (mock, sender)
}

/// A message for `subscriber`, encrypted by `ece` (aes128gcm).
fn encrypted_for(subscriber: &TestSubscriber, plaintext: &[u8]) -> Vec<u8> {
    ece::encrypt(subscriber.public_key(), subscriber.auth_secret(), plaintext).unwrap()
}

/// A well-formed aes128gcm body for an endpoint without registered keys.
fn opaque_body() -> Vec<u8> {
    let (keys, auth) = ece::generate_keypair_and_auth_secret().unwrap();
    ece::encrypt(&keys.pub_as_raw().unwrap(), &auth, b"opaque").unwrap()
}

/// The statuses (as numbers) of `times` pushes to `endpoint`, one after another.
async fn statuses(sender: &Sender, endpoint: &str, times: usize) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(times);
    for _ in 0..times {
        let answer = sender.push(endpoint, opaque_body(), &[]).await;
        statuses.push(answer.status.as_u16());
    }
    statuses
}

#[tokio::test]
async fn accepts_an_encrypted_signed_message_over_http2_and_records_it() {
    let (mock, sender) = start_with_sender(MockConfig::default()).await;
    let alice = TestSubscriber::generate(&mock, "alice").unwrap();

    let subscription = alice.subscription_json();
    assert_eq!(subscription["endpoint"], mock.endpoint("alice"));
    let p256dh = subscription["keys"]["p256dh"].as_str().unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(p256dh).unwrap().len(), 65);
    let auth = subscription["keys"]["auth"].as_str().unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(auth).unwrap().len(), 16);

    // One JWT for both pushes, as a sender caches it: made per push, the two could differ in
    // `exp` across a second boundary and count as two.
    let authorization = sender.authorization(mock.base_url());
    let answer = sender
        .push(
            alice.endpoint(),
            encrypted_for(&alice, b"{\"title\":\"hello\"}"),
            &[
                ("urgency", "high"),
                ("topic", "cart"),
                ("authorization", &authorization),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.version, Version::HTTP_2);
    let location = answer.headers["location"].to_str().unwrap();
    assert!(location.starts_with(mock.base_url()), "{location}");

    let second = sender
        .push(
            alice.endpoint(),
            encrypted_for(&alice, b"again"),
            &[("authorization", &authorization)],
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    mock.wait_for_deliveries(2, Duration::from_secs(5))
        .await
        .unwrap();

    assert_eq!(
        mock.plaintexts("alice"),
        vec![b"{\"title\":\"hello\"}".to_vec(), b"again".to_vec()]
    );
    let deliveries = mock.deliveries("alice");
    assert_eq!(deliveries[0].ttl, 60);
    assert_eq!(deliveries[0].urgency.as_deref(), Some("high"));
    assert_eq!(deliveries[0].topic.as_deref(), Some("cart"));
    assert_eq!(deliveries[1].urgency, None);
    assert_eq!(deliveries[0].version, Version::HTTP_2);
    assert_eq!(mock.delivered_count("alice"), 2);
    assert_eq!(mock.delivery_counts().get("alice"), Some(&2));

    let stats = mock.stats();
    assert_eq!(stats.requests, 2);
    assert_eq!(stats.by_status.get(&201), Some(&2));
    assert_eq!(stats.delivered, 2);
    assert_eq!(stats.distinct_endpoints, 1);
    assert_eq!(stats.duplicate_deliveries, 1);
    assert_eq!(stats.decrypted, 2);
    assert_eq!(stats.http2_requests, 2);
    assert_eq!(stats.distinct_jwts, 1);
    assert!(mock.verification_failures().is_empty());
    mock.shutdown().await;
}

#[tokio::test]
async fn a_reused_jwt_is_counted_once() {
    let (mock, sender) = start_with_sender(MockConfig::default()).await;
    let authorization = sender.authorization(mock.base_url());
    for id in ["a", "b", "c"] {
        let answer = sender
            .push(
                &mock.endpoint(id),
                opaque_body(),
                &[("authorization", &authorization)],
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }
    assert_eq!(mock.distinct_jwts(), 1);
    assert_eq!(mock.delivered(), 3);

    let renewed = sender.vapid().authorization(
        mock.base_url(),
        unix_now() + 20 * 3600,
        "https://shop.example/contact",
    );
    let answer = sender
        .push(
            &mock.endpoint("d"),
            opaque_body(),
            &[("authorization", &renewed)],
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(mock.distinct_jwts(), 2);
}

#[tokio::test]
async fn bad_or_missing_vapid_is_401_or_403_with_a_reason() {
    let (mock, sender) = start_with_sender(MockConfig::default()).await;
    let endpoint = mock.endpoint("victim");
    let origin = mock.base_url().to_owned();
    let key = VapidKey::generate();
    let other_key = VapidKey::generate();
    let soon = unix_now() + 3600;
    let contact = "mailto:ops@example.com";
    let signed_by_other = format!(
        "vapid t={}, k={}",
        other_key.jwt(&origin, soon, contact),
        key.k()
    );
    let other_port = format!("https://127.0.0.1:{}", mock.address().port() + 1);

    let cases: Vec<(String, StatusCode, &str)> = vec![
        (
            String::new(),
            StatusCode::UNAUTHORIZED,
            "MissingAuthorization",
        ),
        (
            "WebPush abc".into(),
            StatusCode::UNAUTHORIZED,
            "BadAuthorization",
        ),
        (
            "vapid t=abc".into(),
            StatusCode::UNAUTHORIZED,
            "BadAuthorization",
        ),
        (signed_by_other, StatusCode::FORBIDDEN, "BadJwtToken"),
        (
            format!("vapid t={}, k=AAAA", key.jwt(&origin, soon, contact)),
            StatusCode::FORBIDDEN,
            "BadPublicKey",
        ),
        (
            key.authorization(&other_port, soon, contact),
            StatusCode::FORBIDDEN,
            "BadJwtAudience",
        ),
        (
            key.authorization(&origin, unix_now() - 10, contact),
            StatusCode::FORBIDDEN,
            "ExpiredJwtToken",
        ),
        (
            key.authorization(&origin, unix_now() + 25 * 3600, contact),
            StatusCode::FORBIDDEN,
            "BadJwtExpiry",
        ),
        (
            key.authorization(&origin, soon, "ops@example.com"),
            StatusCode::FORBIDDEN,
            "BadJwtSubject",
        ),
    ];
    for (authorization, status, reason) in &cases {
        let mut headers = vec![("ttl", "60"), ("content-encoding", "aes128gcm")];
        if !authorization.is_empty() {
            headers.push(("authorization", authorization));
        }
        let answer = sender
            .send(Method::POST, &endpoint, &headers, opaque_body())
            .await;
        assert_eq!(answer.status, *status, "{authorization:?}: {}", answer.body);
        assert_eq!(answer.reason(), *reason, "{authorization:?}");
    }
    assert_eq!(mock.delivered(), 0);
    assert_eq!(mock.distinct_jwts(), 0);
    assert_eq!(mock.count_for(StatusCode::FORBIDDEN), 6);
    assert_eq!(mock.count_for(StatusCode::UNAUTHORIZED), 3);
}

#[tokio::test]
async fn malformed_push_headers_are_refused() {
    let (mock, sender) = start_with_sender(MockConfig::default()).await;
    let endpoint = mock.endpoint("x");
    /// Headers replacing the valid defaults, the status expected, and the reason expected.
    type Case = (
        &'static [(&'static str, &'static str)],
        StatusCode,
        &'static str,
    );
    let cases: [Case; 6] = [
        (&[("ttl", "-1")], StatusCode::BAD_REQUEST, "BadTtl"),
        (&[("ttl", "soon")], StatusCode::BAD_REQUEST, "BadTtl"),
        (
            &[("content-encoding", "aesgcm")],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedContentEncoding",
        ),
        (
            &[("urgency", "urgent")],
            StatusCode::BAD_REQUEST,
            "BadUrgency",
        ),
        (
            &[("topic", "this-topic-is-longer-than-32-characters")],
            StatusCode::BAD_REQUEST,
            "BadTopic",
        ),
        (
            &[("topic", "no spaces")],
            StatusCode::BAD_REQUEST,
            "BadTopic",
        ),
    ];
    for (extra, status, reason) in cases {
        let answer = sender.push(&endpoint, opaque_body(), extra).await;
        assert_eq!(answer.status, status, "{extra:?}: {}", answer.body);
        assert_eq!(answer.reason(), reason, "{extra:?}");
    }

    let authorization = sender.authorization(mock.base_url());
    let no_ttl = sender
        .send(
            Method::POST,
            &endpoint,
            &[
                ("content-encoding", "aes128gcm"),
                ("authorization", &authorization),
            ],
            opaque_body(),
        )
        .await;
    assert_eq!(no_ttl.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_ttl.reason(), "MissingTtl");

    let not_post = sender
        .send(Method::PUT, &endpoint, &[("ttl", "60")], Vec::new())
        .await;
    assert_eq!(not_post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(not_post.headers["allow"], "POST");

    let garbage = sender.push(&endpoint, vec![0u8; 200], &[]).await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    assert_eq!(garbage.reason(), "BadEncryptionHeader");
    assert_eq!(mock.delivered(), 0);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let (mock, sender) = start_with_sender(MockConfig::default()).await;
    let endpoint = mock.endpoint("big");
    let answer = sender.push(&endpoint, vec![0u8; 4097], &[]).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.body
    );

    // The limit is settable at runtime; a body that fit before no longer does.
    let body = opaque_body();
    assert_eq!(
        sender.push(&endpoint, body.clone(), &[]).await.status,
        StatusCode::CREATED
    );
    mock.update_behaviour(|behaviour| behaviour.payload_limit = body.len() - 1)
        .unwrap();
    assert_eq!(
        sender.push(&endpoint, body, &[]).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test]
async fn the_gone_fraction_answers_410_for_exactly_the_predicted_ids() {
    let (mock, sender) = start_with_sender(MockConfig::default().gone_fraction(0.3)).await;
    let ids: Vec<String> = (0..40).map(|i| format!("subscriber-{i}")).collect();
    let predicted_gone = ids.iter().filter(|id| mock.is_gone(id)).count();
    assert!(
        (1..40).contains(&predicted_gone),
        "a 0.3 fraction of 40 ids should mark some but not all: {predicted_gone}"
    );
    // One token and one body for all: signing and encrypting are slow in debug builds.
    let authorization = sender.authorization(mock.base_url());
    let body = opaque_body();
    for id in &ids {
        let answer = sender
            .push(
                &mock.endpoint(id),
                body.clone(),
                &[("authorization", &authorization)],
            )
            .await;
        let expected = if mock.is_gone(id) {
            StatusCode::GONE
        } else {
            StatusCode::CREATED
        };
        assert_eq!(answer.status, expected, "{id}");
        assert_eq!(aviso_loadtest::is_gone(id, 0.3), mock.is_gone(id));
    }
    assert_eq!(mock.count_for(StatusCode::GONE), predicted_gone as u64);
    assert_eq!(mock.delivered(), (40 - predicted_gone) as u64);
}

#[tokio::test]
async fn throttled_requests_get_429_with_retry_after() {
    let (mock, sender) =
        start_with_sender(MockConfig::default().throttle(Throttle::first(2).retry_after(7))).await;
    let endpoint = mock.endpoint("t");
    for _ in 0..2 {
        let answer = sender.push(&endpoint, opaque_body(), &[]).await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(answer.headers["retry-after"], "7");
    }
    let answer = sender.push(&endpoint, opaque_body(), &[]).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);

    // Replacing the behaviour restarts the numbering: half of what follows is throttled.
    mock.set_behaviour(Behaviour {
        throttle: Throttle::fraction(0.5),
        ..Behaviour::default()
    })
    .unwrap();
    // 201 Created, 429 Too Many Requests.
    assert_eq!(statuses(&sender, &endpoint, 4).await, [201, 429, 201, 429]);
}

#[tokio::test]
async fn outage_windows_answer_503() {
    let outage = Unavailable {
        first: 1,
        every: 4,
        burst: 2,
        per_endpoint: None,
        retry_after_secs: Some(3),
    };
    let (mock, sender) = start_with_sender(MockConfig::default().unavailable(outage)).await;
    let mut unavailable = Vec::new();
    for i in 0..8 {
        let answer = sender
            .push(&mock.endpoint(&format!("o{i}")), opaque_body(), &[])
            .await;
        if answer.status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(answer.headers["retry-after"], "3");
            unavailable.push(i);
        } else {
            assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        }
    }
    assert_eq!(unavailable, [0, 2, 3, 6, 7]);
    assert_eq!(mock.count_for(StatusCode::SERVICE_UNAVAILABLE), 5);
}

#[tokio::test]
async fn an_endpoint_gets_at_most_its_share_of_the_bursts() {
    // Every other request falls in a burst; one endpoint alone gets two 503s, then through.
    let outage = Unavailable::bursts(2, 1).at_most_per_endpoint(2);
    let (mock, sender) = start_with_sender(MockConfig::default().unavailable(outage)).await;
    let (lone, other) = (mock.endpoint("lone"), mock.endpoint("other"));
    assert_eq!(
        statuses(&sender, &lone, 6).await,
        [201, 503, 201, 503, 201, 201]
    );
    // Another endpoint has its own share: the next burst (request 7) is its.
    assert_eq!(statuses(&sender, &other, 2).await, [201, 503]);
}

#[tokio::test]
async fn queued_answers_come_before_the_normal_outcome() {
    let (mock, sender) = start_with_sender(MockConfig::default()).await;
    let endpoint = mock.endpoint("flaky");
    mock.answer_next("flaky", StatusCode::INTERNAL_SERVER_ERROR, 2);
    // 500 Internal Server Error twice, then 201 Created.
    assert_eq!(statuses(&sender, &endpoint, 3).await, [500, 500, 201]);
    // Every request is counted for its endpoint; only the accepted one is a delivery.
    assert_eq!(mock.requests_for("flaky"), 3);
    assert_eq!(mock.delivered_count("flaky"), 1);

    let refused = mock.endpoint("refused");
    mock.answer_next("refused", StatusCode::GONE, 1);
    sender.push(&refused, opaque_body(), &[]).await;
    assert_eq!(mock.requests_for("refused"), 1);
    let stats = mock.stats();
    assert_eq!(
        stats.distinct_endpoints, 1,
        "refused endpoints are not delivered to"
    );
    assert!(!mock.delivery_counts().contains_key("refused"));
}

#[tokio::test]
async fn a_body_that_does_not_decrypt_is_400_and_recorded() {
    let (mock, sender) = start_with_sender(MockConfig::default()).await;
    let bob = TestSubscriber::generate(&mock, "bob").unwrap();
    // Encrypted for someone else: well-formed, but bob's keys cannot open it.
    let answer = sender.push(bob.endpoint(), opaque_body(), &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.reason(), "DecryptionFailed");
    let failures = mock.verification_failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].id, "bob");
    assert!(
        failures[0].reason.contains("decrypt"),
        "{}",
        failures[0].reason
    );
    assert_eq!(mock.delivered_count("bob"), 0);
    assert_eq!(mock.stats().verification_failures, 1);
}

#[tokio::test]
async fn http1_clients_are_served_too() {
    let mock = start(MockConfig::default()).await;
    let sender = Sender::http1_only(mock.ca_cert_pem());
    let carol = TestSubscriber::generate(&mock, "carol").unwrap();
    let answer = sender
        .push(carol.endpoint(), encrypted_for(&carol, b"over h1"), &[])
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.version, Version::HTTP_11);
    assert_eq!(mock.plaintexts("carol"), vec![b"over h1".to_vec()]);
    assert_eq!(mock.stats().http1_requests, 1);
}

#[tokio::test]
async fn stats_are_served_as_json() {
    let (mock, sender) = start_with_sender(MockConfig::default().gone_fraction(1.0)).await;
    sender.push(&mock.endpoint("g"), opaque_body(), &[]).await;
    let stats_url = format!("{}/stats", mock.base_url());
    let answer = sender.send(Method::GET, &stats_url, &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::OK);
    let served: Stats = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(served, mock.stats());
    assert_eq!(served.requests, 1);
    assert_eq!(served.by_status.get(&410), Some(&1));
    assert!(served.connections >= 1);
}

#[tokio::test]
async fn accepted_messages_are_served_with_their_plaintext() {
    let (mock, sender) = start_with_sender(MockConfig::default()).await;
    let dora = TestSubscriber::generate(&mock, "dora").unwrap();
    let answer = sender
        .push(
            dora.endpoint(),
            encrypted_for(&dora, br#"{"title":"hi"}"#),
            &[("urgency", "high"), ("topic", "cart")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);

    let url = format!("{}/messages/dora", mock.base_url());
    let answer = sender.send(Method::GET, &url, &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::OK);
    let served: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(
        served,
        serde_json::json!([{"ttl": 60, "urgency": "high", "topic": "cart", "plaintext": r#"{"title":"hi"}"#}])
    );
    let unknown = format!("{}/messages/nobody", mock.base_url());
    let answer = sender.send(Method::GET, &unknown, &[], Vec::new()).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "[]")
    );
    let answer = sender.send(Method::POST, &url, &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn waiting_for_deliveries_is_bounded() {
    let mock = start(MockConfig::default()).await;
    let error = mock
        .wait_for_deliveries(1, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!((error.expected, error.delivered), (1, 0));
}

#[tokio::test]
async fn concurrent_senders_are_all_counted_once() {
    let mock =
        start(MockConfig::default().latency(Duration::from_millis(1), Duration::from_millis(2)))
            .await;
    let sender = std::sync::Arc::new(Sender::new(mock.ca_cert_pem()));
    let authorization = sender.authorization(mock.base_url());
    let body = opaque_body();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let sender = sender.clone();
        let endpoint = mock.endpoint(&format!("c{i}"));
        let (authorization, body) = (authorization.clone(), body.clone());
        tasks.spawn(async move {
            sender
                .push(&endpoint, body, &[("authorization", &authorization)])
                .await
                .status
        });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::CREATED);
    }
    mock.wait_for_deliveries(200, Duration::from_secs(5))
        .await
        .unwrap();
    let counts = mock.delivery_counts();
    assert_eq!(counts.len(), 200);
    assert!(counts.values().all(|&count| count == 1));
    assert_eq!(mock.stats().duplicate_deliveries, 0);
    assert_eq!(mock.distinct_jwts(), 1);
}

#[tokio::test]
async fn announces_the_configured_stream_limit() {
    let mock = start(MockConfig::default().max_concurrent_streams(7)).await;
    let tcp = tokio::net::TcpStream::connect(mock.address())
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(support::tls_config(
        mock.ca_cert_pem(),
        &[b"h2"],
    )));
    let tls = connector
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, mut connection) = h2::client::handshake(tls).await.unwrap();
    let request = http::Request::get(format!("{}/stats", mock.base_url()))
        .body(())
        .unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    let response = tokio::time::timeout(support::REQUEST_TIMEOUT, async {
        tokio::select! {
            response = response => response,
            closed = &mut connection => panic!("connection ended first: {closed:?}"),
        }
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(connection.max_concurrent_send_streams(), 7);
}

#[tokio::test]
async fn shutdown_stops_accepting_and_keeps_the_counters() {
    let (mock, sender) = start_with_sender(MockConfig::default()).await;
    let answer = sender
        .push(&mock.endpoint("last"), opaque_body(), &[])
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    mock.shutdown().await;
    mock.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(mock.address())
            .await
            .is_err(),
        "the listener should be closed"
    );
    assert_eq!(mock.delivered_count("last"), 1);
}

#[tokio::test]
async fn the_ca_certificate_can_be_written_for_other_processes() {
    let mock = start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    mock.write_ca_cert(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), mock.ca_cert_pem());
    let error = mock
        .write_ca_cert(dir.path().join("missing/ca.pem"))
        .unwrap_err();
    assert!(error.to_string().contains("missing"), "{error}");
}

#[tokio::test]
async fn impossible_configurations_do_not_start() {
    let error = MockPushService::start(MockConfig::default().throttle(Throttle::fraction(2.0)))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("throttle.fraction"), "{error}");
}
