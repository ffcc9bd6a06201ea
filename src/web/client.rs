//! Who is asking: client address, scheme and host, honouring `X-Forwarded-*` only from
//! configured proxies, plus the request id.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;
use rand::RngCore;

/// Per-request facts derived once at the edge.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The client: the peer, or the nearest untrusted address in `X-Forwarded-For` when the
    /// peer is a trusted proxy.
    pub client_ip: IpAddr,
    /// Whether the peer is one of the configured trusted proxies.
    pub peer_trusted: bool,
    /// `https` or `http` as the browser sees it.
    pub scheme: &'static str,
    pub request_id: String,
    pub user_agent: Option<String>,
}

impl RequestCtx {
    pub fn new(
        peer: SocketAddr,
        tls: bool,
        headers: &HeaderMap,
        trusted: &[IpNet],
        request_id_header: &http::HeaderName,
    ) -> RequestCtx {
        let peer_ip = canonical(peer.ip());
        let peer_trusted = trusted.iter().any(|n| n.contains(&peer_ip));
        let mut client_ip = peer_ip;
        let mut scheme = if tls { "https" } else { "http" };
        let mut request_id = None;
        if peer_trusted {
            // Walk X-Forwarded-For from the right, skipping our own trusted hops.
            let hops: Vec<IpAddr> = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|s| s.trim().parse::<IpAddr>().ok())
                .map(canonical)
                .collect();
            for ip in hops.iter().rev() {
                client_ip = *ip;
                if !trusted.iter().any(|n| n.contains(ip)) {
                    break;
                }
            }
            if let Some(p) = headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
            {
                match p.trim().to_ascii_lowercase().as_str() {
                    "https" => scheme = "https",
                    "http" => scheme = "http",
                    _ => {}
                }
            }
            request_id = headers
                .get(request_id_header)
                .and_then(|v| v.to_str().ok())
                .filter(|v| {
                    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())
                })
                .map(str::to_string);
        }
        RequestCtx {
            peer,
            client_ip,
            peer_trusted,
            scheme,
            request_id: request_id.unwrap_or_else(new_request_id),
            user_agent: headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(512).collect()),
        }
    }

    pub fn client(&self) -> crate::accounts::ClientInfo {
        crate::accounts::ClientInfo {
            ip: Some(self.client_ip.to_string()),
            user_agent: self.user_agent.clone(),
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// 128 random bits as 32 hex digits.
pub fn new_request_id() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn forwarded_headers_only_from_trusted_peers() {
        let rid = http::HeaderName::from_static("x-request-id");
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9, 10.0.0.2"),
            ("x-forwarded-proto", "https"),
            ("x-request-id", "abc"),
        ]);
        let untrusted = RequestCtx::new("198.51.100.1:5000".parse().unwrap(), false, &h, &[], &rid);
        assert_eq!(untrusted.client_ip.to_string(), "198.51.100.1");
        assert_eq!(untrusted.scheme, "http");
        assert_ne!(untrusted.request_id, "abc");
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let via_proxy =
            RequestCtx::new("10.0.0.1:5000".parse().unwrap(), false, &h, &trusted, &rid);
        assert_eq!(via_proxy.client_ip.to_string(), "203.0.113.9");
        assert_eq!(via_proxy.scheme, "https");
        assert_eq!(via_proxy.request_id, "abc");
    }
}
