//! The trust boundary: which incoming headers are dropped and which are set.
//!
//! * Identity headers (`X-Auth-*`) are removed from every request before anything else, in
//!   every spelling: any case, and `_` for `-` (WSGI servers fold both to the same variable).
//! * Hop-by-hop headers are removed both ways (RFC 9110 §7.6.1), except that an upgrade
//!   request keeps `Upgrade` and `Connection: upgrade`.
//! * `X-Forwarded-For/-Proto/-Host` and the request id are set by us; incoming copies are
//!   kept only from trusted proxies (see [`crate::web::RequestCtx`]).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::HeaderNames;
use crate::session::Identity;
use crate::store::Ts;
use crate::web::RequestCtx;

/// Identity header names in folded form (lowercase, `_` → `-`).
#[derive(Debug, Clone)]
pub struct StripSet {
    folded: Vec<String>,
}

impl StripSet {
    pub fn new(names: &HeaderNames) -> StripSet {
        StripSet {
            folded: names.identity().iter().map(|h| fold(h.as_str())).collect(),
        }
    }

    fn matches(&self, name: &str) -> bool {
        // Compared byte by byte with folding, so the common case allocates nothing.
        self.folded.iter().any(|f| {
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

    /// Removes every header that spells one of the identity names.
    pub fn strip(&self, headers: &mut HeaderMap) {
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|k| self.matches(k.as_str()))
            .cloned()
            .collect();
        for name in doomed {
            headers.remove(&name);
        }
    }
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

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Whether a request asks to switch protocols (e.g. WebSocket).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers, including those named in `Connection`. With `keep_upgrade`, the
/// `Upgrade` header stays and `Connection: upgrade` is set again.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for n in named {
        if keep_upgrade && n == header::UPGRADE {
            continue;
        }
        headers.remove(n);
    }
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
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

/// Sets `X-Forwarded-For`, `-Proto`, `-Host` and the request id.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    ctx: &RequestCtx,
    host: Option<&str>,
    names: &HeaderNames,
) {
    let peer = ctx.peer.ip().to_string();
    let xff = match (
        ctx.peer_trusted,
        headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
    ) {
        (true, Some(prior)) if !prior.trim().is_empty() => format!("{prior}, {peer}"),
        _ => peer,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(ctx.scheme));
    let keep_host = ctx.peer_trusted && headers.contains_key("x-forwarded-host");
    if !keep_host {
        match host.and_then(|h| HeaderValue::from_str(h).ok()) {
            Some(v) => {
                headers.insert("x-forwarded-host", v);
            }
            None => {
                headers.remove("x-forwarded-host");
            }
        }
    }
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        headers.insert(names.request_id.clone(), v);
    }
}

/// Adds the identity headers for a signed-in user.
pub fn inject_identity(headers: &mut HeaderMap, id: &Identity, now: Ts, names: &HeaderNames) {
    let mut put = |name: &HeaderName, value: &str| {
        // Values are UTF-8; bytes ≥ 0x80 are allowed in field values (obs-text). Control
        // characters are not, and cannot occur in validated account fields.
        if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
            headers.insert(name.clone(), v);
        }
    };
    put(&names.user_id, &id.user_id.to_string());
    put(&names.user, &id.username);
    put(&names.email, &id.email);
    put(&names.name, id.full_name.as_deref().unwrap_or(""));
    put(&names.roles, &id.roles_at(now).join(","));
    put(&names.tier, &id.tier_name);
    put(&names.admin, if id.is_admin { "true" } else { "false" });
    put(
        &names.verified,
        if id.is_verified { "true" } else { "false" },
    );
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
        set.strip(&mut h);
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
