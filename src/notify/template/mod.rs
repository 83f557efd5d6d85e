//! Personalised notification content: the text fields of a [`Content`] as Liquid templates
//! (`Hi {{ profile.first_name | default: "friend" }}`), compiled once per notification and
//! rendered per subscriber from the profile's attributes and, for triggered pushes, the event's
//! properties. No I/O.
//!
//! Liquid is what OneSignal and Braze users write; the engine was chosen by measurement against
//! `minijinja` (docs/BENCHMARKS.md, "Templates"). The language is cut down to what a
//! notification needs and what cannot run away:
//! - outputs (`{{ … }}`) with a list of filters ([`FILTERS`]), and the `if`/`unless`/`case`
//!   conditionals, `raw` and `comment` blocks. No `for`, `assign`, `capture`, `include` or
//!   `render`: no loops, no recursion, no variables built up step by step, no files;
//! - every filter's result and every rendered field is bounded by [`MAX_FIELD_LEN`], so a
//!   rendering's work is bounded by the template's size;
//! - a variable that is missing (an attribute the profile lacks, a path into a text, a root
//!   other than `profile`/`event`) is nil: it renders its `default:` or nothing. A filter that
//!   cannot apply to a subscriber's value (`"abc" | plus: 1`, `divided_by: 0`) gives nil too.
//!   So a rendering fails only when it is too large ([`RenderError::TooLarge`]).
//!
//! A field without `{{` or `{%` is not a template: it is used as it is.
//!
//! The parts: `filters` (the language: its blocks, the bounded filters and the capped
//! writer), `errors` (syntax errors with their positions, and [`RenderError`]), `views`
//! (the lenient views over the profile and the event a rendering reads); this module compiles
//! a content's fields and renders them.

mod errors;
mod filters;
#[cfg(test)]
mod test_support;
mod views;

use std::collections::BTreeMap;
use std::fmt;

pub use errors::RenderError;
use errors::syntax_error;
pub use filters::FILTERS;
use filters::{Capped, LANGUAGE, TOO_LARGE_MARK};
pub use views::EventProperties;
use views::Globals;

use super::model::{Content, FieldError};
use crate::push::MAX_PLAINTEXT_LEN;
use crate::store::AttributeValue;

/// No rendered field, and no filter's result on the way, may be longer than this: none longer
/// can fit in a Web Push message anyway. It bounds a rendering's memory and time.
pub const MAX_FIELD_LEN: usize = MAX_PLAINTEXT_LEN;

/// What a template's variables are read from: `profile.*` (the CRM profile's attributes) and
/// `event.*` (the triggering event's properties).
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    pub profile: Option<&'a BTreeMap<String, AttributeValue>>,
    pub event: Option<&'a EventProperties>,
}

/// One text field: as written, or compiled.
enum Field {
    Text(String),
    Template(liquid::Template),
}

impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => f.debug_tuple("Text").field(text).finish(),
            Self::Template(_) => f.write_str("Template"),
        }
    }
}

impl Field {
    fn compile(name: &str, source: &str) -> Result<Self, FieldError> {
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(Self::Text(source.to_owned()));
        }
        let Some(parser) = LANGUAGE.as_ref() else {
            return Err(FieldError::new(
                name,
                "templates are unavailable on this server",
            ));
        };
        match parser.parse(source) {
            Ok(template) => Ok(Self::Template(template)),
            Err(error) => Err(syntax_error(name, source, parser, &error)),
        }
    }

    fn render(&self, globals: &Globals<'_>) -> Result<String, RenderError> {
        match self {
            Self::Text(text) => Ok(text.clone()),
            Self::Template(template) => {
                let mut out = Capped::default();
                match template.render_to(&mut out, globals) {
                    Ok(()) => String::from_utf8(out.bytes)
                        .map_err(|e| RenderError::Template(e.to_string())),
                    Err(_) if out.overflowed => Err(RenderError::TooLarge { size: None }),
                    Err(error) if error.to_string().contains(TOO_LARGE_MARK) => {
                        Err(RenderError::TooLarge { size: None })
                    }
                    Err(error) => Err(RenderError::Template(error.to_string())),
                }
            }
        }
    }
}

/// A notification's content with its text fields compiled.
#[derive(Debug)]
pub struct ContentTemplate {
    /// Every text field in [`text_fields`] order.
    fields: Vec<Field>,
    uses_variables: bool,
}

impl ContentTemplate {
    /// Compiles every text field; a syntax error names the field, its line and column.
    pub fn compile(content: &Content) -> Result<Self, FieldError> {
        let fields = text_fields(content)
            .into_iter()
            .map(|(name, source)| Field::compile(&name, source))
            .collect::<Result<Vec<_>, FieldError>>()?;
        let uses_variables = fields.iter().any(|f| matches!(f, Field::Template(_)));
        Ok(Self {
            fields,
            uses_variables,
        })
    }

    /// Whether any field is a template (else every subscriber gets the same text).
    pub fn uses_variables(&self) -> bool {
        self.uses_variables
    }

