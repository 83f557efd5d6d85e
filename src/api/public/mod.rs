//! Public endpoints, for the widget and the service worker (contract: docs/PUBLIC-API.md).
//! Every body is small and every field is checked; a subscription proves ownership with its
//! auth secret.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::error::{ApiError, ApiResult, Problem, problem};
use super::extract::{Json, Path};
use crate::apps::verify_identity_hash;
use crate::notify::model::{Audience, Content, NotificationRequest};
use crate::notify::receipt::{self, ReceiptKey};
use crate::push::subscription::canonical_endpoint;
use crate::push::{PushService, PushSubscription, VapidKey, base64url};
use crate::store::{
    App, MAX_ENDPOINT_LEN, Refused, Replaced, Subscription, SubscriptionId, Upserted, now_ms,
};
use crate::webhooks::EventType as WebhookEvent;
use crate::webhooks::events;

/// The routes (CORS preflights are answered by the CORS layer in front of them).
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/vapid-public-key", get(vapid_public_key))
        .route("/subscriptions", post(subscribe))
        .route("/subscriptions/unsubscribe", post(unsubscribe))
        .route("/subscriptions/identify", post(identify))
        .route("/subscriptions/tags", post(set_tags))
        .route("/events", post(track))
        .route("/demo/test-push", post(demo_test_push))
}

#[derive(Deserialize, IntoParams)]
pub struct AppPath {
    /// The app's id.
    #[param(min_length = 1, max_length = 64)]
    app_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct VapidPublicKey {
    /// Base64url uncompressed P-256 point: the `applicationServerKey`.
    vapid_public_key: String,
}

#[utoipa::path(get, path = "/v1/apps/{app_id}/vapid-public-key", tag = "public", params(AppPath),
    responses((status = 200, body = VapidPublicKey), problem::NotFound, problem::TooManyRequests))]
pub async fn vapid_public_key(
    State(state): State<ApiState>,
    Path(path): Path<AppPath>,
) -> ApiResult<axum::Json<VapidPublicKey>> {
    let app = state.app(&path.app_id).await?;
    let key = VapidKey::from_private_scalar(&app.vapid_private_key)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(axum::Json(VapidPublicKey {
        vapid_public_key: key.public_key_base64url().to_owned(),
    }))
}

/// `PushSubscription.toJSON()`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BrowserSubscription {
    /// An https URL of a push service.
    #[schema(max_length = 2048, pattern = "^https://")]
    endpoint: String,
    #[serde(default, rename = "expirationTime")]
    #[schema(value_type = Option<f64>)]
    expiration_time: Option<serde_json::Value>,
    keys: BrowserKeys,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BrowserKeys {
    /// Base64url of a 65-byte uncompressed P-256 point.
    #[schema(min_length = 87, max_length = 88)]
    p256dh: String,
    /// Base64url of 16 bytes.
    #[schema(min_length = 22, max_length = 24)]
    auth: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    subscription: BrowserSubscription,
    #[serde(default)]
    #[schema(max_length = 128)]
    locale: Option<String>,
    #[serde(default)]
    #[schema(max_length = 128)]
    timezone: Option<String>,
    /// At most 32 tags; names 1 to 128 bytes, values at most 128.
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    external_id: Option<String>,
    /// Hex HMAC-SHA256 of `external_id` with the app's identity secret (computed by the site's backend).
    #[serde(default)]
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    identity_hash: Option<String>,
    /// The subscription this one replaces, with its current auth secret as proof: the browser
    /// renewed it (`pushsubscriptionchange`), or the same endpoint has new keys. Its tags,
    /// profile link and activity move to this one and it is deleted. Without it, new keys for
    /// a subscribed endpoint are refused (409).
    #[serde(default)]
    replaces: Option<OwnedSubscription>,
}

#[derive(Serialize, ToSchema)]
pub struct Subscribed {
    subscription_id: String,
    /// Whether `replaces` named a stored subscription, now moved into this one (false when it
    /// was gone already: this one is then subscribed as new).
    #[serde(skip_serializing_if = "Option::is_none")]
    replaced: Option<bool>,
}

