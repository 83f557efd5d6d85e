//! The OpenAPI document, generated from the handlers' annotations and served at `/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use serde_json::json;

use super::{admin, error, insights, policy, public, server, triggers, webhooks};
use crate::config::PushHost;
use crate::notify::model::{CONTENT_URL_PATTERN, NOT_BLANK_PATTERN};
use crate::notify::model::{MAX_DIRECT_RECIPIENTS, MAX_ID_LEN};
use crate::notify::{model, segment, variants};
use crate::policy::model::LOCAL_TIME_PATTERN;
use crate::push::subscription::endpoint_pattern;
use crate::triggers::model::{MAX_CANCEL_ON, MAX_NAME};

#[derive(OpenApi)]
#[openapi(
    info(title = "Aviso", description = "Self-hosted Web Push delivery server"),
    paths(
        public::vapid_public_key, public::subscribe, public::unsubscribe, public::identify,
        public::set_tags, public::track, public::demo_test_push,
        server::update_profile, server::get_profile, server::erase_profile, server::link_subscription,
        server::import_profiles, server::create_notification, server::get_notification,
        server::list_notifications, server::cancel_notification, server::notification_series,
        triggers::put_trigger, triggers::get_trigger, triggers::delete_trigger,
        triggers::list_triggers, triggers::post_events,
        admin::list_apps, admin::create, admin::get_app, admin::update_app, admin::delete_app,
        admin::add_key, admin::remove_key, admin::own_app, admin::demo_apps,
        insights::subscriber_stats, insights::estimate_audience, insights::notification_history,
        policy::get_policy, policy::put_policy,
        webhooks::create_webhook, webhooks::list_webhooks, webhooks::delete_webhook,
        webhooks::test_webhook, webhooks::dead_letters,
    ),
    components(schemas(
        error::Problem, model::Audience, model::Content, model::Action, model::NotificationRequest,
        model::Notification, model::Status, crate::notify::life::Life,
        crate::notify::life::Accounting, crate::notify::life::SeriesPoint, segment::Filter, segment::TagCondition,
        segment::AttributeCondition, segment::Comparison,
        crate::triggers::model::Repeat, crate::triggers::model::Event,
        crate::policy::Policy, crate::policy::model::Cap, crate::policy::model::QuietHours,
        crate::policy::model::Options, crate::policy::Category,
        variants::Variant, variants::Winner, variants::Metric, variants::VariantReport,
        variants::VariantFigures, variants::TestReport, variants::TestState,
    )),
    modifiers(&ApiKeyScheme, &Limits),
)]
pub struct ApiDoc;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Limits the derive cannot attach (items of an enum's newtype variants), from the constants
/// the checks use.
struct Limits;

impl Modify for Limits {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let ids = |items: serde_json::Value| json!({"type": "array", "minItems": 1, "maxItems": MAX_DIRECT_RECIPIENTS, "items": items});
        let audience = json!({
            "description": "Who receives a notification.",
            "oneOf": [
                {"type": "string", "enum": ["all"], "description": "Every subscriber of the app."},
                {"type": "object", "required": ["segment"], "additionalProperties": false,
                 "properties": {"segment": {"$ref": "#/components/schemas/Filter"}}},
                {"type": "object", "required": ["external_ids"], "additionalProperties": false,
                 "description": "Every subscription of these CRM profiles.",
                 "properties": {"external_ids": ids(json!({"type": "string", "minLength": 1, "maxLength": MAX_ID_LEN}))}},
                {"type": "object", "required": ["subscription_ids"], "additionalProperties": false,
                 "description": "These subscriptions (ids as `POST /subscriptions` answers them).",
                 "properties": {"subscription_ids": ids(json!({"type": "string", "pattern": "^[0-9a-f]{16}$"}))}},
            ],
        });
        // `segment::Filter` as serde reads it: an object with exactly one of these keys (the
        // derive, without recursion, says "any object").
        let filter = json!({"$ref": "#/components/schemas/Filter"});
        let one = |key: &str, value: serde_json::Value| json!({"type": "object", "required": [key], "additionalProperties": false, "properties": {key: value}});
        let conditions = json!({"type": "array", "minItems": 1, "items": filter});
        let filter = json!({
            "description": format!("A condition on a subscriber. Combine with `all`, `any` and `not` (at most {} levels deep).", segment::MAX_DEPTH),
            "oneOf": [
                one("all", conditions.clone()),
                one("any", conditions),
                one("not", filter),
                one("tag", json!({"$ref": "#/components/schemas/TagCondition"})),
                one("attribute", json!({"$ref": "#/components/schemas/AttributeCondition"})),
            ],
        });
        for (name, schema) in [("Audience", audience), ("Filter", filter)] {
            if let (Some(components), Ok(schema)) = (
                openapi.components.as_mut(),
                serde_json::from_value::<utoipa::openapi::RefOr<utoipa::openapi::Schema>>(schema),
            ) {
                components.schemas.insert(name.into(), schema);
            }
        }
    }
}

