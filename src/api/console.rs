//! The console (`/console/`): the built web UI of `sw/console/` served as static files under a
//! strict Content Security Policy (no inline script or style, no other origin but images of
//! the notifications being composed), never framed, never cached stale.

use std::path::Path;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Redirect, Response};
use axum::routing::get;
use tower_http::services::ServeDir;

use super::ApiState;

/// Scripts, styles and API calls only from this server; images also from https (a
/// notification's icon and image in the preview), `data:` for the built-in icons.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; \
connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes(dir: &Path) -> Router<ApiState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .nest_service("/console/", ServeDir::new(dir))
        .layer(axum::middleware::map_response(secure))
}

async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The built files keep their names from one build to the next: always revalidate.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