const MAX_TAGS: usize = 32;
const MAX_TEXT: usize = 128;

fn check_text(field: &str, value: &str) -> ApiResult<()> {
    Ok(crate::notify::model::check_length(
        field, value, 0, MAX_TEXT,
    )?)
}

fn check_tags(field: &str, tags: &BTreeMap<String, impl AsRef<str>>) -> ApiResult<()> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::bad(field, format!("at most {MAX_TAGS} tags")));
    }
    for (key, value) in tags {
        if key.is_empty() {
            return Err(ApiError::bad(field, "tag names must not be empty"));
        }
        check_text(field, key)?;
        check_text(field, value.as_ref())?;
    }
    Ok(())
}

/// Only `https` endpoints on the push services' hosts on 443 (or a configured extra host and
/// port): anything else would make this server send requests wherever a stranger asks.
fn check_endpoint_allowed(state: &ApiState, subscription: &PushSubscription) -> ApiResult<()> {
    let endpoint = subscription.endpoint();
    let host = endpoint.host().unwrap_or_default().to_ascii_lowercase();
    let port = endpoint.port_u16().unwrap_or(443);
    let known = PushService::from_host(&host) != PushService::Other && port == 443;
    let extra = state
        .config()
        .allowed_push_hosts
        .iter()
        .any(|allowed| allowed.matches(&host, port));
    if known || extra {
        Ok(())
    } else {
        Err(ApiError::bad(
            "subscription.endpoint",
            format!(
                "`{host}` port {port} is not a known push service (FCM, Mozilla, Apple, Microsoft WNS on 443); a real browser subscription never points elsewhere"
            ),
        ))
    }
}

fn check_endpoint_length(field: &str, endpoint: &str) -> ApiResult<()> {
    if endpoint.len() > MAX_ENDPOINT_LEN {
        return Err(ApiError::bad(
            field,
            format!("at most {MAX_ENDPOINT_LEN} bytes: longer than any real push endpoint"),
        ));
    }
    Ok(())
}

fn check_identity(app: &App, external_id: &str, hash: Option<&str>) -> ApiResult<()> {
    check_text("external_id", external_id)?;
    if external_id.is_empty() {
        return Err(ApiError::bad("external_id", "must not be empty"));
    }
    let hash = hash.ok_or_else(|| {
        ApiError::bad("identity_hash", "required with external_id: hex HMAC-SHA256 of the external_id with the app's identity secret")
    })?;
    check_hash_form(hash)?;
    if !verify_identity_hash(&app.identity_secret, external_id, hash) {
        return Err(ApiError::Forbidden(
            "identity_hash does not match external_id: compute it on your backend with the app's identity secret".into(),
        ));
    }
    Ok(())
}

/// An identity hash is 64 hex digits (as the schema's pattern says), wherever it is given.
fn check_hash_form(hash: &str) -> ApiResult<()> {
    if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ApiError::bad(
            "identity_hash",
            "64 hex digits: the hex HMAC-SHA256 of the external_id with the app's identity secret",
        ))
    }
}

#[utoipa::path(post, path = "/v1/apps/{app_id}/subscriptions", tag = "public", params(AppPath), request_body = SubscribeRequest,
    responses((status = 201, body = Subscribed, description = "new subscription"), (status = 200, body = Subscribed, description = "existing subscription updated"),
        problem::BadRequest, (status = 403, body = Problem, content_type = "application/problem+json", description = "identity_hash or replaces.auth does not match"), (status = 409, body = Problem, content_type = "application/problem+json", description = "the endpoint is subscribed with other keys: send replaces"), problem::NotFound, problem::PayloadTooLarge, problem::UnsupportedMediaType, problem::TooManyRequests))]
