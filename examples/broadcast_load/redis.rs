//! Redis for a run: `--cluster` starts a Redis Cluster of three masters (no replicas) on free
//! loopback ports in a temporary directory, as the tests do (`tests/support/redis.rs`), and
//! stops it at the end; [`used_memory`] sums `INFO memory`'s `used_memory` over the nodes of a
//! URL (a Cluster's URL must then list every master, as the one `--cluster` makes does).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Redis Cluster the driver started; stopped on drop.
pub struct Cluster {
    nodes: Vec<(u16, Child)>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `masters` cluster-enabled `redis-server`s and joins them with
    /// `redis-cli --cluster create … --cluster-replicas 0`.
    pub fn start(masters: usize) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut cluster = Self {
            nodes: Vec::with_capacity(masters),
            _dir: dir,
        };
        for _ in 0..masters {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes", "--cluster-config-file"])
                .arg(format!("nodes-{port}.conf"))
                .arg("--dir")
                .arg(cluster._dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            cluster.nodes.push((port, child));
            wait_for(|| cli(port, &["PING"]).is_ok_and(|out| out.trim() == "PONG"))?;
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()?;
        anyhow::ensure!(
            created.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        for (port, _) in &cluster.nodes {
            let port = *port;
            wait_for(|| {
                cli(port, &["CLUSTER", "INFO"]).is_ok_and(|out| out.contains("cluster_state:ok"))
            })?;
        }
        Ok(cluster)
    }

    /// The nodes' URLs, comma-separated, as `AVISO_REDIS_URL` takes them.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|(port, _)| format!("redis://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `ready` every 50 ms for at most 10 s.
fn wait_for(ready: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        anyhow::ensure!(Instant::now() < deadline, "Redis did not come up in 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// One `redis-cli` command against `host`:`port`; its output.
fn cli_at(host: &str, port: u16, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("redis-cli")
        .args(["-h", host, "-p", &port.to_string()])
        .args(args)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "redis-cli {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn cli(port: u16, args: &[&str]) -> anyhow::Result<String> {
    cli_at("127.0.0.1", port, args)
}

/// `used_memory` in bytes, summed over the nodes of `url` (`redis://host:port`, comma-separated).
pub fn used_memory(url: &str) -> anyhow::Result<u64> {
    let mut total = 0;
    for node in url.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let address = node
            .trim_start_matches("redis://")
            .split(['/', '?'])
            .next()
            .unwrap_or_default();
        let address = address.rsplit('@').next().unwrap_or(address);
        let (host, port) = address
            .rsplit_once(':')
            .map_or((address, Ok(6379)), |(host, port)| (host, port.parse()));
        let info = cli_at(host, port?, &["INFO", "memory"])?;
        let used = info
            .lines()
            .find_map(|line| line.trim().strip_prefix("used_memory:"))
            .ok_or_else(|| anyhow::anyhow!("no used_memory in INFO memory of {node}"))?;
        total += used.trim().parse::<u64>()?;
    }
    Ok(total)
}
