//! A browser's `PushSubscription`: parsing and validation of its JSON form.
//!
//! Every field comes from a stranger's browser, so each one is checked here, once, with an
//! error that says exactly which field is wrong and why. Later stages trust these types.

use aws_lc_rs::agreement::{ECDH_P256, ParsedPublicKey, UnparsedPublicKey};
use http::Uri;
use serde::Deserialize;
use url::Url;

use super::base64url;
use super::service::PushService;

/// Length of an uncompressed SEC1 P-256 point: `0x04 | x (32) | y (32)`.
pub const P256DH_LEN: usize = 65;
/// Length of the subscription's authentication secret (RFC 8291 §3.2).
pub const AUTH_LEN: usize = 16;

/// What is wrong with a subscription, one variant per field and failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error(
        "subscription is not valid JSON of the form {{\"endpoint\": …, \"keys\": {{\"p256dh\": …, \"auth\": …}}}}: {0}"
    )]
    Json(String),
    #[error("endpoint is not an absolute URL: {0}")]
    EndpointNotUrl(String),
    #[error("endpoint must use https, got `{0}:`")]
    EndpointNotHttps(String),
    #[error("endpoint has no host")]
    EndpointNoHost,
    #[error("keys.p256dh: {0}")]
    P256dhEncoding(String),
    #[error("keys.p256dh must be a 65-byte uncompressed P-256 point, got {0} bytes")]
    P256dhLength(usize),
    #[error("keys.p256dh must be an uncompressed P-256 point (first byte 0x04), got 0x{0:02x}")]
    P256dhNotUncompressed(u8),
    #[error("keys.p256dh is not a point on the P-256 curve")]
    P256dhNotOnCurve,
    #[error("keys.auth: {0}")]
    AuthEncoding(String),
    #[error("keys.auth must be exactly 16 bytes, got {0} bytes")]
    AuthLength(usize),
}

impl SubscriptionError {
    /// The member of `PushSubscription.toJSON()` at fault (`endpoint`, `keys.p256dh`,
    /// `keys.auth`), or `None` when the whole is not of that form.
    pub fn part(&self) -> Option<&'static str> {
        match self {
            Self::Json(_) => None,
            Self::EndpointNotUrl(_) | Self::EndpointNotHttps(_) | Self::EndpointNoHost => {
                Some("endpoint")
            }
            Self::P256dhEncoding(_)
            | Self::P256dhLength(_)
            | Self::P256dhNotUncompressed(_)
            | Self::P256dhNotOnCurve => Some("keys.p256dh"),
            Self::AuthEncoding(_) | Self::AuthLength(_) => Some("keys.auth"),
        }
    }
}

/// The subscriber's keys: what encryption needs, validated.
#[derive(Clone, PartialEq, Eq)]
pub struct SubscriptionKeys {
    p256dh: [u8; P256DH_LEN],
    auth: [u8; AUTH_LEN],
}

impl std::fmt::Debug for SubscriptionKeys {
    // The auth secret is a credential: keep it out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionKeys")
            .field("p256dh", &base64url::encode(&self.p256dh))
            .finish_non_exhaustive()
    }
}

impl SubscriptionKeys {
    /// Validates raw key bytes (as stored): the point must be uncompressed and on the curve.
    pub fn from_bytes(p256dh: &[u8], auth: &[u8]) -> Result<Self, SubscriptionError> {
        let p256dh: [u8; P256DH_LEN] = p256dh
            .try_into()
            .map_err(|_| SubscriptionError::P256dhLength(p256dh.len()))?;
        if p256dh[0] != 0x04 {
            return Err(SubscriptionError::P256dhNotUncompressed(p256dh[0]));
        }
        // aws-lc checks that the point lies on the curve when it parses it.
        ParsedPublicKey::try_from(UnparsedPublicKey::new(&ECDH_P256, &p256dh[..]))
            .map_err(|_| SubscriptionError::P256dhNotOnCurve)?;
        let auth: [u8; AUTH_LEN] = auth
            .try_into()
            .map_err(|_| SubscriptionError::AuthLength(auth.len()))?;
        Ok(Self { p256dh, auth })
    }

    /// Keys that were validated before they were stored. The point is checked again, for free,
    /// when encryption parses it for ECDH; a bad one fails that message, not the process.
    pub fn from_validated(p256dh: [u8; P256DH_LEN], auth: [u8; AUTH_LEN]) -> Self {
        Self { p256dh, auth }
    }

    /// Decodes and validates the base64url strings of the subscription JSON.
    pub fn from_base64url(p256dh: &str, auth: &str) -> Result<Self, SubscriptionError> {
        let p256dh = base64url::decode(p256dh)
            .map_err(|e| SubscriptionError::P256dhEncoding(e.to_string()))?;
        let auth =
            base64url::decode(auth).map_err(|e| SubscriptionError::AuthEncoding(e.to_string()))?;
        Self::from_bytes(&p256dh, &auth)
    }

