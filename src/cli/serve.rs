//! `aviso serve`: the API server (and, with the delivery engine, the sender) in one process.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::CommandResult;
use crate::api::{ApiState, router};
use crate::apps::{create_app, hex};
use crate::config::{Config, ServeArgs};
use crate::store::{self, Store};

#[derive(Debug, Args)]
pub struct ServeCommand {
    #[command(flatten)]
    pub args: ServeArgs,
}

impl ServeCommand {
    pub async fn run(self) -> CommandResult {
        let mut config = Config::load(&self.args)?;
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .context("cannot install the metrics recorder")?;
        let store = store::open(config.redis_url.as_deref(), &config.data_dir)
            .await
            .context("cannot open the store")?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (in use? set --listen or AVISO_LISTEN)",
                    config.listen
                )
            })?;
        let address = listener.local_addr()?;
        if config.public_url_is_default {
            config.public_url = format!("http://{address}");
        }
        ensure_an_app(store.as_ref(), &config).await?;
        let backend = if config.redis_url.is_some() {
            "Redis"
        } else {
            "embedded store"
        };
        tracing::info!(%address, backend, data_dir = %config.data_dir.display(), "aviso is listening");
        println!("listening: http://{address}");
        let state = ApiState::new(store, config, Some(metrics));
        axum::serve(
            listener,
            router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the server failed")?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    }
}

/// On the first start, a default app, so that a new user can send at once.
async fn ensure_an_app(store: &dyn Store, config: &Config) -> anyhow::Result<()> {
    if !store.list_apps().await?.is_empty() {
        return Ok(());
    }
    let origin = url::Url::parse(&config.public_url)?
        .origin()
        .ascii_serialization();
    let mut created = create_app("Default", vec![origin])?;
    created.app.demo = true;
    store.put_app(&created.app).await?;
    println!("Created the default app. The API key is shown once: keep it.");
    println!("  app_id:           {}", created.app.id);
    println!("  api_key:          {}", created.api_key);
    println!("  vapid_public_key: {}", created.vapid_public_key);
    println!("  identity_secret:  {}", hex(&created.app.identity_secret));
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: finishing requests in flight");
}
