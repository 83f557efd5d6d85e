//! An extra push service the operator allows (`--allowed-push-hosts`): a host and a port,
//! because a host alone would let a stranger's endpoint aim this server at any service on that
//! host (`https://127.0.0.1:6379/…`).

use std::fmt;
use std::str::FromStr;

/// `HOST:PORT` (a bare host means 443, the port of every real push service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushHost {
    /// Lowercase, without brackets for IPv6 and without a trailing dot.
    host: String,
    port: u16,
}

impl PushHost {
    /// This host and port as a regular expression of an endpoint's authority, in the
    /// spellings [`Self::matches`] takes (any letter case, a trailing dot, `:443` optional
    /// on 443): the OpenAPI document's endpoint pattern names it.
    pub fn authority_pattern(&self) -> String {
        let host = if self.host.contains(':') {
            format!("\\[{}\\]", crate::push::service::any_case(&self.host))
        } else {
            format!("{}\\.?", crate::push::service::any_case(&self.host))
        };
        if self.port == 443 {
            format!("{host}(?::443)?")
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Whether an endpoint's host (as the URL parser writes it) and port are this one.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        self.port == port && self.host == normalize_host(host)
    }
}

fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

impl FromStr for PushHost {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let example = "write HOST:PORT, like 127.0.0.1:8443 or [::1]:8443";
        let text = text.trim();
        // Parsed as the authority of a URL, so hosts mean what they mean in an endpoint.
        let url = url::Url::parse(&format!("https://{text}/"))
            .map_err(|e| format!("not a host and port ({e}): {example}"))?;
        let authority_only = url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none()
            && !text.contains('/');
        let host = match url.host_str() {
            Some(host) if authority_only && !host.is_empty() => host,
            _ => return Err(format!("not a host and port: {example}")),
        };
        Ok(Self {
            host: normalize_host(host),
            port: url.port_or_known_default().unwrap_or(443),
        })
    }
}

impl fmt::Display for PushHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_allows_its_port_only() {
        let mock: PushHost = "127.0.0.1:8443".parse().unwrap();
        assert!(mock.matches("127.0.0.1", 8443));
        assert!(!mock.matches("127.0.0.1", 6379));
        assert!(!mock.matches("127.0.0.1", 443));
        let bare: PushHost = "Push.Example.".parse().unwrap();
        assert_eq!(bare.to_string(), "push.example:443");
        assert!(bare.matches("push.example", 443));
        let v6: PushHost = "[::1]:9".parse().unwrap();
        assert!(v6.matches("[::1]", 9));
        assert_eq!(v6.to_string(), "[::1]:9");
        for bad in [
            "",
            "a/b",
            "host:99999",
            "user@host:1",
            "host:1?x",
            "https://host:1",
        ] {
            assert!(bad.parse::<PushHost>().is_err(), "{bad}");
        }
    }
}