    /// The subscriber's public key, an uncompressed P-256 point.
    pub fn p256dh(&self) -> &[u8; P256DH_LEN] {
        &self.p256dh
    }

    /// The subscriber's authentication secret.
    pub fn auth(&self) -> &[u8; AUTH_LEN] {
        &self.auth
    }
}

/// A validated push subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscription {
    /// The endpoint as the WHATWG URL parser writes it (the form browsers give).
    endpoint: Uri,
    keys: SubscriptionKeys,
}

/// The JSON shape of `PushSubscription.toJSON()`.
#[derive(Deserialize)]
struct SubscriptionJson {
    endpoint: String,
    #[serde(default, rename = "expirationTime")]
    _expiration_time: Option<serde_json::Value>,
    keys: KeysJson,
}

#[derive(Deserialize)]
struct KeysJson {
    p256dh: String,
    auth: String,
}

impl PushSubscription {
    /// Validates an endpoint and keys that were already split apart (e.g. from a form).
    pub fn new(endpoint: &str, keys: SubscriptionKeys) -> Result<Self, SubscriptionError> {
        Ok(Self {
            endpoint: parse_endpoint(endpoint)?,
            keys,
        })
    }

    /// A subscription read back from the store: its endpoint passed [`PushSubscription::new`]
    /// when the browser subscribed, and this runs once per message sent. An endpoint that the
    /// URL parser would leave as it is (every real push service's is plain ASCII) is taken as
    /// it is, with an `http::Uri` parse: the WHATWG parse with IDNA cost ~2% of a broadcast's
    /// CPU. Anything else takes the full parse.
    pub fn from_stored(endpoint: &str, keys: SubscriptionKeys) -> Result<Self, SubscriptionError> {
        match canonical_uri(endpoint) {
            Some(endpoint) => Ok(Self { endpoint, keys }),
            None => Self::new(endpoint, keys),
        }
    }

    /// Parses the browser's JSON (`PushSubscription.toJSON()`).
    pub fn from_json(json: &[u8]) -> Result<Self, SubscriptionError> {
        let raw: SubscriptionJson =
            serde_json::from_slice(json).map_err(|e| SubscriptionError::Json(e.to_string()))?;
        Self::from_parts(&raw.endpoint, &raw.keys.p256dh, &raw.keys.auth)
    }

    /// Validates the three strings of a subscription.
    pub fn from_parts(endpoint: &str, p256dh: &str, auth: &str) -> Result<Self, SubscriptionError> {
        let endpoint = parse_endpoint(endpoint)?;
        let keys = SubscriptionKeys::from_base64url(p256dh, auth)?;
        Ok(Self { endpoint, keys })
    }

    pub fn endpoint(&self) -> &Uri {
        &self.endpoint
    }

    /// The endpoint in its one canonical spelling, as the WHATWG URL parser writes it: the
    /// host lowercased and without a trailing dot, no default port (`:443`), no user info.
    /// Two spellings of one endpoint give one string, so one subscription id.
    pub fn canonical_endpoint(&self) -> String {
        self.endpoint.to_string()
    }

    pub fn keys(&self) -> &SubscriptionKeys {
        &self.keys
    }

    /// The VAPID audience of this endpoint: its origin (`https://host[:port]`).
    pub fn audience(&self) -> String {
        format!("https://{}", self.authority())
    }

    /// The endpoint's `host[:port]`: its origin without the scheme, which is always `https`.
    /// The WHATWG parser dropped user info and the default port, and lowercased the host, so
    /// this is one spelling per origin: what per-origin state is keyed by.
    pub fn authority(&self) -> &str {
        self.endpoint.authority().map_or("", |a| a.as_str())
    }
}

/// What an endpoint may hold after its authority: RFC 3986's path and query characters,
/// percent escapes included (a WNS endpoint's `?token=…%3d` among them).
const ENDPOINT_PATH_CHARS: &str = "A-Za-z0-9._~!$&'()*+,;=:@%/?-";

/// A regular expression (ECMA-262, as JSON Schema's `pattern`) of the endpoints this crate
/// takes whose host is a known push service ([`PushService::from_host`], on port 443) or one of
/// `extra_authorities` (each itself a pattern of `HOST:PORT`, e.g. from the server's
/// configuration). Every string it matches parses ([`PushSubscription::from_parts`]); the
/// spellings it leaves out (user info, other schemes' letter case) are refused or rewritten
/// by the parser, never needed by a browser.
pub fn endpoint_pattern(extra_authorities: &[String]) -> String {
    let mut authorities = vec![format!("{}(?::443)?", PushService::hosts_pattern())];
    authorities.extend(extra_authorities.iter().cloned());
    format!(
        "^https://(?:{})(?:/[{ENDPOINT_PATH_CHARS}]*)?$",
        authorities.join("|")
    )
}

