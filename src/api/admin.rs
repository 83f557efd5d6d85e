//! The admin API (an `admin`-scoped key): apps created, read, updated and deleted, and their API
//! keys issued, rotated with an overlap and revoked, all while the server runs. Also the app a
//! key belongs to (`GET /v1/app`, any scope) and the demo page's list of demo apps (public).
//!
//! The admin key `aviso serve` prints at its first start is an `admin`-scoped key of the default
//! app. The admin API shows apps' settings and key metadata, never their subscribers, profiles or
//! notifications: those stay behind each app's own keys.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, problem};
use super::extract::{Json, Path};
use super::{AdminKey, ApiState, AuthedKey};
use crate::apps::{
    DEFAULT_OVERLAP, create_app, hex, issue_key, key_id, normalize_origin, revoke_key, rotate_key,
};
use crate::push::VapidKey;
use crate::store::{App, Scope, now_ms};

/// Longest app name.
const MAX_NAME: usize = 100;
/// Most origins an app may allow.
const MAX_ORIGINS: usize = 50;
/// Longest overlap a rotated key may keep working for.
const MAX_OVERLAP: Duration = Duration::from_secs(30 * 24 * 3600);

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/admin/apps", get(list_apps).post(create))
        .route(
            "/v1/admin/apps/{app_id}",
            get(get_app).patch(update_app).delete(delete_app),
        )
        .route("/v1/admin/apps/{app_id}/keys", post(add_key))
        .route("/v1/admin/apps/{app_id}/keys/{key_id}", delete(remove_key))
        .route("/v1/app", get(own_app))
        .route("/v1/demo/apps", get(demo_apps))
}

#[derive(Serialize, ToSchema)]
pub struct KeyView {
    /// The key's public name (the start of its hash); the key itself is never shown again.
    id: String,
    #[schema(value_type = String, example = "send")]
    scope: Scope,
    created_at_ms: u64,
    /// When a rotated key stops working.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct AppView {
    app_id: String,
    name: String,
    origins: Vec<String>,
    demo: bool,
    /// The stale-expiry window in seconds (0 = off).
    expire_after_secs: u32,
    vapid_public_key: String,
    /// Unix seconds.
    created_at: u64,
    /// Keys that still work.
    keys: Vec<KeyView>,
}

fn view(app: &App) -> ApiResult<AppView> {
    let vapid = VapidKey::from_private_scalar(&app.vapid_private_key)
        .map_err(|e| ApiError::Internal(format!("app `{}`'s VAPID key: {e}", app.id)))?;
    let now = now_ms();
    Ok(AppView {
        app_id: app.id.clone(),
        name: app.name.clone(),
        origins: app.origins.clone(),
        demo: app.demo,
        expire_after_secs: app.expire_after_secs,
        vapid_public_key: vapid.public_key_base64url().to_owned(),
        created_at: app.created_at,
        keys: app
            .api_keys
            .iter()
            .filter(|k| k.is_live(now))
            .map(|k| KeyView {
                id: key_id(&k.hash),
                scope: k.scope,
                created_at_ms: k.created_at_ms,
                expires_at_ms: k.expires_at_ms,
            })
            .collect(),
    })
}

#[derive(Deserialize, IntoParams)]
pub struct AppPath {
    app_id: String,
}

#[derive(Deserialize, IntoParams)]
pub struct KeyPath {
    app_id: String,
    /// The key's id, as `keys[].id` shows it.
    key_id: String,
}

async fn existing(state: &ApiState, app_id: &str) -> ApiResult<App> {
    state.store().get_app(app_id).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "app `{app_id}` does not exist: see GET /v1/admin/apps"
        ))
    })
}

fn check_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(ApiError::bad(
            "name",
            format!("give a name of 1 to {MAX_NAME} characters"),
        ));
    }
    Ok(name.to_owned())
}

