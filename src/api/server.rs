//! Server endpoints for marketers and CRMs (Bearer API key): profiles and notifications.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, Problem, problem};
use super::extract::{Json, Path, Query, parse_json_in};
use super::{ApiState, AuthedApp};
use crate::notify::life::{Accounting, SeriesPoint};
use crate::notify::model::{MAX_ID_LEN, check_length};
use crate::notify::service::Created;
use crate::notify::{Notification, NotificationRequest};
use crate::store::{App, AttributeValue, Profile, ProfileRef, ProfileUpdate, SubscriptionId};

/// Longest line of a bulk import.
const MAX_IMPORT_LINE: usize = 64 * 1024;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(
            "/v1/profiles/{external_id}",
            put(update_profile).get(get_profile).delete(erase_profile),
        )
        .route(
            "/v1/profiles/{external_id}/subscriptions",
            post(link_subscription),
        )
        .route("/v1/profile-imports", post(import_profiles))
        .route(
            "/v1/notifications",
            post(create_notification).get(list_notifications),
        )
        .route("/v1/notifications/{id}", get(get_notification))
        .route("/v1/notifications/{id}/series", get(notification_series))
        .route("/v1/notifications/{id}/cancel", post(cancel_notification))
}

#[derive(Deserialize, IntoParams)]
pub struct ProfilePath {
    /// The CRM's id for the person.
    #[param(min_length = 1, max_length = 128)]
    external_id: String,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ProfileChanges {
    /// Values are strings, numbers or booleans; `null` removes the attribute.
    #[serde(default)]
    #[schema(value_type = Object)]
    attributes: BTreeMap<String, Option<AttributeValue>>,
    /// `null` removes the tag.
    #[serde(default)]
    tags: BTreeMap<String, Option<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct ProfileView {
    external_id: String,
    #[schema(value_type = Object)]
    attributes: BTreeMap<String, AttributeValue>,
    tags: BTreeMap<String, String>,
    subscriptions: Vec<SubscriptionView>,
    updated_at: u64,
    /// Triggered sends waiting for their time, soonest first.
    pending_sends: Vec<PendingSendView>,
}

#[derive(Serialize, ToSchema)]
pub struct PendingSendView {
    trigger: String,
    key: String,
    /// Unix milliseconds.
    due_at_ms: u64,
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionView {
    id: String,
    endpoint_origin: String,
    locale: String,
    timezone: String,
    tags: BTreeMap<String, String>,
    created_at: u32,
    last_seen: u32,
}

fn check_external_id(external_id: &str) -> ApiResult<()> {
    Ok(check_length("external_id", external_id, 1, MAX_ID_LEN)?)
}

fn check_changes(changes: &ProfileChanges) -> ApiResult<()> {
    if changes.attributes.len() + changes.tags.len() > 256 {
        return Err(ApiError::bad(
            "attributes",
            "at most 256 attributes and tags per request",
        ));
    }
    for key in changes.attributes.keys().chain(changes.tags.keys()) {
        check_length("attributes", key, 1, MAX_ID_LEN)?;
    }
    Ok(())
}

impl ProfileChanges {
    /// The store's update of profile `external_id`, the id and the changes checked (as a PUT
    /// and each line of a bulk import give them).
    fn into_update(self, external_id: String) -> ApiResult<ProfileUpdate> {
        check_external_id(&external_id)?;
        check_changes(&self)?;
        Ok(ProfileUpdate {
            external_id,
            attributes: self.attributes,
            tags: self.tags,
        })
    }
}

async fn view(state: &ApiState, app: &App, profile: Profile) -> ApiResult<ProfileView> {
    let subscriptions = state
        .store()
        .get_subscriptions(&app.id, &profile.subscriptions)
        .await?;
    let pending_sends = state
        .store()
        .pending_sends_of(ProfileRef::new(&app.id, &profile.external_id))
        .await?
        .into_iter()
        .map(|send| PendingSendView {
            trigger: send.trigger,
            key: send.key,
            due_at_ms: send.due_ms,
        })
        .collect();
    Ok(ProfileView {
        external_id: profile.external_id,
        attributes: profile.attributes,
        tags: profile.tags,
        subscriptions: subscriptions
            .into_iter()
            .map(|s| SubscriptionView {
                id: s.id.to_string(),
                endpoint_origin: url::Url::parse(&s.endpoint)
                    .map(|u| u.origin().ascii_serialization())
                    .unwrap_or_default(),
                locale: s.locale,
                timezone: s.timezone,
                tags: s.tags,
                created_at: s.created_at,
                last_seen: s.last_seen,
            })
            .collect(),
        updated_at: profile.updated_at,
        pending_sends,
    })
}

#[utoipa::path(put, path = "/v1/profiles/{external_id}", tag = "profiles", params(ProfilePath), request_body = ProfileChanges,
    security(("api_key" = [])),
    responses((status = 200, body = ProfileView), problem::BadRequest, problem::Unauthorized, problem::UnsupportedMediaType))]
pub async fn update_profile(
    State(state): State<ApiState>,
    AuthedApp(app): AuthedApp,
    Path(path): Path<ProfilePath>,
    Json(changes): Json<ProfileChanges>,
) -> ApiResult<axum::Json<ProfileView>> {
    let update = changes.into_update(path.external_id)?;
    let profile = state.store().update_profile(&app.id, &update).await?;
    Ok(axum::Json(view(&state, &app, profile).await?))
}

#[utoipa::path(get, path = "/v1/profiles/{external_id}", tag = "profiles", params(ProfilePath), security(("api_key" = [])),
    responses((status = 200, body = ProfileView), problem::BadRequest, problem::Unauthorized, problem::NotFound))]
