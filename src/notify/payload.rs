//! The payload each subscriber receives: a Declarative Web Push message (Safari 18.4+ shows it
//! itself; `sw/` shows it everywhere else), marked `mutable` so that Safari hands it to the
//! service worker first, and carrying in the notification's `data` the ids the service worker
//! reports back (`data.aviso.n`, `data.aviso.s`) with the receipt token that proves them
//! (`data.aviso.t`, `notify/receipt.rs`); the app's own `data` is `data.data`.
//! Contract: docs/PUBLIC-API.md.
//!
//! The JSON is serialized once per notification into a [`PayloadTemplate`]; a subscriber's
//! payload is the template with its id and token spliced in, so a broadcast does no JSON work per message.
//! When the content has variables (`src/notify/template/`), the JSON is still serialized once,
//! with a hole for each templated field: a subscriber's payload is the skeleton with the fields
//! rendered from its profile (each escaped as a JSON string) and its id spliced in.

use serde_json::{Map, Value, json};

use super::model::{Content, Notification};
use super::receipt::{ReceiptKey, TOKEN_LEN};
use super::template::{ContentTemplate, Context, EventProperties, RenderError};
use crate::push::MAX_PLAINTEXT_LEN;
use crate::store::{Profile, Subscription, SubscriptionId};

/// Stands in for the subscription id while serializing; never valid JSON text otherwise.
const PLACEHOLDER: &str = "\u{0}aviso-subscription\u{0}";
/// Stands in for the receipt token while serializing.
const TOKEN_PLACEHOLDER: &str = "\u{0}aviso-token\u{0}";
/// Stands in for the `i`-th templated field (followed by `i` and another NUL).
const FIELD_MARK: &str = "\u{0}aviso-field-";
/// Length of a subscription id as text (16 hex digits).
const ID_LEN: usize = 16;

/// A notification's payload with a hole for the subscription id (and, with variables, for each
/// templated field).
#[derive(Debug)]
pub struct PayloadTemplate {
    /// The document around its two holes: `before ID middle TOKEN after`.
    before: Vec<u8>,
    middle: Vec<u8>,
    after: Vec<u8>,
    personal: Option<Personal>,
    notification_id: String,
    /// The A/B variant whose content this is (`data.aviso.v`, covered by the token).
    variant: Option<usize>,
    key: ReceiptKey,
}

