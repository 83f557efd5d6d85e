//! The `aviso serve` processes a run starts: how they are started (the mock as push service,
//! limits that do not refuse one address's many subscribers), what they print, how they are
//! stopped, and what they use (CPU time from `/proc/PID/stat`, resident memory sampled from
//! `/proc/PID/status`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What every `aviso serve` of a run shares.
pub struct Setup {
    /// The binary (`--aviso`).
    pub aviso: String,
    /// The mock's CA certificate, trusted for push-service connections.
    pub ca: PathBuf,
    /// The mock's `HOST:PORT` (or its host alone, `--bare-host`): the push service and the
    /// webhook target.
    pub mock: String,
    /// Redis or Cluster URL(s); `None`: the embedded store.
    pub redis: Option<String>,
}

/// A running `aviso serve`, and what it printed before `listening:`.
pub struct Serve {
    child: Child,
    pub pid: u32,
    /// `app_id`, `api_key`, `admin_key`, … (printed only at a store's first start).
    pub fields: HashMap<String, String>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Serve {
    /// Starts `aviso serve` on a free loopback port over `data_dir` (the embedded store's, or
    /// unused with Redis); `sender_only` runs it with `--role sender`.
    pub fn start(setup: &Setup, data_dir: &Path, sender_only: bool) -> anyhow::Result<Self> {
        let mut command = Command::new(&setup.aviso);
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir)
            .env("AVISO_EXTRA_CA_CERTS", &setup.ca)
            .env("AVISO_ALLOWED_PUSH_HOSTS", &setup.mock)
            .env("AVISO_ALLOWED_WEBHOOK_HOSTS", &setup.mock)
            // Every subscriber comes from this one address into one app: neither limit may refuse them.
            .env("AVISO_PUBLIC_RATE_LIMIT", "100000000")
            .env("AVISO_PUBLIC_APP_RATE_LIMIT", "100000000")
            .env("AVISO_LOG", "warn")
            .env("AVISO_REDIS_URL", setup.redis.clone().unwrap_or_default())
            .stdout(Stdio::piped());
        if sender_only {
            command.args(["--role", "sender"]);
        }
        let mut child = command.spawn()?;
        let pid = child.id();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut fields = HashMap::new();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let base = loop {
            let line = lines.next().ok_or_else(|| {
                anyhow::anyhow!("aviso exited; run `cargo build --release --bins --examples` first")
            })??;
            if let Some(url) = line.trim().strip_prefix("listening:") {
                break url.trim().to_owned();
            }
            if let Some((k, v)) = line.trim().split_once(':') {
                fields.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(Self {
            child,
            pid,
            fields,
            base,
        })
    }

    /// The printed field `name`, or an error saying that it was not printed.
    pub fn field(&self, name: &str) -> anyhow::Result<String> {
        self.fields.get(name).cloned().ok_or_else(|| {
            anyhow::anyhow!("aviso serve printed no `{name}` (not a new store? use an empty one)")
        })
    }

    /// SIGTERM, then waits for the exit (the embedded store's file is free once it has
    /// exited); killed if it has not exited in 60 s.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let pid = libc::pid_t::try_from(self.pid)?;
        // SAFETY: kill(2) on a child of this process that has not been waited for.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.child.kill()?;
                self.child.wait()?;
                anyhow::bail!("aviso serve (pid {pid}) did not stop in 60 s after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU time of process `pid`, in seconds (fields 14 and 15 of `/proc/PID/stat`,
/// in clock ticks of 1/100 s).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// `VmRSS` of process `pid` in KiB; `None` once it has exited.
fn resident_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// One process's resident memory over a run, in KiB.
#[derive(Debug, Clone, Copy)]
pub struct Resident {
    pub first: u64,
    pub min: u64,
    pub max: u64,
    pub last: u64,
}

impl Resident {
    fn add(this: &mut Option<Self>, kib: u64) {
        let seen = this.get_or_insert(Self {
            first: kib,
            min: kib,
            max: kib,
            last: kib,
        });
        seen.min = seen.min.min(kib);
        seen.max = seen.max.max(kib);
        seen.last = kib;
    }
}

/// Samples the resident memory of some processes every `every` on a thread of its own.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Option<Resident>>>>,
    thread: std::thread::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pids: Vec<u32>, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(vec![None; pids.len()]));
        let thread = std::thread::spawn({
            let (stop, seen) = (stop.clone(), seen.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(mut seen) = seen.lock() {
                        for (slot, pid) in seen.iter_mut().zip(&pids) {
                            if let Some(kib) = resident_kib(*pid) {
                                Resident::add(slot, kib);
                            }
                        }
                    }
                    std::thread::sleep(every);
                }
            }
        });
        Self { stop, seen, thread }
    }

    /// Stops, and answers each process's figures (in `pids`' order; `None`: never read).
    pub fn finish(self) -> Vec<Option<Resident>> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        match self.seen.lock() {
            Ok(seen) => seen.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}