pub async fn get_profile(
    State(state): State<ApiState>,
    AuthedApp(app): AuthedApp,
    Path(path): Path<ProfilePath>,
) -> ApiResult<axum::Json<ProfileView>> {
    check_external_id(&path.external_id)?;
    let profile = state
        .store()
        .get_profile(ProfileRef::new(&app.id, &path.external_id))
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("profile `{}` does not exist", path.external_id))
        })?;
    Ok(axum::Json(view(&state, &app, profile).await?))
}

#[derive(Serialize, ToSchema)]
pub struct Erased {
    deleted_subscriptions: u64,
}

#[utoipa::path(delete, path = "/v1/profiles/{external_id}", tag = "profiles", params(ProfilePath), security(("api_key" = [])),
    responses((status = 200, body = Erased, description = "the profile and all its subscriptions are erased (GDPR)"), problem::BadRequest, problem::Unauthorized))]
pub async fn erase_profile(
    State(state): State<ApiState>,
    AuthedApp(app): AuthedApp,
    Path(path): Path<ProfilePath>,
) -> ApiResult<axum::Json<Erased>> {
    check_external_id(&path.external_id)?;
    let deleted_subscriptions = state
        .store()
        .erase_profile(ProfileRef::new(&app.id, &path.external_id))
        .await?;
    Ok(axum::Json(Erased {
        deleted_subscriptions,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    subscription_id: String,
}

#[utoipa::path(post, path = "/v1/profiles/{external_id}/subscriptions", tag = "profiles", params(ProfilePath), request_body = LinkRequest,
    security(("api_key" = [])),
    responses((status = 204), problem::BadRequest, problem::Unauthorized, problem::NotFound, problem::UnsupportedMediaType))]
pub async fn link_subscription(
    State(state): State<ApiState>,
    AuthedApp(app): AuthedApp,
    Path(path): Path<ProfilePath>,
    Json(link): Json<LinkRequest>,
) -> ApiResult<StatusCode> {
    check_external_id(&path.external_id)?;
    let id: SubscriptionId = link
        .subscription_id
        .parse()
        .map_err(|e: crate::store::StoreError| ApiError::bad("subscription_id", e.to_string()))?;
    state
        .store()
        .link_subscription(ProfileRef::new(&app.id, &path.external_id), id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportLine {
    external_id: String,
    #[serde(default)]
    attributes: BTreeMap<String, Option<AttributeValue>>,
    #[serde(default)]
    tags: BTreeMap<String, Option<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct ImportReport {
    imported: u64,
    failed: u64,
    /// The first 100 failures.
    errors: Vec<ImportError>,
}

#[derive(Serialize, ToSchema)]
pub struct ImportError {
    line: u64,
    /// The line's field at fault (`external_id`, `attributes.plan`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    message: String,
}

impl ImportError {
    /// Line `line`'s refusal, with its field (none for the line itself: its number says it).
    fn at(line: u64, error: ApiError) -> Self {
        let field = match &error {
            ApiError::BadRequest { field, .. } => field.clone().filter(|f| f != "line"),
            _ => None,
        };
        Self {
            line,
            field,
            message: error.to_string(),
        }
    }
}

#[utoipa::path(post, path = "/v1/profile-imports", tag = "profiles", security(("api_key" = [])),
    request_body(content = String, content_type = "application/x-ndjson", description = "one JSON object per line: {\"external_id\", \"attributes\"?, \"tags\"?}"),
    responses((status = 200, body = ImportReport), problem::Unauthorized))]
pub async fn import_profiles(
    State(state): State<ApiState>,
    AuthedApp(app): AuthedApp,
    body: Body,
) -> ApiResult<axum::Json<ImportReport>> {
    // Streamed line by line: a CRM sync of millions of profiles never sits in memory.
    let mut stream = body.into_data_stream();
    let mut buffer: Vec<u8> = Vec::new();
    let mut report = ImportReport {
        imported: 0,
        failed: 0,
        errors: Vec::new(),
    };
    let mut line_number = 0u64;
    let mut finished = false;
    while !finished {
        match stream.next().await {
            Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
            Some(Err(e)) => {
                return Err(ApiError::bad("body", format!("the upload broke off: {e}")));
            }
            None => {
                finished = true;
                buffer.push(b'\n');
            }
        }
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            line_number += 1;
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            match import_line(&state, &app, line).await {
                Ok(()) => report.imported += 1,
                Err(error) => {
                    report.failed += 1;
                    if report.errors.len() < 100 {
                        report.errors.push(ImportError::at(line_number, error));
                    }
                }
            }
        }
        if buffer.len() > MAX_IMPORT_LINE {
            return Err(ApiError::bad(
                "body",
                format!(
                    "line {} is longer than {MAX_IMPORT_LINE} bytes",
                    line_number + 1
                ),
            ));
        }
    }
    Ok(axum::Json(report))
}

async fn import_line(state: &ApiState, app: &App, line: &[u8]) -> ApiResult<()> {
    let parsed: ImportLine = parse_json_in(line, "line")?;
    let changes = ProfileChanges {
        attributes: parsed.attributes,
        tags: parsed.tags,
    };
    let update = changes.into_update(parsed.external_id)?;
    state.store().update_profile(&app.id, &update).await?;
    Ok(())
}

#[derive(Serialize, ToSchema)]
pub struct NotificationView {
    #[serde(flatten)]
    notification: Notification,
    /// targeted, sent, delivered, expired, failed.REASON, capped, deferred, shown, clicked,
    /// closed, … (and, with variants, `variants.I.delivered|shown|clicked|closed`, `winner.I`
    /// once decided; docs/PUBLIC-API.md lists them).
    counters: BTreeMap<String, i64>,
    /// Whether the counters account for everyone targeted: once `status` is `completed`,
    /// `outstanding` is 0.
    accounting: Accounting,
    /// With A/B variants: each variant's figures, and where its winner test stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    ab: Option<crate::notify::variants::VariantReport>,
}

impl NotificationView {
    fn new(notification: Notification, counters: BTreeMap<String, i64>) -> Self {
        let ab = crate::notify::variants::report(&notification, &counters);
        Self {
            accounting: Accounting::of(&counters),
            notification,
            counters,
            ab,
        }
    }
}

#[utoipa::path(post, path = "/v1/notifications", tag = "notifications", request_body = NotificationRequest, security(("api_key" = [])),
    responses((status = 201, body = NotificationView, description = "created and queued"), (status = 200, body = NotificationView, description = "the first notification of this idempotency key"),
        problem::BadRequest, problem::Unauthorized, problem::PayloadTooLarge, problem::UnsupportedMediaType))]
