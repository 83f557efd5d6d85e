//! The public endpoints' request and answer types, and the checks of what they carry: text
//! and tag limits, the push endpoint (its length, and only the known push services' hosts),
//! the identity hash and the proof a replaced subscription brings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::ApiState;
use crate::api::error::{ApiError, ApiResult};
use crate::apps::verify_identity_hash;
use crate::push::subscription::canonical_endpoint;
use crate::push::{PushService, PushSubscription, base64url};
use crate::store::{App, MAX_ENDPOINT_LEN, SubscriptionId};

#[derive(Deserialize, IntoParams)]
pub struct AppPath {
    /// The app's id.
    #[param(min_length = 1, max_length = 64)]
    pub(in crate::api) app_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct VapidPublicKey {
    /// Base64url uncompressed P-256 point: the `applicationServerKey`.
    pub(super) vapid_public_key: String,
}

/// `PushSubscription.toJSON()`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BrowserSubscription {
    /// An https URL of a push service.
    #[schema(max_length = 2048, pattern = "^https://")]
    pub(super) endpoint: String,
    /// When the browser says the subscription ends (milliseconds since the epoch), or `null`.
    #[serde(default, rename = "expirationTime")]
    pub(super) expiration_time: Option<f64>,
    pub(super) keys: BrowserKeys,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BrowserKeys {
    /// Base64url of a 65-byte uncompressed P-256 point.
    #[schema(min_length = 87, max_length = 88)]
    pub(super) p256dh: String,
    /// Base64url of 16 bytes.
    #[schema(min_length = 22, max_length = 24)]
    pub(super) auth: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    pub(super) subscription: BrowserSubscription,
    #[serde(default)]
    #[schema(max_length = 128)]
    pub(super) locale: Option<String>,
    #[serde(default)]
    #[schema(max_length = 128)]
    pub(super) timezone: Option<String>,
    /// At most 32 tags; names 1 to 128 bytes, values at most 128.
    #[serde(default)]
    pub(super) tags: BTreeMap<String, String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub(super) external_id: Option<String>,
    /// Hex HMAC-SHA256 of `external_id` with the app's identity secret (computed by the site's backend).
    #[serde(default)]
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub(super) identity_hash: Option<String>,
    /// The subscription this one replaces, with its current auth secret as proof: the browser
    /// renewed it (`pushsubscriptionchange`), or the same endpoint has new keys. Its tags,
    /// profile link and activity move to this one and it is deleted. Without it, new keys for
    /// a subscribed endpoint are refused (409).
    #[serde(default)]
    pub(super) replaces: Option<OwnedSubscription>,
}

#[derive(Serialize, ToSchema)]
pub struct Subscribed {
    pub(super) subscription_id: String,
    /// Whether `replaces` named a stored subscription, now moved into this one (false when it
    /// was gone already: this one is then subscribed as new).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) replaced: Option<bool>,
}

const MAX_TAGS: usize = 32;
const MAX_TEXT: usize = 128;

pub(super) fn check_text(field: &str, value: &str) -> ApiResult<()> {
    Ok(crate::notify::model::check_length(
        field, value, 0, MAX_TEXT,
    )?)
}

pub(super) fn check_tags(field: &str, tags: &BTreeMap<String, impl AsRef<str>>) -> ApiResult<()> {
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
pub(super) fn check_endpoint_allowed(
    state: &ApiState,
    subscription: &PushSubscription,
) -> ApiResult<()> {
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

pub(super) fn check_endpoint_length(field: &str, endpoint: &str) -> ApiResult<()> {
    if endpoint.len() > MAX_ENDPOINT_LEN {
        return Err(ApiError::bad(
            field,
            format!("at most {MAX_ENDPOINT_LEN} bytes: longer than any real push endpoint"),
        ));
    }
    Ok(())
}

pub(super) fn check_identity(app: &App, external_id: &str, hash: Option<&str>) -> ApiResult<()> {
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
pub(super) fn check_hash_form(hash: &str) -> ApiResult<()> {
    if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ApiError::bad(
            "identity_hash",
            "64 hex digits: the hex HMAC-SHA256 of the external_id with the app's identity secret",
        ))
    }
}

/// The id and auth secret `replaces` names.
pub(super) fn replaced_subscription(
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
    pub(super) endpoint: String,
    #[schema(min_length = 22, max_length = 24)]
    pub(super) auth: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifyRequest {
    #[schema(max_length = 2048, pattern = "^https://")]
    pub(super) endpoint: String,
    #[schema(min_length = 22, max_length = 24)]
    pub(super) auth: String,
    #[schema(min_length = 1, max_length = 128)]
    pub(super) external_id: String,
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub(super) identity_hash: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagsRequest {
    #[schema(max_length = 2048, pattern = "^https://")]
    pub(super) endpoint: String,
    #[schema(min_length = 22, max_length = 24)]
    pub(super) auth: String,
    /// `null` removes a tag.
    pub(super) tags: BTreeMap<String, Option<String>>,
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
    pub(super) notification_id: String,
    /// 16 hex digits, as `POST /subscriptions` answers.
    #[schema(pattern = "^[0-9a-f]{16}$")]
    pub(super) subscription_id: String,
    #[serde(rename = "type")]
    pub(super) kind: EventType,
    #[serde(default)]
    #[schema(max_length = 128)]
    pub(super) action: Option<String>,
    /// The receipt token of the push (`notification.data.aviso.t` in its payload): proves that this browser
    /// received it.
    #[schema(min_length = 22, max_length = 22)]
    pub(super) token: String,
    /// The A/B variant of the push (`notification.data.aviso.v` in its payload), which its token covers: required
    /// for a notification with variants, absent otherwise.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 4)]
    pub(super) variant: Option<u8>,
}

#[derive(Serialize, ToSchema)]
pub struct TestPushQueued {
    pub(super) notification_id: String,
}