/// An endpoint's canonical form (see [`PushSubscription::canonical_endpoint`]) without its
/// keys: what a proof of ownership (endpoint and auth) is looked up by.
pub fn canonical_endpoint(endpoint: &str) -> Result<String, SubscriptionError> {
    parse_endpoint(endpoint).map(|uri| uri.to_string())
}

fn parse_endpoint(endpoint: &str) -> Result<Uri, SubscriptionError> {
    let mut url =
        Url::parse(endpoint).map_err(|e| SubscriptionError::EndpointNotUrl(e.to_string()))?;
    if url.scheme() != "https" {
        return Err(SubscriptionError::EndpointNotHttps(url.scheme().to_owned()));
    }
    // `push.example.` is `push.example` (a fully qualified name); the parser keeps the dot.
    let host = match url.host_str() {
        None | Some("") => return Err(SubscriptionError::EndpointNoHost),
        Some(host) => host.to_owned(),
    };
    let trimmed = host.trim_end_matches('.');
    if trimmed.is_empty() {
        return Err(SubscriptionError::EndpointNoHost);
    }
    if trimmed.len() != host.len() {
        url.set_host(Some(trimmed))
            .map_err(|e| SubscriptionError::EndpointNotUrl(e.to_string()))?;
    }
    // The origin is all a push request needs of the user info; an origin has none.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.as_str()
        .parse()
        .map_err(|e: http::uri::InvalidUri| SubscriptionError::EndpointNotUrl(e.to_string()))
}

/// The bytes of RFC 3986 that [`canonical_uri`] lets through in a path, as a table: the engine
/// checks every endpoint it sends to, byte by byte.
const PLAIN_PATH_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let others = b"-._~!$&'()*+,;=:@/%?";
    let mut i = 0;
    while i < others.len() {
        table[others[i] as usize] = true;
        i += 1;
    }
    table
};

