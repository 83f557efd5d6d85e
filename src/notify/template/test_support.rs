//! Helpers of the template tests: contents, profiles, and one field rendered or refused.

use std::collections::BTreeMap;

use super::{ContentTemplate, Context, EventProperties, RenderError};
use crate::notify::model::{Content, FieldError};
use crate::store::AttributeValue;

pub(super) fn content(title: &str, body: Option<&str>) -> Content {
    serde_json::from_value(serde_json::json!({"title": title, "body": body})).unwrap()
}

pub(super) fn attributes(pairs: &[(&str, AttributeValue)]) -> BTreeMap<String, AttributeValue> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

pub(super) fn text(value: &str) -> AttributeValue {
    AttributeValue::Text(value.to_owned())
}

/// Renders one title template.
pub(super) fn render(source: &str, profile: &BTreeMap<String, AttributeValue>) -> String {
    render_with(source, profile, None).unwrap()
}

pub(super) fn render_with(
    source: &str,
    profile: &BTreeMap<String, AttributeValue>,
    event: Option<&EventProperties>,
) -> Result<String, RenderError> {
    let content = content(source, None);
    let template = ContentTemplate::compile(&content).unwrap();
    let context = Context {
        profile: Some(profile),
        event,
    };
    Ok(template.render(&content, &context)?.title)
}

pub(super) fn compile_error(title: &str, body: Option<&str>) -> FieldError {
    ContentTemplate::compile(&content(title, body)).unwrap_err()
}
