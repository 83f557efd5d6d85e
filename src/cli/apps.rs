//! `aviso apps …`: create, list, show, update and delete apps, and issue, rotate and revoke their
//! API keys, through a running server's admin API (`--server`, `--admin-key`), so that nothing
//! needs stopping. With `--data-dir` or `--redis-url` instead, `create`, `list` and `rotate-key`
//! work on the store directly (a server that is not running, or set-up scripts).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Value, json};

use super::CommandResult;
use super::admin::{AdminClient, ServerArgs};
use crate::apps::{DEFAULT_OVERLAP, create_app, hex, normalize_origin, rotate_key};
use crate::config::StoreArgs;
use crate::push::VapidKey;
use crate::store::{self, Scope, now_ms};

#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// Create an app; prints its id, API key (shown once), VAPID public key and identity secret.
    Create {
        #[arg(long)]
        name: String,
        /// An origin allowed to use the public API (repeat for several): https://shop.example
        #[arg(long = "origin")]
        origins: Vec<String>,
        /// Enable the demo page's "send me a test push" for this app.
        #[arg(long)]
        demo: bool,
        #[command(flatten)]
        via: Via,
    },
    /// List apps.
    List {
        #[command(flatten)]
        via: Via,
    },
    /// Show one app: origins, demo, VAPID public key, its keys (ids, scopes, expiries).
    Show {
        #[arg(long)]
        app: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Change an app's name, origins or demo switch; the change holds at once.
    Update {
        #[arg(long)]
        app: String,
        #[arg(long)]
        name: Option<String>,
        /// Replace the origins with these (repeat for several).
        #[arg(long = "origin")]
        origins: Vec<String>,
        /// Add an origin to those the app has.
        #[arg(long = "add-origin")]
        add_origins: Vec<String>,
        /// Remove an origin.
        #[arg(long = "remove-origin")]
        remove_origins: Vec<String>,
        /// Turn the demo test push on or off.
        #[arg(long)]
        demo: Option<bool>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Delete an app with its keys and subscriptions.
    Delete {
        #[arg(long)]
        app: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Replace an app's keys of a scope with a new one; the old ones keep working for the overlap.
    RotateKey {
        #[arg(long)]
        app: String,
        /// read, send or admin.
        #[arg(long, default_value = "send", value_parser = parse_scope)]
        scope: Scope,
        /// Seconds the old keys keep working (0: they stop at once). [default: 3600]
        #[arg(long)]
        overlap_seconds: Option<u64>,
        #[command(flatten)]
        via: Via,
    },
    /// Add a key (e.g. a `read` key for a dashboard) without touching the others.
    IssueKey {
        #[arg(long)]
        app: String,
        /// read, send or admin.
        #[arg(long, value_parser = parse_scope)]
        scope: Scope,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Stop a key at once (its id is in `aviso apps show`).
    RevokeKey {
        #[arg(long)]
        app: String,
        #[arg(long)]
        key: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// A running server (the default), or the store itself.
#[derive(Debug, Args)]
pub struct Via {
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    store: StoreArgs,
}

impl Via {
    fn direct(&self) -> bool {
        self.store.data_dir.is_some() || self.store.redis_url.is_some()
    }

    async fn open(&self) -> anyhow::Result<std::sync::Arc<dyn store::Store>> {
        self.store.open().await
    }
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    match text {
        "read" => Ok(Scope::Read),
        "send" => Ok(Scope::Send),
        "admin" => Ok(Scope::Admin),
        _ => Err("one of read, send, admin".into()),
    }
}

fn path(app: &str) -> String {
    format!(
        "/v1/admin/apps/{}",
        url::form_urlencoded::byte_serialize(app.as_bytes()).collect::<String>()
    )
}

fn check_origins(origins: &[String]) -> anyhow::Result<Vec<String>> {
    origins
        .iter()
        .map(|o| normalize_origin(o).map_err(|m| anyhow::anyhow!("--origin {m}")))
        .collect()
}

fn print_app(app: &Value, json: bool) {
    if json {
        println!("{app}");
        return;
    }
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    println!(
        "{}  {}  origins: {}  demo: {}",
        text(&app["app_id"]),
        text(&app["name"]),
        app["origins"]
            .as_array()
            .map(|o| o.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default(),
        app["demo"].as_bool().unwrap_or(false)
    );
}

fn print_secrets(answer: &Value, json: bool) {
    if json {
        println!("{answer}");
        return;
    }
    let text = |name: &str| answer[name].as_str().unwrap_or_default().to_owned();
    println!("app_id:           {}", text("app_id"));
    println!(
        "api_key:          {}   (shown once: only its hash is stored)",
        text("api_key")
    );
    println!("vapid_public_key: {}", text("vapid_public_key"));
    println!(
        "identity_secret:  {}   (for your backend's identity hashes)",
        text("identity_secret")
    );
}

fn print_key(answer: &Value, json: bool) {
    if json {
        println!("{answer}");
        return;
    }
    println!(
        "api_key: {}   (shown once; scope {})",
        answer["api_key"].as_str().unwrap_or_default(),
        answer["key"]["scope"].as_str().unwrap_or_default()
    );
    for old in answer["keys"].as_array().into_iter().flatten() {
        if let Some(end) = old["expires_at_ms"].as_u64() {
            println!(
                "  key {} ({}) keeps working until {} (Unix ms)",
                old["id"].as_str().unwrap_or_default(),
                old["scope"].as_str().unwrap_or_default(),
                end
            );
        }
    }
}

impl AppsCommand {
    pub async fn run(self) -> CommandResult {
        match self {
            Self::Create {
                name,
                origins,
                demo,
                via,
            } => {
                let origins = check_origins(&origins)?;
                let answer = if via.direct() {
                    let store = via.open().await?;
                    let mut created = create_app(&name, origins)?;
                    created.app.demo = demo;
                    store.put_app(&created.app).await?;
                    json!({"app_id": created.app.id, "name": name, "api_key": created.api_key,
                        "vapid_public_key": created.vapid_public_key, "identity_secret": hex(&created.app.identity_secret)})
                } else {
                    AdminClient::new(&via.server)?
                        .call(
                            Method::POST,
                            "/v1/admin/apps",
                            Some(&json!({"name": name, "origins": origins, "demo": demo})),
                        )
                        .await?
                };
                print_secrets(&answer, via.json);
            }
            Self::List { via } => {
                let apps: Vec<Value> = if via.direct() {
                    let store = via.open().await?;
                    let mut apps = Vec::new();
                    for app in store.list_apps().await? {
                        let public_key = VapidKey::from_private_scalar(&app.vapid_private_key)?
                            .public_key_base64url()
                            .to_owned();
                        apps.push(json!({"app_id": app.id, "name": app.name, "origins": app.origins, "demo": app.demo, "vapid_public_key": public_key}));
                    }
                    apps
                } else {
                    let answer = AdminClient::new(&via.server)?
                        .call(Method::GET, "/v1/admin/apps", None)
                        .await?;
                    answer["apps"].as_array().cloned().unwrap_or_default()
                };
                for app in &apps {
                    print_app(app, via.json);
                }
            }
            Self::Show { app, json, server } => {
                let answer = AdminClient::new(&server)?
                    .call(Method::GET, &path(&app), None)
                    .await?;
                if json {
                    println!("{answer}");
                } else {
                    print_app(&answer, false);
                    println!(
                        "vapid_public_key: {}",
                        answer["vapid_public_key"].as_str().unwrap_or_default()
                    );
                    for key in answer["keys"].as_array().into_iter().flatten() {
                        let end = key["expires_at_ms"]
                            .as_u64()
                            .map(|e| format!(", stops at {e} (Unix ms)"))
                            .unwrap_or_default();
                        println!(
                            "key {}: {}{end}",
                            key["id"].as_str().unwrap_or_default(),
                            key["scope"].as_str().unwrap_or_default()
                        );
                    }
                }
            }
            Self::Update {
                app,
                name,
                origins,
                add_origins,
                remove_origins,
                demo,
                json,
                server,
            } => {
                let client = AdminClient::new(&server)?;
                let mut changes = serde_json::Map::new();
                if let Some(name) = name {
                    changes.insert("name".into(), json!(name));
                }
                if !origins.is_empty() || !add_origins.is_empty() || !remove_origins.is_empty() {
                    let mut list = if origins.is_empty() {
                        let current = client.call(Method::GET, &path(&app), None).await?;
                        current["origins"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|o| o.as_str().map(str::to_owned))
                            .collect()
                    } else {
                        check_origins(&origins)?
                    };
                    list.extend(check_origins(&add_origins)?);
                    let remove = check_origins(&remove_origins)?;
                    list.retain(|o| !remove.contains(o));
                    changes.insert("origins".into(), json!(list));
                }
                if let Some(demo) = demo {
                    changes.insert("demo".into(), json!(demo));
                }
                if changes.is_empty() {
                    anyhow::bail!(
                        "nothing to change: give --name, --origin, --add-origin, --remove-origin or --demo"
                    );
                }
                let answer = client
                    .call(Method::PATCH, &path(&app), Some(&Value::Object(changes)))
                    .await?;
                print_app(&answer, json);
            }
            Self::Delete { app, server } => {
                AdminClient::new(&server)?
                    .call(Method::DELETE, &path(&app), None)
                    .await?;
                println!("deleted app {app}");
            }
            Self::RotateKey {
                app,
                scope,
                overlap_seconds,
                via,
            } => {
                let answer = if via.direct() {
                    let store = via.open().await?;
                    let mut found = store
                        .get_app(&app)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no app `{app}`: see `aviso apps list`"))?;
                    let overlap = overlap_seconds.map_or(DEFAULT_OVERLAP, Duration::from_secs);
                    let api_key = rotate_key(&mut found, scope, overlap, now_ms())?;
                    store.put_app(&found).await?;
                    json!({"app_id": found.id, "api_key": api_key, "key": {"scope": scope.as_str()}})
                } else {
                    let mut body = json!({"scope": scope.as_str(), "rotate": true});
                    if let Some(seconds) = overlap_seconds {
                        body["overlap_seconds"] = json!(seconds);
                    }
                    let mut answer = AdminClient::new(&via.server)?
                        .call(Method::POST, &format!("{}/keys", path(&app)), Some(&body))
                        .await?;
                    answer["app_id"] = json!(app);
                    answer
                };
                print_key(&answer, via.json);
            }
            Self::IssueKey {
                app,
                scope,
                json,
                server,
            } => {
                let answer = AdminClient::new(&server)?
                    .call(
                        Method::POST,
                        &format!("{}/keys", path(&app)),
                        Some(&json!({"scope": scope.as_str()})),
                    )
                    .await?;
                print_key(&answer, json);
            }
            Self::RevokeKey { app, key, server } => {
                let key_path = format!(
                    "{}/keys/{}",
                    path(&app),
                    url::form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>()
                );
                AdminClient::new(&server)?
                    .call(Method::DELETE, &key_path, None)
                    .await?;
                println!("key {key} of app {app} no longer works");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