    /// Renders the template fields (not those without variables) for one subscriber, in
    /// order: the `i`-th is the field [`ContentTemplate::with_holes`] marked with `i`.
    pub fn render_templates(&self, context: &Context<'_>) -> Result<Vec<String>, RenderError> {
        let globals = Globals::new(context);
        self.fields
            .iter()
            .filter(|field| matches!(field, Field::Template(_)))
            .map(|field| field.render(&globals))
            .collect()
    }

    /// `content` with its `i`-th template field replaced by `mark(i)`, the other fields as
    /// written: a skeleton to serialize once and fill per subscriber.
    pub fn with_holes(&self, content: &Content, mark: impl Fn(usize) -> String) -> Content {
        let mut content = content.clone();
        let mut next = 0;
        for ((_, slot), field) in text_fields_mut(&mut content).into_iter().zip(&self.fields) {
            if matches!(field, Field::Template(_)) {
                *slot = mark(next);
                next += 1;
            }
        }
        content
    }

    /// The content with every field rendered for one subscriber.
    pub fn render(&self, content: &Content, context: &Context<'_>) -> Result<Content, RenderError> {
        let mut rendered = self.render_templates(context)?.into_iter();
        let mut content = content.clone();
        for ((_, slot), field) in text_fields_mut(&mut content).into_iter().zip(&self.fields) {
            if matches!(field, Field::Template(_))
                && let Some(text) = rendered.next()
            {
                *slot = text;
            }
        }
        Ok(content)
    }
}

/// The content's text fields that may be templates, with the names errors give them, borrowed
/// shared (no `mut`) or writable (`mut`): one list, so that [`text_fields`] and
/// [`text_fields_mut`] keep the same order (the compiled fields are zipped with both).
macro_rules! text_fields {
    ($content:expr $(, $mut:tt)?) => {{
        let content = $content;
        let mut fields = vec![("content.title".to_owned(), &$($mut)? content.title)];
        let optional = [
            ("content.body", &$($mut)? content.body),
            ("content.url", &$($mut)? content.url),
            ("content.icon", &$($mut)? content.icon),
            ("content.image", &$($mut)? content.image),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                fields.push((name.to_owned(), value));
            }
        }
        for (i, action) in (&$($mut)? content.actions).into_iter().enumerate() {
            fields.push((format!("content.actions[{i}].title"), &$($mut)? action.title));
            if let Some(url) = &$($mut)? action.url {
                fields.push((format!("content.actions[{i}].url"), url));
            }
        }
        fields
    }};
}

/// The content's text fields that may be templates, with the names errors give them.
fn text_fields(content: &Content) -> Vec<(String, &String)> {
    text_fields!(content)
}

/// [`text_fields`], writable, in the same order.
fn text_fields_mut(content: &mut Content) -> Vec<(String, &mut String)> {
    text_fields!(content, mut)
}

#[cfg(test)]
mod tests {
    use super::test_support::{attributes, content, text};
    use super::*;

    #[test]
    fn template_without_markup_is_text() {
        let plain = content("Hello } {", Some("50% off"));
        let template = ContentTemplate::compile(&plain).unwrap();
        assert!(!template.uses_variables());
        assert!(
            template
                .render_templates(&Context::default())
                .unwrap()
                .is_empty()
        );
        assert_eq!(template.render(&plain, &Context::default()).unwrap(), plain);
        let personal = content("Hi {{ profile.first_name }}", None);
        assert!(
            ContentTemplate::compile(&personal)
                .unwrap()
                .uses_variables()
        );
    }

    #[test]
    fn template_renders_every_text_field() {
        let content: Content = serde_json::from_value(serde_json::json!({
            "title": "Hi {{ profile.n }}",
            "body": "b {{ profile.n }}",
            "url": "https://shop.example/{{ profile.n }}",
            "icon": "https://shop.example/i.png",
            "image": "https://shop.example/{{ profile.n }}.png",
            "badge": "https://shop.example/{{ profile.n }}",
            "actions": [{"action": "a", "title": "Go {{ profile.n }}", "url": "https://shop.example/a/{{ profile.n }}"}],
        }))
        .unwrap();
        let template = ContentTemplate::compile(&content).unwrap();
        let profile = attributes(&[("n", text("z"))]);
        let context = Context {
            profile: Some(&profile),
            event: None,
        };
        let rendered = template.render(&content, &context).unwrap();
        assert_eq!(rendered.title, "Hi z");
        assert_eq!(rendered.body.as_deref(), Some("b z"));
        assert_eq!(rendered.url.as_deref(), Some("https://shop.example/z"));
        assert_eq!(rendered.icon.as_deref(), Some("https://shop.example/i.png"));
        assert_eq!(
            rendered.image.as_deref(),
            Some("https://shop.example/z.png")
        );
        // The badge is not a template field.
        assert_eq!(rendered.badge, content.badge);
        assert_eq!(rendered.actions[0].title, "Go z");
        assert_eq!(
            rendered.actions[0].url.as_deref(),
            Some("https://shop.example/a/z")
        );
        assert_eq!(template.render_templates(&context).unwrap().len(), 6);
    }
}
