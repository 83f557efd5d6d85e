//! The OpenAPI document, generated from the handlers' annotations and served at `/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use serde_json::json;

use super::{admin, error, insights, policy, public, server, triggers, webhooks};
use crate::notify::model::{MAX_DIRECT_RECIPIENTS, MAX_ID_LEN};
use crate::notify::{model, segment};
use crate::triggers::model::MAX_NAME;

#[derive(OpenApi)]
#[openapi(
    info(title = "Aviso", description = "Self-hosted Web Push delivery server"),
    paths(
        public::vapid_public_key, public::subscribe, public::unsubscribe, public::identify,
        public::set_tags, public::track, public::demo_test_push,
        server::update_profile, server::get_profile, server::erase_profile, server::link_subscription,
        server::import_profiles, server::create_notification, server::get_notification,
        server::list_notifications, server::cancel_notification,
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
        model::Notification, model::Status, segment::Filter, segment::TagCondition,
        segment::AttributeCondition, segment::Comparison,
        crate::triggers::model::Repeat, crate::triggers::model::Event,
        crate::policy::Policy, crate::policy::model::Cap, crate::policy::model::QuietHours,
        crate::policy::model::Options, crate::policy::Category,
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
        if let (Some(components), Ok(schema)) = (
            openapi.components.as_mut(),
            serde_json::from_value::<utoipa::openapi::RefOr<utoipa::openapi::Schema>>(audience),
        ) {
            components.schemas.insert("Audience".into(), schema);
        }
    }
}

/// The document as served: the derived one, plus OpenAPI links from the answers that create
/// data to the operations that read it, so that a client generator (and schemathesis' stateful
/// phase) can follow them. Written as JSON: utoipa's `Link` serializes its fields in snake
/// case (`operation_id`), which no reader of the specification understands.
pub fn document() -> serde_json::Value {
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
    for (pointer, extra) in constraints {
        if let (Some(schema), Some(extra)) = (
            document
                .pointer_mut(pointer)
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
        let document = document();
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
        let limit = &document["paths"]["/v1/notifications"]["get"]["parameters"][0]["schema"];
        assert_eq!(
            (limit["minimum"].as_u64(), limit["maximum"].as_u64()),
            (Some(1), Some(200))
        );
    }
}