fn check_origins(origins: &[String]) -> ApiResult<Vec<String>> {
    if origins.len() > MAX_ORIGINS {
        return Err(ApiError::bad(
            "origins",
            format!("at most {MAX_ORIGINS} origins"),
        ));
    }
    let mut normalized = Vec::with_capacity(origins.len());
    for (i, origin) in origins.iter().enumerate() {
        let origin =
            normalize_origin(origin).map_err(|m| ApiError::bad(format!("origins[{i}]"), m))?;
        if !normalized.contains(&origin) {
            normalized.push(origin);
        }
    }
    Ok(normalized)
}

/// Saves a changed app and makes the change hold at once in this process.
async fn save(state: &ApiState, app: &App) -> ApiResult<()> {
    state.store().put_app(app).await?;
    state.app_changed(&app.id).await;
    Ok(())
}

#[derive(Serialize, ToSchema)]
pub struct AppList {
    apps: Vec<AppView>,
}

#[utoipa::path(get, path = "/v1/admin/apps", tag = "admin", security(("api_key" = [])),
    responses((status = 200, body = AppList), problem::Unauthorized, problem::Forbidden))]
pub async fn list_apps(
    State(state): State<ApiState>,
    _: AdminKey,
) -> ApiResult<axum::Json<AppList>> {
    let mut apps = state.store().list_apps().await?;
    apps.sort_by_key(|a| (a.created_at, a.id.clone()));
    Ok(axum::Json(AppList {
        apps: apps.iter().map(view).collect::<ApiResult<_>>()?,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAppRequest {
    name: String,
    /// Origins allowed to use the public API, e.g. `https://shop.example`.
    #[serde(default)]
    origins: Vec<String>,
    /// Whether the demo page's "send me a test push" works for this app.
    #[serde(default)]
    demo: bool,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedApp {
    #[serde(flatten)]
    app: AppView,
    /// A `send` key, shown once: only its hash is stored.
    api_key: String,
    /// For the site's backend's identity hashes (hex), shown once.
    identity_secret: String,
}

#[utoipa::path(post, path = "/v1/admin/apps", tag = "admin", request_body = NewAppRequest, security(("api_key" = [])),
    responses((status = 201, body = CreatedApp), problem::BadRequest, problem::Unauthorized, problem::Forbidden, problem::UnsupportedMediaType))]
pub async fn create(
    State(state): State<ApiState>,
    _: AdminKey,
    Json(request): Json<NewAppRequest>,
) -> ApiResult<(StatusCode, axum::Json<CreatedApp>)> {
    let name = check_name(&request.name)?;
    let origins = check_origins(&request.origins)?;
    let mut created = create_app(&name, origins).map_err(|e| ApiError::Internal(e.to_string()))?;
    created.app.demo = request.demo;
    save(&state, &created.app).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedApp {
            app: view(&created.app)?,
            api_key: created.api_key,
            identity_secret: hex(&created.app.identity_secret),
        }),
    ))
}

#[utoipa::path(get, path = "/v1/admin/apps/{app_id}", tag = "admin", params(AppPath), security(("api_key" = [])),
    responses((status = 200, body = AppView), problem::Unauthorized, problem::Forbidden, problem::NotFound))]
