//! What the console reads about one app (any key of the app, `read` scope and up): subscriber
//! statistics, a segment's estimated reach, and the notification history with a cursor and
//! filters.
//!
//! The store keeps no aggregates for these yet, so they are computed from what it has: the
//! statistics and the reach scan the app's shards (whole shards, up to [`MAX_SCAN`]
//! subscriptions, a uniform sample since ids spread evenly over shards; the answer says how much
//! was scanned), and the history filters the newest [`HISTORY_WINDOW`] notifications of
//! `list_notifications`.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, problem};
use super::extract::{Json, Query};
use super::{ApiState, AuthedApp, AuthedKey};
use crate::notify::Notification;
use crate::notify::model::{Audience, Status};
use crate::notify::segment::Filter;
use crate::store::{
    App, ProfileReads, ProfileRef, SHARDS, ScanCursor, Scope, ShardAt, Store, StoreResult,
    Subscription, SubscriptionId,
};

/// Subscriptions scanned at most for statistics and reach (then the answer is a sample).
pub const MAX_SCAN: u64 = 200_000;
/// Newest notifications the history looks through.
pub const HISTORY_WINDOW: usize = 5_000;
/// Days of subscriber growth shown.
const GROWTH_DAYS: u64 = 30;
const SCAN_BATCH: usize = 1_000;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/subscribers/stats", get(subscriber_stats))
        .route("/v1/audience/estimate", post(estimate_audience))
        .route("/v1/notifications/history", get(notification_history))
}

/// What a scan of whole shards saw.
struct Scanned {
    subscriptions: u64,
    shards: u16,
}

impl Scanned {
    fn complete(&self) -> bool {
        self.shards == SHARDS
    }

    /// `count` seen in the scanned shards, scaled to all of them.
    fn extrapolate(&self, count: u64) -> u64 {
        if self.complete() || self.shards == 0 {
            count
        } else {
            count * u64::from(SHARDS) / u64::from(self.shards)
        }
    }
}

/// Hands out the app's subscriptions, shard by shard, each once, stopping after the shard in
/// which [`MAX_SCAN`] was reached.
struct Scan<'a> {
    store: &'a dyn Store,
    app_id: &'a str,
    shard: u16,
    cursor: ScanCursor,
    seen: std::collections::HashSet<SubscriptionId>,
    scanned: Scanned,
}

impl<'a> Scan<'a> {
    fn new(store: &'a dyn Store, app_id: &'a str) -> Self {
        Self {
            store,
            app_id,
            shard: 0,
            cursor: ScanCursor::start(),
            seen: std::collections::HashSet::new(),
            scanned: Scanned {
                subscriptions: 0,
                shards: 0,
            },
        }
    }

    /// The next batch, or `None` when the scan is over.
    async fn next(&mut self) -> StoreResult<Option<Vec<Subscription>>> {
        loop {
            if self.shard == SHARDS
                || (self.cursor.0.is_empty() && self.scanned.subscriptions >= MAX_SCAN)
            {
                return Ok(None);
            }
            let batch = self
                .store
                .scan_shard(
                    ShardAt::new(self.app_id, self.shard, &self.cursor),
                    SCAN_BATCH,
                )
                .await?;
            match batch.next {
                Some(next) => self.cursor = next,
                None => {
                    self.cursor = ScanCursor::start();
                    self.shard += 1;
                    self.scanned.shards += 1;
                }
            }
            // A scan may hand one out twice (see `Store::scan_shard`).
            let fresh: Vec<Subscription> = batch
                .subscriptions
                .into_iter()
                .filter(|s| self.seen.insert(s.id))
                .collect();
            if self.cursor.0.is_empty() {
                self.seen.clear();
            }
            self.scanned.subscriptions += fresh.len() as u64;
            if !fresh.is_empty() {
                return Ok(Some(fresh));
            }
        }
    }
}

