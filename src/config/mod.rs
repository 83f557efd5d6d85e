//! `aviso serve`'s configuration: flags, `AVISO_*` environment variables and an optional TOML
//! file, in that order of precedence, over documented defaults. Bad values stop start-up with a
//! message that names the setting.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Deserialize;

/// Where the store lives; shared by `serve` and `apps`.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory of the embedded store (used when no Redis URL is given). [default: ./aviso-data]
    #[arg(long, env = "AVISO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Redis URL (`redis://host:6379`), or comma-separated node URLs of a Redis Cluster.
    /// Absent: the embedded store.
    #[arg(long, env = "AVISO_REDIS_URL")]
    pub redis_url: Option<String>,
}

/// The flags (and environment variables) of `aviso serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (flags and environment win over it).
    #[arg(long, env = "AVISO_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on. [default: 127.0.0.1:8080]
    #[arg(long, env = "AVISO_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The URL browsers reach this server at (for the demo page and CORS). [default: http://LISTEN]
    #[arg(long, env = "AVISO_PUBLIC_URL")]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Extra hosts allowed as push endpoints besides FCM, Mozilla, Apple and WNS (comma-separated;
    /// e.g. 127.0.0.1 for a loopback mock push service).
    #[arg(long, env = "AVISO_ALLOWED_PUSH_HOSTS", value_delimiter = ',')]
    pub allowed_push_hosts: Vec<String>,
    /// Load balancers / reverse proxies (IPs or CIDRs, comma-separated) whose `X-Forwarded-For`
    /// names the client for the public rate limit; requests from anywhere else are counted by
    /// their own address.
    #[arg(long, env = "AVISO_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// PEM file of extra trusted root certificates for connections to push services.
    #[arg(long, env = "AVISO_EXTRA_CA_CERTS")]
    pub extra_ca_certs: Option<PathBuf>,
    /// Log format. [default: text]
    #[arg(long, env = "AVISO_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Which parts run here: the API, the sender, or both. [default: all]
    #[arg(long, env = "AVISO_ROLE")]
    pub role: Option<Role>,
    /// Directory of the browser SDK (`sw/`: `dist/` is served at /sdk/, `demo/index.html` at /).
    /// [default: ./sw]
    #[arg(long, env = "AVISO_SDK_DIR")]
    pub sdk_dir: Option<PathBuf>,
    /// Public API requests per second allowed per client address (burst: twice as many). [default: 50]
    #[arg(long, env = "AVISO_PUBLIC_RATE_LIMIT")]
    pub public_rate_limit: Option<u32>,
    /// VAPID contact for push services: mailto:you@example.com or an https: URL.
    /// [default: the public URL when it is https, else mailto:webpush@localhost.localdomain]
    #[arg(long, env = "AVISO_VAPID_SUBJECT")]
    pub vapid_subject: Option<String>,
    /// Seconds a worker's claim on a task lasts without a checkpoint before another instance
    /// takes the task over. [default: 30]
    #[arg(long, env = "AVISO_TASK_LEASE_SECS")]
    pub task_lease_secs: Option<u64>,
    /// Nice value (0–19) of the broadcast workers' threads: above 0 they take the CPU that the
    /// API and one-to-one pushes leave; 0 makes them equals. [default: 5]
    #[arg(long, env = "AVISO_BULK_NICE", value_parser = clap::value_parser!(u8).range(0..=19))]
    pub bulk_nice: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    All,
    Api,
    Sender,
}

/// The TOML file: the same settings, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    public_url: Option<String>,
    data_dir: Option<PathBuf>,
    redis_url: Option<String>,
    #[serde(default)]
    allowed_push_hosts: Vec<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    extra_ca_certs: Option<PathBuf>,
    log_format: Option<LogFormat>,
    role: Option<Role>,
    sdk_dir: Option<PathBuf>,
    public_rate_limit: Option<u32>,
    vapid_subject: Option<String>,
    task_lease_secs: Option<u64>,
    bulk_nice: Option<u8>,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// `http://LISTEN` unless set; `serve` fills in the real port when listening on port 0.
    pub public_url: String,
    pub public_url_is_default: bool,
    pub data_dir: PathBuf,
    pub redis_url: Option<String>,
    pub allowed_push_hosts: Vec<String>,
    /// Peers whose `X-Forwarded-For` is believed (see `api::client_ip`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub extra_ca_certs: Option<PathBuf>,
    pub log_format: LogFormat,
    pub role: Role,
    pub sdk_dir: PathBuf,
    pub public_rate_limit: u32,
    /// Explicit VAPID subject, if any (see [`Config::vapid_subject`]).
    pub vapid_subject: Option<String>,
    pub task_lease: std::time::Duration,
    /// Nice value of the bulk lane's threads (see `delivery::engine`).
    pub bulk_nice: u8,
}

