//! The HTTP API (axum over hyper): thin handlers over the typed core in `notify/`, `apps.rs`
//! and `store/`.
//!
//! - [`public`]: for the widget and the service worker (CORS per app, rate limited);
//! - [`server`]: for marketers and CRMs (Bearer API key);
//! - [`admin`]: apps and their keys (an `admin`-scoped key);
//! - [`insights`]: what the console reads of one app (statistics, reach, history);
//! - [`ops`]: health, readiness, metrics, the OpenAPI document, the browser SDK and the console;
//! - [`error`]: every error as `application/problem+json`.

pub mod admin;
pub mod client_ip;
pub mod console;
pub mod error;
pub mod extract;
pub mod insights;
pub mod openapi;
pub mod ops;
pub mod public;
pub mod server;
pub mod triggers;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::delivery::EngineWaker;
use crate::notify::service::{NotificationService, TasksPlanned};
use crate::store::{App, Scope, Store, hash_api_key, now_ms};
use error::ApiError;

/// Largest JSON body accepted (the bulk import streams and has its own per-line limit).
pub const MAX_BODY: usize = 64 * 1024;
/// How long an app read from the store is trusted before it is read again.
const APP_CACHE_TTL: Duration = Duration::from_secs(5);

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    config: Config,
    metrics: Option<PrometheusHandle>,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    apps: AppCache<String>,
    apps_by_key: AppCache<[u8; 32]>,
    /// Wakes this process's delivery workers when a notification is planned.
    planned: Option<Arc<EngineWaker>>,
}

/// Apps read from the store, trusted for [`APP_CACHE_TTL`].
struct AppCache<K> {
    entries: RwLock<HashMap<K, (Instant, Arc<App>)>>,
}

impl<K: std::hash::Hash + Eq> AppCache<K> {
    fn new() -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<Arc<App>> {
        let entries = self.entries.read().ok()?;
        let (at, app) = entries.get(key)?;
        (at.elapsed() < APP_CACHE_TTL).then(|| app.clone())
    }

    fn put(&self, key: K, app: Arc<App>) {
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(key, (Instant::now(), app));
        }
    }

    /// Drops what is cached of the app `app_id`.
    fn forget(&self, app_id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|_, (_, app)| app.id != app_id);
        }
    }
}

impl ApiState {
    pub fn new(store: Arc<dyn Store>, config: Config, metrics: Option<PrometheusHandle>) -> Self {
        let per_second = NonZeroU32::new(config.public_rate_limit).unwrap_or(NonZeroU32::MIN);
        let burst = per_second.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                metrics,
                limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
                apps: AppCache::new(),
                apps_by_key: AppCache::new(),
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

    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// The notification use cases, over this state's store and engine waker.
    pub fn notifications(&self) -> NotificationService<'_> {
        let planned = self
            .inner
            .planned
            .as_deref()
            .map(|waker| waker as &dyn TasksPlanned);
        NotificationService::new(self.store(), planned)
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The app, from a short-lived cache (apps change rarely; subscribes are frequent).
    pub async fn app(&self, app_id: &str) -> Result<Arc<App>, ApiError> {
        if let Some(app) = self.inner.apps.get(&app_id.to_owned()) {
            return Ok(app);
        }
        let app = self.store().get_app(app_id).await?.ok_or_else(|| {
            ApiError::NotFound(format!(
                "app `{app_id}` does not exist: check the appId the widget is configured with"
            ))
        })?;
        let app = Arc::new(app);
        self.inner.apps.put(app_id.to_owned(), app.clone());
        Ok(app)
    }

    /// Forgets this process's cached copy of an app the admin API changed, so that the change
    /// (origins, keys) holds at once here; other instances see it within [`APP_CACHE_TTL`].
    pub fn app_changed(&self, app_id: &str) {
        self.inner.apps.forget(app_id);
        self.inner.apps_by_key.forget(app_id);
    }

    async fn app_by_key(&self, api_key: &str) -> Result<Arc<App>, ApiError> {
        let hash = hash_api_key(api_key);
        if let Some(app) = self.inner.apps_by_key.get(&hash) {
            return Ok(app);
        }
        let app = Arc::new(
            self.store()
                .app_by_api_key(&hash)
                .await?
                .ok_or(ApiError::Unauthorized)?,
        );
        self.inner.apps_by_key.put(hash, app.clone());
        Ok(app)
    }
}

/// The app whose API key authenticated the request (`Authorization: Bearer <key>`), with a
/// scope that allows the request: `read` for GET, `send` for everything else.
pub struct AuthedApp(pub Arc<App>);

/// The app and scope of the request's API key, whatever the scope.
pub struct AuthedKey {
    pub app: Arc<App>,
    pub scope: Scope,
}

impl AuthedKey {
    /// Refuses the request (403) unless the key's scope includes `needed`.
    pub fn require(self, needed: Scope) -> Result<Self, ApiError> {
        if self.scope >= needed {
            Ok(self)
        } else {
            Err(ApiError::Forbidden(format!(
                "this API key has the `{}` scope; this request needs `{}` (issue one with `aviso apps issue-key --scope {}`)",
                self.scope.as_str(),
                needed.as_str(),
                needed.as_str()
            )))
        }
    }
}

impl FromRequestParts<ApiState> for AuthedKey {
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
        let app = state.app_by_key(key).await?;
        // A rotated key's overlap may have ended while its app sat in the cache.
        let scope = app
            .key_scope(&hash_api_key(key), now_ms())
            .ok_or(ApiError::Unauthorized)?;
        Ok(Self { app, scope })
    }
}

