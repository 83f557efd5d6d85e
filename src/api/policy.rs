//! The app's delivery policy (`GET/PUT /v1/policy`, an `admin`-scoped key of the app, like the
//! app's other settings): frequency caps, quiet hours, the default time zone and rate. The
//! rules themselves live in `crate::policy`; a change holds on every instance within seconds.

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::error::{ApiResult, problem};
use super::extract::Json;
use super::{AdminKey, ApiState};
use crate::policy::Policy;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/v1/policy", get(get_policy).put(put_policy))
}

#[utoipa::path(get, path = "/v1/policy", tag = "policy", security(("api_key" = [])),
    responses((status = 200, body = Policy, description = "the app's policy (the default when it set none)"), problem::Unauthorized, problem::Forbidden))]
pub async fn get_policy(
    State(state): State<ApiState>,
    AdminKey(app): AdminKey,
) -> ApiResult<axum::Json<Policy>> {
    let policy = state.store().get_policy(&app.id).await?;
    Ok(axum::Json(policy.unwrap_or_default()))
}

#[utoipa::path(put, path = "/v1/policy", tag = "policy", request_body = Policy, security(("api_key" = [])),
    responses((status = 200, body = Policy), problem::BadRequest, problem::Unauthorized, problem::Forbidden, problem::UnsupportedMediaType))]
pub async fn put_policy(
    State(state): State<ApiState>,
    AdminKey(app): AdminKey,
    Json(policy): Json<Policy>,
) -> ApiResult<axum::Json<Policy>> {
    policy.compile()?;
    state.store().put_policy(&app.id, &policy).await?;
    Ok(axum::Json(policy))
}