/// The document as served: the derived one, plus OpenAPI links from the answers that create
/// data to the operations that read it, so that a client generator (and schemathesis' stateful
/// phase) can follow them. Written as JSON: utoipa's `Link` serializes its fields in snake
/// case (`operation_id`), which no reader of the specification understands.
///
/// `allowed_push_hosts` (the server's extra push hosts) go into the pattern of every
/// subscription endpoint, so the document says which endpoints this server takes.
pub fn document(allowed_push_hosts: &[PushHost]) -> serde_json::Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let link = |operation: &str, parameter: &str, value: &str| json!({"operationId": operation, "parameters": {parameter: value}});
    let notification = |operation: &str| link(operation, "id", "$response.body#/id");
    let profile = |operation: &str| link(operation, "external_id", "$request.path.external_id");
    let links = [
        (
            "/v1/notifications",
            "post",
            "201",
            "GetNotification",
            notification("get_notification"),
        ),
        (
            "/v1/notifications",
            "post",
            "201",
            "CancelNotification",
            notification("cancel_notification"),
        ),
        (
            "/v1/notifications",
            "post",
            "200",
            "GetNotification",
            notification("get_notification"),
        ),
        (
            "/v1/profiles/{external_id}",
            "put",
            "200",
            "GetProfile",
            profile("get_profile"),
        ),
        (
            "/v1/profiles/{external_id}",
            "put",
            "200",
            "LinkSubscription",
            profile("link_subscription"),
        ),
        (
            "/v1/profiles/{external_id}",
            "put",
            "200",
            "EraseProfile",
            profile("erase_profile"),
        ),
    ];
    constrain(&mut document);
    constrain_subscriptions(&mut document, allowed_push_hosts);
    for (path, method, status, name, link) in links {
        if let Some(response) = document
            .pointer_mut(&format!(
                "/paths/{}/{method}/responses/{status}",
                path.replace('/', "~1")
            ))
            .and_then(serde_json::Value::as_object_mut)
        {
            let links = response.entry("links").or_insert_with(|| json!({}));
            if let Some(links) = links.as_object_mut() {
                links.insert(name.to_owned(), link);
            }
        }
    }
    document
}

/// Every subscription endpoint, `p256dh` and `auth` in the request bodies, as
/// `PushSubscription::from_parts` and the endpoint allowlist check them: the endpoint's pattern
/// names the known push services and this server's extra hosts; a `p256dh` has the format
/// `p256-point` (a point on P-256, base64url: what no pattern can say; schemathesis'
/// hooks in `scripts/test.d/after/schemathesis_hooks.py` generate real ones for it); an `auth`
/// is 16 bytes of base64url.
fn constrain_subscriptions(document: &mut serde_json::Value, allowed_push_hosts: &[PushHost]) {
    let endpoint = json!({"type": "string", "maxLength": crate::store::MAX_ENDPOINT_LEN,
        "pattern": endpoint_pattern(&allowed_push_hosts.iter().map(PushHost::authority_pattern).collect::<Vec<_>>())});
    let p256dh = json!({"type": "string", "format": "p256-point"});
    let auth = json!({"type": "string", "pattern": "^[A-Za-z0-9_+/-]{21}[AQgw]={0,2}$"});
    let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    for schema in schemas.values_mut() {
        let Some(properties) = schema
            .get_mut("properties")
            .and_then(serde_json::Value::as_object_mut)
        else {
            continue;
        };
        // A subscription, its keys, or a proof of ownership (endpoint and auth).
        if !properties.contains_key("endpoint") && !properties.contains_key("p256dh") {
            continue;
        }
        for (name, replacement) in [
            ("endpoint", &endpoint),
            ("p256dh", &p256dh),
            ("auth", &auth),
        ] {
            if properties.contains_key(name) {
                let description = properties[name].get("description").cloned();
                let mut value = replacement.clone();
                if let (Some(description), Some(object)) = (description, value.as_object_mut()) {
                    object.insert("description".into(), description);
                }
                properties.insert(name.into(), value);
            }
        }
    }
}

