//! `aviso serve`: the API server (and, with the delivery engine, the sender) in one process.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::CommandResult;
use crate::api::{ApiState, router};
use crate::apps::{create_app, hex, issue_key};
use crate::config::{Config, Role, ServeArgs};
use crate::delivery::{Engine, EngineConfig, RetryPolicy, Sender};
use crate::notify::service::TasksPlanned;
use crate::store::{self, KeyClaim, Scope, Store, now_ms};
use crate::transport::{ClientConfig, PushClient};
use crate::triggers::runner::{RunnerConfig, TriggerRunner};

#[derive(Debug, Args)]
pub struct ServeCommand {
    #[command(flatten)]
    pub args: ServeArgs,
}

impl ServeCommand {
    /// Runs with `config`, already loaded from these args and checked whole.
    pub async fn run(self, mut config: Config) -> CommandResult {
        // Everything that can fail on a bad setting happens before the store is opened, an app
        // created or "listening" printed.
        let senders = match config.role {
            Role::Api => None,
            Role::All | Role::Sender => Some(Senders::new(&config)?),
        };
        let metrics = super::metrics::install()?;
        // The address first: a port in use leaves no new data directory behind.
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (in use? set --listen or AVISO_LISTEN)",
                    config.listen
                )
            })?;
        let store = config.open_store().await.context("cannot open the store")?;
        let address = listener.local_addr()?;
        if config.public_url_is_default {
            config.public_url = format!("http://{address}");
        }
        ensure_an_app(store.as_ref(), &config).await?;
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let mut waker = None;
        let engine = match senders {
            None => None,
            Some(senders) => {
                let engine = start_engine(store.clone(), &config, senders).await?;
                waker = Some(engine.waker());
                tokio::spawn(
                    start_trigger_runner(store.clone(), engine.waker(), &config)
                        .run(stopping.clone()),
                );
                tokio::spawn(start_webhook_sender(store.clone(), &config)?.run(stopping.clone()));
                Some((engine.clone(), tokio::spawn(engine.run(stopping))))
            }
        };
        let serve_api = config.role != Role::Sender;
        let grace = config.shutdown_grace;
        let (public_url, data_dir) = (config.public_url.clone(), config.data_dir.clone());
        let backend = if config.redis_url.is_some() {
            "Redis"
        } else {
            "embedded store"
        };
        let mut state = ApiState::new(store, config, Some(metrics));
        if let Some(waker) = waker {
            state = state.with_engine_waker(waker);
        }
        let app = if serve_api {
            router(state)
        } else {
            crate::api::ops_only(state)
        };
        // Said once everything is started, just before the listener is served: a client that
        // waits for this line (a test, the load driver, a supervisor) is accepted at once,
        // instead of queueing in the backlog while the engine's runtimes start.
        tracing::info!(%address, backend, data_dir = %data_dir.display(), "aviso is listening");
        println!("listening: http://{address}");
        if serve_api {
            println!("console:   {}/console/", public_url.trim_end_matches('/'));
            println!("demo:      {}/", public_url.trim_end_matches('/'));
        }
        // On the signal the engine stops at once (`stop`), while the API drains its
        // connections; neither may outlast the grace.
        let (signalled, mut on_signal) = tokio::sync::oneshot::channel();
        let server = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal(stop, signalled))
        .into_future();
        let mut server = std::pin::pin!(server);
        let mut served = None;
        let deadline = tokio::select! {
            result = &mut server => {
                served = Some(result);
                on_signal.try_recv().unwrap_or_else(|_| tokio::time::Instant::now()) + grace
            }
            Ok(signalled_at) = &mut on_signal => signalled_at + grace,
        };
        if served.is_none() {
            match tokio::time::timeout_at(deadline, &mut server).await {
                Ok(result) => served = Some(result),
                Err(_) => tracing::warn!(
                    "API connections still open at the end of the shutdown grace: closed"
                ),
            }
        }
        if let Some(result) = served {
            result.context("the server failed")?;
        }
        if let Some((engine, running)) = engine {
            // Retry waits end at once; requests in flight answer, then tasks are handed back.
            if tokio::time::timeout_at(deadline, running).await.is_err() {
                tracing::warn!(
                    tasks = engine.tasks_held(),
                    grace_secs = grace.as_secs(),
                    "the sender did not stop within the shutdown grace: exiting; the tasks it still held resume elsewhere after their lease"
                );
                return Ok(ExitCode::SUCCESS);
            }
        }
        tracing::info!("stopped: every task finished or handed back");
        Ok(ExitCode::SUCCESS)
    }
}

