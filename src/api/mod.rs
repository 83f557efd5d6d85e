//! The HTTP API (axum over hyper): thin handlers over the typed core in `notify/`, `apps.rs`
//! and `store/`.
//!
//! - [`public`]: for the widget and the service worker (CORS per app, rate limited);
//! - [`server`]: for marketers and CRMs (Bearer API key);
//! - [`triggers`]: CRM trigger rules and the events that start and cancel their sends;
//! - [`admin`]: apps and their keys (an `admin`-scoped key);
//! - [`policy`]: the app's delivery policy (an `admin`-scoped key);
//! - [`webhooks`]: the app's webhooks into the CRM (an `admin`-scoped key);
//! - [`insights`]: what the console reads of one app (statistics, reach, history);
//! - [`ops`]: health, readiness, metrics, the OpenAPI document, the browser SDK and the console;
//! - [`error`]: every error as `application/problem+json`.

pub mod admin;
pub mod client_ip;
pub mod console;
pub mod error;
pub mod extract;
mod guard;
pub mod insights;
mod layers;
pub mod openapi;
pub mod ops;
pub mod policy;
pub mod public;
pub mod server;
pub mod triggers;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::delivery::EngineWaker;
use crate::notify::service::{NotificationService, TasksPlanned};
use crate::store::{App, Scope, Store, hash_api_key, now_ms};
use error::ApiError;

/// Largest JSON body of a public request (the widget's and the service worker's are small).
pub const PUBLIC_MAX_BODY: usize = 64 * 1024;
/// Largest JSON body of a server request (the bulk import streams and has its own per-line
/// limit). It holds the largest direct audience, [`MAX_DIRECT_RECIPIENTS`] external ids of
/// [`MAX_ID_LEN`] characters each (up to 4 bytes a character), quoted and comma-separated
/// (≈5.2 MB), beside the largest content.
///
/// [`MAX_DIRECT_RECIPIENTS`]: crate::notify::model::MAX_DIRECT_RECIPIENTS
/// [`MAX_ID_LEN`]: crate::notify::model::MAX_ID_LEN
pub const SERVER_MAX_BODY: usize = 6 * 1024 * 1024;
const _: () = assert!(
    crate::notify::model::MAX_DIRECT_RECIPIENTS * (4 * crate::notify::model::MAX_ID_LEN + 3)
        + 64 * 1024
        <= SERVER_MAX_BODY
);
/// How long an app document read from the store is trusted before it is read again (public
/// requests only: an API key is looked up in the store on every request).
/// At most `cache::CAPACITY` apps are kept: the ones in use, unknown ids remembered as unknown.
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
                    .max_capacity(crate::cache::CAPACITY)
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

    /// Forgets this process's cached copy of an app the admin API changed, so that the change
    /// (origins) holds at once here; other instances see it within [`APP_CACHE_TTL`]. (Keys
    /// are read from the store on every request.)
    pub async fn app_changed(&self, app_id: &str) {
        self.inner.apps.invalidate(app_id).await;
    }

    /// The app an API key belongs to, read from the store's key index every time: a rotated
    /// key stops working at once, on every instance.
    async fn app_by_key(&self, hash: &[u8; 32]) -> Result<Arc<App>, ApiError> {
        let app = self
            .store()
            .app_by_api_key(hash)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Arc::new(app))
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
        let hash = hash_api_key(key);
        let app = state.app_by_key(&hash).await?;
        // The key must still be the app's, and its rotation overlap not over.
        let scope = app
            .key_scope(&hash, now_ms())
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

/// A request made with an `admin`-scoped key, and the key's app (the app whose policy and
/// webhooks the request reads or changes).
pub struct AdminKey(pub Arc<App>);

impl FromRequestParts<ApiState> for AdminKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let authed = AuthedKey::from_request_parts(parts, state).await?;
        Ok(Self(authed.require(Scope::Admin)?.app))
    }
}

/// The app a public request names (`/v1/apps/{app_id}/…`), from the short-lived cache (the
/// public guard in front has answered 404 already for one that does not exist).
pub struct PublicApp(pub Arc<App>);

impl FromRequestParts<ApiState> for PublicApp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let extract::Path(path) =
            extract::Path::<public::AppPath>::from_request_parts(parts, state).await?;
        Ok(Self(state.app(&path.app_id).await?))
    }
}

/// Builds the whole router.
pub fn router(state: ApiState) -> Router {
    let public = public::routes()
        // Here, before the guard and CORS layers, so that a wrong method's 405 has them too.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(PUBLIC_MAX_BODY))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            guard::public_guard,
        ))
        // Outside the guard: its 429s and 403s carry CORS headers too, so the widget can read
        // them instead of seeing "Failed to fetch".
        .layer(guard::cors(&state))
        .layer(middleware::from_fn(layers::preflight_no_content));
    let server = server::routes()
        .merge(admin::routes())
        .merge(insights::routes())
        .merge(policy::routes())
        .merge(webhooks::routes())
        .layer(DefaultBodyLimit::max(SERVER_MAX_BODY))
        .merge(triggers::routes());
    let api = Router::new()
        .nest("/v1/apps/{app_id}", public)
        .merge(server)
        .layer(middleware::from_fn_with_state(
            state.config().request_timeout,
            layers::timeout,
        ));
    layers::around(
        api.merge(ops::routes(&state))
            .fallback(|| async { ApiError::NotFound("no such endpoint: see /openapi.json".into()) })
            .method_not_allowed_fallback(method_not_allowed),
    )
    .with_state(state)
}

/// A known path with a method it does not take: a problem document, where axum answers an
/// empty body (its `Allow` header is kept).
async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::MethodNotAllowed(method)
}

/// Only the operational endpoints, for `--role sender` instances.
pub fn ops_only(state: ApiState) -> Router {
    layers::around(
        ops::routes(&state)
            .fallback(|| async {
                ApiError::NotFound("this instance runs the sender only (--role sender)".into())
            })
            .method_not_allowed_fallback(method_not_allowed),
    )
    .with_state(state)
}
