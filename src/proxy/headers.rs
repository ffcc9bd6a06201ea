//! The trust boundary: which incoming headers are dropped and which are set.
//!
//! * Identity headers (`X-Auth-*`) are removed from every request before anything else, in
//!   every spelling: any case, and `_` for `-` (WSGI servers fold both to the same variable).
//! * Hop-by-hop headers are removed both ways (RFC 9110 §7.6.1), except that an upgrade
//!   request keeps `Upgrade` and `Connection: upgrade`.
//! * `X-Forwarded-For/-Proto/-Host` and the request id are set by us; incoming copies are
//!   kept only from trusted proxies (see [`crate::web::RequestCtx`]).

use std::fmt::Write as _;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use smallvec::SmallVec;

use crate::config::HeaderNames;
use crate::session::Identity;
use crate::store::Ts;
use crate::web::RequestCtx;

/// Header names in folded form (lowercase, `_` → `-`), by when they are removed.
#[derive(Debug, Clone)]
pub struct StripSet {
    /// Identity headers: from every client, always.
    identity: Vec<String>,
    /// Method overrides, unless `headers.allow_method_override`.
    method_override: Vec<String>,
    /// Forwarding and routing headers: from clients outside `server.trusted_proxies`.
    forwarding: Vec<String>,
}

/// Headers that make frameworks run another method's handler (Express `method-override`,
/// Rails, Laravel, Symfony, ASP.NET).
pub const METHOD_OVERRIDE: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Headers through which apps and frameworks learn the client's address, scheme, host, port or
/// the "original" URL (IIS and Symfony route on `X-Original-URL` / `X-Rewrite-URL`).
const FORWARDING: [&str; 15] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-prefix",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-real-ip",
    "x-original-url",
    "x-original-uri",
    // Forward-auth's description of the original request (see `gateway::forward_auth`).
    "x-forwarded-method",
    "x-forwarded-uri",
    "x-rewrite-url",
    "x-client-ip",
    "true-client-ip",
];

impl StripSet {
    pub fn new(names: &HeaderNames) -> StripSet {
        let mut forwarding: Vec<String> = FORWARDING.iter().map(|h| fold(h)).collect();
        forwarding.push(fold(names.request_id.as_str()));
        StripSet {
            identity: names.identity().iter().map(|h| fold(h.as_str())).collect(),
            method_override: if names.allow_method_override {
                Vec::new()
            } else {
                METHOD_OVERRIDE.iter().map(|h| fold(h)).collect()
            },
            forwarding,
        }
    }

    /// Removes every header that spells one of the names due for removal: identity headers
    /// always, method overrides unless allowed, forwarding headers unless the peer is trusted.
    pub fn strip(&self, headers: &mut HeaderMap, peer_trusted: bool) {
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|k| {
                let k = k.as_str();
                any_folded(&self.identity, k)
                    || any_folded(&self.method_override, k)
                    || (!peer_trusted && any_folded(&self.forwarding, k))
            })
            .cloned()
            .collect();
        for name in doomed {
            headers.remove(&name);
        }
    }
}

fn any_folded(set: &[String], name: &str) -> bool {
    // Compared byte by byte with folding, so the common case allocates nothing.
    set.iter().any(|f| {
        f.len() == name.len()
            && f.bytes().zip(name.bytes()).all(|(a, b)| {
                let b = if b == b'_' {
                    b'-'
                } else {
                    b.to_ascii_lowercase()
                };
                a == b
            })
    })
}

fn fold(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b == b'_' {
                '-'
            } else {
                b.to_ascii_lowercase() as char
            }
        })
        .collect()
}

