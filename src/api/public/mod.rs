//! Public endpoints, for the widget and the service worker (contract: docs/PUBLIC-API.md).
//! Every body is small and every field is checked; a subscription proves ownership with its
//! auth secret.

mod requests;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

use super::error::{ApiError, ApiResult, Problem, problem};
use super::extract::Json;
use super::{ApiState, PublicApp};
use crate::notify::model::{Audience, Content, NotificationRequest};
use crate::notify::receipt::{self, ReceiptKey};
use crate::push::subscription::canonical_endpoint;
use crate::push::{PushSubscription, VapidKey, base64url};
use crate::store::{
    ProfileRef, Refused, Replaced, Replacing, Subscription, SubscriptionId, Upserted, now_ms,
};
use crate::webhooks::EventType as WebhookEvent;
use crate::webhooks::events;
pub use requests::AppPath;
use requests::{
    EventRequest, EventType, IdentifyRequest, OwnedSubscription, SubscribeRequest, Subscribed,
    TagsRequest, TestPushQueued, VapidPublicKey, check_endpoint_allowed, check_endpoint_length,
    check_hash_form, check_identity, check_tags, check_text, replaced_subscription,
};

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

#[utoipa::path(get, path = "/v1/apps/{app_id}/vapid-public-key", tag = "public", params(AppPath),
    responses((status = 200, body = VapidPublicKey), problem::NotFound, problem::TooManyRequests))]
pub async fn vapid_public_key(PublicApp(app): PublicApp) -> ApiResult<axum::Json<VapidPublicKey>> {
    let key = VapidKey::from_private_scalar(&app.vapid_private_key)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(axum::Json(VapidPublicKey {
        vapid_public_key: key.public_key_base64url().to_owned(),
    }))
}

#[utoipa::path(post, path = "/v1/apps/{app_id}/subscriptions", tag = "public", params(AppPath), request_body = SubscribeRequest,
    responses((status = 201, body = Subscribed, description = "new subscription"), (status = 200, body = Subscribed, description = "existing subscription updated"),
        problem::BadRequest, (status = 403, body = Problem, content_type = "application/problem+json", description = "identity_hash or replaces.auth does not match"), (status = 409, body = Problem, content_type = "application/problem+json", description = "the endpoint is subscribed with other keys: send replaces"), problem::NotFound, problem::PayloadTooLarge, problem::UnsupportedMediaType, problem::TooManyRequests))]
pub async fn subscribe(
    State(state): State<ApiState>,
    PublicApp(app): PublicApp,
    Json(request): Json<SubscribeRequest>,
) -> ApiResult<(StatusCode, axum::Json<Subscribed>)> {
    let _ = request.subscription.expiration_time;
    let keys = &request.subscription.keys;
    check_endpoint_length("subscription.endpoint", &request.subscription.endpoint)?;
    let parsed =
        PushSubscription::from_parts(&request.subscription.endpoint, &keys.p256dh, &keys.auth)
            .map_err(|e| {
                let field = e
                    .part()
                    .map_or("subscription".into(), |part| format!("subscription.{part}"));
                ApiError::bad(field, e.to_string())
            })?;
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
                .replace_subscription(Replacing::new(old, &auth), &subscription)
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
            .link_subscription(ProfileRef::new(&app.id, external_id), subscription.id)
            .await?;
    }
    metrics::counter!("aviso_subscriptions_total", "result" => if upserted == Upserted::Created { "created" } else { "updated" }).increment(1);
    let now = now_ms();
    if upserted == Upserted::Created {
        announce(
            &state,
            WebhookEvent::SubscriptionCreated,
            &subscription,
            request.external_id.as_deref(),
            now,
        )
        .await;
    }
    if let Some(external_id) = &request.external_id {
        announce(
            &state,
            WebhookEvent::SubscriptionIdentified,
            &subscription,
            Some(external_id),
            now,
        )
        .await;
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

/// Tells the app's webhooks what became of one of its subscriptions.
async fn announce(
    state: &ApiState,
    kind: WebhookEvent,
    subscription: &Subscription,
    external_id: Option<&str>,
    now_ms: u64,
) {
    let event = events::subscription(kind, subscription, external_id, now_ms);
    events::record(state.store(), &subscription.app_id, event).await;
}

#[utoipa::path(post, path = "/v1/apps/{app_id}/subscriptions/unsubscribe", tag = "public", params(AppPath), request_body = OwnedSubscription,
    responses((status = 204), problem::BadRequest, problem::Forbidden, problem::NotFound, problem::UnsupportedMediaType, problem::TooManyRequests))]
pub async fn unsubscribe(
    State(state): State<ApiState>,
    PublicApp(app): PublicApp,
    Json(proof): Json<OwnedSubscription>,
) -> ApiResult<StatusCode> {
    let subscription = owned(&state, &app.id, &proof).await?;
    state
        .store()
        .delete_subscription(&app.id, subscription.id)
        .await?;
    announce(
        &state,
        WebhookEvent::SubscriptionUnsubscribed,
        &subscription,
        None,
        now_ms(),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/apps/{app_id}/subscriptions/identify", tag = "public", params(AppPath), request_body = IdentifyRequest,
    responses((status = 204), problem::BadRequest, problem::Forbidden, problem::NotFound, problem::UnsupportedMediaType, problem::TooManyRequests))]
pub async fn identify(
    State(state): State<ApiState>,
    PublicApp(app): PublicApp,
    Json(request): Json<IdentifyRequest>,
) -> ApiResult<StatusCode> {
    check_identity(&app, &request.external_id, Some(&request.identity_hash))?;
    let proof = OwnedSubscription {
        endpoint: request.endpoint,
        auth: request.auth,
    };
    let subscription = owned(&state, &app.id, &proof).await?;
    state
        .store()
        .link_subscription(
            ProfileRef::new(&app.id, &request.external_id),
            subscription.id,
        )
        .await?;
    announce(
        &state,
        WebhookEvent::SubscriptionIdentified,
        &subscription,
        Some(&request.external_id),
        now_ms(),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/apps/{app_id}/subscriptions/tags", tag = "public", params(AppPath), request_body = TagsRequest,
    responses((status = 204), problem::BadRequest, problem::Forbidden, problem::NotFound, problem::UnsupportedMediaType, problem::TooManyRequests))]
pub async fn set_tags(
    State(state): State<ApiState>,
    PublicApp(app): PublicApp,
    Json(request): Json<TagsRequest>,
) -> ApiResult<StatusCode> {
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

#[utoipa::path(post, path = "/v1/apps/{app_id}/events", tag = "public", params(AppPath), request_body = EventRequest,
    responses((status = 204), problem::BadRequest, problem::Forbidden, problem::NotFound, problem::UnsupportedMediaType, problem::TooManyRequests))]
pub async fn track(
    State(state): State<ApiState>,
    PublicApp(app): PublicApp,
    Json(event): Json<EventRequest>,
) -> ApiResult<StatusCode> {
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

#[utoipa::path(post, path = "/v1/apps/{app_id}/demo/test-push", tag = "public", params(AppPath), request_body = OwnedSubscription,
    responses((status = 202, body = TestPushQueued), problem::BadRequest, problem::Forbidden, problem::NotFound, problem::UnsupportedMediaType, problem::TooManyRequests))]
pub async fn demo_test_push(
    State(state): State<ApiState>,
    PublicApp(app): PublicApp,
    Json(proof): Json<OwnedSubscription>,
) -> ApiResult<(StatusCode, axum::Json<TestPushQueued>)> {
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
