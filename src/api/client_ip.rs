//! Which address a public request comes from, for the per-client rate limit.
//!
//! Behind a load balancer every request arrives from the balancer's address, so that one
//! bucket would throttle every visitor together. When the peer is one of the configured
//! trusted proxies, `X-Forwarded-For` is read from the right (the entry its proxy appended) and
//! the first address that is not itself a trusted proxy is the client: entries further left
//! were written by the client and prove nothing. An untrusted peer is the client, whatever
//! headers it sends.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client's address: `peer`, or what trusted proxies say it is.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    // Several X-Forwarded-For headers are one list, in order (RFC 9110 §5.3).
    let entries = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect::<Vec<_>>();
    for entry in entries.into_iter().rev() {
        match parse_entry(entry) {
            Some(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            // Garbage from somewhere along the chain: trust nothing to its left.
            None => break,
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    entry
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|address| address.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    fn proxies() -> Vec<IpNet> {
        vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()]
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let headers = forwarded(&["9.9.9.9"]);
        assert_eq!(
            client_ip(ip("203.0.113.7"), &headers, &proxies()),
            ip("203.0.113.7")
        );
        assert_eq!(client_ip(ip("10.0.0.2"), &headers, &[]), ip("10.0.0.2"));
    }

    /// For each `(peer, lines, client)`: a request from `peer` with these `X-Forwarded-For`
    /// header lines, our proxies trusted, comes from `client`.
    fn assert_clients(cases: &[(&str, &[&str], &str)]) {
        for (peer, lines, client) in cases {
            assert_eq!(
                client_ip(ip(peer), &forwarded(lines), &proxies()),
                ip(client),
                "peer {peer}, X-Forwarded-For {lines:?}"
            );
        }
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_entry_is_the_client() {
        assert_clients(&[
            // The client forged the first entry; the balancer appended the real address.
            ("10.0.0.2", &["1.1.1.1, 198.51.100.4"], "198.51.100.4"),
            // Two proxies of ours, the outer one's address in the list; headers split over lines.
            ("10.0.0.2", &["198.51.100.4", "10.1.2.3"], "198.51.100.4"),
            ("fd00::2", &["[2001:db8::7]:443, fd00::1"], "2001:db8::7"),
        ]);
    }

    #[test]
    fn without_a_usable_header_the_proxy_itself_is_the_client() {
        assert_clients(&[
            ("10.0.0.2", &[], "10.0.0.2"),
            ("10.0.0.2", &["198.51.100.4, not-an-address"], "10.0.0.2"),
            // Only proxies of ours: the leftmost of them.
            ("10.0.0.2", &["10.9.9.9, 10.1.1.1"], "10.9.9.9"),
        ]);
    }
}