pub async fn create_notification(
    State(state): State<ApiState>,
    AuthedApp(app): AuthedApp,
    Json(request): Json<NotificationRequest>,
) -> ApiResult<(StatusCode, axum::Json<NotificationView>)> {
    let notifications = state.notifications();
    // A new notification answers with what it was stored with; an earlier one is read back.
    let (status, (notification, counters)) = match notifications.create(&app, request).await? {
        Created::New {
            notification,
            counters,
        } => (StatusCode::CREATED, (notification, counters)),
        Created::Earlier(notification) => (
            StatusCode::OK,
            notifications.with_counters(notification).await?,
        ),
    };
    Ok((
        status,
        axum::Json(NotificationView::new(notification, counters)),
    ))
}

#[derive(Deserialize, IntoParams)]
pub struct NotificationPath {
    id: String,
}

#[utoipa::path(get, path = "/v1/notifications/{id}", tag = "notifications", params(NotificationPath), security(("api_key" = [])),
    responses((status = 200, body = NotificationView), problem::Unauthorized, problem::NotFound))]
pub async fn get_notification(
    State(state): State<ApiState>,
    AuthedApp(app): AuthedApp,
    Path(path): Path<NotificationPath>,
) -> ApiResult<axum::Json<NotificationView>> {
    let notifications = state.notifications();
    let notification = notifications.get(&app, &path.id).await?;
    let (notification, counters) = notifications.with_counters(notification).await?;
    Ok(axum::Json(NotificationView::new(notification, counters)))
}

