//! The Standard Webhooks signature (<https://www.standardwebhooks.com/>): `webhook-signature:
//! v1,<base64 of HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")>`, with the
//! timestamp in Unix seconds. Receivers verify it with the published libraries; the tests do so
//! with the PyPI `standardwebhooks` package, not with this code.

use aws_lc_rs::hmac;
use base64::Engine as _;

/// The three headers of one signed POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
}

/// Signs `body` as message `id` sent at `timestamp_secs` with `key` (the secret's bytes).
pub fn sign(key: &[u8], id: &str, timestamp_secs: u64, body: &[u8]) -> SignedHeaders {
    let timestamp = timestamp_secs.to_string();
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut context = hmac::Context::with_key(&key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp.as_bytes());
    context.update(b".");
    context.update(body);
    let tag = context.sign();
    SignedHeaders {
        id: id.to_owned(),
        timestamp,
        signature: format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries' tests
    /// (secret `whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw`).
    #[test]
    fn the_reference_example() {
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let signed = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signed.signature,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