pub async fn subscribe(
    State(state): State<ApiState>,
    Path(path): Path<AppPath>,
    Json(request): Json<SubscribeRequest>,
) -> ApiResult<(StatusCode, axum::Json<Subscribed>)> {
    let app = state.app(&path.app_id).await?;
    let _ = request.subscription.expiration_time;
    let keys = &request.subscription.keys;
    check_endpoint_length("subscription.endpoint", &request.subscription.endpoint)?;
    let parsed =
        PushSubscription::from_parts(&request.subscription.endpoint, &keys.p256dh, &keys.auth)
            .map_err(|e| ApiError::bad("subscription", e.to_string()))?;
    check_endpoint_allowed(&state, &parsed)?;
    // One endpoint, however it is spelled, is one subscription.
    let endpoint = parsed.canonical_endpoint();
    check_endpoint_length("subscription.endpoint", &endpoint)?;
    check_tags("tags", &request.tags)?;
    let locale = request.locale.unwrap_or_default();
    let timezone = request.timezone.unwrap_or_default();
    check_text("locale", &locale)?;
    check_text("timezone", &timezone)?;
    match (&request.external_id, request.identity_hash.as_deref()) {
        (Some(external_id), hash) => check_identity(&app, external_id, hash)?,
        // A hash without an external id identifies nobody, but it must still be one.
        (None, Some(hash)) => check_hash_form(hash)?,
        (None, None) => {}
    }
    let now = (now_ms() / 1000) as u32;
    let mut subscription = Subscription::new(
        &app.id,
        &endpoint,
        *parsed.keys().p256dh(),
        *parsed.keys().auth(),
        now,
    );
    subscription.locale = locale;
    subscription.timezone = timezone;
    subscription.tags = request.tags;
    let (upserted, replaced) = match &request.replaces {
        None => (
            state.store().upsert_subscription(&subscription).await?,
            None,
        ),
        Some(proof) => {
            let (old, auth) = replaced_subscription(&app, proof)?;
            match state
                .store()
                .replace_subscription(old, &auth, &subscription)
                .await?
            {
                Replaced::Moved { created: true } => (Upserted::Created, Some(true)),
                Replaced::Moved { created: false } => (Upserted::Updated, Some(true)),
                Replaced::OldNotFound => (
                    state.store().upsert_subscription(&subscription).await?,
                    Some(false),
                ),
                Replaced::Refused(refused) => (Upserted::Refused(refused), Some(false)),
            }
        }
    };
    match upserted {
        Upserted::Refused(Refused::KeysDiffer) => {
            return Err(ApiError::Conflict {
                field: "subscription.keys".into(),
                detail: "this endpoint is subscribed with other keys: to change them, send `replaces: {\"endpoint\", \"auth\"}` with the endpoint and the auth secret it has now (Aviso's service worker does on `pushsubscriptionchange`)".into(),
            });
        }
        Upserted::Refused(Refused::WrongAuth) => {
            return Err(ApiError::Forbidden(
                "replaces.auth is not the auth secret of the subscription at replaces.endpoint: send the one it has now (`PushSubscription.toJSON().keys.auth` of the old subscription)".into(),
            ));
        }
        Upserted::Created | Upserted::Updated => {}
    }
    if let Some(external_id) = &request.external_id {
        state
            .store()
            .link_subscription(&app.id, external_id, subscription.id)
            .await?;
    }
    metrics::counter!("aviso_subscriptions_total", "result" => if upserted == Upserted::Created { "created" } else { "updated" }).increment(1);
    let now = now_ms();
    if upserted == Upserted::Created {
        let event = events::subscription(
            WebhookEvent::SubscriptionCreated,
            &subscription,
            request.external_id.as_deref(),
            now,
        );
        events::record(state.store(), &app.id, event).await;
    }
    if let Some(external_id) = &request.external_id {
        let event = events::subscription(
            WebhookEvent::SubscriptionIdentified,
            &subscription,
            Some(external_id),
            now,
        );
        events::record(state.store(), &app.id, event).await;
    }
    let status = if upserted == Upserted::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        axum::Json(Subscribed {
            subscription_id: subscription.id.to_string(),
            replaced,
        }),
    ))
}

