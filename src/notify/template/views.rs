//! What a rendering reads, as lenient Liquid views: the root (`profile` and `event`), a
//! profile's attributes read in place, an event's properties converted once. A missing key,
//! a path into a scalar or an unknown root is nil; objects and lists render as nothing.

use std::collections::BTreeMap;
use std::fmt;

use liquid_core::model::{
    ArrayView, DisplayCow, KStringCow, ObjectView, Scalar, ScalarCow, State, Value, ValueView,
};

use super::Context;
use crate::store::AttributeValue;

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

/// The root of a rendering: `profile` and `event`; any other name is nil.
pub(super) struct Globals<'a> {
    profile: Attributes<'a>,
    event: &'a Node,
}

impl<'a> Globals<'a> {
    pub(super) fn new(context: &Context<'a>) -> Self {
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
    use super::super::test_support::{attributes, render, render_with, text};
    use super::EventProperties;

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
}