/// Constraints of request bodies that the derive does not state, as the handlers check them.
fn constrain(document: &mut serde_json::Value) {
    // `triggers::model::check_name`: ASCII letters, digits and `_ - . :`.
    let name = json!({"pattern": format!("^[A-Za-z0-9_.:-]{{1,{MAX_NAME}}}$")});
    let constraints = [
        (
            "/components/schemas/TriggerRequest/properties/event",
            name.clone(),
        ),
        (
            "/components/schemas/TriggerRequest/properties/cancel_on/items",
            name.clone(),
        ),
        (
            "/components/schemas/TriggerRequest/properties/cancel_on",
            json!({"maxItems": MAX_CANCEL_ON}),
        ),
        ("/components/schemas/Event/properties/name", name.clone()),
        (
            "/paths/~1v1~1triggers~1{name}/put/parameters/0/schema",
            name.clone(),
        ),
        (
            "/components/schemas/Event/properties/key",
            json!({"minLength": 1, "maxLength": 128}),
        ),
        (
            "/components/schemas/AttributeCondition/properties/key",
            json!({"minLength": 1}),
        ),
        (
            "/components/schemas/AttributeCondition/properties/value",
            json!({"type": ["string", "number", "boolean"]}),
        ),
        // `api::public::subscribe`: an `external_id` comes with its `identity_hash`.
        (
            "/components/schemas/SubscribeRequest",
            json!({
                "if": {"required": ["external_id"], "properties": {"external_id": {"type": "string"}}},
                "then": {"required": ["identity_hash"], "properties": {"identity_hash": {"type": "string"}}},
            }),
        ),
        // `api::public::check_tags`.
        (
            "/components/schemas/SubscribeRequest/properties/tags",
            json!({"propertyNames": {"minLength": 1, "maxLength": 128}, "maxProperties": 32,
                "additionalProperties": {"type": "string", "maxLength": 128}}),
        ),
        (
            "/components/schemas/TagsRequest/properties/tags",
            json!({"propertyNames": {"minLength": 1, "maxLength": 128}, "maxProperties": 32,
                "additionalProperties": {"type": ["string", "null"], "maxLength": 128}}),
        ),
        (
            "/components/schemas/TagCondition/properties/key",
            json!({"minLength": 1}),
        ),
        // `segment::Filter::validate`: `lt`/`gt`… compare numbers only.
        (
            "/components/schemas/AttributeCondition",
            json!({"anyOf": [
                {"properties": {"op": {"enum": ["eq", "ne"]}}},
                {"properties": {"op": {"enum": ["lt", "lte", "gt", "gte"]}, "value": {"type": "number"}}},
            ]}),
        ),
        // `NotificationRequest::into_notification`: a time in UTC or a local time, not both;
        // `content` or `variants`, exactly one; a winner test with variants only, and not with
        // a local time.
        ("/components/schemas/NotificationRequest", {
            let given = |field: &str, kind: &str| json!({"required": [field], "properties": {field: {"type": kind}}});
            json!({
                "not": {
                    "required": ["send_at", "send_at_local"],
                    "properties": {"send_at": {"type": "string"}, "send_at_local": {"type": "string"}},
                },
                "oneOf": [
                    {"allOf": [given("content", "object")], "not": given("variants", "array")},
                    {"allOf": [given("variants", "array")], "not": given("content", "object")},
                ],
                "allOf": [
                    {"not": {"allOf": [given("winner", "object")], "not": given("variants", "array")}},
                    {"not": {"allOf": [given("winner", "object"), given("send_at_local", "string")]}},
                ],
            })
        }),
        // `policy::model::parse_local`, in the request and in the stored notification.
        (
            "/components/schemas/NotificationRequest/properties/send_at_local",
            json!({"pattern": LOCAL_TIME_PATTERN}),
        ),
        (
            "/components/schemas/Options/properties/send_at_local",
            json!({"pattern": LOCAL_TIME_PATTERN}),
        ),
        (
            "/components/schemas/LinkRequest/properties/subscription_id",
            json!({"pattern": "^[0-9a-f]{16}$"}),
        ),
        (
            "/components/schemas/ProfileChanges/properties/attributes",
            json!({
                "propertyNames": {"minLength": 1, "maxLength": 128},
                "maxProperties": 256,
                "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
            }),
        ),
        (
            "/components/schemas/ProfileChanges/properties/tags",
            json!({"propertyNames": {"minLength": 1, "maxLength": 128}, "maxProperties": 256}),
        ),
    ];
    // `notify::model::check_url`: every URL a notification shows or opens.
    let content_urls = [
        "Content/properties/url",
        "Content/properties/icon",
        "Content/properties/image",
        "Content/properties/badge",
        "Action/properties/url",
    ]
    .map(|at| {
        (
            format!("/components/schemas/{at}"),
            json!({"pattern": CONTENT_URL_PATTERN}),
        )
    });
    // `notify::model::check_content`: a title is not blank.
    let title = (
        "/components/schemas/Content/properties/title".to_owned(),
        json!({"pattern": NOT_BLANK_PATTERN}),
    );
    let constraints = constraints
        .into_iter()
        .map(|(pointer, extra)| (pointer.to_owned(), extra))
        .chain(content_urls)
        .chain([title]);
    for (pointer, extra) in constraints {
        if let (Some(schema), Some(extra)) = (
            document
                .pointer_mut(&pointer)
                .and_then(serde_json::Value::as_object_mut),
            extra.as_object(),
        ) {
            schema.extend(extra.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_states_the_limits_and_links() {
        let document = document(&[]);
        let audience = &document["components"]["schemas"]["Audience"]["oneOf"];
        assert_eq!(
            audience[2]["properties"]["external_ids"]["maxItems"],
            MAX_DIRECT_RECIPIENTS
        );
        let created = &document["paths"]["/v1/notifications"]["post"]["responses"]["201"];
        assert_eq!(
            created["links"]["GetNotification"]["operationId"],
            "get_notification"
        );
        let schemas = &document["components"]["schemas"];
        assert_eq!(
            schemas["LinkRequest"]["properties"]["subscription_id"]["pattern"],
            "^[0-9a-f]{16}$"
        );
        assert_eq!(
            schemas["ProfileChanges"]["properties"]["tags"]["propertyNames"]["minLength"],
            1
        );
        assert_eq!(
            schemas["TriggerRequest"]["properties"]["event"]["pattern"],
            "^[A-Za-z0-9_.:-]{1,128}$"
        );
        assert_eq!(
            schemas["Event"]["properties"]["name"]["pattern"],
            "^[A-Za-z0-9_.:-]{1,128}$"
        );
        assert_eq!(
            schemas["AttributeCondition"]["properties"]["value"]["type"],
            json!(["string", "number", "boolean"])
        );
        // The server takes exactly what the pattern says.
        use crate::store::SubscriptionId;
        assert!("0123456789abcdef".parse::<SubscriptionId>().is_ok());
        for outside in ["+123456789abcdef", "0123456789ABCDEF", "0123456789abcde"] {
            assert!(outside.parse::<SubscriptionId>().is_err(), "{outside}");
        }
        // A notification's life: its statuses and times, the accounting, the series, the 409.
        assert_eq!(
            schemas["Status"]["enum"],
            json!(["queued", "cancelled", "sending", "completed"])
        );
        let notification = serde_json::to_string(&schemas["Notification"]).unwrap();
        assert!(
            notification.contains("#/components/schemas/Life"),
            "{notification}"
        );
        for field in ["sending_at_ms", "completed_at_ms", "cancelled_at_ms"] {
            let time = &schemas["Life"]["properties"][field];
            assert_eq!(time["format"], "int64", "{field}: {time}");
        }
        let view = &schemas["NotificationView"];
        assert!(
            serde_json::to_string(view).unwrap().contains("Accounting"),
            "{view}"
        );
        let series = &document["paths"]["/v1/notifications/{id}/series"]["get"];
        assert_eq!(
            series["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/SeriesView"
        );
        let cancel = &document["paths"]["/v1/notifications/{id}/cancel"]["post"]["responses"];
        assert!(cancel.get("409").is_some(), "{cancel}");
        let limit = &document["paths"]["/v1/notifications"]["get"]["parameters"][0]["schema"];
        assert_eq!(
            (limit["minimum"].as_u64(), limit["maximum"].as_u64()),
            (Some(1), Some(200))
        );
    }

    /// The endpoint pattern matches the spellings the server takes, on the known services and
    /// the configured extra hosts, and nothing on other hosts or ports; whatever it matches
    /// parses as a subscription endpoint.
    #[test]
    fn the_endpoint_pattern_is_the_allowlist() {
        let extra: PushHost = "127.0.0.1:8443".parse().unwrap();
        let document = document(std::slice::from_ref(&extra));
        let pattern = document["components"]["schemas"]["BrowserSubscription"]["properties"]
            ["endpoint"]["pattern"]
            .as_str()
            .unwrap()
            .to_owned();
        let pattern = regex::Regex::new(&pattern).unwrap();
        for inside in [
            "https://fcm.googleapis.com/fcm/send/abc:APA91b-x_y",
            "https://FCM.googleapis.com./fcm/send/abc",
            "https://updates.push.services.mozilla.com:443/wpush/v2/gAAAA",
            "https://web.push.apple.com/QM-x",
            "https://wns2-par02p.notify.windows.com/w/?token=BQYAAAD%3d%3d",
            "https://127.0.0.1:8443/push/s1",
        ] {
            assert!(pattern.is_match(inside), "{inside}");
            crate::push::PushSubscription::from_parts(
                inside,
                "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
                "BTBZMqHH6r4Tts7J_aSIgg",
            )
            .unwrap();
        }
        for outside in [
            "https://",
            "https://push.example/x",
            "https://fcm.googleapis.com:8443/x",
            "https://127.0.0.1:8444/x",
            "http://fcm.googleapis.com/x",
            "https://evilpush.apple.com.example/x",
        ] {
            assert!(!pattern.is_match(outside), "{outside}");
        }
    }
}
