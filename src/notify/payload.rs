//! The payload each subscriber receives: a Declarative Web Push message (Safari 18.4+ shows it
//! without running the service worker; `sw/` handles it everywhere else) plus the ids the
//! service worker reports back (`aviso.n`, `aviso.s`). Contract: docs/PUBLIC-API.md.
//!
//! The JSON is serialized once per notification into a [`PayloadTemplate`]; a subscriber's
//! payload is the template with its id spliced in, so a broadcast does no JSON work per message.

use serde_json::{Map, Value, json};

use super::model::Notification;
use crate::push::MAX_PLAINTEXT_LEN;
use crate::store::SubscriptionId;

/// Stands in for the subscription id while serializing; never valid JSON text otherwise.
const PLACEHOLDER: &str = "\u{0}aviso-subscription\u{0}";
/// Length of a subscription id as text (16 hex digits).
const ID_LEN: usize = 16;

/// A notification's payload with a hole for the subscription id.
#[derive(Debug, Clone)]
pub struct PayloadTemplate {
    before: Vec<u8>,
    after: Vec<u8>,
}

impl PayloadTemplate {
    pub fn new(notification: &Notification) -> Self {
        let content = &notification.content;
        let navigate = content.url.clone().unwrap_or_else(|| "/".to_owned());
        let mut shown = Map::new();
        shown.insert("title".into(), json!(content.title));
        shown.insert("navigate".into(), json!(navigate));
        let optional = [
            ("body", &content.body),
            ("icon", &content.icon),
            ("image", &content.image),
            ("badge", &content.badge),
            ("tag", &content.tag),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                shown.insert(key.into(), json!(value));
            }
        }
        if content.require_interaction {
            shown.insert("require_interaction".into(), json!(true));
        }
        if !content.actions.is_empty() {
            let actions: Vec<Value> = content
                .actions
                .iter()
                .map(|a| json!({"action": a.action, "title": a.title, "navigate": a.url.clone().unwrap_or_else(|| navigate.clone())}))
                .collect();
            shown.insert("actions".into(), Value::Array(actions));
        }
        if let Some(data) = &content.data {
            shown.insert("data".into(), data.clone());
        }
        let document = json!({
            "web_push": 8030,
            "notification": shown,
            "aviso": {"n": notification.id, "s": PLACEHOLDER},
        });
        let text = document.to_string();
        // The placeholder's NULs are escaped in JSON text; find the escaped form.
        let escaped = serde_json::to_string(PLACEHOLDER).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        let (before, after) = text.split_once(escaped).unwrap_or((&text, ""));
        Self {
            before: before.as_bytes().to_vec(),
            after: after.as_bytes().to_vec(),
        }
    }

    /// The payload for one subscriber.
    pub fn render(&self, subscription: SubscriptionId) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.before.len() + ID_LEN + self.after.len());
        out.extend_from_slice(&self.before);
        out.extend_from_slice(subscription.to_string().as_bytes());
        out.extend_from_slice(&self.after);
        out
    }

    /// The size of every rendered payload.
    pub fn len(&self) -> usize {
        self.before.len() + ID_LEN + self.after.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Checks that the encoded payload fits a Web Push message; the error says by how much it does not.
pub fn check_fits(notification: &Notification) -> Result<(), String> {
    let size = PayloadTemplate::new(notification).len();
    if size > MAX_PLAINTEXT_LEN {
        return Err(format!(
            "the encoded notification is {size} bytes; Web Push allows {MAX_PLAINTEXT_LEN}: shorten the body, data or URLs by {} bytes",
            size - MAX_PLAINTEXT_LEN
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::model::{Action, Audience, Content, Status};

    #[test]
    fn renders_declarative_web_push_with_the_subscriber_id() {
        let notification = Notification {
            id: "n42".into(),
            app_id: "a".into(),
            audience: Audience::All,
            content: Content {
                title: "Cart \"reminder\"".into(),
                body: Some("Complete your order".into()),
                icon: None,
                image: None,
                badge: None,
                url: Some("https://shop.example/cart".into()),
                actions: vec![Action {
                    action: "open".into(),
                    title: "Open".into(),
                    url: None,
                }],
                tag: Some("cart".into()),
                require_interaction: false,
                data: Some(json!({"sku": 1})),
            },
            ttl: 60,
            urgency: None,
            topic: None,
            send_at_ms: 0,
            created_at_ms: 0,
            status: Status::Queued,
        };
        let template = PayloadTemplate::new(&notification);
        let payload = template.render(SubscriptionId(0xabc));
        assert_eq!(payload.len(), template.len());
        let parsed: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(parsed["web_push"], 8030);
        assert_eq!(parsed["notification"]["title"], "Cart \"reminder\"");
        assert_eq!(
            parsed["notification"]["navigate"],
            "https://shop.example/cart"
        );
        assert_eq!(
            parsed["notification"]["actions"][0]["navigate"],
            "https://shop.example/cart"
        );
        assert_eq!(parsed["notification"]["data"]["sku"], 1);
        assert_eq!(
            parsed["aviso"],
            json!({"n": "n42", "s": "0000000000000abc"})
        );
        assert!(check_fits(&notification).is_ok());
    }
}
