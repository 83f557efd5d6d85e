//! `aviso-mock-push`: the mock push service as a standalone process, for load tests.
//!
//! Prints `listening: https://127.0.0.1:PORT` on stdout once it accepts connections, then a
//! `stats: {json}` line every `--report-every` seconds and a last one on SIGINT/SIGTERM before it
//! exits. `GET /stats` on the same origin answers the counters as JSON at any time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aviso_loadtest::{MockConfig, MockPushService, Stats, Throttle, Unavailable};
use clap::Parser;
use serde::Serialize;
use tokio::signal::unix::{SignalKind, signal};

/// A strict mock Web Push service (HTTPS, HTTP/2) with configurable latency and errors.
#[derive(Debug, Parser)]
#[command(name = "aviso-mock-push", version)]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Fixed delay before every answer, in milliseconds.
    #[arg(long, default_value_t = 0.0, value_parser = non_negative)]
    latency_ms: f64,
    /// Extra uniformly random delay, up to this many milliseconds.
    #[arg(long, default_value_t = 0.0, value_parser = non_negative)]
    jitter_ms: f64,
    /// Fraction of endpoint ids answered 410 Gone (chosen by a stable hash of the id).
    #[arg(long, default_value_t = 0.0)]
    gone_fraction: f64,
    /// Answer 429 to the first N requests.
    #[arg(long, default_value_t = 0)]
    throttle_first: u64,
    /// Then answer 429 to this fraction of requests, evenly spread.
    #[arg(long, default_value_t = 0.0)]
    throttle_fraction: f64,
    /// Retry-After (seconds) sent with 429.
    #[arg(long, default_value_t = 1)]
    retry_after: u32,
    /// Answer 503 to the first N requests.
    #[arg(long, default_value_t = 0)]
    unavailable_first: u64,
    /// Period, in requests, of repeating 503 bursts (with --unavailable-burst).
    #[arg(long, default_value_t = 0)]
    unavailable_every: u64,
    /// Answer 503 to the last M requests of every period of --unavailable-every.
    #[arg(long, default_value_t = 0)]
    unavailable_burst: u64,
    /// Give one endpoint at most N of the periodic bursts' 503s (a transient error per message).
    #[arg(long)]
    unavailable_per_endpoint: Option<u32>,
    /// Retry-After (seconds) sent with 503; none by default.
    #[arg(long)]
    unavailable_retry_after: Option<u32>,
    /// Largest accepted body in bytes (413 above).
    #[arg(long, default_value_t = aviso_loadtest::DEFAULT_PAYLOAD_LIMIT)]
    payload_limit: usize,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection.
    #[arg(long, default_value_t = aviso_loadtest::DEFAULT_MAX_CONCURRENT_STREAMS)]
    max_concurrent_streams: u32,
    /// Write the CA certificate to trust to this file.
    #[arg(long)]
    ca_out: Option<PathBuf>,
    /// JSON-lines file of {"id", "private_key", "auth", "p256dh"?} (base64url): decrypt and check
    /// every message to these endpoint ids.
    #[arg(long)]
    verify_keys: Option<PathBuf>,
    /// Print the counters every N seconds.
    #[arg(long)]
    report_every: Option<u64>,
    /// Keep each delivery's headers and plaintext, served at `GET /messages/{id}` (memory grows
    /// with every message).
    #[arg(long)]
    record_details: bool,
}

fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!("{text:?} is not a non-negative number")),
    }
}

impl Args {
    fn config(&self) -> MockConfig {
        MockConfig::default()
            .listen(self.listen)
            .max_concurrent_streams(self.max_concurrent_streams)
            .record_details(self.record_details)
            .latency(
                Duration::from_secs_f64(self.latency_ms / 1000.0),
                Duration::from_secs_f64(self.jitter_ms / 1000.0),
            )
            .gone_fraction(self.gone_fraction)
            .throttle(Throttle {
                first: self.throttle_first,
                fraction: self.throttle_fraction,
                retry_after_secs: self.retry_after,
            })
            .unavailable(Unavailable {
                first: self.unavailable_first,
                every: self.unavailable_every,
                burst: self.unavailable_burst,
                per_endpoint: self.unavailable_per_endpoint,
                retry_after_secs: self.unavailable_retry_after,
            })
            .payload_limit(self.payload_limit)
    }
}

/// One `stats:` line.
#[derive(Serialize)]
struct Report {
    uptime_s: f64,
    /// Push requests per second since the previous line.
    requests_per_s: f64,
    #[serde(rename = "final")]
    last: bool,
    stats: Stats,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("aviso-mock-push: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("aviso-mock-push: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mock = MockPushService::start(args.config()).await?;
    if let Some(path) = &args.ca_out {
        mock.write_ca_cert(path)?;
    }
    if let Some(path) = &args.verify_keys {
        let registered = mock.load_verify_keys(path)?;
        eprintln!(
            "aviso-mock-push: decrypting messages for {registered} subscribers from {}",
            path.display()
        );
    }
    println!("listening: {}", mock.base_url());

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let started = Instant::now();
    let period = args
        .report_every
        .filter(|&seconds| seconds > 0)
        .map(Duration::from_secs);
    // Without --report-every the ticker exists but its branch below is disabled.
    let mut ticker = tokio::time::interval(period.unwrap_or(Duration::from_secs(3600)));
    ticker.tick().await;
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::select! {
            _ = ticker.tick(), if period.is_some() => {
                last = report(&mock, started, last, false)?;
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    mock.shutdown().await;
    report(&mock, started, last, true)?;
    Ok(())
}

/// Prints a `stats:` line; returns the time and request count it was taken at.
fn report(
    mock: &MockPushService,
    started: Instant,
    (previous_at, previous_requests): (Instant, u64),
    last: bool,
) -> Result<(Instant, u64), serde_json::Error> {
    let now = Instant::now();
    let stats = mock.stats();
    let interval = now.duration_since(previous_at).as_secs_f64();
    let requests = stats.requests;
    let line = serde_json::to_string(&Report {
        uptime_s: now.duration_since(started).as_secs_f64(),
        requests_per_s: if interval > 0.0 {
            requests.saturating_sub(previous_requests) as f64 / interval
        } else {
            0.0
        },
        last,
        stats,
    })?;
    println!("stats: {line}");
    Ok((now, requests))
}
