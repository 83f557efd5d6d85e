//! Errors of the template language: a syntax error as the API reports it (the field, then
//! `line L, column C: what`, located even when the parser gives no position), and
//! [`RenderError`], why a subscriber's rendering failed.

use super::filters::FILTERS;
use crate::notify::model::FieldError;
use crate::push::MAX_PLAINTEXT_LEN;

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

/// A syntax error as the API reports it: `line L, column C: what`.
pub(super) fn syntax_error(
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

#[cfg(test)]
mod tests {
    use super::super::ContentTemplate;
    use super::super::test_support::compile_error;

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
}
