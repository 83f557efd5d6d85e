//! The HTTP API (axum over hyper): thin handlers over the typed core in `notify/`, `apps.rs`
//! and `store/`.
//!
//! - [`public`]: for the widget and the service worker (CORS per app, rate limited);
//! - [`server`]: for marketers and CRMs (Bearer API key);
//! - [`ops`]: health, readiness, metrics, the OpenAPI document and the browser SDK;
//! - [`error`]: every error as `application/problem+json`.

pub mod client_ip;
pub mod error;
pub mod extract;
mod guard;
mod layers;
pub mod openapi;
pub mod ops;
pub mod public;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::delivery::EngineWaker;
use crate::store::{App, Store, Task, hash_api_key};
use error::ApiError;

/// Largest JSON body of a public request (the widget's and the service worker's are small).
pub const PUBLIC_MAX_BODY: usize = 64 * 1024;
/// Largest JSON body of a server request (the bulk import streams and has its own per-line
/// limit). It holds the largest direct audience, [`MAX_DIRECT_RECIPIENTS`] external ids of
/// [`MAX_ID_LEN`] bytes each, quoted and comma-separated (≈1.3 MB), beside the largest content.
///
/// [`MAX_DIRECT_RECIPIENTS`]: crate::notify::model::MAX_DIRECT_RECIPIENTS
/// [`MAX_ID_LEN`]: crate::notify::model::MAX_ID_LEN
pub const SERVER_MAX_BODY: usize = 2 * 1024 * 1024;
const _: () = assert!(
    crate::notify::model::MAX_DIRECT_RECIPIENTS * (crate::notify::model::MAX_ID_LEN + 3)
        + 64 * 1024
        <= SERVER_MAX_BODY
);
/// How long an app document read from the store is trusted before it is read again (public
/// requests only: an API key is looked up in the store on every request).
const APP_CACHE_TTL: Duration = Duration::from_secs(5);
/// Apps kept in memory at most (the ones in use; unknown ids are remembered as unknown too).
const APP_CACHE_CAPACITY: u64 = 10_000;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    config: Config,
    metrics: Option<PrometheusHandle>,
    limits: guard::PublicLimits,
    /// Apps by id (or their absence), for the public endpoints.
    apps: moka::future::Cache<String, Option<Arc<App>>>,
    /// Wakes this process's delivery workers when a notification is planned.
    planned: Option<Arc<EngineWaker>>,
}

impl ApiState {
    pub fn new(store: Arc<dyn Store>, config: Config, metrics: Option<PrometheusHandle>) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits: guard::PublicLimits::new(&config),
                store,
                config,
                metrics,
                apps: moka::future::Cache::builder()
                    .max_capacity(APP_CACHE_CAPACITY)
                    .time_to_live(APP_CACHE_TTL)
                    .build(),
                planned: None,
            }),
        }
    }

    /// Lets the delivery engine of this process hear of new tasks at once.
    pub fn with_engine_waker(mut self, waker: Arc<EngineWaker>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.planned = Some(waker);
        }
        self
    }

    /// Called after `tasks` were enqueued.
    pub fn tasks_planned(&self, tasks: &[Task]) {
        if let Some(waker) = &self.inner.planned {
            waker.tasks_planned(tasks);
        }
    }

    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The app, from a short-lived cache (apps change rarely; subscribes are frequent).
    pub async fn app(&self, app_id: &str) -> Result<Arc<App>, ApiError> {
        let store = self.inner.store.clone();
        let id = app_id.to_owned();
        let found = self
            .inner
            .apps
            .try_get_with(id.clone(), async move {
                store.get_app(&id).await.map(|app| app.map(Arc::new))
            })
            .await
            .map_err(|e| ApiError::from(e.as_ref()))?;
        found.ok_or_else(|| {
            ApiError::NotFound(format!(
                "app `{app_id}` does not exist: check the appId the widget is configured with"
            ))
        })
    }

    /// The app an API key belongs to, read from the store's key index every time: a rotated
    /// key stops working at once, on every instance.
    async fn app_by_key(&self, api_key: &str) -> Result<Arc<App>, ApiError> {
        let hash = hash_api_key(api_key);
        let app = self
            .store()
            .app_by_api_key(&hash)
            .await?
            .filter(|app| app.api_key_hashes.contains(&hash))
            .ok_or(ApiError::Unauthorized)?;
        Ok(Arc::new(app))
    }
}

/// The app whose API key authenticated the request (`Authorization: Bearer <key>`).
pub struct AuthedApp(pub Arc<App>);

impl FromRequestParts<ApiState> for AuthedApp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        Ok(Self(state.app_by_key(key).await?))
    }
}

/// Builds the whole router.
pub fn router(state: ApiState) -> Router {
    let public = public::routes()
        .layer(DefaultBodyLimit::max(PUBLIC_MAX_BODY))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            guard::public_guard,
        ))
        // Outside the guard: its 429s and 403s carry CORS headers too, so the widget can read
        // them instead of seeing "Failed to fetch".
        .layer(guard::cors(&state))
        .layer(middleware::from_fn(layers::preflight_no_content));
    let server = server::routes().layer(DefaultBodyLimit::max(SERVER_MAX_BODY));
    let api = Router::new()
        .nest("/v1/apps/{app_id}", public)
        .merge(server)
        .layer(middleware::from_fn_with_state(
            state.config().request_timeout,
            layers::timeout,
        ));
    layers::around(
        api.merge(ops::routes(&state)).fallback(|| async {
            ApiError::NotFound("no such endpoint: see /openapi.json".into())
        }),
    )
    .with_state(state)
}

/// Only the operational endpoints, for `--role sender` instances.
pub fn ops_only(state: ApiState) -> Router {
    layers::around(ops::routes(&state).fallback(|| async {
        ApiError::NotFound("this instance runs the sender only (--role sender)".into())
    }))
    .with_state(state)
}