pub async fn get_app(
    State(state): State<ApiState>,
    _: AdminKey,
    Path(path): Path<AppPath>,
) -> ApiResult<axum::Json<AppView>> {
    Ok(axum::Json(view(&existing(&state, &path.app_id).await?)?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppChanges {
    #[serde(default)]
    name: Option<String>,
    /// Replaces the allowed origins (they hold at once).
    #[serde(default)]
    origins: Option<Vec<String>>,
    #[serde(default)]
    demo: Option<bool>,
    /// Stale expiry: delete a subscription to which pushes were delivered for this many days
    /// with no receipt from its browser (Apple answers 201 for long-dead subscriptions);
    /// 0 turns it off (the default).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3650)]
    expire_after_days: Option<u32>,
    /// The same in seconds, for windows shorter than a day (tests, trials); wins over
    /// `expire_after_days`.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 315_360_000)]
    expire_after_secs: Option<u32>,
}

/// The stale-expiry window a change asks for, in seconds.
fn expiry_window(changes: &AppChanges) -> ApiResult<Option<u32>> {
    if let Some(secs) = changes.expire_after_secs {
        if secs > 315_360_000 {
            return Err(ApiError::bad(
                "expire_after_secs",
                "at most 315360000 (ten years); 0 turns expiry off",
            ));
        }
        return Ok(Some(secs));
    }
    match changes.expire_after_days {
        Some(days) if days > 3650 => Err(ApiError::bad(
            "expire_after_days",
            "at most 3650 (ten years); 0 turns expiry off",
        )),
        Some(days) => Ok(Some(days * 86_400)),
        None => Ok(None),
    }
}

#[utoipa::path(patch, path = "/v1/admin/apps/{app_id}", tag = "admin", params(AppPath), request_body = AppChanges, security(("api_key" = [])),
    responses((status = 200, body = AppView), problem::BadRequest, problem::Unauthorized, problem::Forbidden, problem::NotFound, problem::UnsupportedMediaType))]
pub async fn update_app(
    State(state): State<ApiState>,
    _: AdminKey,
    Path(path): Path<AppPath>,
    Json(changes): Json<AppChanges>,
) -> ApiResult<axum::Json<AppView>> {
    let name = changes.name.as_deref().map(check_name).transpose()?;
    let origins = changes.origins.as_deref().map(check_origins).transpose()?;
    let expiry = expiry_window(&changes)?;
    let mut app = existing(&state, &path.app_id).await?;
    if let Some(secs) = expiry {
        app.expire_after_secs = secs;
    }
    if let Some(name) = name {
        app.name = name;
    }
    if let Some(origins) = origins {
        app.origins = origins;
    }
    if let Some(demo) = changes.demo {
        app.demo = demo;
    }
    save(&state, &app).await?;
    Ok(axum::Json(view(&app)?))
}

#[utoipa::path(delete, path = "/v1/admin/apps/{app_id}", tag = "admin", params(AppPath), security(("api_key" = [])),
    responses((status = 204, description = "the app, its keys and its subscriptions are deleted"), problem::Unauthorized, problem::Forbidden, problem::NotFound))]
pub async fn delete_app(
    State(state): State<ApiState>,
    _: AdminKey,
    Path(path): Path<AppPath>,
) -> ApiResult<StatusCode> {
    let app = existing(&state, &path.app_id).await?;
    let now = now_ms();
    if app
        .api_keys
        .iter()
        .any(|k| k.scope == Scope::Admin && k.is_live(now))
    {
        return Err(ApiError::Forbidden(format!(
            "app `{}` holds admin keys: issue an admin key on another app and revoke these first",
            app.id
        )));
    }
    if !state.store().delete_app(&app.id).await? {
        return Err(ApiError::NotFound(format!(
            "app `{}` does not exist",
            app.id
        )));
    }
    state.app_changed(&app.id).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    /// `read`, `send` or `admin`.
    #[schema(value_type = String, example = "send")]
    scope: Scope,
    /// Replace the app's keys of this scope: they keep working for `overlap_seconds`, then stop.
    #[serde(default)]
    rotate: bool,
    /// With `rotate`: how long the old keys keep working (default 3600; 0 stops them at once).
    #[serde(default)]
    overlap_seconds: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct IssuedKey {
    /// Shown once: only its hash is stored.
    api_key: String,
    key: KeyView,
    /// The app's keys that still work, the old ones with their end.
    keys: Vec<KeyView>,
}

#[utoipa::path(post, path = "/v1/admin/apps/{app_id}/keys", tag = "admin", params(AppPath), request_body = KeyRequest, security(("api_key" = [])),
    responses((status = 201, body = IssuedKey), problem::BadRequest, problem::Unauthorized, problem::Forbidden, problem::NotFound, problem::UnsupportedMediaType))]
