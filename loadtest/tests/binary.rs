//! The standalone `aviso-mock-push` process: it announces its URL, trusts nothing but the CA it
//! writes, decrypts for the subscribers in `--verify-keys`, reports, and prints its counters on
//! SIGTERM.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use aviso_loadtest::{MockConfig, MockPushService, TestSubscriber};
use http::StatusCode;
use support::Sender;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn runs_standalone_decrypts_reports_and_prints_counters_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // Keys made against a throwaway in-process mock; only the key material is reused.
    let key_maker = MockPushService::start(MockConfig::default()).await.unwrap();
    let dave = TestSubscriber::generate(&key_maker, "dave").unwrap();
    let keys_path = dir.path().join("keys.jsonl");
    let mut keys_file = std::fs::File::create(&keys_path).unwrap();
    writeln!(
        keys_file,
        "{}",
        serde_json::to_string(&dave.keys()).unwrap()
    )
    .unwrap();
    drop(keys_file);
    let ca_path = dir.path().join("ca.pem");

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_aviso-mock-push"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--gone-fraction",
            "0",
            "--report-every",
            "1",
        ])
        .arg("--ca-out")
        .arg(&ca_path)
        .arg("--verify-keys")
        .arg(&keys_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("the mock printed a line in time")
            .unwrap()
            .expect("the mock's stdout is still open")
    };

    let first = next_line().await;
    let base_url = first
        .strip_prefix("listening: ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let sender = Sender::new(&std::fs::read_to_string(&ca_path).unwrap());
    let endpoint = format!("{base_url}/push/dave");
    let body = ece::encrypt(dave.public_key(), dave.auth_secret(), b"to the process").unwrap();
    let answer = sender.push(&endpoint, body, &[]).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let tampered = sender.push(&endpoint, vec![0u8; 150], &[]).await;
    assert_eq!(tampered.status, StatusCode::BAD_REQUEST);

    let periodic = next_line().await;
    assert!(periodic.starts_with("stats: "), "{periodic:?}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let last = loop {
        let line = next_line().await;
        let report: serde_json::Value =
            serde_json::from_str(line.strip_prefix("stats: ").unwrap()).unwrap();
        if report["final"] == true {
            break report;
        }
    };
    assert_eq!(last["stats"]["delivered"], 1);
    assert_eq!(last["stats"]["decrypted"], 1);
    assert_eq!(last["stats"]["requests"], 2);
    assert_eq!(last["stats"]["by_status"]["400"], 1);
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn a_bad_keys_file_is_reported_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let keys_path = dir.path().join("keys.jsonl");
    std::fs::write(
        &keys_path,
        "\n{\"id\":\"x\",\"private_key\":\"AAAA\",\"auth\":\"AAAAAAAAAAAAAAAAAAAAAA\"}\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_aviso-mock-push"))
        .arg("--verify-keys")
        .arg(&keys_path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(stderr.contains("private_key"), "{stderr}");
}
