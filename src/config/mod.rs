//! `aviso serve`'s configuration: one schema ([`ServeArgs`]) read from flags, `AVISO_*`
//! environment variables and an optional TOML file, in that order of precedence, over the
//! defaults named here; then the whole of it is checked ([`Config::load`]) before anything is
//! opened, created or printed. A bad value stops start-up with a message that names the setting.
//!
//! Flags and environment variables are clap's (one setting: one flag, one variable); the file is
//! merged under them with `figment`, keyed by the same names (`allowed_push_hosts = [...]`). A
//! setting given in several places takes the highest one whole: a list in the file is replaced
//! by the list of a flag, never appended to.

mod push_host;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::push::vapid::VapidSubject;
pub use push_host::PushHost;

/// Where the embedded store lives when nothing else is said.
pub const DEFAULT_DATA_DIR: &str = "aviso-data";
const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);
const DEFAULT_SDK_DIR: &str = "sw";
const DEFAULT_PUBLIC_RATE_LIMIT: u32 = 50;
const DEFAULT_PUBLIC_APP_RATE_LIMIT: u32 = 1000;
const DEFAULT_TASK_LEASE_SECS: u64 = 30;
/// Seconds from a stop signal to exit.
const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;
const DEFAULT_BULK_NICE: u8 = 5;
const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
/// The VAPID contact when neither one nor an https public URL is configured.
const FALLBACK_VAPID_SUBJECT: &str = "mailto:webpush@localhost.localdomain";

/// Where the store lives; shared by `serve` and `apps`.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
pub struct StoreArgs {
    /// Directory of the embedded store (used when no Redis URL is given). [default: ./aviso-data]
    #[arg(long, env = "AVISO_DATA_DIR")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Redis URL (`redis://host:6379`), or comma-separated node URLs of a Redis Cluster.
    /// Absent: the embedded store.
    #[arg(long, env = "AVISO_REDIS_URL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Most memory, in MiB, the embedded store keeps as its page cache (read and written
    /// pages; the OS caches the file besides). Unused with Redis. [default: 64]
    #[arg(long, env = "AVISO_STORE_CACHE_MB")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_cache_mb: Option<u64>,
}

impl StoreArgs {
    /// The embedded store's directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    /// The embedded store's page cache in MiB, checked: at least 1, at most 1,048,576 (1 TiB).
    pub fn store_cache_mb(&self) -> Result<u64, ConfigError> {
        match self.store_cache_mb {
            None => Ok(crate::store::embedded::DEFAULT_CACHE_MB),
            Some(mb @ 1..=MAX_STORE_CACHE_MB) => Ok(mb),
            Some(mb) => Err(ConfigError::new(format!(
                "store_cache_mb must be 1 to {MAX_STORE_CACHE_MB} (MiB), not {mb}"
            ))),
        }
    }

    /// Opens the store these settings name.
    pub async fn open(&self) -> anyhow::Result<std::sync::Arc<dyn crate::store::Store>> {
        Ok(crate::store::open_with_cache(
            self.redis_url.as_deref().filter(|u| !u.is_empty()),
            &self.data_dir(),
            self.store_cache_mb()?,
        )
        .await?)
    }
}

/// The largest `store_cache_mb`: 1 TiB, far above any machine this runs on.
const MAX_STORE_CACHE_MB: u64 = 1 << 20;

