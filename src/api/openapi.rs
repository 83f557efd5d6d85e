//! The OpenAPI document, generated from the handlers' annotations and served at `/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, error, insights, public, server, triggers};
use crate::notify::{model, segment};

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
    ),
    components(schemas(
        error::Problem, model::Audience, model::Content, model::Action, model::NotificationRequest,
        model::Notification, model::Status, segment::Filter, segment::TagCondition,
        segment::AttributeCondition, segment::Comparison,
        crate::triggers::model::Repeat, crate::triggers::model::Event,
    )),
    modifiers(&ApiKeyScheme),
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