/// Keeps only the `Upgrade` protocols in `allowed` (lower-case names; a `/version` suffix is
/// ignored for the comparison). Returns whether an upgrade remains to be bridged; when none
/// does, `Upgrade` is removed and the request continues as plain HTTP.
pub fn filter_upgrade(headers: &mut HeaderMap, allowed: &[String]) -> bool {
    if !headers.contains_key(header::UPGRADE) {
        return false;
    }
    let kept: Vec<String> = headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| {
            let name = t.split('/').next().unwrap_or("");
            allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
        })
        .map(str::to_string)
        .collect();
    headers.remove(header::UPGRADE);
    if kept.is_empty() || !is_upgrade_requested(headers) {
        return false;
    }
    match HeaderValue::from_str(&kept.join(", ")) {
        Ok(v) => {
            headers.insert(header::UPGRADE, v);
            true
        }
        Err(_) => false,
    }
}

fn is_upgrade_requested(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Hop-by-hop headers (RFC 9110 §7.6.1), as names: comparing names costs no parsing.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Whether a request asks to switch protocols (e.g. WebSocket).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && is_upgrade_requested(headers)
}

/// Removes hop-by-hop headers, including those named in `Connection`. With `keep_upgrade`, the
/// `Upgrade` header stays and `Connection: upgrade` is set again.
///
/// One pass over the names present: most messages carry none of these, and then the map is
/// not touched (this runs twice on every proxied request).
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let mut doomed: SmallVec<[HeaderName; 4]> = SmallVec::new();
    let mut has_connection = false;
    for name in headers.keys() {
        if *name == header::CONNECTION {
            has_connection = true;
        }
        if HOP_BY_HOP.contains(name) || (!keep_upgrade && *name == header::UPGRADE) {
            doomed.push(name.clone());
        }
    }
    if has_connection {
        let named = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .filter(|n| !(keep_upgrade && *n == header::UPGRADE));
        doomed.extend(named);
    }
    for n in &doomed {
        headers.remove(n);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// HTTP/2 may split `Cookie` into several fields; an HTTP/1.1 upstream expects one
/// (RFC 9113 §8.2.3).
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (values.next(), values.next()) else {
        return;
    };
    let _ = first;
    let joined: Vec<&[u8]> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if let Ok(v) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(header::COOKIE, v);
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// `X-Forwarded-For` and `Forwarded` as last made on this thread, with what they were made
/// from: a connection sends many requests from one address to one host, so the values are
/// made once and shared (a clone of a header value copies nothing).
struct LastForwarded {
    peer: std::net::IpAddr,
    scheme: &'static str,
    host: Option<HeaderValue>,
    xff: Option<HeaderValue>,
    forwarded: Option<HeaderValue>,
}

thread_local! {
    static LAST_FORWARDED: std::cell::RefCell<Option<LastForwarded>> =
        const { std::cell::RefCell::new(None) };
}

/// Sets `X-Forwarded-For`, `-Proto`, `-Host`, a `Forwarded` that says the same (RFC 7239),
/// and the request id. Incoming copies are extended only when the peer is a trusted proxy;
/// [`StripSet::strip`] has already removed them otherwise. `host` is the authority the client
/// asked for (see `gateway::authority`).
pub fn set_forwarded(
    headers: &mut HeaderMap,
    ctx: &RequestCtx,
    host: Option<&HeaderValue>,
    names: &HeaderNames,
) {
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(ctx.scheme));
    headers.insert(&names.request_id, ctx.request_id.header_value());
    let prior_xff = ctx.peer_trusted
        && headers
            .get(&X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.trim().is_empty());
    let keep_host = ctx.peer_trusted && headers.contains_key(&X_FORWARDED_HOST);
    if !keep_host {
        match host {
            Some(v) => headers.insert(&X_FORWARDED_HOST, v.clone()),
            None => headers.remove(&X_FORWARDED_HOST),
        };
    }
    let (xff, forwarded) = if prior_xff || keep_host {
        let mut xff = Buf::default();
        if let Some(prior) = headers
            .get(&X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
            .filter(|_| prior_xff)
        {
            xff.push(prior);
            xff.push(", ");
        }
        let _ = write!(xff, "{}", ctx.peer.ip());
        let host = headers.get(&X_FORWARDED_HOST).and_then(|v| v.to_str().ok());
        forwarding_values(&xff, ctx.scheme, host)
    } else {
        // The common case: the client is the peer, and the host is the one it asked for.
        from_peer(ctx.peer.ip(), ctx.scheme, host)
    };
    match forwarded {
        Some(v) => headers.insert(header::FORWARDED, v),
        None => headers.remove(header::FORWARDED),
    };
    // It holds the peer's address and, from a trusted proxy, a header that was valid text.
    if let Some(xff) = xff {
        headers.insert(&X_FORWARDED_FOR, xff);
    }
}

/// `X-Forwarded-For` from its text, and the `Forwarded` that says the same.
fn forwarding_values(
    xff: &Buf,
    scheme: &str,
    host: Option<&str>,
) -> (Option<HeaderValue>, Option<HeaderValue>) {
    let xff_text = std::str::from_utf8(&xff.0).unwrap_or_default();
    let forwarded = forwarded_value(xff_text, scheme, host);
    (
        HeaderValue::from_bytes(&xff.0).ok(),
        HeaderValue::from_bytes(&forwarded.0).ok(),
    )
}

/// `X-Forwarded-For` and `Forwarded` for a request straight from `peer`, made once per peer,
/// scheme and host on this thread.
fn from_peer(
    peer: std::net::IpAddr,
    scheme: &'static str,
    host: Option<&HeaderValue>,
) -> (Option<HeaderValue>, Option<HeaderValue>) {
    LAST_FORWARDED.with(|last| {
        let mut last = last.borrow_mut();
        if let Some(l) = last.as_ref()
            && l.peer == peer
            && l.scheme == scheme
            && l.host.as_ref() == host
        {
            return (l.xff.clone(), l.forwarded.clone());
        }
        let mut text = Buf::default();
        let _ = write!(text, "{peer}");
        let (xff, forwarded) = forwarding_values(&text, scheme, host.and_then(|v| v.to_str().ok()));
        *last = Some(LastForwarded {
            peer,
            scheme,
            // Copied: the request's value shares its connection's read buffer, which a
            // thread-local would keep alive.
            host: host.and_then(|h| HeaderValue::from_bytes(h.as_bytes()).ok()),
            xff: xff.clone(),
            forwarded: forwarded.clone(),
        });
        (xff, forwarded)
    })
}

/// A header value being put together on the stack (heap only past 128 bytes).
#[derive(Default)]
struct Buf(SmallVec<[u8; 128]>);

impl Buf {
    fn push(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }
}

impl std::fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push(s);
        Ok(())
    }
}

