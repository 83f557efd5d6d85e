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

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use liquid_core::model::{
    ArrayView, DisplayCow, KStringCow, ObjectView, Scalar, ScalarCow, State, Value, ValueView,
};
use liquid_core::parser::{FilterArguments, FilterReflection, ParseFilter};
use liquid_core::runtime::Runtime;
use liquid_core::{Display_filter, Expression, Filter, FilterParameters, FromFilterParameters};
use liquid_lib::stdlib;

use super::model::{Content, FieldError};
use crate::push::MAX_PLAINTEXT_LEN;
use crate::store::AttributeValue;

/// No rendered field, and no filter's result on the way, may be longer than this: none longer
/// can fit in a Web Push message anyway. It bounds a rendering's memory and time.
pub const MAX_FIELD_LEN: usize = MAX_PLAINTEXT_LEN;

/// Marks the error a bounded filter returns, to tell it from any other.
const TOO_LARGE_MARK: &str = "aviso: rendered value too large";

/// The filters a template may use (Liquid's standard ones that work on text and numbers, plus
/// `fixed`). Those that build lists (`split`, `map`, `where`, …) or dates are left out.
pub const FILTERS: &[&str] = &[
    "abs",
    "append",
    "at_least",
    "at_most",
    "capitalize",
    "ceil",
    "default",
    "divided_by",
    "downcase",
    "escape",
    "first",
    "fixed",
    "floor",
    "join",
    "last",
    "lstrip",
    "minus",
    "modulo",
    "plus",
    "prepend",
    "remove",
    "remove_first",
    "replace",
    "replace_first",
    "round",
    "rstrip",
    "size",
    "slice",
    "strip",
    "strip_html",
    "strip_newlines",
    "times",
    "truncate",
    "truncatewords",
    "upcase",
    "url_encode",
];

/// The cut-down Liquid language, built once per process.
static LANGUAGE: LazyLock<Option<liquid::Parser>> = LazyLock::new(|| {
    let builder = liquid::ParserBuilder::new()
        .block(stdlib::IfBlock)
        .block(stdlib::UnlessBlock)
        .block(stdlib::CaseBlock)
        .block(stdlib::RawBlock)
        .block(stdlib::CommentBlock)
        .filter(Bounded(stdlib::Abs))
        .filter(Bounded(stdlib::Append))
        .filter(Bounded(stdlib::AtLeast))
        .filter(Bounded(stdlib::AtMost))
        .filter(Bounded(stdlib::Capitalize))
        .filter(Bounded(stdlib::Ceil))
        .filter(Bounded(stdlib::Default))
        .filter(Bounded(stdlib::DividedBy))
        .filter(Bounded(stdlib::Downcase))
        .filter(Bounded(stdlib::Escape))
        .filter(Bounded(stdlib::First))
        .filter(Bounded(Fixed))
        .filter(Bounded(stdlib::Floor))
        .filter(Bounded(stdlib::Join))
        .filter(Bounded(stdlib::Last))
        .filter(Bounded(stdlib::Lstrip))
        .filter(Bounded(stdlib::Minus))
        .filter(Bounded(stdlib::Modulo))
        .filter(Bounded(stdlib::Plus))
        .filter(Bounded(stdlib::Prepend))
        .filter(Bounded(stdlib::Remove))
        .filter(Bounded(stdlib::RemoveFirst))
        .filter(Bounded(stdlib::Replace))
        .filter(Bounded(stdlib::ReplaceFirst))
        .filter(Bounded(stdlib::Round))
        .filter(Bounded(stdlib::Rstrip))
        .filter(Bounded(stdlib::Size))
        .filter(Bounded(stdlib::Slice))
        .filter(Bounded(stdlib::Strip))
        .filter(Bounded(stdlib::StripHtml))
        .filter(Bounded(stdlib::StripNewlines))
        .filter(Bounded(stdlib::Times))
        .filter(Bounded(stdlib::Truncate))
        .filter(Bounded(stdlib::TruncateWords))
        .filter(Bounded(stdlib::Upcase))
        .filter(Bounded(stdlib::UrlEncode));
    match builder.build() {
        Ok(parser) => Some(parser),
        Err(error) => {
            tracing::error!(%error, "cannot build the template language");
            None
        }
    }
});