/// The payload of a notification with variables.
#[derive(Debug)]
struct Personal {
    content: ContentTemplate,
    /// JSON text around the holes: `pieces[0] hole[0] pieces[1] … hole[n-1] pieces[n]`.
    pieces: Vec<Vec<u8>>,
    holes: Vec<Hole>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hole {
    Subscription,
    Token,
    /// The `i`-th rendered template field, written as a whole JSON string.
    Field(usize),
}

/// The Declarative Web Push document of a notification with this content (of this variant).
fn document(notification: &Notification, content: &Content, variant: Option<usize>) -> String {
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
    let mut aviso = json!({"n": notification.id, "s": PLACEHOLDER, "t": TOKEN_PLACEHOLDER});
    if let Some(variant) = variant {
        aviso["v"] = json!(variant);
    }
    // The ids travel in the notification's own `data`: where a browser shows the message
    // itself (Safari 18.4+), the service worker sees only the notification, not the message.
    let mut data = Map::new();
    data.insert("aviso".into(), aviso);
    if let Some(app_data) = &content.data {
        data.insert("data".into(), app_data.clone());
    }
    shown.insert("data".into(), Value::Object(data));
    // `mutable`: the browser hands the notification to the service worker before showing it
    // (Safari's `pushnotification` event, the Push API's `push` event with a `notification`),
    // so that `shown` and `clicked` are reported from there too.
    shown.insert("mutable".into(), json!(true));
    json!({
        "web_push": 8030,
        "notification": shown,
    })
    .to_string()
}

/// A placeholder as it appears in JSON text (its NULs escaped).
fn escaped(placeholder: &str) -> String {
    let quoted = serde_json::to_string(placeholder).unwrap_or_default();
    quoted.trim_matches('"').to_owned()
}

/// Cuts a skeleton's JSON text at its holes.
fn cut(text: &str) -> (Vec<Vec<u8>>, Vec<Hole>) {
    let id = escaped(PLACEHOLDER);
    let token = escaped(TOKEN_PLACEHOLDER);
    let field = escaped(FIELD_MARK);
    let nul = escaped("\u{0}");
    let (mut pieces, mut holes) = (Vec::new(), Vec::new());
    let mut rest = text;
    loop {
        // The nearest hole, and the length of its placeholder.
        let next = [
            (rest.find(&id), Hole::Subscription, id.len()),
            (rest.find(&token), Hole::Token, token.len()),
            (rest.find(&field), Hole::Field(0), field.len()),
        ]
        .into_iter()
        .filter_map(|(at, hole, len)| at.map(|at| (at, hole, len)))
        .min_by_key(|(at, _, _)| *at);
        match next {
            Some((at, hole @ (Hole::Subscription | Hole::Token), len)) => {
                pieces.push(rest.as_bytes()[..at].to_vec());
                holes.push(hole);
                rest = &rest[at + len..];
            }
            Some((at, Hole::Field(_), len)) => {
                // `"<mark>i<nul>"`: the hole takes the quotes, the rendered text brings its own.
                let digits = &rest[at + len..];
                let end = digits.find(&nul).unwrap_or(digits.len());
                let index = digits[..end].parse().unwrap_or(usize::MAX);
                pieces.push(rest.as_bytes()[..at.saturating_sub(1)].to_vec());
                holes.push(Hole::Field(index));
                rest = digits.get(end + nul.len() + 1..).unwrap_or("");
            }
            None => {
                pieces.push(rest.as_bytes().to_vec());
                return (pieces, holes);
            }
        }
    }
}

/// What a subscriber's payload is rendered from: the profile it is linked to (none, when it
/// has none or the batch read none: every variable its default), and the triggering event's
/// properties.
fn context_for<'a>(
    profile: Option<&'a Profile>,
    event: Option<&'a EventProperties>,
) -> Context<'a> {
    Context {
        profile: profile.map(|p| &p.attributes),
        event,
    }
}

impl PayloadTemplate {
    /// The notification's payload, its receipt tokens made with `key` (the app's); a content
    /// whose templates do not compile (a notification stored before it was validated) is sent
    /// as written. A notification with variants: its first variant's (see
    /// [`PayloadTemplate::all`]).
    pub fn new(notification: &Notification, key: ReceiptKey) -> Self {
        match notification.variants.first() {
            Some(first) => Self::compiled_or_literal(notification, &first.content, Some(0), key),
            None => Self::compiled_or_literal(notification, &notification.content, None, key),
        }
    }

    /// One payload per variant, in their order (one for a notification without variants):
    /// each variant's templates compiled once.
    pub fn all(notification: &Notification, key: ReceiptKey) -> Vec<Self> {
        if notification.variants.is_empty() {
            return vec![Self::new(notification, key)];
        }
        notification
            .variants
            .iter()
            .enumerate()
            .map(|(i, variant)| {
                Self::compiled_or_literal(notification, &variant.content, Some(i), key.clone())
            })
            .collect()
    }

    fn compiled_or_literal(
        notification: &Notification,
        content: &Content,
        variant: Option<usize>,
        key: ReceiptKey,
    ) -> Self {
        Self::compile(notification, content, variant, key.clone()).unwrap_or_else(|error| {
            tracing::warn!(notification = %notification.id, %error, "template does not compile; sending it as written");
            Self::literal(notification, content, variant, key)
        })
    }

    /// The notification's payload, its templates compiled once.
    pub fn try_new(
        notification: &Notification,
        key: ReceiptKey,
    ) -> Result<Self, super::model::FieldError> {
        Self::compile(notification, &notification.content, None, key)
    }