pub async fn add_key(
    State(state): State<ApiState>,
    _: AdminKey,
    Path(path): Path<AppPath>,
    Json(request): Json<KeyRequest>,
) -> ApiResult<(StatusCode, axum::Json<IssuedKey>)> {
    let overlap = request
        .overlap_seconds
        .map_or(DEFAULT_OVERLAP, Duration::from_secs);
    if overlap > MAX_OVERLAP {
        return Err(ApiError::bad(
            "overlap_seconds",
            format!("at most {} (30 days)", MAX_OVERLAP.as_secs()),
        ));
    }
    if request.overlap_seconds.is_some() && !request.rotate {
        return Err(ApiError::bad(
            "overlap_seconds",
            "only with `rotate: true` (a new key without rotation leaves the others alone)",
        ));
    }
    let mut app = existing(&state, &path.app_id).await?;
    let now = now_ms();
    let issued = if request.rotate {
        rotate_key(&mut app, request.scope, overlap, now)
    } else {
        issue_key(&mut app, request.scope, now)
    }
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    save(&state, &app).await?;
    let mut all = view(&app)?.keys;
    let position = all
        .iter()
        .position(|k| k.id == key_id(&crate::store::hash_api_key(&issued)))
        .ok_or_else(|| ApiError::Internal("the issued key was not saved".into()))?;
    let key = all.remove(position);
    Ok((
        StatusCode::CREATED,
        axum::Json(IssuedKey {
            api_key: issued,
            key,
            keys: all,
        }),
    ))
}

#[utoipa::path(delete, path = "/v1/admin/apps/{app_id}/keys/{key_id}", tag = "admin", params(KeyPath), security(("api_key" = [])),
    responses((status = 204, description = "the key stops working at once"), problem::Unauthorized, problem::Forbidden, problem::NotFound))]
pub async fn remove_key(
    State(state): State<ApiState>,
    _: AdminKey,
    Path(path): Path<KeyPath>,
) -> ApiResult<StatusCode> {
    let mut app = existing(&state, &path.app_id).await?;
    if !revoke_key(&mut app, &path.key_id) {
        return Err(ApiError::NotFound(format!(
            "app `{}` has no key `{}`: see its `keys`",
            app.id, path.key_id
        )));
    }
    save(&state, &app).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/app", tag = "apps", security(("api_key" = [])),
    responses((status = 200, body = AppView, description = "the app of the key used, with the scope of that key in `scope`"), problem::Unauthorized))]
pub async fn own_app(key: AuthedKey) -> ApiResult<axum::Json<OwnApp>> {
    Ok(axum::Json(OwnApp {
        app: view(&key.app)?,
        scope: key.scope,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct OwnApp {
    #[serde(flatten)]
    app: AppView,
    /// The scope of the key that asked.
    #[schema(value_type = String, example = "read")]
    scope: Scope,
}

#[derive(Serialize, ToSchema)]
pub struct DemoApp {
    app_id: String,
    name: String,
}

#[derive(Serialize, ToSchema)]
pub struct DemoApps {
    /// Apps whose demo is on, oldest first (the default app first).
    apps: Vec<DemoApp>,
}

#[utoipa::path(get, path = "/v1/demo/apps", tag = "public",
    responses((status = 200, body = DemoApps)))]
pub async fn demo_apps(State(state): State<ApiState>) -> ApiResult<axum::Json<DemoApps>> {
    let mut apps = state.store().list_apps().await?;
    apps.retain(|a| a.demo);
    apps.sort_by_key(|a| (a.created_at, a.id.clone()));
    Ok(axum::Json(DemoApps {
        apps: apps
            .into_iter()
            .map(|a| DemoApp {
                app_id: a.id,
                name: a.name,
            })
            .collect(),
    }))
}
