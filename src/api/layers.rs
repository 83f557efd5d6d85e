//! The layers around every route: a panic answered as a `500` problem (tower-http's
//! catch-panic; the panic hook has logged it once), the latency histogram by route template, a
//! time limit per request (tower-http's timeout, answered as a problem) and the preflight's
//! `204`.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::Timeout;

use super::error::ApiError;

/// Routes that stream a body of any length, so no time limit fits them.
const STREAMED_ROUTES: &[&str] = &["/v1/profile-imports"];

/// Wraps a router in the layers every response passes through.
pub(super) fn around<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    // The panic's 500 is counted like any other answer: catch inside the count.
    router
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| ApiError::Panicked.into_response(),
        ))
        .layer(middleware::from_fn(count_requests))
}

/// `aviso_api_request_seconds` by method, status and route: the matched template
/// (`/v1/notifications/{id}`), never the raw path, which would make one series per id.
async fn count_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    metrics::histogram!("aviso_api_request_seconds", "method" => method, "route" => route, "status" => response.status().as_u16().to_string())
        .record(started.elapsed().as_secs_f64());
    response
}

/// tower-http's timeout around the request, except on [`STREAMED_ROUTES`]; its bare `503`
/// becomes a problem document.
pub(super) async fn timeout(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let streamed = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|path| STREAMED_ROUTES.contains(&path.as_str()));
    if streamed {
        return next.run(request).await;
    }
    let answered = Timeout::with_status_code(next, StatusCode::SERVICE_UNAVAILABLE, limit)
        .oneshot(request)
        .await;
    match answered {
        Ok(response)
            if response.status() == StatusCode::SERVICE_UNAVAILABLE
                && !response.headers().contains_key(header::CONTENT_TYPE) =>
        {
            ApiError::Timeout(limit.as_secs()).into_response()
        }
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// A CORS preflight is answered `204 No Content` (tower-http's CORS layer answers `200` with
/// an empty body; browsers take either).
pub(super) async fn preflight_no_content(request: Request, next: Next) -> Response {
    let preflight = request.method() == Method::OPTIONS;
    let mut response = next.run(request).await;
    if preflight && response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    async fn boom() -> &'static str {
        panic!("a bug")
    }

    #[tokio::test]
    async fn a_panic_is_a_500_problem_and_the_server_goes_on() {
        let router = around(
            Router::new()
                .route("/boom", get(boom))
                .route("/ok", get(|| async { "ok" })),
        );
        let get = |path: &str| {
            axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let response = router.clone().oneshot(get("/boom")).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["status"], 500);
        assert!(body.len() < 300, "a short problem, not a backtrace");
        let response = router.oneshot(get("/ok")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