/// Every setting of `aviso serve`: its flag, its environment variable and its key in the TOML
/// file (the field's name), all optional; [`Config::load`] fills in the defaults.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
pub struct ServeArgs {
    /// TOML file with any of the settings below, by their names with underscores
    /// (`public_url = "https://push.example"`); flags and environment win over it.
    #[arg(long, env = "AVISO_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on. [default: 127.0.0.1:8080]
    #[arg(long, env = "AVISO_LISTEN")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// The URL browsers reach this server at (for the demo page and CORS). [default: http://LISTEN]
    #[arg(long, env = "AVISO_PUBLIC_URL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub store: StoreArgs,
    /// Extra push services allowed as endpoints besides FCM, Mozilla, Apple and WNS, each as
    /// HOST:PORT (comma-separated; a bare host means port 443), e.g. 127.0.0.1:8443 for a
    /// loopback mock push service.
    #[arg(long, env = "AVISO_ALLOWED_PUSH_HOSTS", value_delimiter = ',')]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_push_hosts: Option<Vec<String>>,
    /// Load balancers / reverse proxies (IPs or CIDRs, comma-separated) whose `X-Forwarded-For`
    /// names the client for the public rate limit; requests from anywhere else are counted by
    /// their own address.
    #[arg(long, env = "AVISO_TRUSTED_PROXIES", value_delimiter = ',')]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_proxies: Option<Vec<String>>,
    /// PEM file of extra trusted root certificates for connections to push services.
    #[arg(long, env = "AVISO_EXTRA_CA_CERTS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_ca_certs: Option<PathBuf>,
    /// Log format (`AVISO_LOG` sets the level). [default: text]
    #[arg(long, env = "AVISO_LOG_FORMAT")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Which parts run here: the API, the sender, or both. [default: all]
    #[arg(long, env = "AVISO_ROLE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Directory of the browser SDK (`sw/`: `dist/` is served at /sdk/, `demo/index.html` at /).
    /// [default: ./sw]
    #[arg(long, env = "AVISO_SDK_DIR")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_dir: Option<PathBuf>,
    /// Public API requests per second allowed per client address (burst: twice as many). [default: 50]
    #[arg(long, env = "AVISO_PUBLIC_RATE_LIMIT")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_rate_limit: Option<u32>,
    /// Public API requests per second allowed per app, from all addresses together (burst:
    /// twice as many), so that many addresses cannot flood one app. [default: 1000]
    #[arg(long, env = "AVISO_PUBLIC_APP_RATE_LIMIT")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_app_rate_limit: Option<u32>,
    /// Seconds an API request may take before it is answered 503 (bulk profile imports are
    /// exempt: they stream). [default: 30]
    #[arg(long, env = "AVISO_REQUEST_TIMEOUT_SECS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_secs: Option<u64>,
    /// VAPID contact for push services: mailto:you@example.com or an https: URL.
    /// [default: the public URL when it is https, else mailto:webpush@localhost.localdomain]
    #[arg(long, env = "AVISO_VAPID_SUBJECT")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vapid_subject: Option<String>,
    /// Seconds a worker's claim on a task lasts without a checkpoint before another instance
    /// takes the task over. [default: 30]
    #[arg(long, env = "AVISO_TASK_LEASE_SECS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_lease_secs: Option<u64>,
    /// Nice value (0–19) of the broadcast workers' threads: above 0 they take the CPU that the
    /// API and one-to-one pushes leave; 0 makes them equals. [default: 5]
    #[arg(long, env = "AVISO_BULK_NICE", value_parser = clap::value_parser!(u8).range(0..=19))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk_nice: Option<u8>,
    /// Webhook targets allowed although not on a public address, each as HOST:PORT
    /// (comma-separated), e.g. 127.0.0.1:9443 for a receiver on this machine.
    #[arg(long, env = "AVISO_ALLOWED_WEBHOOK_HOSTS", value_delimiter = ',')]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_webhook_hosts: Option<Vec<String>>,
    /// Seconds a webhook event is retried before it becomes a dead letter. [default: 86400]
    #[arg(long, env = "AVISO_WEBHOOK_RETRY_SECS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_retry_secs: Option<u64>,
    /// Longest wait, in seconds, between two attempts at a failing webhook (the wait doubles
    /// from one second up to this). [default: 600]
    #[arg(long, env = "AVISO_WEBHOOK_BACKOFF_MAX_SECS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_backoff_max_secs: Option<u64>,
    /// Seconds from SIGTERM/SIGINT to exit: retries stop at once, requests in flight may answer
    /// for most of it, then unfinished tasks are handed back to other instances. [default: 30]
    #[arg(long, env = "AVISO_SHUTDOWN_GRACE_SECS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_grace_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    All,
    Api,
    Sender,
}

/// The effective configuration, every value checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// `http://LISTEN` unless set; `serve` fills in the real port when listening on port 0.
    pub public_url: String,
    pub public_url_is_default: bool,
    pub data_dir: PathBuf,
    pub redis_url: Option<String>,
    /// The embedded store's page cache, in MiB (`store_cache_mb`).
    pub store_cache_mb: u64,
    /// Push services allowed besides the well-known ones (see `api::public`).
    pub allowed_push_hosts: Vec<PushHost>,
    /// Peers whose `X-Forwarded-For` is believed (see `api::client_ip`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub extra_ca_certs: Option<PathBuf>,
    pub log_format: LogFormat,
    pub role: Role,
    pub sdk_dir: PathBuf,
    pub public_rate_limit: u32,
    pub public_app_rate_limit: u32,
    pub request_timeout: Duration,
    /// The VAPID subject to sign with.
    pub vapid_subject: VapidSubject,
    pub task_lease: Duration,
    /// Nice value of the bulk lane's threads (see `delivery::engine`).
    pub bulk_nice: u8,
    /// Webhook targets allowed although not public (see `webhooks::target`).
    pub allowed_webhook_hosts: Vec<PushHost>,
    /// How webhook retries back off and when they give up.
    pub webhook_retry: crate::webhooks::model::RetryRule,
    /// From the shutdown signal to exit (see `delivery::engine`).
    pub shutdown_grace: Duration,
}