/// The push service behind an endpoint: `fcm`, `mozilla`, `apple`, `wns`, or the host.
fn push_service(endpoint: &str) -> String {
    let host = url::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let known = [
        ("fcm.googleapis.com", "fcm"),
        ("android.googleapis.com", "fcm"),
        ("updates.push.services.mozilla.com", "mozilla"),
        ("push.apple.com", "apple"),
        ("notify.windows.com", "wns"),
    ];
    known
        .iter()
        .find(|(suffix, _)| host == *suffix || host.ends_with(&format!(".{suffix}")))
        .map_or(host, |(_, name)| (*name).to_owned())
}

/// The language of a locale (`pt-BR` → `pt`), or `unknown`.
fn language(locale: &str) -> String {
    let language = locale.split(['-', '_']).next().unwrap_or_default();
    if language.is_empty() {
        "unknown".into()
    } else {
        language.to_ascii_lowercase()
    }
}

#[derive(Serialize, ToSchema)]
pub struct GrowthDay {
    /// The day's start, Unix seconds (UTC).
    day: u64,
    /// Subscriptions made that day that still exist.
    subscribed: u64,
}

#[derive(Serialize, ToSchema)]
pub struct SubscriberStats {
    /// Every subscription of the app (the store's count).
    total: u64,
    /// Subscriptions the breakdowns below were computed from.
    scanned: u64,
    /// Whether every subscription was scanned (else the breakdowns are a sample of whole shards).
    complete: bool,
    /// `fcm` (Chrome, Edge, Android), `mozilla` (Firefox), `apple` (Safari), `wns`, or a host.
    by_push_service: BTreeMap<String, u64>,
    /// By the browser's language (`en`, `pt`, … or `unknown`).
    by_language: BTreeMap<String, u64>,
    /// The last 30 days, oldest first: subscriptions made each day that still exist.
    growth: Vec<GrowthDay>,
}

#[utoipa::path(get, path = "/v1/subscribers/stats", tag = "insights", security(("api_key" = [])),
    responses((status = 200, body = SubscriberStats), problem::Unauthorized))]
