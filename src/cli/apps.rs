//! `aviso apps …`: create, list and rotate the keys of apps.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::CommandResult;
use crate::apps::{create_app, hex, new_api_key};
use crate::config::StoreArgs;
use crate::push::VapidKey;
use crate::store::{self, hash_api_key};

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
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List apps.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Replace an app's API key: the old one stops working at once.
    RotateKey {
        #[arg(long)]
        app: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

async fn open(args: &StoreArgs) -> anyhow::Result<std::sync::Arc<dyn store::Store>> {
    Ok(store::open(args.redis_url.as_deref(), &args.data_dir()).await?)
}

fn check_origin(origin: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(origin).map_err(|e| {
        anyhow::anyhow!("--origin `{origin}` is not a URL ({e}); use e.g. https://shop.example")
    })?;
    let normalized = url.origin().ascii_serialization();
    if normalized == "null" || !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("--origin `{origin}` must be an http(s) origin like https://shop.example");
    }
    Ok(normalized)
}

impl AppsCommand {
    pub async fn run(self) -> CommandResult {
        match self {
            Self::Create {
                name,
                origins,
                demo,
                json,
                store,
            } => {
                let origins = origins
                    .iter()
                    .map(|o| check_origin(o))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let store = open(&store).await?;
                let mut created = create_app(&name, origins)?;
                created.app.demo = demo;
                store.put_app(&created.app).await?;
                let secret = hex(&created.app.identity_secret);
                if json {
                    println!(
                        "{}",
                        json!({"app_id": created.app.id, "name": name, "api_key": created.api_key, "vapid_public_key": created.vapid_public_key, "identity_secret": secret})
                    );
                } else {
                    println!("app_id:           {}", created.app.id);
                    println!(
                        "api_key:          {}   (shown once: only its hash is stored)",
                        created.api_key
                    );
                    println!("vapid_public_key: {}", created.vapid_public_key);
                    println!("identity_secret:  {secret}   (for your backend's identity hashes)");
                }
            }
            Self::List { json, store } => {
                let store = open(&store).await?;
                for app in store.list_apps().await? {
                    let public_key = VapidKey::from_private_scalar(&app.vapid_private_key)?
                        .public_key_base64url()
                        .to_owned();
                    if json {
                        println!(
                            "{}",
                            json!({"app_id": app.id, "name": app.name, "origins": app.origins, "vapid_public_key": public_key})
                        );
                    } else {
                        println!(
                            "{}  {}  origins: {}",
                            app.id,
                            app.name,
                            app.origins.join(", ")
                        );
                    }
                }
            }
            Self::RotateKey { app, json, store } => {
                let store = open(&store).await?;
                let mut found = store
                    .get_app(&app)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no app `{app}`: see `aviso apps list`"))?;
                let api_key = new_api_key()?;
                found.api_key_hashes = vec![hash_api_key(&api_key)];
                store.put_app(&found).await?;
                if json {
                    println!("{}", json!({"app_id": found.id, "api_key": api_key}));
                } else {
                    println!("api_key: {api_key}   (shown once; the previous key no longer works)");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
