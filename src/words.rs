//! What serde says a value should have been ("u64", "a sequence", "socket address"), as a person
//! would say what to send. One table for every edge that reports a mistake of type: the API's
//! bodies, queries and paths, and the configuration file.

/// serde's expectation (`expected …` in its errors) in our words; unknown ones as they are.
pub fn expected(wanted: &str) -> &str {
    match wanted {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a sequence" => "a list",
        "a map" => "an object",
        "a boolean" => "true or false",
        "socket address" => "an address such as 127.0.0.1:8080",
        "path string" => "a path",
        other if other.starts_with("struct ") => "a JSON object",
        other => other,
    }
}