pub async fn subscriber_stats(
    State(state): State<ApiState>,
    AuthedApp(app): AuthedApp,
) -> ApiResult<axum::Json<SubscriberStats>> {
    let total = state.store().count_subscriptions(&app.id).await?;
    let today = crate::store::now_ms() / 1000 / 86_400;
    let first_day = today + 1 - GROWTH_DAYS;
    let mut by_push_service = BTreeMap::new();
    let mut by_language = BTreeMap::new();
    let mut growth = vec![0u64; GROWTH_DAYS as usize];
    let mut scan = Scan::new(state.store(), &app.id);
    while let Some(batch) = scan.next().await? {
        for s in &batch {
            *by_push_service
                .entry(push_service(&s.endpoint))
                .or_default() += 1;
            *by_language.entry(language(&s.locale)).or_default() += 1;
            let day = u64::from(s.created_at) / 86_400;
            if let Some(slot) = day
                .checked_sub(first_day)
                .and_then(|i| growth.get_mut(i as usize))
            {
                *slot += 1;
            }
        }
    }
    let scanned = scan.scanned;
    Ok(axum::Json(SubscriberStats {
        total,
        scanned: scanned.subscriptions,
        complete: scanned.complete(),
        by_push_service,
        by_language,
        growth: growth
            .into_iter()
            .enumerate()
            .map(|(i, subscribed)| GrowthDay {
                day: (first_day + i as u64) * 86_400,
                subscribed,
            })
            .collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EstimateRequest {
    /// As in `POST /v1/notifications`.
    audience: Audience,
}

#[derive(Serialize, ToSchema)]
pub struct Estimate {
    /// Subscriptions the audience reaches now.
    reach: u64,
    /// Whether `reach` is counted (else extrapolated from a sample of whole shards).
    exact: bool,
    /// Subscriptions looked at.
    scanned: u64,
}

/// Matches subscriptions against a segment, reading each profile once, a scanned batch's in
/// one store call.
async fn segment_reach(state: &ApiState, app: &App, filter: &Filter) -> ApiResult<Estimate> {
    let needs_profiles = filter.needs_profiles();
    let mut matched = 0u64;
    let store = state.store();
    let mut profiles = ProfileReads::new(store, &app.id);
    let mut scan = Scan::new(store, &app.id);
    while let Some(batch) = scan.next().await? {
        if needs_profiles {
            profiles.load(&batch).await?;
        }
        matched += batch
            .iter()
            .filter(|s| filter.matches(s, profiles.of(s)))
            .count() as u64;
    }
    let scanned = scan.scanned;
    Ok(Estimate {
        reach: scanned.extrapolate(matched),
        exact: scanned.complete(),
        scanned: scanned.subscriptions,
    })
}

#[utoipa::path(post, path = "/v1/audience/estimate", tag = "insights", request_body = EstimateRequest, security(("api_key" = [])),
    responses((status = 200, body = Estimate), problem::BadRequest, problem::Unauthorized, problem::UnsupportedMediaType))]
pub async fn estimate_audience(
    State(state): State<ApiState>,
    key: AuthedKey,
    Json(request): Json<EstimateRequest>,
) -> ApiResult<axum::Json<Estimate>> {
    let app = key.require(Scope::Read)?.app;
    // The same checks as a notification's audience (ids' count and length, the segment).
    request.audience.validate()?;
    let estimate = match &request.audience {
        Audience::All => {
            let total = state.store().count_subscriptions(&app.id).await?;
            Estimate {
                reach: total,
                exact: true,
                scanned: 0,
            }
        }
        Audience::Segment(filter) => segment_reach(&state, &app, filter).await?,
        Audience::ExternalIds(ids) => {
            let mut found: Vec<SubscriptionId> = Vec::new();
            for id in ids {
                if let Some(profile) = state
                    .store()
                    .get_profile(ProfileRef::new(&app.id, id))
                    .await?
                {
                    found.extend(profile.subscriptions);
                }
            }
            found.sort_unstable();
            found.dedup();
            exact(found.len())
        }
        Audience::SubscriptionIds(ids) => {
            let parsed = ids
                .iter()
                .map(|id| {
                    id.parse::<SubscriptionId>()
                        .map_err(|e| ApiError::bad("audience.subscription_ids", e.to_string()))
                })
                .collect::<ApiResult<Vec<_>>>()?;
            exact(
                state
                    .store()
                    .get_subscriptions(&app.id, &parsed)
                    .await?
                    .len(),
            )
        }
    };
    Ok(axum::Json(estimate))
}

fn exact(count: usize) -> Estimate {
    Estimate {
        reach: count as u64,
        exact: true,
        scanned: count as u64,
    }
}

/// Who a notification is for, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AudienceKind {
    All,
    Segment,
    ExternalIds,
    SubscriptionIds,
}

impl AudienceKind {
    fn of(audience: &Audience) -> Self {
        match audience {
            Audience::All => Self::All,
            Audience::Segment(_) => Self::Segment,
            Audience::ExternalIds(_) => Self::ExternalIds,
            Audience::SubscriptionIds(_) => Self::SubscriptionIds,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// 1 to 100 (default 20).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// `next_cursor` of the page before.
    #[serde(default)]
    #[param(pattern = r"^[0-9]{1,19}\.[0-9a-z]{1,64}$")]
    cursor: Option<String>,
    #[serde(default)]
    status: Option<Status>,
    #[serde(default)]
    audience: Option<AudienceKind>,
    /// Created at or after this time (Unix milliseconds).
    #[serde(default)]
    created_from_ms: Option<u64>,
    /// Created before this time (Unix milliseconds).
    #[serde(default)]
    created_to_ms: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryItem {
    #[serde(flatten)]
    notification: Notification,
    counters: BTreeMap<String, i64>,
}

#[derive(Serialize, ToSchema)]
pub struct History {
    /// Newest first.
    notifications: Vec<HistoryItem>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    /// Whether the app has more notifications than the history looks through (5,000 newest).
    truncated: bool,
}

/// A position in the history: the last notification shown, `CREATED_MS.ID`.
fn parse_cursor(cursor: &str) -> ApiResult<(u64, String)> {
    cursor
        .split_once('.')
        .and_then(|(ms, id)| Some((ms.parse().ok()?, id.to_owned())))
        .ok_or_else(|| {
            ApiError::bad(
                "cursor",
                "not a cursor this API gave: pass `next_cursor` as it is",
            )
        })
}

#[utoipa::path(get, path = "/v1/notifications/history", tag = "notifications", params(HistoryQuery), security(("api_key" = [])),
    responses((status = 200, body = History), problem::BadRequest, problem::Unauthorized))]
pub async fn notification_history(
    State(state): State<ApiState>,
    AuthedApp(app): AuthedApp,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<axum::Json<History>> {
    // The document says int64, as every integer of the API.
    for (field, value) in [
        ("created_from_ms", query.created_from_ms),
        ("created_to_ms", query.created_to_ms),
    ] {
        if value.is_some_and(|ms| i64::try_from(ms).is_err()) {
            return Err(ApiError::bad(
                field,
                "at most 9223372036854775807 (Unix milliseconds)",
            ));
        }
    }
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad("limit", "must be 1 to 100"));
    }
    let after = query.cursor.as_deref().map(parse_cursor).transpose()?;
    let mut notifications = state
        .store()
        .list_notifications(&app.id, HISTORY_WINDOW)
        .await?;
    let truncated = notifications.len() >= HISTORY_WINDOW;
    // Newest first, ties by id, so that a cursor names one place.
    notifications.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
    let mut page: Vec<Notification> = notifications
        .into_iter()
        .filter(|n| {
            after
                .as_ref()
                .is_none_or(|(ms, id)| (n.created_at_ms, &n.id) < (*ms, id))
        })
        .filter(|n| query.status.is_none_or(|s| n.status == s))
        .filter(|n| {
            query
                .audience
                .is_none_or(|k| AudienceKind::of(&n.audience) == k)
        })
        .filter(|n| {
            query
                .created_from_ms
                .is_none_or(|from| n.created_at_ms >= from)
        })
        .filter(|n| query.created_to_ms.is_none_or(|to| n.created_at_ms < to))
        .take(limit + 1)
        .collect();
    let next_cursor = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|n| format!("{}.{}", n.created_at_ms, n.id))
    } else {
        None
    };
    let counters =
        futures::future::try_join_all(page.iter().map(|n| state.store().counters(&n.id))).await?;
    Ok(axum::Json(History {
        notifications: page
            .into_iter()
            .zip(counters)
            .map(|(notification, counters)| HistoryItem {
                notification,
                counters,
            })
            .collect(),
        next_cursor,
        truncated,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_services_and_languages_are_named() {
        assert_eq!(push_service("https://fcm.googleapis.com/fcm/send/x"), "fcm");
        assert_eq!(push_service("https://web.push.apple.com/x"), "apple");
        assert_eq!(
            push_service("https://db5p.notify.windows.com/w/?token=x"),
            "wns"
        );
        assert_eq!(
            push_service("https://updates.push.services.mozilla.com/wpush/v2/x"),
            "mozilla"
        );
        assert_eq!(push_service("https://127.0.0.1:9/push/a"), "127.0.0.1");
        assert_eq!(
            push_service("https://evilpush.apple.com.example/x"),
            "evilpush.apple.com.example"
        );
        assert_eq!(language("pt-BR"), "pt");
        assert_eq!(language("EN_us"), "en");
        assert_eq!(language(""), "unknown");
    }

    #[test]
    fn cursors_parse_or_name_the_field() {
        assert_eq!(parse_cursor("17.ab").unwrap(), (17, "ab".into()));
        assert!(parse_cursor("x.ab").is_err());
        assert!(parse_cursor("17").is_err());
    }

    #[test]
    fn a_partial_scan_extrapolates_by_shards() {
        let half = Scanned {
            subscriptions: 10,
            shards: SHARDS / 2,
        };
        assert_eq!(half.extrapolate(5), 10);
        assert!(!half.complete());
        let all = Scanned {
            subscriptions: 10,
            shards: SHARDS,
        };
        assert_eq!(all.extrapolate(5), 5);
    }
}
