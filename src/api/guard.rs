//! What stands in front of the public endpoints: CORS limited to the app's origins and the
//! server's public URL (tower-http's CORS layer, asking [`origin_allowed`]), then a rate limit
//! per client address and a ceiling per app (so that many addresses together cannot flood one
//! app), then a `403` for a page on an origin the app does not list.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

use axum::extract::{ConnectInfo, OriginalUri, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::error::ApiError;
use super::{ApiState, client_ip};
use crate::config::Config;
use crate::store::App;

/// Addresses remembered before the ones whose buckets are full again are forgotten.
const TRACKED_ADDRESSES: usize = 10_000;
/// How long a browser may reuse a preflight's answer.
const PREFLIGHT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// The two limits of the public endpoints.
pub(super) struct PublicLimits {
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    /// Keyed by the ids of apps that exist only: strangers cannot grow it.
    per_app: DefaultKeyedRateLimiter<String>,
}

/// `per_second`, with bursts of twice as many.
fn quota(per_second: u32) -> Quota {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(rate.saturating_mul(NonZeroU32::MIN.saturating_add(1)))
}

impl PublicLimits {
    pub(super) fn new(config: &Config) -> Self {
        Self {
            per_address: RateLimiter::keyed(quota(config.public_rate_limit)),
            per_app: RateLimiter::keyed(quota(config.public_app_rate_limit)),
        }
    }
}

/// The app id of a public request (`/v1/apps/{app_id}/…`), read from the URI as it arrived:
/// inside `nest` the request's own URI has lost that prefix.
fn app_id_of(extensions: &axum::http::Extensions, uri: &axum::http::Uri) -> String {
    let path = extensions
        .get::<OriginalUri>()
        .map_or_else(|| uri.path(), |original| original.path());
    path.strip_prefix("/v1/apps/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_owned()
}

/// Whether a page on `origin` may call the public API of `app`: the app's origins, or the
/// server's own public URL (the demo page).
fn origin_allowed(state: &ApiState, app: &App, origin: &HeaderValue) -> bool {
    origin.to_str().is_ok_and(|origin| {
        origin == state.config().public_url
            || app
                .origins
                .iter()
                .any(|a| a.trim_end_matches('/') == origin)
    })
}

/// tower-http's CORS layer, allowing per request the origins of the app it names.
pub(super) fn cors(state: &ApiState) -> CorsLayer {
    let state = state.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::async_predicate(
            move |origin: HeaderValue, parts: &axum::http::request::Parts| {
                let state = state.clone();
                let app_id = app_id_of(&parts.extensions, &parts.uri);
                async move {
                    match state.app(&app_id).await {
                        Ok(app) => origin_allowed(&state, &app, &origin),
                        Err(_) => false,
                    }
                }
            },
        ))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(PREFLIGHT_MAX_AGE)
}

/// Per-address limit, then the app (404 when it does not exist), its ceiling and its origins.
pub(super) async fn public_guard(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let limits = &state.inner.limits;
    let client = client_ip::client_ip(
        peer.ip(),
        request.headers(),
        &state.config().trusted_proxies,
    );
    if limits.per_address.check_key(&client).is_err() {
        return ApiError::RateLimited.into_response();
    }
    // Forget addresses whose buckets are full again, so memory follows active clients only.
    if limits.per_address.len() > TRACKED_ADDRESSES {
        limits.per_address.retain_recent();
    }
    let app_id = app_id_of(request.extensions(), request.uri());
    let app = match state.app(&app_id).await {
        Ok(app) => app,
        Err(error) => return error.into_response(),
    };
    if limits.per_app.check_key(&app.id).is_err() {
        return ApiError::AppRateLimited.into_response();
    }
    if let Some(origin) = request.headers().get(header::ORIGIN)
        && !origin_allowed(&state, &app, origin)
    {
        let shown = String::from_utf8_lossy(origin.as_bytes()).into_owned();
        return ApiError::Forbidden(format!(
            "origin `{shown}` is not allowed for app `{app_id}`: add it to the app's origins (aviso apps create --origin …)"
        ))
        .into_response();
    }
    next.run(request).await
}
