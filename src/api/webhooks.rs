//! Server endpoints for webhooks (an `admin`-scoped key; the webhooks are its app's): register
//! a target with an event filter (its secret is shown once), list them with their delivery
//! state, delete one, fire a test event at one, read its dead letters. Thin: validate, call the
//! store, answer.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, problem};
use super::extract::{Json, Path, Query};
use super::{AdminKey, ApiState};
use crate::store::{WebhookRef, now_ms};
use crate::webhooks::model::{MAX_WEBHOOKS_PER_APP, new_id, new_secret};
use crate::webhooks::target::check_url;
use crate::webhooks::{DeadLetter, EventType, OutboxEntry, Webhook, WebhookState};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/webhooks", get(list_webhooks).post(create_webhook))
        .route(
            "/v1/webhooks/{webhook_id}",
            axum::routing::delete(delete_webhook),
        )
        .route("/v1/webhooks/{webhook_id}/test", post(test_webhook))
        .route("/v1/webhooks/{webhook_id}/dead-letters", get(dead_letters))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// An https URL on a public host.
    #[schema(
        max_length = 2048,
        pattern = "^https://",
        example = "https://crm.example.com/aviso"
    )]
    url: String,
    /// Event types to receive; omitted or empty = every type.
    #[serde(default)]
    #[schema(value_type = Vec<String>, example = json!(["notification.clicked", "subscription.created"]))]
    events: Vec<String>,
    #[serde(default)]
    #[schema(max_length = 256)]
    description: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    id: String,
    url: String,
    #[schema(value_type = Vec<String>)]
    events: Vec<EventType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    created_at_ms: u64,
    /// Only in the answer to its creation: `whsec_…`, for verifying signatures.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// How its deliveries stand (absent in the answer to its creation).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    delivery: Option<WebhookState>,
}

impl WebhookView {
    fn of(webhook: Webhook, delivery: Option<WebhookState>) -> Self {
        Self {
            id: webhook.id,
            url: webhook.url,
            events: webhook.events,
            description: webhook.description,
            created_at_ms: webhook.created_at_ms,
            secret: None,
            delivery,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    webhooks: Vec<WebhookView>,
}

#[derive(Deserialize, IntoParams)]
pub struct WebhookPath {
    /// `wh_` and 16 hex digits.
    webhook_id: String,
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookRequest, security(("api_key" = [])),
    responses((status = 201, body = WebhookView, description = "created; its secret is shown this once"), problem::BadRequest, problem::Unauthorized, problem::Forbidden, problem::UnsupportedMediaType))]
pub async fn create_webhook(
    State(state): State<ApiState>,
    AdminKey(app): AdminKey,
    Json(request): Json<WebhookRequest>,
) -> ApiResult<(StatusCode, axum::Json<WebhookView>)> {
    check_url(&request.url, &state.config().allowed_webhook_hosts)
        .map_err(|why| ApiError::bad("url", why))?;
    let mut events = Vec::with_capacity(request.events.len());
    for (i, name) in request.events.iter().enumerate() {
        let kind =
            EventType::parse(name).map_err(|why| ApiError::bad(format!("events[{i}]"), why))?;
        if !events.contains(&kind) {
            events.push(kind);
        }
    }
    if let Some(description) = &request.description
        && (description.chars().count() > 256 || description.chars().any(char::is_control))
    {
        return Err(ApiError::bad(
            "description",
            "at most 256 characters, without control characters",
        ));
    }
    if state.store().list_webhooks(&app.id).await?.len() >= MAX_WEBHOOKS_PER_APP {
        return Err(ApiError::bad(
            "url",
            format!("this app has {MAX_WEBHOOKS_PER_APP} webhooks already: delete one first"),
        ));
    }
    let random = || ApiError::Internal("the random generator failed".into());
    let webhook = Webhook {
        id: new_id("wh_").ok_or_else(random)?,
        app_id: app.id.clone(),
        url: request.url,
        events,
        secret: new_secret().ok_or_else(random)?,
        description: request.description,
        created_at_ms: now_ms(),
    };
    state.store().put_webhook(&webhook).await?;
    let secret = webhook.secret.clone();
    let mut view = WebhookView::of(webhook, None);
    view.secret = Some(secret);
    Ok((StatusCode::CREATED, axum::Json(view)))
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", security(("api_key" = [])),
    responses((status = 200, body = WebhookList), problem::Unauthorized, problem::Forbidden))]
