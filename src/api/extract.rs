//! Extractors whose rejections are problem documents: a client's malformed JSON, path or query
//! gets a 4xx that says what to fix, never axum's plain-text default. A mistake of shape names
//! the field at fault (`field`: `content.title`, `audience.external_ids[3]`, the query's
//! `limit`) and says what it must be, in our words rather than the parser's.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// JSON body; unknown fields are refused by the types themselves (`deny_unknown_fields`).
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&request) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::bad(
                        "body",
                        format!("the body could not be read: {}", e.body_text()),
                    )
                }
            })?;
        check_object(&bytes)?;
        parse_json(&bytes).map(Self)
    }
}

/// Every body this extractor reads is one JSON object. Checked before the types read it: serde
/// would also build a struct from an array of its fields in order, so `[]` would pass as a
/// body whose fields are all optional (a profile's changes, a policy).
fn check_object(bytes: &[u8]) -> Result<(), ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        Some(b'[') => Err(ApiError::bad(
            "body",
            "a JSON object is expected (`{...}` with the fields this operation documents), not an array",
        )),
        _ => Err(ApiError::bad(
            "body",
            "a JSON object is expected (`{...}` with the fields this operation documents)",
        )),
    }
}

/// `Content-Type: application/json` (or `application/…+json`), as axum's own extractor wants.
fn is_json(request: &Request) -> bool {
    let Some(content_type) = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

/// Deserializes a request body, naming the field of the first mistake.
///
/// A whole number written with a fraction (`186.0`) is a JSON Schema `integer`, so it is taken
/// where an integer is due: when the direct read refuses one, the body is read again as a
/// JSON value with such numbers made integers (only then: the common body is read once).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    parse_json_in(bytes, "body")
}

/// [`parse_json`] for a part of a body (`line`: one line of NDJSON), which a mistake that is
/// not in one field names.
pub fn parse_json_in<T: DeserializeOwned>(bytes: &[u8], whole: &str) -> Result<T, ApiError> {
    let not_json = |e: &dyn std::fmt::Display| {
        ApiError::bad(whole, format!("the {whole} is not valid JSON: {e}"))
    };
    let refusal = |error: serde_path_to_error::Error<serde_json::Error>| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_data() {
            let (field, detail) = explain(&path, &inner.to_string(), whole);
            ApiError::bad(field, detail)
        } else {
            not_json(&inner)
        }
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let direct = serde_path_to_error::deserialize(&mut deserializer);
    let value = match direct {
        Ok(value) => value,
        Err(error) if error.inner().to_string().contains("floating point `") => {
            let mut value: serde_json::Value =
                serde_json::from_slice(bytes).map_err(|e| not_json(&e))?;
            whole_numbers_as_integers(&mut value);
            return serde_path_to_error::deserialize(value).map_err(refusal);
        }
        Err(error) => return Err(refusal(error)),
    };
    deserializer.end().map_err(|e| not_json(&e))?;
    Ok(value)
}