/// A setting that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl ServeArgs {
    /// The settings of flags and environment over those of the TOML file, if one is named.
    pub fn merged(&self) -> Result<Self, ConfigError> {
        let Some(path) = &self.config else {
            return Ok(self.clone());
        };
        if !path.is_file() {
            return Err(ConfigError::new(format!(
                "config file {} does not exist (--config / AVISO_CONFIG)",
                path.display()
            )));
        }
        check_file_keys(path)?;
        let mut merged: Self = Figment::from(Toml::file_exact(path))
            .merge(Serialized::defaults(self))
            .extract()
            .map_err(|e| {
                ConfigError::new(format!("in {}: {}", path.display(), file_mistake(path, &e)))
            })?;
        merged.config = self.config.clone();
        Ok(merged)
    }
}

/// A value of the file that is not what its setting takes, named by its key, in our words:
/// "`listen` must be socket address, not signed int `5`" rather than figment's "… for key
/// "default.listen" in … TOML file".
fn file_mistake(file: &Path, error: &figment::Error) -> String {
    let found = if error.path.is_empty() {
        key_at_fault(file)
    } else {
        None
    };
    let (key, kind) = match &found {
        Some((key, alone)) => (key.clone(), &alone.kind),
        None => (error.path.join("."), &error.kind),
    };
    match kind {
        _ if key.is_empty() => error.to_string(),
        figment::error::Kind::InvalidType(actual, expected)
        | figment::error::Kind::InvalidValue(actual, expected) => {
            format!(
                "`{key}` must be {}, not {actual}",
                crate::words::expected(expected)
            )
        }
        figment::error::Kind::UnknownVariant(actual, expected) => {
            let expected: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
            format!(
                "`{key}` must be one of {}, not `{actual}`",
                expected.join(", ")
            )
        }
        other => format!("`{key}`: {other}"),
    }
}

/// serde's `flatten` (the store's settings are a struct of their own) loses the key of a
/// mistake: found again by reading the file's keys one at a time.
fn key_at_fault(file: &Path) -> Option<(String, figment::Error)> {
    use figment::Provider;
    let data = Toml::file_exact(file).data().ok()?;
    data.values()
        .flat_map(|dict| dict.iter())
        .find_map(|(key, value)| {
            Figment::from(Serialized::default(key, value))
                .extract::<ServeArgs>()
                .err()
                .map(|error| (key.clone(), error))
        })
}

/// A key of the file that is no setting is a typo: say so rather than ignore it.
fn check_file_keys(path: &Path) -> Result<(), ConfigError> {
    use figment::Provider;
    let known: Vec<String> = ServeArgs::augment_args(clap::Command::new("serve"))
        .get_arguments()
        .map(|arg| arg.get_id().as_str().to_owned())
        .filter(|id| id != "config")
        .collect();
    let data = Toml::file_exact(path)
        .data()
        .map_err(|e| ConfigError::new(format!("in {}: {e}", path.display())))?;
    for key in data.values().flat_map(|dict| dict.keys()) {
        if !known.contains(key) {
            return Err(ConfigError::new(format!(
                "in {}: `{key}` is not a setting; the settings are {}",
                path.display(),
                known.join(", ")
            )));
        }
    }
    Ok(())
}

impl Config {
    /// Opens the store these settings name (Redis, or the embedded file with its page cache).
    pub async fn open_store(
        &self,
    ) -> crate::store::StoreResult<std::sync::Arc<dyn crate::store::Store>> {
        crate::store::open_with_cache(
            self.redis_url.as_deref(),
            &self.data_dir,
            self.store_cache_mb,
        )
        .await
    }

