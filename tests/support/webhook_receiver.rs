//! A CRM's webhook receiver for tests: `webhook_receiver.py` (HTTPS on loopback, every request
//! verified with the PyPI `standardwebhooks` package, installed by
//! `scripts/test.d/webhooks.sh`), started and stopped by the test, with what it received.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub struct Receiver {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

const PYTHON: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/target/webhooks-venv/bin/python"
);
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/webhook_receiver.py"
);

impl Receiver {
    /// Prepares a receiver on a free port (not started) and its TLS identity: a CA (whose PEM
    /// is appended to `ca_file`, which Aviso trusts) and a certificate for 127.0.0.1.
    pub fn prepare(ca_file: &Path) -> Self {
        assert!(
            Path::new(PYTHON).exists(),
            "{PYTHON} is missing: run `bash scripts/test.d/webhooks.sh` (or scripts/test) first"
        );
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, cert_pem, key_pem) = identity();
        std::fs::write(dir.path().join("cert.pem"), cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), key_pem).unwrap();
        let mut trusted = std::fs::read_to_string(ca_file).unwrap_or_default();
        trusted.push_str(&ca_pem);
        std::fs::write(ca_file, trusted).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self {
            port,
            dir,
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/hook", self.port)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn set_secret(&self, secret: &str) {
        std::fs::write(self.path("secret"), secret).unwrap();
    }

    /// "ok" (204) or "500".
    pub fn set_mode(&self, mode: &str) {
        std::fs::write(self.path("mode"), mode).unwrap();
    }

    pub fn start(&mut self) {
        let mut child = Command::new(PYTHON)
            .arg(SCRIPT)
            .arg(self.port.to_string())
            .arg(self.path("cert.pem"))
            .arg(self.path("key.pem"))
            .arg(self.path("secret"))
            .arg(self.path("log"))
            .arg(self.path("mode"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready");
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.path("log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The requests that verified and were answered 2xx.
    pub fn accepted(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["verified"] == true && r["status"] == 204)
            .collect()
    }

    /// Types of the accepted requests.
    pub fn types(&self) -> HashSet<String> {
        self.accepted()
            .iter()
            .filter_map(|r| r["type"].as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A CA's PEM, and a certificate it signed for 127.0.0.1 with its key.
fn identity() -> (String, String, String) {
    let at = vec![rcgen::SanType::IpAddress(IpAddr::from([127, 0, 0, 1]))];
    let (ca, cert, key) = aviso_loadtest::issue_server_cert("test CRM", at).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}
