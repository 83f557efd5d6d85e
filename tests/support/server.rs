//! A real `aviso serve` process for tests: its own data directory (or a Redis), a free port,
//! the default app's credentials read from what it prints; killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::http::Fetch;

pub struct Aviso {
    child: Child,
    pub base: String,
    /// Empty when the store already had an app (only the first start creates one).
    pub app_id: String,
    pub api_key: String,
    /// The `admin`-scoped key printed with the default app.
    pub admin_key: String,
    pub vapid_public_key: String,
    pub identity_secret: Vec<u8>,
    /// The secret of the receipt tokens in each payload.
    pub receipt_secret: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl Aviso {
    /// Starts on the embedded store (`redis_url` = None) or on Redis.
    pub fn start(redis_url: Option<&str>, extra_env: &[(&str, &str)]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), redis_url, extra_env)
    }

    /// `kill -9`, then a new process on the same data directory (and settings).
    pub fn restart(mut self, redis_url: Option<&str>, extra_env: &[(&str, &str)]) -> Self {
        self.kill();
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        let (app_id, api_key) = (self.app_id.clone(), self.api_key.clone());
        let admin_key = self.admin_key.clone();
        let mut again = Self::start_in(dir, redis_url, extra_env);
        // Only a first start prints the default app.
        again.app_id = app_id;
        again.api_key = api_key;
        again.admin_key = admin_key;
        again
    }

    fn start_in(
        dir: tempfile::TempDir,
        redis_url: Option<&str>,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_aviso"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            // The fake endpoints of tests/api.rs (the discard port: nothing is ever sent there);
            // tests with a mock push service name its port in `extra_env`.
            .env("AVISO_ALLOWED_PUSH_HOSTS", "127.0.0.1:9")
            .env("AVISO_PUBLIC_RATE_LIMIT", "10000")
            .env("AVISO_LOG", "warn")
            .env_remove("AVISO_REDIS_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = redis_url {
            command.env("AVISO_REDIS_URL", url);
        }
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        // The default app is printed only by the first start on a store; then "listening:".
        let mut fields = std::collections::HashMap::new();
        let base = loop {
            let line = lines.next().expect("aviso serve exited early").unwrap();
            let line = line.trim();
            if let Some(url) = line.strip_prefix("listening:") {
                break url.trim().to_owned();
            }
            if let Some((key, value)) = line.split_once(':') {
                fields.insert(key.trim().to_owned(), value.trim().to_owned());
            }
        };
        let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
        let unhex = |text: String| -> Vec<u8> {
            (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
                .collect()
        };
        let identity_secret = unhex(field("identity_secret"));
        let receipt_secret = unhex(field("receipt_secret"));
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            base,
            app_id: field("app_id"),
            api_key: field("api_key"),
            admin_key: field("admin_key"),
            vapid_public_key: field("vapid_public_key"),
            identity_secret,
            receipt_secret,
            _dir: dir,
        }
    }

    /// The receipt token of a push, computed by Python's `hmac` (independent of Aviso's):
    /// HMAC-SHA256(receipt secret, NOTIFICATION NUL SUBSCRIPTION), 16 bytes, base64url.
    pub fn receipt_token(&self, notification_id: &str, subscription_id: &str) -> String {
        receipt_token(&self.receipt_secret, notification_id, subscription_id)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn public(&self, path: &str) -> String {
        format!("{}/v1/apps/{}{path}", self.base, self.app_id)
    }

    /// POSTs `body` as JSON to the app's public `path` (as a browser does); the server must
    /// answer (any status).
    pub async fn post_public<B: serde::Serialize + ?Sized>(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: &B,
    ) -> reqwest::Response {
        client.post(self.public(path)).json(body).sent().await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self, client: &reqwest::Client) -> String {
        let response = client.get(self.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// Messages this instance finished sending (`aviso_sends_total`, every outcome).
    pub async fn sends(&self, client: &reqwest::Client) -> f64 {
        let metrics = self.metrics(client).await;
        metrics
            .lines()
            .filter(|line| line.starts_with("aviso_sends_total"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// `GET /v1/notifications/{id}` with the app's `api_key`: the notification and its counters.
    pub async fn notification(
        &self,
        client: &reqwest::Client,
        api_key: &str,
        id: &str,
    ) -> serde_json::Value {
        let response = client
            .get(self.url(&format!("/v1/notifications/{id}")))
            .bearer_auth(api_key)
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }

    /// `kill -9`: no shutdown, no hand-back.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as an orchestrator stops a process: a graceful shutdown.
    pub fn terminate(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: a signal to our own child process, which has not been reaped yet.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(
            sent,
            0,
            "SIGTERM to aviso serve: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Waits up to `timeout` for the process to exit: its status, or `None` while it runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for aviso serve") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Aviso {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A receipt token as Python's standard library computes it (see [`Aviso::receipt_token`]).
pub fn receipt_token(secret: &[u8], notification_id: &str, subscription_id: &str) -> String {
    python_token(secret, &[notification_id, subscription_id])
}

/// A token as Python's standard library computes it, independent of Aviso's code:
/// HMAC-SHA256(secret, the parts joined by NUL), its first 16 bytes, base64url unpadded.
pub fn python_token(secret: &[u8], parts: &[&str]) -> String {
    let script = "import base64,hmac,hashlib,sys\n\
        key=bytes.fromhex(sys.argv[1])\n\
        msg=b'\\0'.join(part.encode() for part in sys.argv[2:])\n\
        tag=hmac.new(key,msg,hashlib.sha256).digest()[:16]\n\
        print(base64.urlsafe_b64encode(tag).decode().rstrip('='))";
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    super::command::stdout_of(
        Command::new("python3")
            .args(["-c", script, &hex])
            .args(parts),
    )
    .trim()
    .to_owned()
}
