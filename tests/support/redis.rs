//! Redis servers for tests: a single `redis-server`, or a 3-master Redis Cluster, each on free
//! loopback ports with its own temporary directory, stopped when dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Fails with an instruction when Redis is not installed, rather than skipping silently.
fn require_redis() {
    for tool in ["redis-server", "redis-cli"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok();
        assert!(
            found,
            "`{tool}` is not installed: run scripts/test (it installs Redis) or `apt-get install redis-server redis-tools`"
        );
    }
}

fn free_port() -> u16 {
    // Cluster nodes also listen on port + 10000, so stay below 55535.
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} did not become ready within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

struct Node {
    port: u16,
    child: Child,
    /// Every write on disk before Redis answers it (append-only file, fsync always), so that
    /// a restart, even after `kill -9`, finds everything it acknowledged.
    durable: bool,
}

impl Node {
    fn start(dir: &std::path::Path, cluster: bool) -> Self {
        Self::start_with(dir, cluster, false)
    }

    fn start_with(dir: &std::path::Path, cluster: bool, durable: bool) -> Self {
        // A port found free can be taken before redis-server binds it (another test's
        // outgoing connection gets it as its ephemeral port): then the server exits at once,
        // and another port is tried.
        for _ in 0..5 {
            let port = free_port();
            if let Some(child) = try_spawn(port, dir, cluster, durable) {
                return Self {
                    port,
                    child,
                    durable,
                };
            }
        }
        panic!("redis-server exited at start on five free ports in a row");
    }
}

/// Starts `redis-server` on `port` and waits until it answers.
fn spawn(port: u16, dir: &std::path::Path, cluster: bool) -> Child {
    spawn_with(port, dir, cluster, false)
}

fn spawn_with(port: u16, dir: &std::path::Path, cluster: bool, durable: bool) -> Child {
    try_spawn(port, dir, cluster, durable)
        .unwrap_or_else(|| panic!("redis-server exited at start on port {port}"))
}

/// [`spawn_with`], or `None` when the server exits before it answers (its port was taken).
fn try_spawn(port: u16, dir: &std::path::Path, cluster: bool, durable: bool) -> Option<Child> {
    {
        let mut command = Command::new("redis-server");
        command
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                if durable { "yes" } else { "no" },
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if cluster {
            command.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &format!("nodes-{port}.conf"),
            ]);
        }
        let mut child = command.spawn().unwrap();
        let mut exited = false;
        wait_for("redis-server", || {
            exited = child.try_wait().ok().flatten().is_some();
            exited || cli(port, &["PING"]).trim() == "PONG"
        });
        (!exited).then_some(child)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One Redis server.
pub struct RedisServer {
    node: Node,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        require_redis();
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start(dir.path(), false);
        Self { node, _dir: dir }
    }

    /// A server that keeps every acknowledged write across [`RedisServer::stop`] and
    /// [`RedisServer::restart`] (for outage tests that must lose nothing).
    pub fn start_durable() -> Self {
        require_redis();
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start_with(dir.path(), false, true);
        Self { node, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.node.port)
    }

    pub fn port(&self) -> u16 {
        self.node.port
    }

    /// Runs one `redis-cli` command against the server; its output.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.node.port, args)
    }

    /// Stops the server (for outage tests); `restart` brings it back on the same port.
    pub fn stop(&mut self) {
        let _ = self.node.child.kill();
        let _ = self.node.child.wait();
    }

    pub fn restart(&mut self) {
        self.node.child = spawn_with(self.node.port, self._dir.path(), false, self.node.durable);
    }
}

/// A Redis Cluster of three masters.
pub struct RedisCluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    pub fn start() -> Self {
        require_redis();
        let dir = tempfile::tempdir().unwrap();
        let nodes: Vec<Node> = (0..3).map(|_| Node::start(dir.path(), true)).collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        super::command::stdout_of(
            Command::new("redis-cli")
                .arg("--cluster")
                .arg("create")
                .args(&addresses)
                .args(["--cluster-replicas", "0", "--cluster-yes"]),
        );
        for node in &nodes {
            wait_for("redis cluster", || {
                cli(node.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
            });
        }
        Self { nodes, _dir: dir }
    }

    /// The nodes' URLs, comma-separated, as `AVISO_REDIS_URL` takes them.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }
}
