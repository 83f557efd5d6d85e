//! Why the mock refused a push request, as a status code, a short machine-readable reason (in the
//! style of Apple's `{"reason": "BadJwtToken"}`), and a sentence for the person debugging the
//! sender.

use http::StatusCode;

/// One refusal: the status, a stable reason code, and a human explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Status code answered.
    pub status: StatusCode,
    /// Stable, machine-readable reason (e.g. `BadTtl`, `BadJwtToken`).
    pub reason: &'static str,
    /// What was wrong, for a person.
    pub message: String,
}

impl Rejection {
    pub(crate) fn new(
        status: StatusCode,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason, message)
    }

    /// RFC 8292 §4.1: missing or unusable credentials.
    pub(crate) fn unauthorized(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, reason, message)
    }

    /// RFC 8292 §4.1: credentials present but invalid.
    pub(crate) fn forbidden(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, reason, message)
    }

    /// The JSON body sent with the status.
    pub(crate) fn body(&self) -> String {
        serde_json::json!({
            "code": self.status.as_u16(),
            "reason": self.reason,
            "message": self.message,
        })
        .to_string()
    }
}