/// Why a subscriber's payload could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// Larger than Web Push allows (`size` when it is known: the whole payload's bytes).
    #[error("the personalised payload is too large for Web Push{}", .size.map(|s| format!(" ({s} bytes, at most {MAX_PLAINTEXT_LEN})")).unwrap_or_default())]
    TooLarge { size: Option<usize> },
    /// The template engine failed in a way the language's rules should prevent.
    #[error("template: {0}")]
    Template(String),
}

impl RenderError {
    /// The engine's counter for it (`failed.too_large`, `failed.template`).
    pub fn label(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Template(_) => "template",
        }
    }
}

/// What a template's variables are read from: `profile.*` (the CRM profile's attributes) and
/// `event.*` (the triggering event's properties).
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    pub profile: Option<&'a BTreeMap<String, AttributeValue>>,
    pub event: Option<&'a EventProperties>,
}

/// An event's properties, converted once for every rendering of that event's pushes.
#[derive(Debug, Clone, Default)]
pub struct EventProperties(Node);

impl EventProperties {
    pub fn new(properties: &serde_json::Map<String, serde_json::Value>) -> Self {
        Self(Node::Map(
            properties
                .iter()
                .map(|(k, v)| (k.clone(), Node::from_json(v)))
                .collect(),
        ))
    }
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

/// The content's text fields that may be templates, with the names errors give them.
fn text_fields(content: &Content) -> Vec<(String, &String)> {
    let mut fields = vec![("content.title".to_owned(), &content.title)];
    let optional = [
        ("content.body", &content.body),
        ("content.url", &content.url),
        ("content.icon", &content.icon),
        ("content.image", &content.image),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            fields.push((name.to_owned(), value));
        }
    }
    for (i, action) in content.actions.iter().enumerate() {
        fields.push((format!("content.actions[{i}].title"), &action.title));
        if let Some(url) = &action.url {
            fields.push((format!("content.actions[{i}].url"), url));
        }
    }
    fields
}

/// [`text_fields`], writable, in the same order.
fn text_fields_mut(content: &mut Content) -> Vec<(String, &mut String)> {
    let mut fields = vec![("content.title".to_owned(), &mut content.title)];
    let optional = [
        ("content.body", &mut content.body),
        ("content.url", &mut content.url),
        ("content.icon", &mut content.icon),
        ("content.image", &mut content.image),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            fields.push((name.to_owned(), value));
        }
    }
    for (i, action) in content.actions.iter_mut().enumerate() {
        fields.push((format!("content.actions[{i}].title"), &mut action.title));
        if let Some(url) = &mut action.url {
            fields.push((format!("content.actions[{i}].url"), url));
        }
    }
    fields
}

/// A syntax error as the API reports it: `line L, column C: what`.
fn syntax_error(
    field: &str,
    source: &str,
    parser: &liquid::Parser,
    error: &liquid::Error,
) -> FieldError {
    let text = error.to_string();
    let position = pest_position(&text).or_else(|| locate(source, parser));
    let what = describe(&text);
    let message = match position {
        Some((line, column)) => format!("template error at line {line}, column {column}: {what}"),
        None => format!("template error: {what}"),
    };
    FieldError::new(field, message)
}

/// The `--> LINE:COLUMN` that the Liquid parser (pest) puts in a syntax error's text.
fn pest_position(text: &str) -> Option<(usize, usize)> {
    let rest = &text[text.find("-->")? + 3..];
    let rest = rest.trim_start();
    let end = rest.find(|c: char| !c.is_ascii_digit() && c != ':')?;
    let (line, column) = rest[..end].split_once(':')?;
    Some((line.parse().ok()?, column.parse().ok()?))
}

/// Errors without a position (an unknown filter, a bad argument) come from one `{{ … }}` or
/// `{% … %}`: the first that fails to parse alone is the one.
fn locate(source: &str, parser: &liquid::Parser) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(start) = source[from..].find(['{']).map(|i| i + from) {
        let tag = &source[start..];
        let close = if tag.starts_with("{{") {
            "}}"
        } else if tag.starts_with("{%") {
            "%}"
        } else {
            from = start + 1;
            continue;
        };
        let end = tag.find(close).map_or(source.len(), |i| start + i + 2);
        let piece = &source[start..end];
        // A lone `{% if %}` fails for want of its end: only outputs are tried alone.
        if close == "}}" && parser.parse(piece).is_err() {
            let before = &source[..start];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            return Some((line, column));
        }
        from = end;
    }
    None
}