    /// Merges flags, environment and file, applies the defaults and checks every value.
    pub fn load(args: &ServeArgs) -> Result<Self, ConfigError> {
        let settings = args.merged()?;
        let listen = settings.listen.unwrap_or(DEFAULT_LISTEN);
        let public_url_is_default = settings.public_url.is_none();
        let public_url = settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{listen}"));
        let parsed = url::Url::parse(&public_url).map_err(|e| {
            ConfigError::new(format!("public_url `{public_url}` is not a URL: {e}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(ConfigError::new(format!(
                "public_url `{public_url}` must be an http(s) URL like https://push.example"
            )));
        }
        let public_url = public_url.trim_end_matches('/').to_owned();
        let allowed_push_hosts = hosts("allowed_push_hosts", &settings.allowed_push_hosts)?;
        let trusted_proxies = entries(&settings.trusted_proxies)
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError::new(format!(
                            "trusted_proxies entry `{entry}` must be an IP address or a CIDR block, like 10.0.0.0/8"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(path) = &settings.extra_ca_certs
            && !path.is_file()
        {
            return Err(ConfigError::new(format!(
                "extra_ca_certs file {} does not exist",
                path.display()
            )));
        }
        let at_least_one = |name: &str, value: Option<u64>, default: u64| match value {
            Some(0) => Err(ConfigError::new(format!("{name} must be at least 1"))),
            Some(value) => Ok(value),
            None => Ok(default),
        };
        let rate = |name: &str, value: Option<u32>, default: u32| {
            at_least_one(name, value.map(u64::from), u64::from(default))
                .and_then(|v| u32::try_from(v).map_err(|_| ConfigError::new(name.to_owned())))
        };
        let public_rate_limit = rate(
            "public_rate_limit",
            settings.public_rate_limit,
            DEFAULT_PUBLIC_RATE_LIMIT,
        )?;
        let public_app_rate_limit = rate(
            "public_app_rate_limit",
            settings.public_app_rate_limit,
            DEFAULT_PUBLIC_APP_RATE_LIMIT,
        )?;
        let request_timeout = Duration::from_secs(at_least_one(
            "request_timeout_secs",
            settings.request_timeout_secs,
            DEFAULT_REQUEST_TIMEOUT_SECS,
        )?);
        let task_lease = Duration::from_secs(at_least_one(
            "task_lease_secs",
            settings.task_lease_secs,
            DEFAULT_TASK_LEASE_SECS,
        )?);
        let bulk_nice = settings.bulk_nice.unwrap_or(DEFAULT_BULK_NICE);
        if bulk_nice > 19 {
            return Err(ConfigError::new(format!(
                "bulk_nice must be 0 to 19 (a nice value), not {bulk_nice}"
            )));
        }
        let allowed_webhook_hosts =
            hosts("allowed_webhook_hosts", &settings.allowed_webhook_hosts)?;
        let default_retry = crate::webhooks::model::RetryRule::default();
        let webhook_retry = crate::webhooks::model::RetryRule {
            give_up_after: Duration::from_secs(at_least_one(
                "webhook_retry_secs",
                settings.webhook_retry_secs,
                default_retry.give_up_after.as_secs(),
            )?),
            max_wait: Duration::from_secs(at_least_one(
                "webhook_backoff_max_secs",
                settings.webhook_backoff_max_secs,
                default_retry.max_wait.as_secs(),
            )?),
            ..default_retry
        };
        let vapid_subject = match &settings.vapid_subject {
            Some(subject) => subject.clone(),
            None if public_url.starts_with("https://") => public_url.clone(),
            None => FALLBACK_VAPID_SUBJECT.to_owned(),
        };
        let vapid_subject = VapidSubject::parse(&vapid_subject)
            .map_err(|e| ConfigError::new(format!("vapid_subject: {e}")))?;
        Ok(Self {
            listen,
            public_url,
            public_url_is_default,
            data_dir: settings.store.data_dir(),
            redis_url: settings.store.redis_url.clone().filter(|u| !u.is_empty()),
            store_cache_mb: settings.store.store_cache_mb()?,
            allowed_push_hosts,
            trusted_proxies,
            extra_ca_certs: settings.extra_ca_certs.clone(),
            log_format: settings.log_format.unwrap_or(LogFormat::Text),
            role: settings.role.unwrap_or(Role::All),
            sdk_dir: settings
                .sdk_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SDK_DIR)),
            public_rate_limit,
            public_app_rate_limit,
            request_timeout,
            vapid_subject,
            allowed_webhook_hosts,
            webhook_retry,
            task_lease,
            bulk_nice,
            shutdown_grace: Duration::from_secs(at_least_one(
                "shutdown_grace_secs",
                settings.shutdown_grace_secs,
                DEFAULT_SHUTDOWN_GRACE_SECS,
            )?),
        })
    }
}

/// The non-empty, trimmed entries of a list setting.
fn entries(list: &Option<Vec<String>>) -> impl Iterator<Item = &str> {
    list.iter()
        .flatten()
        .map(|entry| entry.trim())
        .filter(|entry| !entry.is_empty())
}

