//! Who is asking: client address, scheme and host, honouring `X-Forwarded-*` only from
//! configured proxies, plus the request id.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
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
    pub request_id: RequestId,
    /// At most 512 characters; shared with the previous request of this thread when equal.
    pub user_agent: Option<Arc<str>>,
}

/// The request id, kept as the header value it is sent as: cloning it (for the upstream
/// request, the response and the activity row) copies nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// 128 random bits as 32 hex digits, in one allocation that every clone shares.
    pub fn random() -> RequestId {
        let mut b = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut b);
        let mut hex_digits = [0u8; 32];
        // Cannot fail: the output is exactly twice the input's length.
        let _ = hex::encode_to_slice(b, &mut hex_digits);
        match HeaderValue::from_maybe_shared(Bytes::from_owner(hex_digits)) {
            Ok(v) => RequestId(v),
            // Hex digits are always a valid header value.
            Err(_) => RequestId(HeaderValue::from_static("0")),
        }
    }

    pub fn as_str(&self) -> &str {
        // Only visible ASCII is ever stored (see `RequestCtx::new`).
        self.0.to_str().unwrap_or_default()
    }

    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl PartialEq<str> for RequestId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for RequestId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

thread_local! {
    /// The last `User-Agent` this thread saw: a client sends the same one on every request, so
    /// keeping it saves an allocation per request.
    static LAST_AGENT: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// The `User-Agent`, cut to 512 characters, shared with the previous request's when equal.
fn user_agent(headers: &HeaderMap) -> Option<Arc<str>> {
    let raw = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())?;
    let cut = match raw.char_indices().nth(512) {
        Some((i, _)) => &raw[..i],
        None => raw,
    };
    LAST_AGENT.with(|last| {
        let mut last = last.borrow_mut();
        if let Some(a) = last.as_ref()
            && **a == *cut
        {
            return Some(a.clone());
        }
        let a: Arc<str> = Arc::from(cut);
        *last = Some(a.clone());
        Some(a)
    })
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
            // Copied rather than shared, so that the id (kept until the activity row is
            // written) does not pin the connection's read buffer.
            request_id = headers
                .get(request_id_header)
                .and_then(|v| v.to_str().ok())
                .filter(|v| {
                    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())
                })
                .and_then(|v| HeaderValue::from_str(v).ok())
                .map(RequestId);
        }
        RequestCtx {
            peer,
            client_ip,
            peer_trusted,
            scheme,
            request_id: request_id.unwrap_or_else(RequestId::random),
            user_agent: user_agent(headers),
        }
    }

    pub fn client(&self) -> crate::accounts::ClientInfo {
        crate::accounts::ClientInfo {
            ip: Some(self.client_ip.to_string()),
            user_agent: self.user_agent.as_deref().map(str::to_string),
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
