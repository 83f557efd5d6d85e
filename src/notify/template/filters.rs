//! The cut-down Liquid language: the conditional blocks and the filters a template may use,
//! each bounded by [`MAX_FIELD_LEN`] and lenient (nil where it cannot apply), the `fixed`
//! filter of Aviso's own, and the writer that caps a rendered field.

use std::fmt;
use std::sync::LazyLock;

use liquid_core::model::{Value, ValueView};
use liquid_core::parser::{FilterArguments, FilterReflection, ParseFilter};
use liquid_core::runtime::Runtime;
use liquid_core::{Display_filter, Expression, Filter, FilterParameters, FromFilterParameters};
use liquid_lib::stdlib;

use super::MAX_FIELD_LEN;

/// Marks the error a bounded filter returns, to tell it from any other.
pub(super) const TOO_LARGE_MARK: &str = "aviso: rendered value too large";

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
pub(super) static LANGUAGE: LazyLock<Option<liquid::Parser>> = LazyLock::new(|| {
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

/// A writer that refuses to grow past [`MAX_FIELD_LEN`].
#[derive(Default)]
pub(super) struct Capped {
    pub(super) bytes: Vec<u8>,
    pub(super) overflowed: bool,
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

#[cfg(test)]
mod tests {
    use super::super::RenderError;
    use super::super::test_support::{attributes, render, render_with, text};
    use crate::store::AttributeValue;

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
}