/// `endpoint` as a `Uri` when the WHATWG parser would write it unchanged; `None` when unsure.
///
/// Conservative on purpose: `https`, a lowercase ASCII host name or a dotted-quad IPv4 address
/// with no leading zeros, no user info, no default or zero-padded port, a non-empty path of
/// RFC 3986 characters without dot segments. A property test checks the result against
/// [`parse_endpoint`].
fn canonical_uri(endpoint: &str) -> Option<Uri> {
    let rest = endpoint.strip_prefix("https://")?;
    let (authority, path) = rest.split_at(rest.find('/')?);
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let plain_label = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    let last_label = host.rsplit('.').next()?;
    let host_ok = if last_label.starts_with(|c: char| c.is_ascii_digit()) {
        // The WHATWG parser reads a numeric last label as an IPv4 address and rewrites it.
        host.split('.').count() == 4
            && host.split('.').all(|octet| {
                octet.parse::<u8>().is_ok() && (octet.len() == 1 || !octet.starts_with('0'))
            })
    } else {
        // `xn--` labels are checked and may be rewritten by IDNA.
        host.split('.')
            .all(|label| plain_label(label) && !label.starts_with("xn--"))
            && !last_label.starts_with("0x")
    };
    let port_ok = port.is_none_or(|port| {
        port.parse::<u16>().is_ok_and(|number| number != 443) && !port.starts_with('0')
    });
    let path_ok = path.bytes().all(|b| PLAIN_PATH_BYTE[usize::from(b)])
        && !path.contains("/.")
        && !path.contains('%');
    if !(host_ok && port_ok && path_ok) {
        return None;
    }
    endpoint.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8291 Appendix A's user-agent keys.
    use crate::push::encryption::rfc8291::{AUTH, UA_PUBLIC};

    fn json(endpoint: &str, p256dh: &str, auth: &str) -> Vec<u8> {
        serde_json::json!({"endpoint": endpoint, "expirationTime": null, "keys": {"p256dh": p256dh, "auth": auth}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn parses_a_browser_subscription() {
        let sub = PushSubscription::from_json(&json(
            "https://fcm.googleapis.com/fcm/send/abc",
            UA_PUBLIC,
            AUTH,
        ))
        .unwrap();
        assert_eq!(sub.audience(), "https://fcm.googleapis.com");
        assert_eq!(sub.keys().auth().len(), 16);
        let padded = format!("{AUTH}==");
        assert!(PushSubscription::from_parts("https://a.example/x", UA_PUBLIC, &padded).is_ok());
    }

    #[test]
    fn one_endpoint_spelled_differently_is_one_canonical_endpoint() {
        let canonical = "https://fcm.googleapis.com/fcm/send/abc";
        for spelling in [
            canonical,
            "https://FCM.GoogleAPIs.com/fcm/send/abc",
            "https://fcm.googleapis.com:443/fcm/send/abc",
            "https://fcm.googleapis.com./fcm/send/abc",
            "https://user:pw@Fcm.googleapis.com.:443/fcm/send/abc",
        ] {
            assert_eq!(
                canonical_endpoint(spelling).unwrap(),
                canonical,
                "{spelling}"
            );
        }
        assert_eq!(
            canonical_endpoint("https://127.0.0.1:8443/p").unwrap(),
            "https://127.0.0.1:8443/p"
        );
        // The path is the push service's: its case is kept.
        assert_ne!(
            canonical_endpoint("https://push.example/ABC").unwrap(),
            canonical_endpoint("https://push.example/abc").unwrap()
        );
        for bad in ["https://./p", "https://../p", "http://push.example/p"] {
            assert!(canonical_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stored_endpoints_read_back_as_the_url_parser_writes_them() {
        let keys = SubscriptionKeys::from_base64url(UA_PUBLIC, AUTH).unwrap();
        for endpoint in [
            "https://fcm.googleapis.com/fcm/send/abc:APA91b-x_y",
            "https://updates.push.services.mozilla.com/wpush/v2/gAAAAAB",
            "https://127.0.0.1:8443/p/1",
            "https://FCM.googleapis.com/fcm/send/abc",
            "https://user:pw@push.example/p",
            "https://push.example:443/p",
            "https://push.example",
            "https://0x7f.1/p",
            "https://127.000.0.1/p",
            "https://bücher.example/p",
            "https://push.example/a/../b",
            "https://push.example/a%2fb",
            "https://[::1]:8443/p",
        ] {
            let stored = PushSubscription::from_stored(endpoint, keys.clone()).unwrap();
            let parsed = PushSubscription::new(endpoint, keys.clone()).unwrap();
            assert_eq!(stored, parsed, "{endpoint}");
            let url = Url::parse(endpoint).unwrap();
            assert_eq!(stored.audience(), url.origin().ascii_serialization());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        /// Whatever the fast path accepts, the full parse writes the same way.
        #[test]
        fn the_fast_path_agrees_with_the_url_parser(
            endpoint in proptest::prop_oneof![
                "https://[a-zA-Z0-9.:@\\-]{0,20}(/[a-zA-Z0-9%./:?&=_~@-]{0,12}){0,3}",
                "https://[a-z0-9.-]{1,15}(:[0-9]{1,5})?(/[a-zA-Z0-9%./:?&=_~@-]{0,12}){1,3}",
                "https://[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9x]{1,3}(/[a-z.]{0,4}){1,2}",
            ]
        ) {
            if let Some(uri) = canonical_uri(&endpoint) {
                let url = Url::parse(&endpoint).unwrap();
                proptest::prop_assert_eq!(uri.to_string(), url.as_str());
            }
        }
    }

    #[test]
    fn each_bad_field_has_its_own_error() {
        let ep = "https://fcm.googleapis.com/fcm/send/abc";
        let check = |endpoint: &str, p: &str, a: &str| {
            PushSubscription::from_json(&json(endpoint, p, a)).unwrap_err()
        };
        assert_eq!(
            check("http://x.example/", UA_PUBLIC, AUTH),
            SubscriptionError::EndpointNotHttps("http".into())
        );
        assert!(matches!(
            check("not a url", UA_PUBLIC, AUTH),
            SubscriptionError::EndpointNotUrl(_)
        ));
        assert!(matches!(
            check(ep, "***", AUTH),
            SubscriptionError::P256dhEncoding(_)
        ));
        assert_eq!(
            check(ep, &UA_PUBLIC[..40], AUTH),
            SubscriptionError::P256dhLength(30)
        );
        let mut off_curve = base64url::decode(UA_PUBLIC).unwrap();
        off_curve[64] ^= 1;
        assert_eq!(
            check(ep, &base64url::encode(&off_curve), AUTH),
            SubscriptionError::P256dhNotOnCurve
        );
        off_curve[0] = 0x02;
        assert_eq!(
            check(ep, &base64url::encode(&off_curve), AUTH),
            SubscriptionError::P256dhNotUncompressed(2)
        );
        assert_eq!(
            check(ep, UA_PUBLIC, "AAAA"),
            SubscriptionError::AuthLength(3)
        );
        assert!(matches!(
            check(ep, UA_PUBLIC, "!!"),
            SubscriptionError::AuthEncoding(_)
        ));
        assert!(matches!(
            PushSubscription::from_json(b"{\"endpoint\": 3}").unwrap_err(),
            SubscriptionError::Json(_)
        ));
    }
}
