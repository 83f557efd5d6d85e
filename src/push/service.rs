//! Which push service an endpoint belongs to, by host: for metric labels and per-service limits.

/// The push services of the major browsers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushService {
    /// Chrome, Edge, Opera, Samsung Internet… (`fcm.googleapis.com`).
    Fcm,
    /// Firefox (`updates.push.services.mozilla.com`).
    Mozilla,
    /// Safari (`web.push.apple.com`, `*.push.apple.com`).
    Apple,
    /// Microsoft WNS (`*.notify.windows.com`).
    Wns,
    /// Anything else (a self-hosted autopush, a test mock).
    Other,
}

/// Each push service's hosts: a domain, and whether its subdomains are the service's too.
const HOSTS: &[(&str, bool, PushService)] = &[
    ("fcm.googleapis.com", false, PushService::Fcm),
    ("android.googleapis.com", false, PushService::Fcm),
    ("push.services.mozilla.com", true, PushService::Mozilla),
    ("push.apple.com", true, PushService::Apple),
    ("notify.windows.com", true, PushService::Wns),
];

impl PushService {
    /// How many services there are (the variants count from 0, `Other` last).
    pub const COUNT: usize = Self::Other as usize + 1;

    /// The service whose host this is, in any letter case, with or without a trailing dot.
    /// Allocates nothing: the engine asks once per message.
    pub fn from_host(host: &str) -> Self {
        let host = host.trim_end_matches('.').as_bytes();
        HOSTS
            .iter()
            .find(|(domain, subdomains, _)| {
                let domain = domain.as_bytes();
                host.eq_ignore_ascii_case(domain)
                    || (*subdomains
                        && host.len() > domain.len()
                        && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain)
                        && host[host.len() - domain.len() - 1] == b'.')
            })
            .map_or(Self::Other, |(_, _, service)| *service)
    }

    /// A regular expression (ECMA-262, as JSON Schema's `pattern`) of the hosts
    /// [`Self::from_host`] knows, in any letter case, with or without a trailing dot.
    pub fn hosts_pattern() -> String {
        let alternatives: Vec<String> = HOSTS
            .iter()
            .map(|(domain, subdomains, _)| {
                let domain = any_case(domain);
                if *subdomains {
                    format!("(?:[A-Za-z0-9-]+\\.)*{domain}")
                } else {
                    domain
                }
            })
            .collect();
        format!("(?:{})\\.?", alternatives.join("|"))
    }

    /// A short, stable label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Fcm => "fcm",
            Self::Mozilla => "mozilla",
            Self::Apple => "apple",
            Self::Wns => "wns",
            Self::Other => "other",
        }
    }
}

/// `text` as a regular expression that matches it in any letter case (`[Ff][Cc][Mm]\.…`).
pub fn any_case(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'a'..='z' => format!("[{}{c}]", c.to_ascii_uppercase()),
            '.' => "\\.".to_owned(),
            other => other.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_big_four_and_nothing_else() {
        for (host, service) in [
            ("fcm.googleapis.com", PushService::Fcm),
            ("updates.push.services.mozilla.com", PushService::Mozilla),
            ("web.push.apple.com", PushService::Apple),
            ("api.push.apple.com", PushService::Apple),
            ("wns2-par02p.notify.windows.com", PushService::Wns),
            ("evilpush.apple.com", PushService::Other),
            ("push.apple.com.evil.example", PushService::Other),
            ("127.0.0.1", PushService::Other),
            ("push.apple.com", PushService::Apple),
            ("xpush.apple.com", PushService::Other),
        ] {
            assert_eq!(PushService::from_host(host), service, "{host}");
        }
        // Any letter case, with or without the root's trailing dot.
        for spelled in [
            "FCM.GoogleAPIs.com.",
            "Web.Push.APPLE.com",
            "WNS2-par02p.Notify.Windows.COM",
        ] {
            let plain = spelled.trim_end_matches('.').to_ascii_lowercase();
            assert_ne!(
                PushService::from_host(&plain),
                PushService::Other,
                "{plain}"
            );
            assert_eq!(
                PushService::from_host(spelled),
                PushService::from_host(&plain),
                "{spelled}"
            );
        }
    }
}
