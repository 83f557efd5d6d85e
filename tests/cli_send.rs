//! `aviso send` end to end: the real binary sends to a loopback HTTPS push service that decrypts
//! the body and verifies the VAPID JWT with independent implementations.

mod support;

use std::path::PathBuf;
use std::process::Output;

use aviso_loadtest::Throttle;
use http::StatusCode;
use support::push_service::{self, MockConfig, MockExt, MockPushService};

struct Fixture {
    service: MockPushService,
    dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Self {
        // A scripted 429 carries this throttle's Retry-After; nothing is throttled otherwise.
        let service =
            push_service::start(MockConfig::default().throttle(Throttle::default().retry_after(7)))
                .await;
        let dir = tempfile::tempdir().unwrap();
        service.write_ca(&dir.path().join("ca.pem"));
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_aviso"))
            .args(["vapid", "generate", "--out"])
            .arg(dir.path().join("vapid.pem"))
            .output()
            .unwrap();
        assert!(status.status.success(), "{status:?}");
        Self { service, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn subscription(&self, id: &str) -> PathBuf {
        let path = self.path(&format!("{id}.json"));
        std::fs::write(&path, self.service.subscribe(id).to_string()).unwrap();
        path
    }

    async fn send(&self, subscription: &PathBuf, payload: &str, extra: &[&str]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_aviso"))
            .arg("send")
            .arg("--subscription")
            .arg(subscription)
            .args(["--payload", payload, "--subject", "mailto:ops@example.com"])
            .arg("--vapid-key")
            .arg(self.path("vapid.pem"))
            .arg("--ca-cert")
            .arg(self.path("ca.pem"))
            .args(extra)
            .output()
            .await
            .unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn a_push_is_decrypted_and_its_jwt_verified_by_independent_code() {
    let fixture = Fixture::new().await;
    let subscription = fixture.subscription("alice");
    let output = fixture
        .send(
            &subscription,
            "Your cart misses you",
            &["--ttl", "60", "--urgency", "high", "--topic", "cart-1"],
        )
        .await;
    assert!(
        output.status.success(),
        "stdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(
        text(&output.stdout).starts_with("201 Created (HTTP/2.0)"),
        "{}",
        text(&output.stdout)
    );

    assert_eq!(fixture.service.requests(), 1);
    let received = fixture.service.deliveries("alice");
    assert_eq!(received.len(), 1);
    let message = &received[0];
    assert_eq!(
        message.plaintext.as_deref(),
        Some(&b"Your cart misses you"[..])
    );
    assert_eq!(message.version, http::Version::HTTP_2);
    assert_eq!(message.ttl, 60);
    assert_eq!(message.urgency.as_deref(), Some("high"));
    assert_eq!(message.topic.as_deref(), Some("cart-1"));

    // --payload @file, the largest payload there is.
    let big = "x".repeat(3993);
    std::fs::write(fixture.path("payload.txt"), &big).unwrap();
    let payload_arg = format!("@{}", fixture.path("payload.txt").display());
    let output = fixture.send(&subscription, &payload_arg, &[]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        fixture.service.plaintexts("alice"),
        [b"Your cart misses you".to_vec(), big.into_bytes()]
    );
}

#[tokio::test]
async fn each_refusal_explains_what_to_do() {
    let fixture = Fixture::new().await;
    let cases = [
        (StatusCode::GONE, "delete it"),
        (StatusCode::NOT_FOUND, "delete it"),
        (StatusCode::UNAUTHORIZED, "VAPID"),
        (StatusCode::FORBIDDEN, "VAPID"),
        (StatusCode::BAD_REQUEST, "malformed"),
        (StatusCode::PAYLOAD_TOO_LARGE, "shorter payload"),
        (StatusCode::TOO_MANY_REQUESTS, "rate limiting"),
    ];
    for (status, advice) in cases {
        let id = format!("s{}", status.as_u16());
        let subscription = fixture.subscription(&id);
        fixture.service.answer_next(&id, status, 1);
        let output = fixture.send(&subscription, "hi", &[]).await;
        assert_eq!(
            output.status.code(),
            Some(1),
            "{status}: {}",
            text(&output.stderr)
        );
        let stdout = text(&output.stdout);
        assert!(stdout.starts_with(status.as_str()), "{stdout}");
        // The service's explanation is shown.
        assert!(stdout.contains("answer queued by the test"), "{stdout}");
        assert!(
            text(&output.stderr).contains(advice),
            "{status}: {}",
            text(&output.stderr)
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(stdout.contains("retry after: 7 s"), "{stdout}");
        }
    }
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_sent() {
    let fixture = Fixture::new().await;
    let subscription = fixture.subscription("bob");
    let too_big = "x".repeat(3994);
    let cases: [(&str, &[&str], &str); 4] = [
        (&too_big, &[], "3993"),
        ("hi", &["--ttl", "-1"], "TTL"),
        ("hi", &["--urgency", "asap"], "very-low"),
        ("hi", &["--topic", "has spaces"], "topic"),
    ];
    for (payload, extra, message) in cases {
        let output = fixture.send(&subscription, payload, extra).await;
        assert_eq!(output.status.code(), Some(2), "{extra:?}");
        assert!(
            text(&output.stderr).contains(message),
            "{extra:?}: {}",
            text(&output.stderr)
        );
    }
    let bad = fixture.path("bad.json");
    std::fs::write(
        &bad,
        r#"{"endpoint": "http://127.0.0.1/x", "keys": {"p256dh": "AA", "auth": "AA"}}"#,
    )
    .unwrap();
    let output = fixture.send(&bad, "hi", &[]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("https"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(fixture.service.requests(), 0);
}