/// The id and auth secret `replaces` names.
fn replaced_subscription(
    app: &App,
    proof: &OwnedSubscription,
) -> ApiResult<(SubscriptionId, [u8; 16])> {
    check_endpoint_length("replaces.endpoint", &proof.endpoint)?;
    let endpoint = canonical_endpoint(&proof.endpoint)
        .map_err(|e| ApiError::bad("replaces.endpoint", e.to_string()))?;
    let auth: [u8; 16] = base64url::decode(&proof.auth)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| {
            ApiError::bad(
                "replaces.auth",
                "the base64url of the replaced subscription's 16-byte auth secret",
            )
        })?;
    Ok((SubscriptionId::for_endpoint(&app.id, &endpoint), auth))
}

/// Proof of ownership: the endpoint and its auth secret, which only the browser knows.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnedSubscription {
    #[schema(max_length = 2048, pattern = "^https://")]
    endpoint: String,
    #[schema(min_length = 22, max_length = 24)]
    auth: String,
}

async fn owned(
    state: &ApiState,
    app_id: &str,
    proof: &OwnedSubscription,
) -> ApiResult<Subscription> {
    check_endpoint_length("endpoint", &proof.endpoint)?;
    let endpoint = canonical_endpoint(&proof.endpoint)
        .map_err(|e| ApiError::bad("endpoint", e.to_string()))?;
    let id = SubscriptionId::for_endpoint(app_id, &endpoint);
    let subscription = state
        .store()
        .get_subscription(app_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no subscription with this endpoint".into()))?;
    let auth = base64url::decode(&proof.auth).map_err(|e| ApiError::bad("auth", e.to_string()))?;
    if !subscription.proves(&auth) {
        return Err(ApiError::Forbidden(
            "auth does not match this subscription's auth secret".into(),
        ));
    }
    Ok(subscription)
}

#[utoipa::path(post, path = "/v1/apps/{app_id}/subscriptions/unsubscribe", tag = "public", params(AppPath), request_body = OwnedSubscription,
    responses((status = 204), problem::BadRequest, problem::Forbidden, problem::NotFound, problem::UnsupportedMediaType, problem::TooManyRequests))]
pub async fn unsubscribe(
    State(state): State<ApiState>,
    Path(path): Path<AppPath>,
    Json(proof): Json<OwnedSubscription>,
) -> ApiResult<StatusCode> {
    let app = state.app(&path.app_id).await?;
    let subscription = owned(&state, &app.id, &proof).await?;
    state
        .store()
        .delete_subscription(&app.id, subscription.id)
        .await?;
    let event = events::subscription(
        WebhookEvent::SubscriptionUnsubscribed,
        &subscription,
        None,
        now_ms(),
    );
    events::record(state.store(), &app.id, event).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifyRequest {
    #[schema(max_length = 2048, pattern = "^https://")]
    endpoint: String,
    #[schema(min_length = 22, max_length = 24)]
    auth: String,
    #[schema(min_length = 1, max_length = 128)]
    external_id: String,
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    identity_hash: String,
}

#[utoipa::path(post, path = "/v1/apps/{app_id}/subscriptions/identify", tag = "public", params(AppPath), request_body = IdentifyRequest,
    responses((status = 204), problem::BadRequest, problem::Forbidden, problem::NotFound, problem::UnsupportedMediaType, problem::TooManyRequests))]
