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

impl PushService {
    pub fn from_host(host: &str) -> Self {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let is_or_under = |domain: &str| {
            host == domain
                || host
                    .strip_suffix(domain)
                    .is_some_and(|prefix| prefix.ends_with('.'))
        };
        if host == "fcm.googleapis.com" || host == "android.googleapis.com" {
            Self::Fcm
        } else if is_or_under("push.services.mozilla.com") {
            Self::Mozilla
        } else if is_or_under("push.apple.com") {
            Self::Apple
        } else if is_or_under("notify.windows.com") {
            Self::Wns
        } else {
            Self::Other
        }
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
        ] {
            assert_eq!(PushService::from_host(host), service, "{host}");
        }
    }
}