/// The human part of a Liquid error: pest's `= …` line, or the message and its context.
fn describe(text: &str) -> String {
    let text = text.strip_prefix("liquid:").unwrap_or(text).trim();
    if let Some(line) = text.lines().find_map(|l| l.trim().strip_prefix("= ")) {
        let mut what = line.trim().to_owned();
        if let Some(requested) = context_value(text, "requested") {
            what = format!(
                "{what} `{requested}` is not available (conditionals: if, unless, case; no loops or assignments)"
            );
        }
        return what;
    }
    if let Some(filter) = context_value(text, "requested filter") {
        return format!(
            "unknown filter `{filter}`; available: {}",
            FILTERS.join(", ")
        );
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "with:")
        .collect::<Vec<_>>()
        .join("; ")
}

fn context_value<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
}

/// A writer that refuses to grow past [`MAX_FIELD_LEN`].
#[derive(Default)]
struct Capped {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_FIELD_LEN {
            self.overflowed = true;
            return Err(std::io::Error::other(TOO_LARGE_MARK));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A standard filter whose result is bounded and which never fails a rendering: where it
/// cannot apply to the subscriber's value, it gives nil (so that a `default:` after it works).
#[derive(Clone)]
struct Bounded<F>(F);

impl<F: ParseFilter + Clone + 'static> ParseFilter for Bounded<F> {
    fn parse(&self, arguments: FilterArguments) -> liquid_core::Result<Box<dyn Filter>> {
        Ok(Box::new(BoundedFilter(self.0.parse(arguments)?)))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self.0.reflection()
    }
}

#[derive(Debug)]
struct BoundedFilter(Box<dyn Filter>);

impl fmt::Display for BoundedFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Filter for BoundedFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> liquid_core::Result<Value> {
        let Ok(value) = self.0.evaluate(input, runtime) else {
            return Ok(Value::Nil);
        };
        let len = match &value {
            Value::Scalar(scalar) => scalar.to_kstr().len(),
            Value::Nil => 0,
            other => other.render().to_string().len(),
        };
        if len > MAX_FIELD_LEN {
            return Err(liquid_core::Error::with_msg(TOO_LARGE_MARK));
        }
        Ok(value)
    }
}

#[derive(Debug, FilterParameters)]
struct FixedArgs {
    #[parameter(
        description = "Digits after the decimal point (0 to 9).",
        arg_type = "integer"
    )]
    digits: Expression,
}

/// `{{ 59.9 | fixed: 2 }}` → `59.90`: a number with a fixed count of decimals (prices).
#[derive(Clone, liquid_core::ParseFilter, liquid_core::FilterReflection)]
#[filter(
    name = "fixed",
    description = "Formats a number with a fixed count of decimals: `59.9 | fixed: 2` is `59.90`.",
    parameters(FixedArgs),
    parsed(FixedFilter)
)]
struct Fixed;

#[derive(Debug, FromFilterParameters, Display_filter)]
#[name = "fixed"]
struct FixedFilter {
    #[parameters]
    args: FixedArgs,
}

impl Filter for FixedFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> liquid_core::Result<Value> {
        let args = self.args.evaluate(runtime)?;
        let digits = usize::try_from(args.digits.clamp(0, 9)).unwrap_or(0);
        let number = input
            .as_scalar()
            .and_then(|s| s.to_float())
            .ok_or_else(|| liquid_core::Error::with_msg("Number expected"))?;
        Ok(Value::scalar(format!("{number:.digits$}")))
    }
}

/// The root of a rendering: `profile` and `event`; any other name is nil.
struct Globals<'a> {
    profile: Attributes<'a>,
    event: &'a Node,
}

impl<'a> Globals<'a> {
    fn new(context: &Context<'a>) -> Self {
        Self {
            profile: Attributes(context.profile.unwrap_or(&EMPTY_PROFILE)),
            event: context.event.map_or(&NIL, |e| &e.0),
        }
    }
}

impl fmt::Debug for Globals<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Globals")
    }
}

static NIL: Node = Node::Nil;
static EMPTY_PROFILE: BTreeMap<String, AttributeValue> = BTreeMap::new();

/// A profile's attributes, read in place (no copy per subscriber).
#[derive(Debug)]
struct Attributes<'a>(&'a BTreeMap<String, AttributeValue>);

