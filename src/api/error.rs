//! The API's errors: each variant says, in one place, its HTTP status, its problem `type` slug
//! and its metric label; all are rendered as RFC 9457 `application/problem+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::notify::model::FieldError;
use crate::notify::model::UseCaseError;
use crate::notify::service::NotifyError;
use crate::store::StoreError;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What happened and what to do about it.
    pub detail: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The problem answers that operations list in the OpenAPI document
/// (`responses(..., problem::NotFound)`), one type a status: each is a [`Problem`] as
/// `application/problem+json`, said once here instead of in every operation's list.
pub mod problem {
    use utoipa::IntoResponses;

    use super::Problem;

    /// One response type a status, named as the status is.
    macro_rules! problem_responses {
        ($($name:ident = $status:literal),* $(,)?) => {$(
            #[derive(IntoResponses)]
            #[response(status = $status, content_type = "application/problem+json")]
            pub struct $name(pub Problem);
        )*};
    }

    problem_responses!(
        BadRequest = 400,
        Unauthorized = 401,
        Forbidden = 403,
        NotFound = 404,
        PayloadTooLarge = 413,
        UnsupportedMediaType = 415,
        TooManyRequests = 429,
    );
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest {
        field: Option<String>,
        detail: String,
    },
    #[error(
        "missing or invalid API key: send `Authorization: Bearer <api key>` (see `aviso apps create`)"
    )]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// A field's value is well formed but refused (a receipt whose token does not prove it).
    #[error("{detail}")]
    Refused { field: String, detail: String },
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not with this method; the `Allow` header (set by the router) lists
    /// the methods it takes.
    #[error(
        "`{0}` is not a method of this endpoint: its `Allow` header lists the ones it takes (see /openapi.json)"
    )]
    MethodNotAllowed(axum::http::Method),
    /// The request clashes with what is stored (e.g. new keys for a subscribed endpoint without
    /// the proof): the detail says what to send instead.
    #[error("{detail}")]
    Conflict { field: String, detail: String },
    #[error(
        "the request body is too large: public endpoints take {} bytes, server endpoints {} bytes",
        super::PUBLIC_MAX_BODY,
        super::SERVER_MAX_BODY
    )]
    PayloadTooLarge,
    #[error("send the body as JSON with `Content-Type: application/json`")]
    UnsupportedMediaType,
    #[error("too many requests from this address: retry in a second")]
    RateLimited,
    #[error("too many requests for this app from all addresses together: retry in a second")]
    AppRateLimited,
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("the request took longer than {0} s: retry later")]
    Timeout(u64),
    #[error("internal error: {0}")]
    Internal(String),
    /// A handler panicked: already logged once by the panic hook, so not logged again.
    #[error("internal error: the server failed on this request; it was logged")]
    Panicked,
}

impl ApiError {
    pub fn bad(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            field: Some(field.into()),
            detail: detail.into(),
        }
    }

    /// Status, problem type slug and metric label.
    fn describe(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::BadRequest { .. } => (StatusCode::BAD_REQUEST, "invalid-request", "bad_request"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "forbidden"),
            Self::Refused { .. } => (StatusCode::FORBIDDEN, "refused", "refused"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "not_found"),
            Self::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "method_not_allowed",
            ),
            Self::Conflict { .. } => (StatusCode::CONFLICT, "conflict", "conflict"),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "payload_too_large",
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "unsupported_media_type",
            ),
            Self::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "rate_limited",
            ),
            Self::AppRateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "app-rate-limited",
                "app_rate_limited",
            ),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "unavailable",
            ),
            Self::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout", "timeout"),
            Self::Internal(_) | Self::Panicked => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal")
            }
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self::BadRequest {
            field: Some(e.field),
            detail: e.message,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::from(&e)
    }
}

/// A store error shared by every waiter of one cache fill.
impl From<&StoreError> for ApiError {
    fn from(e: &StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::Unavailable(e.to_string()),
            StoreError::Invalid(detail) => Self::BadRequest {
                field: None,
                detail: detail.clone(),
            },
            StoreError::NotFound(what) => Self::NotFound(format!("{what} does not exist")),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<UseCaseError> for ApiError {
    fn from(e: UseCaseError) -> Self {
        match e {
            UseCaseError::Invalid(field) => field.into(),
            UseCaseError::Store(store) => store.into(),
            UseCaseError::NotFound(_) => Self::NotFound(e.to_string()),
        }
    }
}

impl From<NotifyError> for ApiError {
    fn from(e: NotifyError) -> Self {
        match e {
            NotifyError::UseCase(e) => e.into(),
            NotifyError::BeingCreated => Self::Unavailable(e.to_string()),
            NotifyError::Random => Self::Internal(e.to_string()),
            NotifyError::Completed { .. } => Self::Conflict {
                field: "id".into(),
                detail: e.to_string(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, label) = self.describe();
        metrics::counter!("aviso_api_errors_total", "kind" => label).increment(1);
        if status.is_server_error() && !matches!(self, Self::Panicked) {
            tracing::error!(error = %self, "request failed");
        }
        let field = match &self {
            Self::BadRequest { field, .. } => field.clone(),
            Self::Conflict { field, .. } | Self::Refused { field, .. } => Some(field.clone()),
            _ => None,
        };
        let problem = Problem {
            kind: format!("https://aviso.dev/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            field,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