impl FromRequestParts<ApiState> for AuthedApp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let needed = if matches!(parts.method, Method::GET | Method::HEAD) {
            Scope::Read
        } else {
            Scope::Send
        };
        let authed = AuthedKey::from_request_parts(parts, state).await?;
        Ok(Self(authed.require(needed)?.app))
    }
}

/// Builds the whole router.
pub fn router(state: ApiState) -> Router {
    let public = public::routes()
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), public_guard));
    Router::new()
        .nest("/v1/apps/{app_id}", public)
        .merge(server::routes().layer(DefaultBodyLimit::max(MAX_BODY)))
        .merge(triggers::routes())
        .merge(admin::routes().layer(DefaultBodyLimit::max(MAX_BODY)))
        .merge(insights::routes().layer(DefaultBodyLimit::max(MAX_BODY)))
        .merge(ops::routes(&state))
        .fallback(|| async { ApiError::NotFound("no such endpoint: see /openapi.json".into()) })
        .layer(middleware::from_fn(count_requests))
        .with_state(state)
}

/// Only the operational endpoints, for `--role sender` instances.
pub fn ops_only(state: ApiState) -> Router {
    ops::routes(&state)
        .fallback(|| async {
            ApiError::NotFound("this instance runs the sender only (--role sender)".into())
        })
        .with_state(state)
}

async fn count_requests(request: axum::extract::Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let response = next.run(request).await;
    metrics::histogram!("aviso_api_request_seconds", "method" => method.to_string(), "status" => response.status().as_u16().to_string())
        .record(started.elapsed().as_secs_f64());
    response
}

/// Public routes: rate limit per client address, then CORS limited to the app's origins.
async fn public_guard(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let client = client_ip::client_ip(
        peer.ip(),
        request.headers(),
        &state.inner.config.trusted_proxies,
    );
    if state.inner.limiter.check_key(&client).is_err() {
        return ApiError::RateLimited.into_response();
    }
    // Forget addresses whose buckets are full again, so memory follows active clients only.
    if state.inner.limiter.len() > 10_000 {
        state.inner.limiter.retain_recent();
    }
    // Inside `nest` the URI has lost its prefix; the original one still has the app id.
    let path = request
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(
            || request.uri().path().to_owned(),
            |uri| uri.path().to_owned(),
        );
    let app_id = path
        .strip_prefix("/v1/apps/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let origin = request.headers().get(header::ORIGIN).cloned();
    let app = match state.app(&app_id).await {
        Ok(app) => app,
        Err(error) => return with_cors(error.into_response(), origin.as_ref()),
    };
    if let Some(origin_value) = &origin {
        let allowed = origin_value.to_str().is_ok_and(|o| {
            o == state.config().public_url
                || app.origins.iter().any(|a| a.trim_end_matches('/') == o)
        });
        if !allowed {
            let shown = String::from_utf8_lossy(origin_value.as_bytes()).into_owned();
            return ApiError::Forbidden(format!(
                "origin `{shown}` is not allowed for app `{app_id}`: add it to the app's origins (aviso apps update --app {app_id} --origin …)"
            ))
            .into_response();
        }
    }
    if request.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        return with_cors(response, origin.as_ref());
    }
    with_cors(next.run(request).await, origin.as_ref())
}

fn with_cors(mut response: Response, origin: Option<&HeaderValue>) -> Response {
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}