/// A node of the variables' tree that is lenient: a missing key or a path into a scalar is nil.
#[derive(Debug, Clone, Default)]
enum Node {
    #[default]
    Nil,
    Scalar(Scalar),
    List(Vec<Node>),
    Map(BTreeMap<String, Node>),
}

impl Node {
    fn from_json(value: &serde_json::Value) -> Self {
        use serde_json::Value as J;
        match value {
            J::Null => Self::Nil,
            J::Bool(b) => Self::Scalar(Scalar::new(*b)),
            J::Number(n) => match n.as_i64() {
                Some(i) => Self::Scalar(Scalar::new(i)),
                None => Self::Scalar(Scalar::new(n.as_f64().unwrap_or(0.0))),
            },
            J::String(s) => Self::Scalar(Scalar::new(s.clone())),
            J::Array(items) => Self::List(items.iter().map(Self::from_json).collect()),
            J::Object(map) => Self::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), Self::from_json(v)))
                    .collect(),
            ),
        }
    }
}

fn attribute_scalar(value: &AttributeValue) -> ScalarCow<'_> {
    match value {
        AttributeValue::Bool(b) => ScalarCow::new(*b),
        // Counts stored as numbers print as integers (`2`, not `2.0`).
        AttributeValue::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
            ScalarCow::new(*n as i64)
        }
        AttributeValue::Number(n) => ScalarCow::new(*n),
        AttributeValue::Text(s) => ScalarCow::new(s.as_str()),
    }
}

/// Implements [`ValueView`] for a type through three of its own functions: its scalar (if
/// any), its object view (if any), its list view (if any). Objects and lists render as nothing:
/// `{{ profile }}` does not dump a person's attributes into a notification.
macro_rules! value_view {
    ($type:ty, $name:literal) => {
        impl ValueView for $type {
            fn as_debug(&self) -> &dyn fmt::Debug {
                self
            }
            fn render(&self) -> DisplayCow<'_> {
                match self.scalar() {
                    Some(scalar) => DisplayCow::Owned(Box::new(scalar.render().to_string())),
                    None => DisplayCow::Borrowed(&""),
                }
            }
            fn source(&self) -> DisplayCow<'_> {
                match self.scalar() {
                    Some(scalar) => DisplayCow::Owned(Box::new(scalar.source().to_string())),
                    None => DisplayCow::Borrowed(&$name),
                }
            }
            fn type_name(&self) -> &'static str {
                match self.scalar() {
                    Some(scalar) => scalar.type_name(),
                    None => $name,
                }
            }
            fn query_state(&self, state: State) -> bool {
                match self.scalar() {
                    Some(scalar) => scalar.query_state(state),
                    None => self.nil_state(state),
                }
            }
            fn to_kstr(&self) -> KStringCow<'_> {
                match self.scalar() {
                    Some(scalar) => KStringCow::from_string(scalar.to_kstr().into_string()),
                    None => KStringCow::from_static(""),
                }
            }
            fn to_value(&self) -> Value {
                self.owned()
            }
            fn as_scalar(&self) -> Option<ScalarCow<'_>> {
                self.scalar()
            }
            fn as_object(&self) -> Option<&dyn ObjectView> {
                Some(self)
            }
            fn as_array(&self) -> Option<&dyn ArrayView> {
                self.list()
            }
            fn is_nil(&self) -> bool {
                self.nil()
            }
        }
    };
}

value_view!(Node, "nil");
value_view!(Attributes<'_>, "object");
value_view!(Globals<'_>, "object");

impl Node {
    fn scalar(&self) -> Option<ScalarCow<'_>> {
        match self {
            Self::Scalar(s) => Some(s.as_ref()),
            _ => None,
        }
    }
    fn list(&self) -> Option<&dyn ArrayView> {
        match self {
            Self::List(_) => Some(self),
            _ => None,
        }
    }
    fn nil(&self) -> bool {
        matches!(self, Self::Nil)
    }
    fn nil_state(&self, state: State) -> bool {
        match self {
            Self::Nil => !matches!(state, State::Truthy),
            Self::List(items) => match state {
                State::Truthy => true,
                _ => items.is_empty(),
            },
            Self::Map(map) => match state {
                State::Truthy => true,
                _ => map.is_empty(),
            },
            Self::Scalar(_) => false,
        }
    }
    fn owned(&self) -> Value {
        match self {
            Self::Nil | Self::Map(_) => Value::Nil,
            Self::Scalar(s) => Value::Scalar(s.clone()),
            Self::List(items) => Value::Array(items.iter().map(Node::owned).collect()),
        }
    }
}

impl ObjectOnly for Attributes<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ObjectOnly for Globals<'_> {
    fn is_empty(&self) -> bool {
        false
    }
}

