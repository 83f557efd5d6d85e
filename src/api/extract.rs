//! Extractors whose rejections are problem documents: a client's malformed JSON or path gets a
//! 4xx that says what to fix, never axum's plain-text default.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// JSON body; unknown fields are refused by the types themselves (`deny_unknown_fields`).
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::BadRequest {
                field: None,
                detail: format!(
                    "the JSON does not match the expected shape: {}",
                    e.body_text()
                ),
            }),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::BadRequest {
                field: None,
                detail: format!("the body is not valid JSON: {}", e.body_text()),
            }),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::PayloadTooLarge(super::MAX_BODY))
            }
            Err(other) => Err(ApiError::BadRequest {
                field: None,
                detail: other.body_text(),
            }),
        }
    }
}

/// Path parameters.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(|e: PathRejection| ApiError::BadRequest {
                field: None,
                detail: e.body_text(),
            })
    }
}

/// Query parameters.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|e: QueryRejection| ApiError::BadRequest {
                field: None,
                detail: e.body_text(),
            })
    }
}