/// Every number in `value` that is whole and exact in an `f64` (|n| < 2^53) becomes an integer.
fn whole_numbers_as_integers(value: &mut serde_json::Value) {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match value {
        serde_json::Value::Number(number) if !number.is_i64() && !number.is_u64() => {
            if let Some(float) = number.as_f64()
                && float.fract() == 0.0
                && float.abs() < EXACT
            {
                *number = serde_json::Number::from(float as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        serde_json::Value::Object(fields) => {
            fields.values_mut().for_each(whole_numbers_as_integers)
        }
        _ => {}
    }
}

/// Our words for serde's: which field, and what it must be. `whole` names what the path is in
/// (`body`, `query`), the field of a mistake that is not in one field.
fn explain(path: &str, message: &str, whole: &str) -> (String, String) {
    // The path ends at the field itself for some errors and at its parent for others.
    let at = |name: &str| match path {
        "" | "." => name.to_owned(),
        field if field == name || field.ends_with(&format!(".{name}")) => field.to_owned(),
        parent => format!("{parent}.{name}"),
    };
    let here = || match path {
        "" | "." => whole.to_owned(),
        field => field.to_owned(),
    };
    // serde_json appends the position: the field's name says more.
    let message = message
        .rsplit_once(" at line ")
        .map_or(message, |(text, _)| text);
    let quoted = |text: &str| {
        text.split_once('`')
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(name, rest)| (name.to_owned(), rest.to_owned()))
    };
    if let Some(rest) = message.strip_prefix("missing field ")
        && let Some((name, _)) = quoted(rest)
    {
        return (at(&name), format!("`{name}` is required"));
    }
    // "…, expected one of `a`, `b`" → "`a`, `b`".
    let choices = |rest: &str| {
        rest.trim_start_matches(", ")
            .replace("expected one of ", "")
            .replace("expected ", "")
    };
    if let Some(rest) = message.strip_prefix("duplicate field ")
        && let Some((name, _)) = quoted(rest)
    {
        return (at(&name), format!("`{name}` is given twice: give it once"));
    }
    if let Some(rest) = message.strip_prefix("unknown field ")
        && let Some((name, rest)) = quoted(rest)
    {
        let known = choices(&rest);
        return (
            at(&name),
            format!("`{name}` is not a field here; the fields are {known}"),
        );
    }
    if let Some(rest) = message.strip_prefix("unknown variant ")
        && let Some((name, rest)) = quoted(rest)
    {
        let known = choices(&rest);
        return (
            here(),
            format!("`{}`: `{name}` is not one of {known}", here()),
        );
    }
    if let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .or_else(|| message.strip_prefix("invalid length "))
        && let Some((got, wanted)) = rest.split_once(", expected ")
    {
        return (
            here(),
            format!(
                "`{}` must be {}, not {got}",
                here(),
                crate::words::expected(wanted)
            ),
        );
    }
    // A type's own refusal (`invalid value: subscription id `x` is not 16 hex digits`) says
    // what is wrong already; serde's prefix adds nothing.
    let message = message.strip_prefix("invalid value: ").unwrap_or(message);
    (here(), message.to_owned())
}

/// Path parameters. Every path parameter of the API is text, so the one mistake a client can
/// make here is bytes that are not UTF-8 once percent-decoded: named by its parameter.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(|rejection: PathRejection| {
                let kind = match &rejection {
                    PathRejection::FailedToDeserializePathParams(e) => Some(e.kind()),
                    _ => None,
                };
                match kind {
                    Some(ErrorKind::InvalidUtf8InPathParam { key }) => ApiError::bad(
                        key,
                        format!("`{key}` must be UTF-8 text once percent-decoded"),
                    ),
                    Some(ErrorKind::ParseErrorAtKey {
                        key,
                        value,
                        expected_type,
                    }) => ApiError::bad(
                        key,
                        format!(
                            "`{key}` must be {}, not `{value}`",
                            crate::words::expected(expected_type)
                        ),
                    ),
                    _ => ApiError::BadRequest {
                        field: None,
                        detail: rejection.body_text(),
                    },
                }
            })
    }
}

/// Query parameters (`?limit=20&status=queued`), read as axum's `Query` reads them
/// (`serde_urlencoded`), but a mistake names its parameter (`field`) and says what it must be:
/// `?limit=x` is "`limit` must be a whole number written in digits", not the parser's
/// "invalid digit found in string".
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Self)
    }
}