/// The scalar, list and nil answers of a view that is only an object.
trait ObjectOnly {
    fn is_empty(&self) -> bool;
    fn scalar(&self) -> Option<ScalarCow<'_>> {
        None
    }
    fn list(&self) -> Option<&dyn ArrayView> {
        None
    }
    fn nil(&self) -> bool {
        false
    }
    fn nil_state(&self, state: State) -> bool {
        matches!(state, State::Truthy) || self.is_empty()
    }
    fn owned(&self) -> Value {
        Value::Nil
    }
}

/// An attribute's value: a scalar whose every key is nil.
impl ValueView for AttributeValue {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        DisplayCow::Owned(Box::new(attribute_scalar(self).render().to_string()))
    }
    fn source(&self) -> DisplayCow<'_> {
        DisplayCow::Owned(Box::new(attribute_scalar(self).source().to_string()))
    }
    fn type_name(&self) -> &'static str {
        attribute_scalar(self).type_name()
    }
    fn query_state(&self, state: State) -> bool {
        attribute_scalar(self).query_state(state)
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        match self {
            AttributeValue::Text(s) => KStringCow::from_ref(s.as_str()),
            other => KStringCow::from_string(attribute_scalar(other).to_kstr().into_string()),
        }
    }
    fn to_value(&self) -> Value {
        Value::Scalar(attribute_scalar(self).into_owned())
    }
    fn as_scalar(&self) -> Option<ScalarCow<'_>> {
        Some(attribute_scalar(self))
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        Some(&NIL)
    }
}

/// Object views: every key answers (nil when absent), so no path is ever "unknown".
macro_rules! lenient_object {
    ($type:ty, |$self:ident, $key:ident| $get:expr, |$it:ident| $iter:expr) => {
        impl ObjectView for $type {
            fn as_value(&self) -> &dyn ValueView {
                self
            }
            fn size(&self) -> i64 {
                let $it = self;
                i64::try_from($iter.count()).unwrap_or(i64::MAX)
            }
            fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
                let $it = self;
                Box::new($iter.map(|(k, _)| k))
            }
            fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
                let $it = self;
                Box::new($iter.map(|(_, v)| v))
            }
            fn iter<'k>(
                &'k self,
            ) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
                let $it = self;
                Box::new($iter)
            }
            fn contains_key(&self, _index: &str) -> bool {
                true
            }
            fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
                let $self = self;
                let $key = index;
                Some($get.unwrap_or(&NIL))
            }
        }
    };
}

lenient_object!(
    Node,
    |node, key| match node {
        Node::Map(map) => map.get(key).map(|v| v as &dyn ValueView),
        _ => None,
    },
    |node| node_entries(node)
);
lenient_object!(
    Attributes<'_>,
    |attributes, key| attributes.0.get(key).map(|v| v as &dyn ValueView),
    |attributes| attributes
        .0
        .iter()
        .map(|(k, v)| (KStringCow::from_ref(k.as_str()), v as &dyn ValueView))
);
lenient_object!(
    Globals<'_>,
    |globals, key| match key {
        "profile" => Some(&globals.profile as &dyn ValueView),
        "event" => Some(globals.event as &dyn ValueView),
        _ => None,
    },
    |globals| [
        (
            KStringCow::from_static("profile"),
            &globals.profile as &dyn ValueView
        ),
        (
            KStringCow::from_static("event"),
            globals.event as &dyn ValueView
        ),
    ]
    .into_iter()
);