pub async fn identify(
    State(state): State<ApiState>,
    Path(path): Path<AppPath>,
    Json(request): Json<IdentifyRequest>,
) -> ApiResult<StatusCode> {
    let app = state.app(&path.app_id).await?;
    check_identity(&app, &request.external_id, Some(&request.identity_hash))?;
    let proof = OwnedSubscription {
        endpoint: request.endpoint,
        auth: request.auth,
    };
    let subscription = owned(&state, &app.id, &proof).await?;
    state
        .store()
        .link_subscription(&app.id, &request.external_id, subscription.id)
        .await?;
    let event = events::subscription(
        WebhookEvent::SubscriptionIdentified,
        &subscription,
        Some(&request.external_id),
        now_ms(),
    );
    events::record(state.store(), &app.id, event).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagsRequest {
    #[schema(max_length = 2048, pattern = "^https://")]
    endpoint: String,
    #[schema(min_length = 22, max_length = 24)]
    auth: String,
    /// `null` removes a tag.
    tags: BTreeMap<String, Option<String>>,
}

#[utoipa::path(post, path = "/v1/apps/{app_id}/subscriptions/tags", tag = "public", params(AppPath), request_body = TagsRequest,
    responses((status = 204), problem::BadRequest, problem::Forbidden, problem::NotFound, problem::UnsupportedMediaType, problem::TooManyRequests))]
pub async fn set_tags(
    State(state): State<ApiState>,
    Path(path): Path<AppPath>,
    Json(request): Json<TagsRequest>,
) -> ApiResult<StatusCode> {
    let app = state.app(&path.app_id).await?;
    let proof = OwnedSubscription {
        endpoint: request.endpoint,
        auth: request.auth,
    };
    let mut subscription = owned(&state, &app.id, &proof).await?;
    for (key, value) in request.tags {
        match value {
            Some(value) => subscription.tags.insert(key, value),
            None => subscription.tags.remove(&key),
        };
    }
    check_tags("tags", &subscription.tags)?;
    state.store().upsert_subscription(&subscription).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Shown,
    Clicked,
    Closed,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    #[schema(min_length = 1, max_length = 128)]
    notification_id: String,
    /// 16 hex digits, as `POST /subscriptions` answers.
    #[schema(pattern = "^[0-9a-f]{16}$")]
    subscription_id: String,
    #[serde(rename = "type")]
    kind: EventType,
    #[serde(default)]
    #[schema(max_length = 128)]
    action: Option<String>,
    /// The receipt token of the push (`notification.data.aviso.t` in its payload): proves that this browser
    /// received it.
    #[schema(min_length = 22, max_length = 22)]
    token: String,
    /// The A/B variant of the push (`notification.data.aviso.v` in its payload), which its token covers: required
    /// for a notification with variants, absent otherwise.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 4)]
    variant: Option<u8>,
}

#[utoipa::path(post, path = "/v1/apps/{app_id}/events", tag = "public", params(AppPath), request_body = EventRequest,
    responses((status = 204), problem::BadRequest, problem::Forbidden, problem::NotFound, problem::UnsupportedMediaType, problem::TooManyRequests))]
