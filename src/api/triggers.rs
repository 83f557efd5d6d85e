//! Server endpoints for CRM triggers (Bearer API key): trigger rules, and the events that
//! start and cancel their sends. Thin: parse, call `triggers::service`, answer.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, problem};
use super::extract::{Json, Path, parse_json, parse_json_in};
use super::{ApiState, AuthedApp};
use crate::store::now_ms;
use crate::triggers::model::{Event, MAX_BATCH, Trigger, TriggerRef, TriggerRequest};
use crate::triggers::service::{Ingested, TriggerService};

/// Largest events body: a batch of [`MAX_BATCH`] events with their properties.
pub const MAX_EVENTS_BODY: usize = 4 * 1024 * 1024;

pub fn routes() -> Router<ApiState> {
    let rules = Router::new()
        .route("/v1/triggers", get(list_triggers))
        .route(
            "/v1/triggers/{name}",
            get(get_trigger).put(put_trigger).delete(delete_trigger),
        )
        .layer(DefaultBodyLimit::max(super::SERVER_MAX_BODY));
    let events = Router::new()
        .route("/v1/events", post(post_events))
        .layer(DefaultBodyLimit::max(MAX_EVENTS_BODY));
    rules.merge(events)
}

#[derive(Deserialize, IntoParams)]
pub struct TriggerPath {
    /// The trigger's name: 1 to 128 characters of A-Z, a-z, 0-9 and `_ - . :`.
    name: String,
}

#[derive(Serialize, ToSchema)]
pub struct TriggerView {
    #[serde(flatten)]
    trigger: Trigger,
    /// matched, scheduled, rearmed, ignored, cancelled, sent, failed.
    counters: BTreeMap<String, i64>,
}

#[derive(Serialize, ToSchema)]
pub struct TriggerList {
    triggers: Vec<TriggerView>,
}

async fn view(state: &ApiState, trigger: Trigger) -> ApiResult<TriggerView> {
    let counters = state
        .store()
        .trigger_counters(TriggerRef::from(&trigger))
        .await?;
    Ok(TriggerView { trigger, counters })
}

#[utoipa::path(put, path = "/v1/triggers/{name}", tag = "triggers", params(TriggerPath), request_body = TriggerRequest,
    security(("api_key" = [])),
    responses((status = 200, body = TriggerView, description = "created or replaced"), problem::BadRequest, problem::Unauthorized, problem::UnsupportedMediaType))]
pub async fn put_trigger(
    State(state): State<ApiState>,
    AuthedApp(app): AuthedApp,
    Path(path): Path<TriggerPath>,
    Json(request): Json<TriggerRequest>,
) -> ApiResult<axum::Json<TriggerView>> {
    let trigger = TriggerService::new(state.store())
        .put(&app, &path.name, request, now_ms())
        .await?;
    Ok(axum::Json(view(&state, trigger).await?))
}

#[utoipa::path(get, path = "/v1/triggers/{name}", tag = "triggers", params(TriggerPath), security(("api_key" = [])),
    responses((status = 200, body = TriggerView), problem::Unauthorized, problem::NotFound))]
pub async fn get_trigger(
    State(state): State<ApiState>,
    AuthedApp(app): AuthedApp,
    Path(path): Path<TriggerPath>,
) -> ApiResult<axum::Json<TriggerView>> {
    let trigger = TriggerService::new(state.store())
        .get(&app, &path.name)
        .await?;
    Ok(axum::Json(view(&state, trigger).await?))
}

#[utoipa::path(delete, path = "/v1/triggers/{name}", tag = "triggers", params(TriggerPath), security(("api_key" = [])),
    responses((status = 204, description = "deleted; its pending sends are dropped when due"), problem::Unauthorized, problem::NotFound))]
pub async fn delete_trigger(
    State(state): State<ApiState>,
    AuthedApp(app): AuthedApp,
    Path(path): Path<TriggerPath>,
) -> ApiResult<StatusCode> {
    TriggerService::new(state.store())
        .delete(&app, &path.name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/triggers", tag = "triggers", security(("api_key" = [])),
    responses((status = 200, body = TriggerList), problem::Unauthorized))]
pub async fn list_triggers(
    State(state): State<ApiState>,
    AuthedApp(app): AuthedApp,
) -> ApiResult<axum::Json<TriggerList>> {
    let mut triggers = Vec::new();
    for trigger in state.store().list_triggers(&app.id).await? {
        triggers.push(view(&state, trigger).await?);
    }
    Ok(axum::Json(TriggerList { triggers }))
}

/// Reads one event, an array of events, or NDJSON (one event per line).
fn parse_events(headers: &HeaderMap, body: &[u8]) -> ApiResult<Vec<Event>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let events: Vec<Event> = if content_type.starts_with("application/x-ndjson") {
        let mut events = Vec::new();
        for (i, line) in body.split(|b| *b == b'\n').enumerate() {
            let line = line.trim_ascii();
            if !line.is_empty() {
                // The line's mistake names its field; the detail says which line.
                events.push(parse_json_in::<Event>(line, "line").map_err(|e| match e {
                    ApiError::BadRequest { field, detail } => ApiError::BadRequest {
                        field,
                        detail: format!("line {}: {detail}", i + 1),
                    },
                    other => other,
                })?);
            }
        }
        events
    } else if content_type.starts_with("application/json") {
        // One event or an array of them; a mistake names its field (`[3].external_id`).
        match body.trim_ascii_start().first() {
            Some(b'[') => parse_json(body)?,
            _ => vec![parse_json(body)?],
        }
    } else {
        return Err(ApiError::UnsupportedMediaType);
    };
    if events.is_empty() || events.len() > MAX_BATCH {
        return Err(ApiError::bad(
            "body",
            format!("send 1 to {MAX_BATCH} events per request"),
        ));
    }
    let batch = events.len() > 1;
    for (i, event) in events.iter().enumerate() {
        let at = if batch {
            format!("[{i}]")
        } else {
            String::new()
        };
        event.validate(&at)?;
    }
    Ok(events)
}

#[utoipa::path(post, path = "/v1/events", tag = "triggers", security(("api_key" = [])),
    request_body(content = Event, description = "one event, a JSON array of up to 5000, or NDJSON (`application/x-ndjson`, one per line). Events for profiles that do not exist are accepted: their sends reach nobody unless the profile exists when they are due."),
    responses((status = 202, body = Ingested, description = "taken: sends scheduled and cancelled"), problem::BadRequest, problem::Unauthorized, problem::PayloadTooLarge, problem::UnsupportedMediaType))]
pub async fn post_events(
    State(state): State<ApiState>,
    AuthedApp(app): AuthedApp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, axum::Json<Ingested>)> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::bad("body", format!("the upload broke off: {}", e.body_text()))
        }
    })?;
    let events = parse_events(&headers, &body)?;
    let ingested = TriggerService::new(state.store())
        .ingest(&app, &events, now_ms())
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(ingested)))
}