    fn compile(
        notification: &Notification,
        content: &Content,
        variant: Option<usize>,
        key: ReceiptKey,
    ) -> Result<Self, super::model::FieldError> {
        let compiled = ContentTemplate::compile(content)?;
        if !compiled.uses_variables() {
            return Ok(Self::literal(notification, content, variant, key));
        }
        let skeleton = compiled.with_holes(content, |i| format!("{FIELD_MARK}{i}\u{0}"));
        let (pieces, holes) = cut(&document(notification, &skeleton, variant));
        let literal = Self::literal(notification, content, variant, key);
        Ok(Self {
            personal: Some(Personal {
                content: compiled,
                pieces,
                holes,
            }),
            ..literal
        })
    }

    /// Today's path: serialized once, the id and token spliced in per message.
    fn literal(
        notification: &Notification,
        content: &Content,
        variant: Option<usize>,
        key: ReceiptKey,
    ) -> Self {
        let text = document(notification, content, variant);
        let (before, rest) = text
            .split_once(&escaped(PLACEHOLDER))
            .unwrap_or((&text, ""));
        let (middle, after) = rest
            .split_once(&escaped(TOKEN_PLACEHOLDER))
            .unwrap_or((rest, ""));
        Self {
            before: before.as_bytes().to_vec(),
            middle: middle.as_bytes().to_vec(),
            after: after.as_bytes().to_vec(),
            personal: None,
            notification_id: notification.id.clone(),
            variant,
            key,
        }
    }

    /// The A/B variant this payload is of (`None` without variants).
    pub fn variant(&self) -> Option<usize> {
        self.variant
    }

    /// The receipt token of one subscriber's payload.
    fn token(&self, subscription: SubscriptionId) -> String {
        self.key
            .token_for(&self.notification_id, subscription, self.variant)
    }

    /// Whether payloads differ per subscriber (then use [`PayloadTemplate::render_subscriber`]
    /// with the batch's profiles).
    pub fn uses_variables(&self) -> bool {
        self.personal.is_some()
    }

    /// The payload for one subscriber of a notification without variables. With variables
    /// it is rendered without a profile (each variable its default, which creation checked
    /// fits): use [`PayloadTemplate::render_subscriber`] to personalise.
    pub fn render(&self, subscription: SubscriptionId) -> Vec<u8> {
        if self.personal.is_some()
            && let Ok(payload) = self.render_for(subscription, &Context::default())
        {
            return payload;
        }
        self.splice(subscription)
    }