/// Bulk-lane tasks worked on at once: several overlap their store round trips (group-committed
/// together in the embedded store).
const BULK_WORKERS: usize = 8;

/// One connection pool per lane, made before anything else so that a bad CA file stops
/// start-up first.
struct Senders {
    client_config: ClientConfig,
    bulk: Sender,
    priority: Sender,
}

impl Senders {
    fn new(config: &Config) -> anyhow::Result<Self> {
        let client_config = ClientConfig {
            extra_ca_files: config.extra_ca_certs.iter().cloned().collect(),
            ..ClientConfig::default()
        };
        let bulk = Sender::new(PushClient::new(&client_config)?, RetryPolicy::default());
        let priority = Sender::new(PushClient::new(&client_config)?, RetryPolicy::default());
        Ok(Self {
            client_config,
            bulk,
            priority,
        })
    }
}

/// The delivery engine.
async fn start_engine(
    store: std::sync::Arc<dyn Store>,
    config: &Config,
    senders: Senders,
) -> anyhow::Result<std::sync::Arc<Engine>> {
    let Senders {
        client_config,
        bulk,
        priority,
    } = senders;
    let mut id = [0u8; 4];
    aws_lc_rs::rand::fill(&mut id).map_err(|_| anyhow::anyhow!("random generator failed"))?;
    let engine_config = EngineConfig {
        worker_id: format!("{}-{}", std::process::id(), hex(&id)),
        bulk_workers: BULK_WORKERS,
        priority_workers: 4,
        batch_size: 500,
        // Each bulk worker's share of an origin's in-flight bound: a larger window would only
        // queue on the bound, and messages let through one permit at a time leave one per write.
        concurrency: client_config
            .max_in_flight_per_origin
            .div_ceil(BULK_WORKERS),
        lease: config.task_lease,
        // Tasks planned by another instance (an API-only one, say) are found at a poll: on a
        // shared store often enough that a broadcast's first message leaves within tens of
        // milliseconds of its creation (each tick wakes one idle worker: 50 looks a second,
        // each one short Lua script; the priority lane polls more often still). Tasks planned
        // here wake the workers at once whatever the interval.
        poll_interval: std::time::Duration::from_millis(if store.is_shared() { 20 } else { 100 }),
        // A shared store gets one-to-one pushes from other instances, which this one may take;
        // an unshared one's tasks are all planned here, and wake the workers themselves.
        priority_poll_interval: std::time::Duration::from_millis(if store.is_shared() {
            5
        } else {
            50
        }),
        vapid_subject: config.vapid_subject.clone(),
        bulk_nice: config.bulk_nice,
        shutdown_grace: config.shutdown_grace,
    };
    // Redis: each lane gets connections of its own, apart from the API's, so that small
    // requests never queue behind a broadcast's large scans on one multiplexed connection.
    // The embedded store is one file: everyone shares it.
    let (bulk_store, priority_store) = match &config.redis_url {
        Some(url) => (
            store::open(Some(url), &config.data_dir).await?,
            store::open(Some(url), &config.data_dir).await?,
        ),
        None => (store.clone(), store),
    };
    Ok(Engine::new(
        bulk_store,
        priority_store,
        engine_config,
        bulk,
        priority,
    ))
}

/// The trigger runner: due sends become one-to-one pushes, which wake this process's priority
/// lane at once.
fn start_trigger_runner(
    store: std::sync::Arc<dyn Store>,
    waker: std::sync::Arc<crate::delivery::EngineWaker>,
    config: &Config,
) -> TriggerRunner {
    let planned: std::sync::Arc<dyn TasksPlanned> = waker;
    TriggerRunner::new(
        store,
        Some(planned),
        RunnerConfig {
            worker_id: format!("{}-triggers", std::process::id()),
            lease: config.task_lease,
            ..RunnerConfig::default()
        },
    )
}

