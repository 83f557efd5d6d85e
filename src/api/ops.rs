//! Operational endpoints: `/healthz` (the process answers), `/readyz` (the store answers),
//! `/metrics` (Prometheus), `/openapi.json`, the browser SDK (`/sdk/…`, the demo at `/`) and the
//! console (`/console/`).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::services::{ServeDir, ServeFile};

use super::ApiState;
use super::error::ApiError;

pub fn routes(state: &ApiState) -> Router<ApiState> {
    let sdk_dir = &state.config().sdk_dir;
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi));
    let dist = sdk_dir.join("dist");
    if dist.is_dir() {
        router = router.nest_service("/sdk", ServeDir::new(dist));
    }
    let console = sdk_dir.join("console").join("dist");
    if console.is_dir() {
        router = router.merge(super::console::routes(&console));
    }
    let demo = sdk_dir.join("demo").join("index.html");
    if demo.is_file() {
        router = router.route_service("/", ServeFile::new(demo));
    }
    router
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<ApiState>) -> Result<&'static str, ApiError> {
    state.store().ping().await?;
    Ok("ready")
}

async fn metrics(State(state): State<ApiState>) -> Response {
    match &state.inner.metrics {
        Some(handle) => {
            let mut response = handle.render().into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        None => (
            StatusCode::NOT_FOUND,
            "metrics are not enabled in this process",
        )
            .into_response(),
    }
}

/// The document for this server: its endpoint pattern names the push hosts it accepts.
async fn openapi(State(state): State<ApiState>) -> impl IntoResponse {
    axum::Json(super::openapi::document(&state.config().allowed_push_hosts))
}