/// The hosts of the list setting `name`, each entry checked as a [`PushHost`] (`HOST:PORT`).
fn hosts(name: &str, list: &Option<Vec<String>>) -> Result<Vec<PushHost>, ConfigError> {
    entries(list)
        .map(|entry| {
            entry
                .parse::<PushHost>()
                .map_err(|e| ConfigError::new(format!("{name} entry `{entry}`: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn load(flags: &[&str], file: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aviso.toml");
        std::fs::write(&path, file).unwrap();
        let config = format!("--config={}", path.display());
        let argv = ["aviso", config.as_str()]
            .into_iter()
            .chain(flags.iter().copied());
        // Only flags here: the environment of the test process must not leak in.
        let cli = Cli::try_parse_from(argv).unwrap();
        Config::load(&cli.args)
    }

    #[test]
    fn the_file_fills_in_what_flags_leave_and_lists_are_replaced_whole() {
        let file = r#"
            log_format = "json"
            allowed_push_hosts = ["push.one:8443", "push.two:9443"]
            trusted_proxies = ["10.0.0.0/8"]
            public_rate_limit = 7
        "#;
        let config = load(&[], file).unwrap();
        assert_eq!(
            config.log_format,
            LogFormat::Json,
            "log_format from the file"
        );
        assert_eq!(config.allowed_push_hosts.len(), 2);
        assert_eq!(config.public_rate_limit, 7);
        let config = load(
            &[
                "--allowed-push-hosts=127.0.0.1:9",
                "--trusted-proxies=fd00::/8",
                "--log-format=text",
            ],
            file,
        )
        .unwrap();
        assert_eq!(config.log_format, LogFormat::Text, "a flag beats the file");
        assert_eq!(
            config.allowed_push_hosts,
            vec!["127.0.0.1:9".parse::<PushHost>().unwrap()],
            "a flag's list replaces the file's, not appends to it"
        );
        assert_eq!(
            config.trusted_proxies,
            vec!["fd00::/8".parse::<ipnet::IpNet>().unwrap()]
        );
        assert_eq!(config.public_rate_limit, 7);
        assert_eq!(
            config.store_cache_mb,
            crate::store::embedded::DEFAULT_CACHE_MB
        );
        let config = load(&[], "store_cache_mb = 16").unwrap();
        assert_eq!(config.store_cache_mb, 16, "store_cache_mb from the file");
    }

    #[test]
    fn every_bad_value_is_refused_by_name_before_anything_starts() {
        let refused = |flags: &[&str], file: &str| load(flags, file).unwrap_err().to_string();
        assert!(refused(&["--vapid-subject=bogus"], "").contains("vapid_subject"));
        assert!(refused(&[], "vapid_subject = \"bogus\"").contains("vapid_subject"));
        assert!(refused(&[], "log_formatt = \"json\"").contains("`log_formatt` is not a setting"));
        assert!(refused(&[], "listen = \"nowhere\"").contains("listen"));
        assert!(refused(&[], "public_url = \"ftp://x\"").contains("public_url"));
        assert!(refused(&["--allowed-push-hosts=a/b"], "").contains("allowed_push_hosts"));
        assert!(refused(&[], "trusted_proxies = [\"x\"]").contains("trusted_proxies"));
        assert!(refused(&[], "public_app_rate_limit = 0").contains("public_app_rate_limit"));
        assert!(refused(&[], "bulk_nice = 40").contains("bulk_nice"));
        assert!(refused(&[], "store_cache_mb = 0").contains("store_cache_mb"));
        assert!(refused(&["--store-cache-mb=2000000"], "").contains("store_cache_mb"));
    }

    /// A value of the wrong type in the file is named by its key and said in our words, also
    /// for the store's settings, whose key serde's `flatten` loses.
    #[test]
    fn a_wrong_type_in_the_file_names_its_key_in_our_words() {
        let refused = |file: &str| load(&[], file).unwrap_err().to_string();
        let cases = [
            (
                "listen = 5",
                "`listen` must be an address such as 127.0.0.1:8080",
            ),
            (
                "store_cache_mb = \"lots\"",
                "`store_cache_mb` must be a whole number",
            ),
            ("data_dir = 5", "`data_dir` must be a path"),
            (
                "allowed_push_hosts = \"a\"",
                "`allowed_push_hosts` must be a list",
            ),
            (
                "role = \"boss\"",
                "`role` must be one of `all`, `api`, `sender`, not `boss`",
            ),
        ];
        for (file, says) in cases {
            let message = refused(file);
            assert!(message.contains(says), "{file}: {message}");
            assert!(!message.contains("default."), "{file}: {message}");
        }
    }
}