/// The webhook sender: its own task, apart from the engine's lanes.
fn start_webhook_sender(
    store: std::sync::Arc<dyn Store>,
    config: &Config,
) -> anyhow::Result<crate::webhooks::sender::WebhookSender> {
    let sender_config = crate::webhooks::sender::SenderConfig {
        worker_id: format!(
            "{}-webhooks-{}",
            std::process::id(),
            crate::webhooks::model::new_id("").unwrap_or_default()
        ),
        lease: config.task_lease,
        retry: config.webhook_retry,
        allowed_hosts: config.allowed_webhook_hosts.clone(),
        extra_ca_files: config.extra_ca_certs.iter().cloned().collect(),
        ..Default::default()
    };
    crate::webhooks::sender::WebhookSender::new(store, sender_config)
        .context("cannot start the webhook sender")
}

/// How long the claim on creating the default app lasts: longer than a start-up, short enough
/// that a first start which failed halfway does not keep the next one from making the app.
const DEFAULT_APP_CLAIM: std::time::Duration = std::time::Duration::from_secs(60);

/// On the first start, a default app, so that a new user can send at once, with the admin key
/// (an `admin`-scoped key of that app); a store from before admin keys gets one on its oldest app.
async fn ensure_an_app(store: &dyn Store, config: &Config) -> anyhow::Result<()> {
    let mut apps = store.list_apps().await?;
    if !apps.is_empty() {
        if apps
            .iter()
            .any(|a| a.api_keys.iter().any(|k| k.scope == Scope::Admin))
        {
            return Ok(());
        }
        apps.sort_by_key(|a| (a.created_at, a.id.clone()));
        let mut oldest = apps.swap_remove(0);
        let admin_key = issue_key(&mut oldest, Scope::Admin, now_ms())?;
        store.put_app(&oldest).await?;
        println!(
            "Issued the admin key (on app {}). It is shown once: keep it.",
            oldest.id
        );
        println!("  admin_key:        {admin_key}");
        return Ok(());
    }
    let origin = url::Url::parse(&config.public_url)?
        .origin()
        .ascii_serialization();
    let mut created = create_app("Default", vec![origin])?;
    created.app.demo = true;
    let admin_key = issue_key(&mut created.app, Scope::Admin, now_ms())?;
    // Instances started together on an empty Redis would each make one: the first to take
    // this key makes it (the key store is the idempotency keys', a first-writer-wins SET NX).
    if let Some(other) = store
        .claim_idempotency_key(
            KeyClaim {
                app_id: "",
                key: "aviso:default-app",
                holder: &created.app.id,
            },
            DEFAULT_APP_CLAIM,
        )
        .await?
    {
        tracing::info!(app_id = %other, "another instance is creating the default app");
        return Ok(());
    }
    store.put_app(&created.app).await?;
    println!(
        "Created the default app. The keys are shown once: keep them (admin_key: the admin API, `aviso apps`, the console's settings)."
    );
    println!("  app_id:           {}", created.app.id);
    println!("  api_key:          {}", created.api_key);
    println!("  admin_key:        {admin_key}");
    println!("  vapid_public_key: {}", created.vapid_public_key);
    println!("  identity_secret:  {}", hex(&created.app.identity_secret));
    println!("  receipt_secret:   {}", hex(&created.app.receipt_secret));
    Ok(())
}

/// Waits for SIGINT or SIGTERM, then tells the engine to stop (`stop`) and the caller when
/// (`signalled`, which starts the grace).
async fn shutdown_signal(
    stop: tokio::sync::watch::Sender<bool>,
    signalled: tokio::sync::oneshot::Sender<tokio::time::Instant>,
) {
    wait_for_signal().await;
    let _ = signalled.send(tokio::time::Instant::now());
    let _ = stop.send(true);
    tracing::info!("shutting down: the sender stops, API requests in flight finish");
}

async fn wait_for_signal() {
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
}
