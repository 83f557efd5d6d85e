//! Receipt tokens: the proof that a `shown`/`clicked`/`closed` report comes from a browser that
//! received the push. Each payload carries `notification.data.aviso.t`, the first [`TOKEN_BYTES`] bytes of
//! HMAC-SHA256(app's receipt secret, `NOTIFICATION_ID` NUL `SUBSCRIPTION_ID`), in base64url
//! without padding; `POST /v1/apps/{app}/events` refuses a report whose token does not match.
//! A push of an A/B variant carries the variant's index (`notification.data.aviso.v`) and its token covers it:
//! HMAC over `NOTIFICATION_ID` NUL `SUBSCRIPTION_ID` NUL `INDEX` (decimal), so a report that
//! names another variant than the one received is refused like a forged token.

use aws_lc_rs::{constant_time, hmac};

use super::Notification;
use crate::push::base64url;
use crate::store::SubscriptionId;

/// How long receipts of a notification are counted after its last chance to arrive (its send
/// time, a local-time shift of up to a day, its TTL): a browser offline shows a push late, and
/// a click may come days after the showing. Each receipt is remembered (to count it once) for
/// as long, then forgotten.
pub const RECEIPT_WINDOW_MS: u64 = 30 * 24 * 3600 * 1000;
const LOCAL_TIME_SHIFT_MS: u64 = 26 * 3600 * 1000;

/// Until when (Unix ms) receipts of `notification` are counted.
pub fn counted_until_ms(notification: &Notification) -> u64 {
    notification.send_at_ms.max(notification.created_at_ms)
        + LOCAL_TIME_SHIFT_MS
        + u64::from(notification.ttl) * 1000
        + RECEIPT_WINDOW_MS
}

/// Bytes of the HMAC kept in a token (128 bits: not guessable, short in a payload).
pub const TOKEN_BYTES: usize = 16;
/// Length of a token as text (base64url without padding).
pub const TOKEN_LEN: usize = 22;

/// An app's receipt key, made once per notification (or request) from its secret.
#[derive(Clone)]
pub struct ReceiptKey(hmac::Key);

impl std::fmt::Debug for ReceiptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReceiptKey(…)")
    }
}

impl ReceiptKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn tag(
        &self,
        notification_id: &str,
        subscription: SubscriptionId,
        variant: Option<usize>,
    ) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.0);
        context.update(notification_id.as_bytes());
        context.update(&[0]);
        context.update(&subscription.hex());
        if let Some(variant) = variant {
            context.update(&[0]);
            context.update(variant.to_string().as_bytes());
        }
        context.sign()
    }

    /// The token of one subscriber's payload.
    pub fn token(&self, notification_id: &str, subscription: SubscriptionId) -> String {
        self.token_for(notification_id, subscription, None)
    }

    /// The token of one subscriber's payload of variant `variant` (`None`: no variants).
    pub fn token_for(
        &self,
        notification_id: &str,
        subscription: SubscriptionId,
        variant: Option<usize>,
    ) -> String {
        let tag = self.tag(notification_id, subscription, variant);
        base64url::encode(&tag.as_ref()[..TOKEN_BYTES])
    }

    /// Whether `token` is the one this key gave the subscriber's payload (compared in
    /// constant time).
    pub fn verify(&self, notification_id: &str, subscription: SubscriptionId, token: &str) -> bool {
        self.verify_for(notification_id, subscription, None, token)
    }

    /// [`ReceiptKey::verify`] for the payload of variant `variant`.
    pub fn verify_for(
        &self,
        notification_id: &str,
        subscription: SubscriptionId,
        variant: Option<usize>,
        token: &str,
    ) -> bool {
        let Ok(given) = base64url::decode(token) else {
            return false;
        };
        let tag = self.tag(notification_id, subscription, variant);
        given.len() == TOKEN_BYTES
            && constant_time::verify_slices_are_equal(&given, &tag.as_ref()[..TOKEN_BYTES]).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_for_its_pair_only() {
        let key = ReceiptKey::new(&[7; 32]);
        let id = SubscriptionId(0x1234);
        let token = key.token("n1", id);
        assert_eq!(token.len(), TOKEN_LEN);
        assert!(key.verify("n1", id, &token));
        assert!(!key.verify("n2", id, &token));
        assert!(!key.verify("n1", SubscriptionId(0x1235), &token));
        assert!(!ReceiptKey::new(&[8; 32]).verify("n1", id, &token));
        assert!(!key.verify("n1", id, &token[..TOKEN_LEN - 1]));
        assert!(!key.verify("n1", id, "not base64!"));
    }

    #[test]
    fn a_variant_token_verifies_for_its_variant_only() {
        let key = ReceiptKey::new(&[7; 32]);
        let id = SubscriptionId(0x1234);
        let token = key.token_for("n1", id, Some(1));
        assert!(key.verify_for("n1", id, Some(1), &token));
        assert!(!key.verify_for("n1", id, Some(0), &token));
        assert!(!key.verify("n1", id, &token));
        assert!(!key.verify_for("n1", id, Some(1), &key.token("n1", id)));
    }
}