#[derive(Serialize, ToSchema)]
pub struct SeriesView {
    notification_id: String,
    /// Buckets are aligned to it: a minute long for 6 hours from it, then an hour long.
    send_at_ms: u64,
    /// Buckets with something counted, in time order (empty ones are left out).
    points: Vec<SeriesPoint>,
}

#[utoipa::path(get, path = "/v1/notifications/{id}/series", tag = "notifications", params(NotificationPath), security(("api_key" = [])),
    responses((status = 200, body = SeriesView, description = "the delivery counters over time: summed over its points, each counter is the notification's (receipts, `shown`/`clicked`/`closed`, are not in the series)"),
        problem::Unauthorized, problem::NotFound))]
pub async fn notification_series(
    State(state): State<ApiState>,
    AuthedApp(app): AuthedApp,
    Path(path): Path<NotificationPath>,
) -> ApiResult<axum::Json<SeriesView>> {
    let notifications = state.notifications();
    let notification = notifications.get(&app, &path.id).await?;
    let points = notifications.series(&notification).await?;
    Ok(axum::Json(SeriesView {
        notification_id: notification.id,
        send_at_ms: notification.send_at_ms,
        points,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// 1 to 200 (default 50).
    #[serde(default)]
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationList {
    notifications: Vec<Notification>,
}

#[utoipa::path(get, path = "/v1/notifications", tag = "notifications", params(ListQuery), security(("api_key" = [])),
    responses((status = 200, body = NotificationList), problem::BadRequest, problem::Unauthorized))]
pub async fn list_notifications(
    State(state): State<ApiState>,
    AuthedApp(app): AuthedApp,
    Query(query): Query<ListQuery>,
) -> ApiResult<axum::Json<NotificationList>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad("limit", "must be 1 to 200"));
    }
    let notifications = state.notifications().list(&app, limit).await?;
    Ok(axum::Json(NotificationList { notifications }))
}

#[utoipa::path(post, path = "/v1/notifications/{id}/cancel", tag = "notifications", params(NotificationPath), security(("api_key" = [])),
    responses((status = 200, body = NotificationView, description = "cancelled (again, for one cancelled before: the same `cancelled_at_ms`)"), problem::Unauthorized, problem::NotFound,
        (status = 409, body = Problem, content_type = "application/problem+json", description = "it completed: nothing is left to cancel (`field: id`)")))]
pub async fn cancel_notification(
    State(state): State<ApiState>,
    AuthedApp(app): AuthedApp,
    Path(path): Path<NotificationPath>,
) -> ApiResult<axum::Json<NotificationView>> {
    let notifications = state.notifications();
    let notification = notifications.cancel(&app, &path.id).await?;
    let (notification, counters) = notifications.with_counters(notification).await?;
    Ok(axum::Json(NotificationView::new(notification, counters)))
}
