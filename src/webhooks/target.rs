//! Where webhooks may post: a target URL is chosen by whoever holds an admin key, and the
//! server then makes requests to it, so it follows the rules of push endpoints (DESIGN.md): https
//! only, no credentials in the URL, and no loopback, private, link-local or otherwise
//! non-public address — checked on registration for literal addresses and again at every
//! connection for every address a name resolves to (a name that resolves to 127.0.0.1 later
//! is refused then) — unless the operator allows that host and port
//! (`--allowed-webhook-hosts`, as tests do for their loopback receiver). Redirects are never
//! followed (the sender treats a 3xx as a failure).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::config::PushHost;

/// Longest target URL.
pub const MAX_URL_LEN: usize = 2048;

/// Checks a target URL as given to the API; the error says what to change.
pub fn check_url(text: &str, allowed: &[PushHost]) -> Result<url::Url, String> {
    if text.len() > MAX_URL_LEN {
        return Err(format!("at most {MAX_URL_LEN} bytes"));
    }
    let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    if url.scheme() != "https" {
        return Err("must be an https:// URL".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a #fragment".into());
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("must name a host")?;
    let port = url.port_or_known_default().unwrap_or(443);
    if is_allowed_host(allowed, host, port) {
        return Ok(url);
    }
    if let Some(ip) = literal_ip(host)
        && !is_public(ip)
    {
        return Err(format!(
            "{ip} is not a public address: webhooks go to public https servers (an operator may allow a host with --allowed-webhook-hosts)"
        ));
    }
    let lowered = host.to_ascii_lowercase();
    if lowered == "localhost" || lowered.ends_with(".localhost") {
        return Err("localhost is not a public host".into());
    }
    Ok(url)
}

/// Whether the operator allowed this host and port.
pub fn is_allowed_host(allowed: &[PushHost], host: &str, port: u16) -> bool {
    allowed.iter().any(|a| a.matches(host, port))
}

/// The address a host names literally (`1.2.3.4`, `[::1]`), if it is one.
pub fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The addresses of `resolved` that may be connected to, for a host that is not allowed
/// explicitly: public ones only. Empty when none is.
pub fn public_addresses(resolved: impl IntoIterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    resolved.into_iter().filter(|a| is_public(a.ip())).collect()
}

/// Whether an address is on the public Internet (not loopback, private, link-local, shared,
/// documentation, multicast, unspecified or reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10, shared address space (carrier-grade NAT).
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24 (protocol assignments), 198.18.0.0/15 (benchmarking), 240.0.0.0/4.
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        // 2001:db8::/32, documentation; 64:ff9b::/96 reaches IPv4 space through NAT64.
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        || first == 0x0064)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_https_targets() {
        let none: &[PushHost] = &[];
        assert!(check_url("https://crm.example.com/hooks?x=1", none).is_ok());
        assert!(check_url("https://93.184.216.34/h", none).is_ok());
        for bad in [
            "http://crm.example.com/h",
            "https://user:pw@crm.example.com/h",
            "https://127.0.0.1/h",
            "https://[::1]/h",
            "https://10.1.2.3/h",
            "https://192.168.0.1/h",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/h",
            "https://[fd00::1]/h",
            "https://[fe80::1]/h",
            "https://[::ffff:127.0.0.1]/h",
            "https://0.0.0.0/h",
            "https://localhost/h",
            "https://a.localhost:8443/h",
            "not a url",
        ] {
            assert!(check_url(bad, none).is_err(), "{bad}");
        }
        let allowed: Vec<PushHost> = vec!["127.0.0.1:8443".parse().unwrap()];
        assert!(check_url("https://127.0.0.1:8443/h", &allowed).is_ok());
        assert!(check_url("https://127.0.0.1:6379/h", &allowed).is_err());
        assert!(check_url("http://127.0.0.1:8443/h", &allowed).is_err());
        let resolved: Vec<SocketAddr> = vec![
            "127.0.0.1:443".parse().unwrap(),
            "93.184.216.34:443".parse().unwrap(),
        ];
        assert_eq!(public_addresses(resolved).len(), 1);
    }
}