/// One `Forwarded` element per `X-Forwarded-For` hop, the last also with proto and host, so
/// an app reading either header learns the same thing.
fn forwarded_value(xff: &str, proto: &str, host: Option<&str>) -> Buf {
    let mut out = Buf::default();
    for hop in xff.split(',').map(str::trim) {
        if !out.0.is_empty() {
            out.push(", ");
        }
        let _ = match hop.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(ip)) => write!(out, "for={ip}"),
            Ok(std::net::IpAddr::V6(ip)) => write!(out, "for=\"[{ip}]\""),
            Err(_) => write!(out, "for=unknown"),
        };
    }
    out.push(";proto=");
    out.push(proto);
    if let Some(h) = host.filter(|h| !h.contains(['"', '\\'])) {
        out.push(";host=\"");
        out.push(h);
        out.push("\"");
    }
    out
}

/// Adds the identity headers for a signed-in user. The values are made once per session and
/// shared (see [`Identity::header_values`]).
pub fn inject_identity(headers: &mut HeaderMap, id: &Identity, now: Ts, names: &HeaderNames) {
    let (v, roles) = id.header_values(now);
    let mut put = |name: &HeaderName, value: Option<&HeaderValue>| {
        if let Some(value) = value {
            headers.insert(name, value.clone());
        }
    };
    put(&names.user_id, v.user_id.as_ref());
    put(&names.user, v.user.as_ref());
    put(&names.email, v.email.as_ref());
    put(&names.name, v.name.as_ref());
    put(&names.roles, roles.as_ref());
    put(&names.tier, v.tier.as_ref());
    put(&names.admin, Some(&v.admin));
    put(&names.verified, Some(&v.verified));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> HeaderNames {
        crate::config::from_toml("").unwrap().headers
    }

    #[test]
    fn strips_every_spelling() {
        let set = StripSet::new(&names());
        let mut h = HeaderMap::new();
        for n in [
            "x-auth-user",
            "X_Auth_User",
            "x_auth-user-id",
            "X-AUTH-ROLES",
            "x-auth-admin",
            "x-authorization",
            "accept",
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static("evil"),
            );
        }
        h.append("x-auth-user", HeaderValue::from_static("second"));
        set.strip(&mut h, true);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, vec!["accept", "x-authorization"]);
    }

    #[test]
    fn hop_by_hop_and_connection_tokens() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        let mut up = h.clone();
        remove_hop_by_hop(&mut h, false);
        assert_eq!(
            h.keys().map(HeaderName::as_str).collect::<Vec<_>>(),
            vec!["accept"]
        );
        remove_hop_by_hop(&mut up, true);
        assert_eq!(up.get("upgrade").unwrap(), "websocket");
        assert_eq!(up.get("connection").unwrap(), "upgrade");
    }

    /// The values kept per thread for the last peer, scheme and host are never another
    /// request's: each request gets the values made from its own.
    #[test]
    fn forwarding_values_follow_each_request() {
        let names = names();
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let forwarded = |peer: &str, tls: bool, host: Option<&str>, xff: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(x) = xff {
                h.insert("x-forwarded-for", HeaderValue::from_str(x).unwrap());
            }
            let ctx = RequestCtx::new(peer.parse().unwrap(), tls, &h, &trusted, &names.request_id);
            let host = host.map(|v| HeaderValue::from_str(v).unwrap());
            set_forwarded(&mut h, &ctx, host.as_ref(), &names);
            let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_string());
            (
                get("x-forwarded-for"),
                get("forwarded"),
                get("x-forwarded-host"),
            )
        };
        let s = |v: &str| Some(v.to_string());
        for _ in 0..2 {
            assert_eq!(
                forwarded("192.0.2.1:1", false, Some("a.example"), None),
                (
                    s("192.0.2.1"),
                    s("for=192.0.2.1;proto=http;host=\"a.example\""),
                    s("a.example")
                )
            );
            assert_eq!(
                forwarded("192.0.2.1:2", false, Some("b.example"), None),
                (
                    s("192.0.2.1"),
                    s("for=192.0.2.1;proto=http;host=\"b.example\""),
                    s("b.example")
                )
            );
            assert_eq!(
                forwarded("192.0.2.1:2", true, Some("b.example"), None),
                (
                    s("192.0.2.1"),
                    s("for=192.0.2.1;proto=https;host=\"b.example\""),
                    s("b.example")
                )
            );
            assert_eq!(
                forwarded("[2001:db8::1]:3", false, None, None),
                (
                    s("2001:db8::1"),
                    s("for=\"[2001:db8::1]\";proto=http"),
                    None
                )
            );
            // From a trusted proxy, its chain is extended, and what an untrusted peer sends
            // (removed before this runs; here still present) is not read.
            assert_eq!(
                forwarded("10.1.2.3:4", false, Some("a.example"), Some("192.0.2.9")),
                (
                    s("192.0.2.9, 10.1.2.3"),
                    s("for=192.0.2.9, for=10.1.2.3;proto=http;host=\"a.example\""),
                    s("a.example")
                )
            );
            assert_eq!(
                forwarded("192.0.2.1:1", false, Some("a.example"), Some("192.0.2.9")).0,
                s("192.0.2.1")
            );
        }
    }

    #[test]
    fn cookies_are_joined() {
        let mut h = HeaderMap::new();
        h.append("cookie", HeaderValue::from_static("a=1"));
        h.append("cookie", HeaderValue::from_static("b=2"));
        join_cookies(&mut h);
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h.get("cookie").unwrap(), "a=1; b=2");
    }
}