/// Deserializes a query string, naming the parameter of the first mistake.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let pairs = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(pairs).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        let (field, detail) = explain(&path, &message, "query");
        // A parameter's value is text parsed by the type's `FromStr`: its errors, in our words.
        let detail = match message.as_str() {
            "invalid digit found in string" | "cannot parse integer from empty string" => {
                format!("`{field}` must be a whole number written in digits, such as 20")
            }
            "number too large to fit in target type" => format!("`{field}` is too large"),
            "invalid float literal" => format!("`{field}` must be a number, such as 0.5"),
            "provided string was not `true` or `false`" => {
                format!("`{field}` must be `true` or `false`")
            }
            _ => detail,
        };
        ApiError::bad(field, detail)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::NotificationRequest;

    /// JSON Schema's `integer` holds `60.0`: a whole number with a fraction is taken, a
    /// fraction is still refused by name.
    #[test]
    fn whole_numbers_written_with_a_fraction_are_integers() {
        let taken = parse_json::<NotificationRequest>(
            br#"{"audience": "all", "content": {"title": "t"}, "ttl": 60.0}"#,
        )
        .unwrap();
        assert_eq!(taken.ttl, Some(60));
        let (field, _) = refused(r#"{"audience": "all", "content": {"title": "t"}, "ttl": 60.5}"#);
        assert_eq!(field, "ttl");
    }

    /// A number is read exactly, whichever path it takes: the largest `f64` below 1 is a valid
    /// share, on the direct read and on the second read a whole number with a fraction
    /// (`"weight": 2.0`) sends the body through (schemathesis seed 3959951869 found both
    /// reading it as 1.0).
    #[test]
    fn numbers_are_read_exactly_on_both_paths() {
        let body = |weight: &str| {
            format!(
                r#"{{"audience": "all", "winner": {{"fraction": 0.9999999999999999, "metric": "shown",
                    "after_secs": 60}}, "variants": [{{"weight": {weight}, "content": {{"title": "a"}}}},
                    {{"weight": 1, "content": {{"title": "b"}}}}]}}"#
            )
        };
        for weight in ["2", "2.0"] {
            let taken = parse_json::<NotificationRequest>(body(weight).as_bytes()).unwrap();
            let fraction = taken.winner.expect("winner").fraction;
            assert!(fraction < 1.0, "weight {weight}: read as {fraction}");
        }
    }

    fn refused(json: &str) -> (String, String) {
        match parse_json::<NotificationRequest>(json.as_bytes()) {
            Err(ApiError::BadRequest {
                field: Some(field),
                detail,
            }) => (field, detail),
            Err(other) => panic!("{json}: {other:?}"),
            Ok(_) => panic!("{json}: accepted"),
        }
    }

    #[test]
    fn a_wrong_shape_names_the_field_in_our_words() {
        // (`content` may be left out for `variants`: that rule is the model's, not the shape's.)
        assert_eq!(
            refused(r#"{"content": {"title": "x"}}"#),
            ("audience".into(), "`audience` is required".into())
        );
        let (field, detail) = refused(r#"{"audience": "all", "content": {"title": 3}}"#);
        assert_eq!(field, "content.title");
        assert_eq!(detail, "`content.title` must be a string, not integer `3`");
        let (field, detail) =
            refused(r#"{"audience": "all", "content": {"title": "x", "colour": 1}}"#);
        assert_eq!(field, "content.colour");
        assert!(
            detail.starts_with("`colour` is not a field here; the fields are `title`"),
            "{detail}"
        );
        let (field, detail) = refused(r#"{"audience": "everyone", "content": {"title": "x"}}"#);
        assert_eq!(field, "audience");
        assert!(detail.contains("`everyone` is not one of"), "{detail}");
        let (field, _) =
            refused(r#"{"audience": {"external_ids": ["a", 7]}, "content": {"title": "x"}}"#);
        assert_eq!(field, "audience.external_ids[1]");
        let (_, detail) = refused(r#"{"audience": "all", "ttl": -5, "content": {"title": "x"}}"#);
        assert_eq!(
            detail,
            "`ttl` must be a whole number, 0 or more, not integer `-5`"
        );
        let (field, detail) = refused(r#"{"audience": "all", "content": {"title": "x"}} x"#);
        assert_eq!(field, "body");
        assert!(detail.contains("not valid JSON"), "{detail}");
    }
}