fn node_entries(node: &Node) -> Box<dyn Iterator<Item = (KStringCow<'_>, &dyn ValueView)> + '_> {
    match node {
        Node::Map(map) => Box::new(
            map.iter()
                .map(|(k, v)| (KStringCow::from_ref(k.as_str()), v as &dyn ValueView)),
        ),
        _ => Box::new(std::iter::empty()),
    }
}

impl ArrayView for Node {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        match self {
            Self::List(items) => i64::try_from(items.len()).unwrap_or(i64::MAX),
            _ => 0,
        }
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        match self {
            Self::List(items) => Box::new(items.iter().map(|v| v as &dyn ValueView)),
            _ => Box::new(std::iter::empty()),
        }
    }
    fn contains_key(&self, index: i64) -> bool {
        ArrayView::get(self, index).is_some()
    }
    fn get(&self, index: i64) -> Option<&dyn ValueView> {
        let Self::List(items) = self else {
            return None;
        };
        let len = i64::try_from(items.len()).ok()?;
        let index = if index < 0 { len + index } else { index };
        let index = usize::try_from(index).ok()?;
        Some(<[Node]>::get(items, index).unwrap_or(&NIL))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(title: &str, body: Option<&str>) -> Content {
        serde_json::from_value(serde_json::json!({"title": title, "body": body})).unwrap()
    }

    fn attributes(pairs: &[(&str, AttributeValue)]) -> BTreeMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn text(value: &str) -> AttributeValue {
        AttributeValue::Text(value.to_owned())
    }

    /// Renders one title template.
    fn render(source: &str, profile: &BTreeMap<String, AttributeValue>) -> String {
        render_with(source, profile, None).unwrap()
    }

    fn render_with(
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

    fn compile_error(title: &str, body: Option<&str>) -> FieldError {
        ContentTemplate::compile(&content(title, body)).unwrap_err()
    }

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
    fn template_defaults_fill_missing_variables() {
        let ana = attributes(&[("first_name", text("Ana"))]);
        let nobody = attributes(&[]);
        let source = r#"Hi {{ profile.first_name | default: "friend" }}"#;
        assert_eq!(render(source, &ana), "Hi Ana");
        assert_eq!(render(source, &nobody), "Hi friend");
        // An empty text takes the default too (Liquid's rule), a missing one without a
        // default renders nothing.
        assert_eq!(
            render(source, &attributes(&[("first_name", text(""))])),
            "Hi friend"
        );
        assert_eq!(render("Hi {{ profile.first_name }}!", &nobody), "Hi !");
        // Whatever the path, a missing variable is nil: no error at send time.
        for path in [
            "profile.first_name.x",
            "profile.missing.deeper.still",
            "user.name",
            "event.total",
            "profile[\"first name\"]",
            "profile.first_name[3]",
        ] {
            let source = format!(r#"[{{{{ {path} | default: "d" }}}}]"#);
            assert_eq!(render(&source, &ana), "[d]", "{path}");
            assert_eq!(render(&source, &nobody), "[d]", "{path}");
        }
        // Objects never dump a person's attributes.
        assert_eq!(render("{{ profile }}", &ana), "");
    }

    #[test]
    fn template_filters() {
        let profile = attributes(&[
            ("first_name", text("ana maría")),
            ("city", text("  Lisbon ")),
            ("points", AttributeValue::Number(1234.0)),
            ("ratio", AttributeValue::Number(0.4567)),
            ("vip", AttributeValue::Bool(true)),
            ("age", text("unknown")),
        ]);
        let cases = [
            ("{{ profile.first_name | upcase }}", "ANA MARÍA"),
            ("{{ profile.first_name | capitalize }}", "Ana maría"),
            ("{{ profile.city | strip | downcase }}", "lisbon"),
            ("{{ profile.points }}", "1234"),
            ("{{ profile.points | plus: 10 }}", "1244"),
            ("{{ profile.ratio | round: 2 }}", "0.46"),
            ("{{ profile.ratio | times: 100 | round }}%", "46%"),
            ("{{ profile.first_name | truncate: 6 }}", "ana..."),
            ("{{ profile.first_name | size }}", "10"),
            ("{{ profile.vip }}", "true"),
            // A filter that cannot apply gives nil, so a default after it works.
            (r#"{{ profile.age | plus: 1 | default: "?" }}"#, "?"),
            (
                r#"{{ profile.points | divided_by: 0 | default: "n/a" }}"#,
                "n/a",
            ),
            (
                r#"{% if profile.vip %}VIP{% else %}Hi{% endif %} {% unless profile.missing %}new{% endunless %}"#,
                "VIP new",
            ),
            (
                r#"{% case profile.first_name %}{% when "ana maría" %}Olá{% else %}Hello{% endcase %}"#,
                "Olá",
            ),
            (
                r#"{% if profile.first_name == profile.city %}same{% else %}different{% endif %}"#,
                "different",
            ),
            (
                r#"{% raw %}{{ not a variable }}{% endraw %}"#,
                "{{ not a variable }}",
            ),
        ];
        for (source, expected) in cases {
            assert_eq!(render(source, &profile), expected, "{source}");
        }
    }

    #[test]
    fn template_event_properties_and_money() {
        let properties = serde_json::json!({"items": 2, "total": 59.9, "cart": {"id": "c-1"}, "skus": ["a", "b"]});
        let event = EventProperties::new(properties.as_object().unwrap());
        let profile = attributes(&[("first_name", text("Ana"))]);
        let source = r#"{{ profile.first_name }}, your {{ event.items }} items ({{ event.total | fixed: 2 }} €) are waiting"#;
        assert_eq!(
            render_with(source, &profile, Some(&event)).unwrap(),
            "Ana, your 2 items (59.90 €) are waiting"
        );
        let cases = [
            (
                r#"{{ event.total | fixed: 2 | replace: ".", "," }} €"#,
                "59,90 €",
            ),
            ("{{ event.total | fixed: 0 }}", "60"),
            (
                "{{ event.cart.id }} {{ event.skus | join: \"+\" }} {{ event.skus[1] }}",
                "c-1 a+b b",
            ),
            (
                r#"{{ event.cart.missing | default: "-" }}{{ event.skus[9] }}"#,
                "-",
            ),
            (
                r#"{{ event.items | fixed: 2 }} {{ profile.first_name | fixed: 2 | default: "NaN" }}"#,
                "2.00 NaN",
            ),
        ];
        for (source, expected) in cases {
            assert_eq!(
                render_with(source, &profile, Some(&event)).unwrap(),
                expected,
                "{source}"
            );
        }
    }

    #[test]
    fn template_syntax_errors_name_field_line_and_column() {
        let error = compile_error("Hi", Some("Your cart\nis {{ profile.first_name | upcase "));
        assert_eq!(error.field, "content.body");
        assert!(
            error.message.contains("line 2, column"),
            "{}",
            error.message
        );

        let error = compile_error("Hi {{ profile.first_name }", None);
        assert_eq!(error.field, "content.title");
        assert!(
            error.message.contains("line 1, column"),
            "{}",
            error.message
        );

        // Unknown filters have no position from the parser: the failing output is located.
        let error = compile_error("Hi", Some("ok {{ profile.x }}\n  {{ profile.x | shout }}"));
        assert_eq!(error.field, "content.body");
        assert!(
            error.message.contains("line 2, column 3") && error.message.contains("`shout`"),
            "{}",
            error.message
        );

        let error = compile_error("{% if profile.vip %}VIP", None);
        assert!(error.message.contains("endif"), "{}", error.message);

        // Loops, assignments and includes are not part of the language.
        for source in [
            "{% for c in profile.name %}x{% endfor %}",
            "{% assign a = 1 %}",
            "{% capture a %}x{% endcapture %}",
            "{% include 'x' %}",
            "{% render 'x' %}",
        ] {
            let error = compile_error(source, None);
            assert_eq!(error.field, "content.title");
            assert!(
                error.message.contains("line 1, column"),
                "{source}: {}",
                error.message
            );
        }

        let actions = serde_json::json!({"title": "t", "actions": [{"action": "a", "title": "ok"}, {"action": "b", "title": "x", "url": "https://x.example/{{ event.id | nope }}"}]});
        let error =
            ContentTemplate::compile(&serde_json::from_value(actions).unwrap()).unwrap_err();
        assert_eq!(error.field, "content.actions[1].url");
    }

    #[test]
    fn template_rendering_is_bounded() {
        let big = attributes(&[("bio", text(&"x".repeat(3000)))]);
        assert!(matches!(
            render_with("{{ profile.bio }}{{ profile.bio }}", &big, None),
            Err(RenderError::TooLarge { .. })
        ));
        // Growth inside a filter chain stops at the bound, long before memory is at stake.
        let small = attributes(&[("s", text("ab"))]);
        let blowup = format!(
            "{{{{ profile.s{} }}}}",
            r#" | replace: "", "xyz""#.repeat(40)
        );
        assert!(matches!(
            render_with(&blowup, &small, None),
            Err(RenderError::TooLarge { .. })
        ));
        assert_eq!(RenderError::TooLarge { size: None }.label(), "too_large");
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
