//! Base64url as browsers and push libraries actually produce it.
//!
//! Browsers emit unpadded base64url, but server libraries in the wild pad it or use the
//! standard alphabet, and rejecting those would only push the problem onto site owners.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a base64url string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not valid base64url: {0}")]
pub struct DecodeError(String);

/// Decodes base64url with or without `=` padding; `+` and `/` are accepted as `-` and `_`.
pub fn decode(input: &str) -> Result<Vec<u8>, DecodeError> {
    let trimmed = input.trim_end_matches('=');
    if trimmed.contains(['+', '/']) {
        let normalized: String = trimmed
            .chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                other => other,
            })
            .collect();
        return URL_SAFE_NO_PAD
            .decode(normalized)
            .map_err(|e| DecodeError(e.to_string()));
    }
    URL_SAFE_NO_PAD
        .decode(trimmed)
        .map_err(|e| DecodeError(e.to_string()))
}

/// Encodes as unpadded base64url, the form the Push API and VAPID use.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_padding_and_standard_alphabet() {
        assert_eq!(decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode("-_8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode("+/8=").unwrap(), vec![0xfb, 0xff]);
        assert!(decode("a b").is_err());
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
    }
}