pub async fn track(
    State(state): State<ApiState>,
    Path(path): Path<AppPath>,
    Json(event): Json<EventRequest>,
) -> ApiResult<StatusCode> {
    let app = state.app(&path.app_id).await?;
    let subscription_id = event
        .subscription_id
        .parse::<SubscriptionId>()
        .map_err(|e| ApiError::bad("subscription_id", e.to_string()))?;
    if let Some(action) = &event.action {
        check_text("action", action)?;
    }
    let notification = state
        .notifications()
        .get(&app, &event.notification_id)
        .await?;
    let key = ReceiptKey::new(&app.receipt_secret);
    // A variant the notification does not have cannot have a token: refused as one.
    let variant = event
        .variant
        .map(usize::from)
        .filter(|v| *v < notification.variants.len().max(1));
    if event.variant.map(usize::from) != variant
        || !key.verify_for(&notification.id, subscription_id, variant, &event.token)
    {
        return Err(ApiError::Refused {
            field: "token".into(),
            detail: "not the receipt token of this notification and subscription: send `notification.data.aviso.t` of the push's payload".into(),
        });
    }
    let until = receipt::counted_until_ms(&notification);
    if now_ms() > until {
        return Err(ApiError::Refused {
            field: "notification_id".into(),
            detail: format!(
                "receipts of this notification were counted until {until} (Unix ms); this one is not"
            ),
        });
    }
    let counter = match event.kind {
        EventType::Shown => "shown",
        EventType::Clicked => "clicked",
        EventType::Closed => "closed",
    };
    // A click counts once in all and once for its action (`clicked.ACTION`).
    let per_action = match (event.kind, &event.action) {
        (EventType::Clicked, Some(action)) => Some(format!("clicked.{action}")),
        _ => None,
    };
    // And once for the variant received (`variants.I.TYPE`), which the token proved.
    let per_variant = variant.map(|v| crate::notify::variants::counter(v, counter));
    let mut counters = vec![counter];
    counters.extend(per_action.as_deref());
    counters.extend(per_variant.as_deref());
    let member = format!("{counter}:{subscription_id}");
    let counted = state
        .store()
        .count_once(crate::store::CountOnce {
            notification_id: &notification.id,
            member: &member,
            counters: &counters,
            keep_until_ms: until,
        })
        .await?;
    if !counted {
        // Reported before (a retry, a second tab): answered as done, counted once.
        return Ok(StatusCode::NO_CONTENT);
    }
    // The browser answered: it is alive (kept only where stale subscriptions expire).
    if app.expire_after_secs > 0 {
        let now = (now_ms() / 1000) as u32;
        state
            .store()
            .record_receipt(&app.id, subscription_id, now)
            .await?;
    }
    metrics::counter!("aviso_events_total", "type" => counter).increment(1);
    let kind = match event.kind {
        EventType::Shown => WebhookEvent::NotificationShown,
        EventType::Clicked => WebhookEvent::NotificationClicked,
        EventType::Closed => WebhookEvent::NotificationClosed,
    };
    let mut receipt = events::receipt(
        kind,
        &notification.id,
        subscription_id,
        event.action.as_deref(),
        now_ms(),
    );
    // The CRM learns which A/B variant was shown or clicked.
    if let (Some(entry), Some(variant)) = (receipt.as_mut(), variant) {
        entry.data["variant"] = variant.into();
    }
    events::record(state.store(), &app.id, receipt).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct TestPushQueued {
    notification_id: String,
}

#[utoipa::path(post, path = "/v1/apps/{app_id}/demo/test-push", tag = "public", params(AppPath), request_body = OwnedSubscription,
    responses((status = 202, body = TestPushQueued), problem::BadRequest, problem::Forbidden, problem::NotFound, problem::UnsupportedMediaType, problem::TooManyRequests))]
pub async fn demo_test_push(
    State(state): State<ApiState>,
    Path(path): Path<AppPath>,
    Json(proof): Json<OwnedSubscription>,
) -> ApiResult<(StatusCode, axum::Json<TestPushQueued>)> {
    let app = state.app(&path.app_id).await?;
    if !app.demo {
        return Err(ApiError::Forbidden(
            "the demo test push is disabled for this app".into(),
        ));
    }
    let subscription = owned(&state, &app.id, &proof).await?;
    let request = NotificationRequest {
        audience: Audience::SubscriptionIds(vec![subscription.id.to_string()]),
        content: Some(Content {
            title: "Hello from Aviso".into(),
            body: Some("Push notifications work on this browser.".into()),
            icon: None,
            image: None,
            badge: None,
            url: Some(format!("{}/", state.config().public_url)),
            actions: Vec::new(),
            tag: Some("aviso-demo".into()),
            require_interaction: false,
            data: None,
        }),
        variants: None,
        winner: None,
        ttl: Some(300),
        urgency: Some("high".into()),
        topic: None,
        send_at: None,
        idempotency_key: None,
        // A check that push works, not a message: never capped or held.
        category: Some(crate::policy::model::TRANSACTIONAL.to_owned()),
        send_at_local: None,
        max_per_minute: None,
        event: None,
    };
    let notification = state
        .notifications()
        .create(&app, request)
        .await?
        .into_notification();
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(TestPushQueued {
            notification_id: notification.id,
        }),
    ))
}