pub async fn list_webhooks(
    State(state): State<ApiState>,
    AdminKey(app): AdminKey,
) -> ApiResult<axum::Json<WebhookList>> {
    let mut webhooks = Vec::new();
    for webhook in state.store().list_webhooks(&app.id).await? {
        let delivery = state.store().webhook_state((&webhook).into()).await?;
        webhooks.push(WebhookView::of(webhook, delivery));
    }
    Ok(axum::Json(WebhookList { webhooks }))
}

fn no_such(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no webhook `{id:.40}` in this app: GET /v1/webhooks lists them"
    ))
}

#[utoipa::path(delete, path = "/v1/webhooks/{webhook_id}", tag = "webhooks", params(WebhookPath), security(("api_key" = [])),
    responses((status = 204, description = "deleted, with its outbox position and dead letters"), problem::Unauthorized, problem::Forbidden, problem::NotFound))]
pub async fn delete_webhook(
    State(state): State<ApiState>,
    AdminKey(app): AdminKey,
    Path(path): Path<WebhookPath>,
) -> ApiResult<StatusCode> {
    if state
        .store()
        .delete_webhook(WebhookRef::new(&app.id, &path.webhook_id))
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_such(&path.webhook_id))
    }
}

#[derive(Serialize, ToSchema)]
pub struct TestFired {
    /// The `webhook-id` the test event is posted with.
    message_id: String,
}

#[utoipa::path(post, path = "/v1/webhooks/{webhook_id}/test", tag = "webhooks", params(WebhookPath), security(("api_key" = [])),
    responses((status = 202, body = TestFired, description = "a `webhook.test` event is queued for this webhook alone, posted like any other (within a second, retried)"), problem::Unauthorized, problem::Forbidden, problem::NotFound))]
pub async fn test_webhook(
    State(state): State<ApiState>,
    AdminKey(app): AdminKey,
    Path(path): Path<WebhookPath>,
) -> ApiResult<(StatusCode, axum::Json<TestFired>)> {
    let webhooks = state.store().list_webhooks(&app.id).await?;
    let webhook = webhooks
        .iter()
        .find(|w| w.id == path.webhook_id)
        .ok_or_else(|| no_such(&path.webhook_id))?;
    let data = serde_json::json!({ "webhook_id": webhook.id, "app_id": app.id });
    let mut entry = OutboxEntry::new(EventType::WebhookTest, now_ms(), data)
        .ok_or_else(|| ApiError::Internal("the random generator failed".into()))?;
    entry.only = Some(webhook.id.clone());
    let message_id = entry.id.clone();
    state
        .store()
        .append_webhook_events(&app.id, &[entry])
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(TestFired { message_id })))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    /// Newest dead letters to answer (1 to 1000). [default: 100]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct DeadLetters {
    #[schema(value_type = Vec<Object>)]
    dead_letters: Vec<DeadLetter>,
}

#[utoipa::path(get, path = "/v1/webhooks/{webhook_id}/dead-letters", tag = "webhooks", params(WebhookPath, DeadLetterQuery), security(("api_key" = [])),
    responses((status = 200, body = DeadLetters, description = "entries retried for the whole retry period without a 2xx, oldest first"), problem::BadRequest, problem::Unauthorized, problem::Forbidden, problem::NotFound))]
pub async fn dead_letters(
    State(state): State<ApiState>,
    AdminKey(app): AdminKey,
    Path(path): Path<WebhookPath>,
    Query(query): Query<DeadLetterQuery>,
) -> ApiResult<axum::Json<DeadLetters>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad("limit", "from 1 to 1000"));
    }
    if state
        .store()
        .webhook_state(WebhookRef::new(&app.id, &path.webhook_id))
        .await?
        .is_none()
    {
        return Err(no_such(&path.webhook_id));
    }
    let dead_letters = state
        .store()
        .dead_letters(WebhookRef::new(&app.id, &path.webhook_id), limit)
        .await?;
    Ok(axum::Json(DeadLetters { dead_letters }))
}