/// A setting that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    pub fn load(args: &ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| ConfigError(format!("in {}: {e}", path.display())))?
            }
            None => FileConfig::default(),
        };
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let explicit_public_url = args.public_url.clone().or(file.public_url);
        let public_url_is_default = explicit_public_url.is_none();
        let public_url = explicit_public_url.unwrap_or_else(|| format!("http://{listen}"));
        let parsed = url::Url::parse(&public_url)
            .map_err(|e| ConfigError(format!("public_url `{public_url}` is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConfigError(format!(
                "public_url `{public_url}` must be http(s)"
            )));
        }
        let mut allowed_push_hosts = args.allowed_push_hosts.clone();
        allowed_push_hosts.extend(file.allowed_push_hosts);
        allowed_push_hosts.retain(|h| !h.trim().is_empty());
        for host in &mut allowed_push_hosts {
            *host = host.trim().to_ascii_lowercase();
            if host.contains('/') || host.contains(':') && !host.starts_with('[') {
                return Err(ConfigError(format!(
                    "allowed_push_hosts entry `{host}` must be a bare host name or IP, like 127.0.0.1"
                )));
            }
        }
        let trusted_proxies = args
            .trusted_proxies
            .iter()
            .chain(&file.trusted_proxies)
            .map(|entry| entry.trim())
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError(format!(
                            "trusted_proxies entry `{entry}` must be an IP address or a CIDR block, like 10.0.0.0/8"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let extra_ca_certs = args.extra_ca_certs.clone().or(file.extra_ca_certs);
        if let Some(path) = &extra_ca_certs
            && !path.is_file()
        {
            return Err(ConfigError(format!(
                "extra_ca_certs file {} does not exist",
                path.display()
            )));
        }
        let public_rate_limit = args
            .public_rate_limit
            .or(file.public_rate_limit)
            .unwrap_or(50);
        if public_rate_limit == 0 {
            return Err(ConfigError("public_rate_limit must be at least 1".into()));
        }
        let bulk_nice = args.bulk_nice.or(file.bulk_nice).unwrap_or(5);
        if bulk_nice > 19 {
            return Err(ConfigError(format!(
                "bulk_nice must be 0 to 19 (a nice value), not {bulk_nice}"
            )));
        }
        Ok(Self {
            listen,
            public_url: public_url.trim_end_matches('/').to_owned(),
            public_url_is_default,
            data_dir: args
                .store
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("aviso-data")),
            redis_url: args
                .store
                .redis_url
                .clone()
                .or(file.redis_url)
                .filter(|u| !u.is_empty()),
            allowed_push_hosts,
            trusted_proxies,
            extra_ca_certs,
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            role: args.role.or(file.role).unwrap_or(Role::All),
            sdk_dir: args
                .sdk_dir
                .clone()
                .or(file.sdk_dir)
                .unwrap_or_else(|| PathBuf::from("sw")),
            public_rate_limit,
            vapid_subject: args.vapid_subject.clone().or(file.vapid_subject),
            task_lease: std::time::Duration::from_secs(
                args.task_lease_secs
                    .or(file.task_lease_secs)
                    .unwrap_or(30)
                    .max(1),
            ),
            bulk_nice,
        })
    }

    /// The VAPID subject to sign with.
    pub fn vapid_subject(&self) -> Result<crate::push::vapid::VapidSubject, ConfigError> {
        let subject = match &self.vapid_subject {
            Some(subject) => subject.clone(),
            None if self.public_url.starts_with("https://") => self.public_url.clone(),
            None => "mailto:webpush@localhost.localdomain".to_owned(),
        };
        crate::push::vapid::VapidSubject::parse(&subject)
            .map_err(|e| ConfigError(format!("vapid_subject: {e}")))
    }
}