    /// Today's path: the serialized document with the id and token spliced in.
    fn splice(&self, subscription: SubscriptionId) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        out.extend_from_slice(&self.before);
        out.extend_from_slice(&subscription.hex());
        out.extend_from_slice(&self.middle);
        out.extend_from_slice(self.token(subscription).as_bytes());
        out.extend_from_slice(&self.after);
        out
    }

    /// The payload for one subscriber, personalised from `context`.
    pub fn render_for(
        &self,
        subscription: SubscriptionId,
        context: &Context<'_>,
    ) -> Result<Vec<u8>, RenderError> {
        let Some(personal) = &self.personal else {
            return Ok(self.splice(subscription));
        };
        let fields = personal.content.render_templates(context)?;
        let guess = personal.pieces.iter().map(Vec::len).sum::<usize>()
            + fields.iter().map(|f| f.len() + 2).sum::<usize>()
            + ID_LEN
            + TOKEN_LEN;
        let mut out = Vec::with_capacity(guess + guess / 8);
        let id = subscription.hex();
        for (piece, hole) in personal.pieces.iter().zip(&personal.holes) {
            out.extend_from_slice(piece);
            match hole {
                Hole::Subscription => out.extend_from_slice(&id),
                Hole::Token => out.extend_from_slice(self.token(subscription).as_bytes()),
                Hole::Field(i) => {
                    let text = fields.get(*i).map_or("", String::as_str);
                    serde_json::to_writer(&mut out, text)
                        .map_err(|e| RenderError::Template(e.to_string()))?;
                }
            }
        }
        if let Some(last) = personal.pieces.last() {
            out.extend_from_slice(last);
        }
        if out.len() > MAX_PLAINTEXT_LEN {
            return Err(RenderError::TooLarge {
                size: Some(out.len()),
            });
        }
        Ok(out)
    }

    /// One subscriber's payload: rendered from the profile it is linked to (`None`: it has
    /// none, every variable its default) and the triggering event's properties, if any; the
    /// engine reads a batch's profiles in one store call and renders each subscriber by this.
    /// Without variables this is [`render`].
    ///
    /// [`render`]: PayloadTemplate::render
    pub fn render_subscriber(
        &self,
        subscription: &Subscription,
        profile: Option<&Profile>,
        event: Option<&EventProperties>,
    ) -> Result<Vec<u8>, RenderError> {
        self.render_for(subscription.id, &context_for(profile, event))
    }

    /// The size of every payload without variables (with variables: of the text around the
    /// fields, which each subscriber's rendering adds to).
    pub fn len(&self) -> usize {
        match &self.personal {
            None => self.before.len() + ID_LEN + self.middle.len() + TOKEN_LEN + self.after.len(),
            Some(personal) => {
                personal.pieces.iter().map(Vec::len).sum::<usize>() + ID_LEN + TOKEN_LEN
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Checks that the encoded payload fits a Web Push message (with variants: each variant's;
/// with templates: as rendered without a profile, each variable its default); the error names
/// the variant (`None` without variants) and says by how much it does not fit.
pub fn check_fits(notification: &Notification) -> Result<(), (Option<usize>, String)> {
    // Any key: every token has the same length.
    let key = ReceiptKey::new(&[0; 32]);
    let contents: Vec<(Option<usize>, &Content)> = match notification.variants.is_empty() {
        true => vec![(None, &notification.content)],
        false => notification
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| (Some(i), &v.content))
            .collect(),
    };
    for (variant, content) in contents {
        let template = PayloadTemplate::compile(notification, content, variant, key.clone())
            .map_err(|e| (variant, e.to_string()))?;
        let size = match template.render_for(SubscriptionId(0), &Context::default()) {
            Ok(payload) => payload.len(),
            Err(RenderError::TooLarge { size: Some(size) }) => size,
            Err(error) => return Err((variant, error.to_string())),
        };
        if size > MAX_PLAINTEXT_LEN {
            return Err((
                variant,
                format!(
                    "the encoded notification is {size} bytes; Web Push allows {MAX_PLAINTEXT_LEN}: shorten the body, data or URLs by {} bytes",
                    size - MAX_PLAINTEXT_LEN
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn key() -> ReceiptKey {
        ReceiptKey::new(&[9; 32])
    }
    use crate::store::AttributeValue;
    use proptest::prelude::*;

    #[test]
    fn renders_declarative_web_push_with_the_subscriber_id() {
        let notification = notification_with(json!({
            "title": "Cart \"reminder\"",
            "body": "Complete your order",
            "url": "https://shop.example/cart",
            "actions": [{"action": "open", "title": "Open"}],
            "tag": "cart",
            "data": {"sku": 1},
        }));
        let template = PayloadTemplate::new(&notification, key());
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
        assert_eq!(parsed["notification"]["data"]["data"]["sku"], 1);
        assert_eq!(parsed["notification"]["mutable"], true);
        assert!(parsed.get("aviso").is_none());
        assert_eq!(
            parsed["notification"]["data"]["aviso"],
            json!({"n": "n42", "s": "0000000000000abc", "t": key().token("n42", SubscriptionId(0xabc))})
        );
        assert!(check_fits(&notification).is_ok());
    }

    #[test]
    fn each_variant_has_its_payload_and_a_token_over_its_index() {
        let mut notification = notification_with(json!({"title": "A"}));
        notification.variants = serde_json::from_value(json!([
            {"weight": 1, "content": {"title": "A"}},
            {"weight": 2, "content": {"title": "Hi {{ profile.name | default: \"B\" }}"}},
        ]))
        .unwrap();
        let templates = PayloadTemplate::all(&notification, key());
        assert_eq!(templates.len(), 2);
        assert!(!templates[0].uses_variables() && templates[1].uses_variables());
        let id = SubscriptionId(0xab);
        for (i, (template, title)) in templates.iter().zip(["A", "Hi B"]).enumerate() {
            assert_eq!(template.variant(), Some(i));
            let parsed: Value = serde_json::from_slice(&template.render(id)).unwrap();
            assert_eq!(parsed["notification"]["title"], title);
            assert_eq!(parsed["notification"]["data"]["aviso"]["v"], i);
            let token = parsed["notification"]["data"]["aviso"]["t"]
                .as_str()
                .unwrap();
            assert!(key().verify_for("n42", id, Some(i), token));
            assert!(!key().verify("n42", id, token));
        }
        assert!(check_fits(&notification).is_ok());
        // Without variants: no `v`, and the token of today.
        let plain: Value = serde_json::from_slice(
            &PayloadTemplate::new(&notification_with(json!({"title": "A"})), key()).render(id),
        )
        .unwrap();
        assert!(plain["notification"]["data"]["aviso"].get("v").is_none());
        assert_eq!(
            plain["notification"]["data"]["aviso"]["t"],
            key().token("n42", id)
        );
    }

    /// A queued broadcast of `content`, every other field as a stored document leaves it out.
    fn notification_with(content: serde_json::Value) -> Notification {
        serde_json::from_value(json!({
            "id": "n42", "app_id": "a", "audience": "all", "content": content, "ttl": 60,
            "send_at_ms": 0, "created_at_ms": 0, "status": "queued",
        }))
        .unwrap()
    }

    fn subscription(id: u64, external_id: Option<&str>) -> Subscription {
        let mut subscription = Subscription::new(
            "a",
            "https://fcm.googleapis.com/fcm/send/x",
            [4; 65],
            [1; 16],
            0,
        );
        subscription.id = SubscriptionId(id);
        subscription.external_id = external_id.map(str::to_owned);
        subscription
    }

    /// Each subscriber's payload, its profile looked up in `profiles` (as the engine's batch
    /// reads do through the store).
    fn render_each(
        template: &PayloadTemplate,
        subscriptions: &[Subscription],
        profiles: &HashMap<String, Profile>,
        event: Option<&EventProperties>,
    ) -> Vec<Result<Vec<u8>, RenderError>> {
        subscriptions
            .iter()
            .map(|subscription| {
                let profile = subscription
                    .external_id
                    .as_ref()
                    .and_then(|id| profiles.get(id));
                template.render_subscriber(subscription, profile, event)
            })
            .collect()
    }

    fn profile(external_id: &str, pairs: &[(&str, AttributeValue)]) -> (String, Profile) {
        let profile = Profile {
            external_id: external_id.to_owned(),
            attributes: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            ..Profile::default()
        };
        (external_id.to_owned(), profile)
    }

    #[test]
    fn template_free_notification_keeps_the_spliced_path() {
        let notification =
            notification_with(json!({"title": "Sale", "body": "50% off {not a template}"}));
        let template = PayloadTemplate::new(&notification, key());
        assert!(!template.uses_variables());
        let id = SubscriptionId(0xfeed);
        assert_eq!(
            template.render_for(id, &Context::default()).unwrap(),
            template.render(id)
        );
        let batch = render_each(
            &template,
            &[subscription(0xfeed, Some("p"))],
            &HashMap::new(),
            None,
        );
        assert_eq!(batch, vec![Ok(template.render(id))]);
    }

    #[test]
    fn template_batch_personalises_each_subscriber_from_its_profile() {
        let notification = notification_with(json!({
            "title": "Hi {{ profile.first_name | default: \"friend\" }}",
            "body": "{{ event.items }} items ({{ event.total | fixed: 2 }} €) are waiting",
            "url": "https://shop.example/cart/{{ profile.cart | url_encode }}",
            "actions": [{"action": "open", "title": "Open {{ profile.first_name }}"}],
            "data": {"k": 1},
        }));
        let template = PayloadTemplate::new(&notification, key());
        assert!(template.uses_variables());
        let profiles: HashMap<String, Profile> = [
            profile(
                "ana",
                &[
                    (
                        "first_name",
                        AttributeValue::Text("Ana \"A\"\nSilva\u{1}".into()),
                    ),
                    ("cart", AttributeValue::Text("c 1".into())),
                ],
            ),
            profile("bo", &[]),
        ]
        .into_iter()
        .collect();
        let properties = json!({"items": 2, "total": 59.9});
        let event = EventProperties::new(properties.as_object().unwrap());
        let subscriptions = [
            subscription(1, Some("ana")),
            subscription(2, Some("bo")),
            subscription(3, None),
            subscription(4, Some("unknown")),
        ];
        let payloads = render_each(&template, &subscriptions, &profiles, Some(&event));
        assert_eq!(payloads.len(), 4);
        let parsed: Vec<Value> = payloads
            .iter()
            .map(|p| serde_json::from_slice(p.as_ref().unwrap()).unwrap())
            .collect();
        let ana = &parsed[0]["notification"];
        assert_eq!(ana["title"], "Hi Ana \"A\"\nSilva\u{1}");
        assert_eq!(ana["body"], "2 items (59.90 €) are waiting");
        assert_eq!(ana["navigate"], "https://shop.example/cart/c%201");
        assert_eq!(
            ana["actions"][0]["navigate"],
            "https://shop.example/cart/c%201"
        );
        assert_eq!(ana["actions"][0]["title"], "Open Ana \"A\"\nSilva\u{1}");
        assert_eq!(ana["data"]["data"], json!({"k": 1}));
        assert_eq!(
            parsed[0]["notification"]["data"]["aviso"],
            json!({"n": "n42", "s": "0000000000000001", "t": key().token("n42", SubscriptionId(1))})
        );
        // Until the engine personalises, `render` gives every variable its default.
        let fallback: Value = serde_json::from_slice(&template.render(SubscriptionId(2))).unwrap();
        assert_eq!(fallback["notification"]["title"], "Hi friend");
        assert_eq!(fallback["notification"]["body"], " items ( €) are waiting");
        for (i, other) in parsed.iter().enumerate().skip(1) {
            assert_eq!(other["notification"]["title"], "Hi friend");
            assert_eq!(
                other["notification"]["navigate"],
                "https://shop.example/cart/"
            );
            assert_eq!(
                other["notification"]["data"]["aviso"]["s"],
                format!("{:016x}", i + 1)
            );
        }
    }

    #[test]
    fn template_too_large_for_web_push_is_an_error_value() {
        let notification =
            notification_with(json!({"title": "{{ profile.bio }}", "body": "{{ profile.bio }}"}));
        let template = PayloadTemplate::new(&notification, key());
        assert!(check_fits(&notification).is_ok());
        let profiles: HashMap<String, Profile> = [profile(
            "p",
            &[("bio", AttributeValue::Text("é".repeat(1000)))],
        )]
        .into_iter()
        .collect();
        let payloads = render_each(
            &template,
            &[subscription(1, Some("p")), subscription(2, None)],
            &profiles,
            None,
        );
        match &payloads[0] {
            Err(RenderError::TooLarge { size: Some(size) }) => assert!(*size > MAX_PLAINTEXT_LEN),
            other => panic!("expected too large, got {other:?}"),
        }
        assert!(payloads[1].is_ok());
        // Defaults that cannot fit are refused at creation.
        let long = "y".repeat(4000);
        let notification = notification_with(
            json!({"title": format!("{{{{ profile.x | default: \"{long}\" }}}}")}),
        );
        assert!(check_fits(&notification).is_err());
    }

    #[test]
    fn template_errors_are_a_400_at_creation() {
        let request: crate::notify::NotificationRequest = serde_json::from_value(json!({
            "audience": "all",
            "content": {"title": "ok", "body": "Hi\n{{ profile.first_name | upcase"},
        }))
        .unwrap();
        let error = request
            .into_notification("n".into(), "a".into(), 0)
            .unwrap_err();
        assert_eq!(error.field, "content.body");
        assert!(
            error.message.contains("line 2, column"),
            "{}",
            error.message
        );
    }

    fn attribute_value() -> impl Strategy<Value = AttributeValue> {
        prop_oneof![
            any::<String>().prop_map(AttributeValue::Text),
            "[\"\\\\{}%|\\n\\u{0}-\\u{1f}a-z ]{0,40}".prop_map(AttributeValue::Text),
            Just(AttributeValue::Text("{{ profile.x }}{% if %}".into())),
            any::<f64>().prop_map(AttributeValue::Number),
            prop_oneof![
                Just(1e300),
                Just(-1e300),
                Just(9.007199254740993e15),
                Just(0.1)
            ]
            .prop_map(AttributeValue::Number),
            any::<bool>().prop_map(AttributeValue::Bool),
            Just(AttributeValue::Text("z".repeat(5000))),
        ]
    }

    /// Template sources from pieces that compile, and arbitrary text that may not.
    fn template_source() -> impl Strategy<Value = String> {
        let filter = prop_oneof![
            Just(" | upcase".to_owned()),
            Just(" | capitalize".to_owned()),
            Just(" | default: \"friend\"".to_owned()),
            Just(" | default: profile.b".to_owned()),
            Just(" | round: 2".to_owned()),
            Just(" | fixed: 2".to_owned()),
            Just(" | plus: 1".to_owned()),
            Just(" | times: 1e300".to_owned()),
            Just(" | divided_by: 0".to_owned()),
            Just(" | append: profile.a".to_owned()),
            Just(" | replace: \"\", \"xx\"".to_owned()),
            Just(" | url_encode".to_owned()),
            Just(" | truncate: 3".to_owned()),
            Just(" | slice: -2, 5".to_owned()),
            Just(" | size".to_owned()),
            Just(" | escape".to_owned()),
            Just(" | join: \",\"".to_owned()),
        ];
        let variable = prop_oneof![
            Just("profile.a"),
            Just("profile.b"),
            Just("profile.a.b"),
            Just("profile.missing"),
            Just("event.x"),
            Just("other"),
            Just("profile"),
        ];
        let output = (variable, proptest::collection::vec(filter, 0..6))
            .prop_map(|(v, filters)| format!("{{{{ {v}{} }}}}", filters.concat()));
        let piece = prop_oneof![
            4 => output.clone(),
            2 => any::<String>(),
            1 => output.clone().prop_map(|o| format!("{{% if profile.a %}}{o}{{% else %}}x{{% endif %}}")),
            1 => output.prop_map(|o| format!("{{% unless profile.b == profile.a %}}{o}{{% endunless %}}")),
            1 => "[{}%|a-z \"]{0,20}",
        ];
        proptest::collection::vec(piece, 1..5).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn template_renders_arbitrary_values_to_valid_bounded_json(
            title in template_source(),
            body in template_source(),
            a in attribute_value(),
            b in attribute_value(),
        ) {
            let notification = notification_with(json!({"title": title, "body": body}));
            // Compiling may refuse the source (a 400); it must never panic.
            let Ok(template) = PayloadTemplate::try_new(&notification, key()) else { return Ok(()); };
            let profiles: HashMap<String, Profile> =
                [profile("p", &[("a", a), ("b", b)])].into_iter().collect();
            let properties = json!({"x": "\"}\\"});
            let event = EventProperties::new(properties.as_object().unwrap());
            let subscriptions = [subscription(7, Some("p")), subscription(8, None)];
            for payload in render_each(&template, &subscriptions, &profiles, Some(&event)) {
                match payload {
                    Ok(payload) => {
                        prop_assert!(payload.len() <= MAX_PLAINTEXT_LEN);
                        let parsed: Value = serde_json::from_slice(&payload).map_err(|e| {
                            TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&payload)))
                        })?;
                        prop_assert_eq!(&parsed["web_push"], &json!(8030));
                        prop_assert!(parsed["notification"]["title"].is_string());
                    }
                    Err(RenderError::TooLarge { .. }) => {}
                    Err(other) => prop_assert!(false, "unexpected {other:?}"),
                }
            }
        }
    }
}
