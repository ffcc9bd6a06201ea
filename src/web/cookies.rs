//! Reading and writing our cookies, through the `cookie` crate.

use std::borrow::Cow;

use cookie::{Cookie, SameSite};
use http::{HeaderMap, HeaderValue, header};

/// The value of the first cookie named `name` in any `Cookie` header.
pub fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// The cookie name as sent: `__Host-` prefixed when cookies are `Secure`, which pins them to
/// this host and path `/`.
pub fn name(base: &str, secure: bool) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        base.to_string()
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure when asked. `max_age: None`
/// makes a browser-session cookie.
pub fn set(
    name: &str,
    value: &str,
    secure: bool,
    max_age: Option<time_like::Seconds>,
) -> Option<HeaderValue> {
    let mut c = Cookie::build((name.to_string(), value.to_string()))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(secure);
    if let Some(s) = max_age {
        c = c.max_age(cookie::time::Duration::seconds(s.0));
    }
    HeaderValue::from_str(&c.build().to_string()).ok()
}

/// `set_cookie` with `Domain=domain` added when it sets (or clears) the cookie `name`; other
/// cookies, and values that do not parse, are returned unchanged.
pub fn with_domain(set_cookie: &HeaderValue, name: &str, domain: &str) -> HeaderValue {
    let Ok(text) = set_cookie.to_str() else {
        return set_cookie.clone();
    };
    match Cookie::parse(text) {
        Ok(mut c) if c.name() == name => {
            c.set_domain(domain.to_string());
            HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| set_cookie.clone())
        }
        _ => set_cookie.clone(),
    }
}

/// A `Set-Cookie` value that deletes the cookie.
pub fn clear(name: &str, secure: bool) -> Option<HeaderValue> {
    set(name, "", secure, Some(time_like::Seconds(0)))
}

pub mod time_like {
    /// A cookie lifetime in seconds.
    #[derive(Debug, Clone, Copy)]
    pub struct Seconds(pub i64);
}

/// Removes the named cookies (names compared ignoring ASCII case, so no spelling slips
/// through) from the `Cookie` header(s), keeping the rest. A header that is not UTF-8 is read
/// lossily rather than passed on unread, so our cookie cannot hide behind one bad byte.
pub fn remove<N: AsRef<str>>(headers: &mut HeaderMap, names: &[N]) {
    take(headers, None, names);
}

/// [`get`] of `name`, then [`remove`] of `names`, in one reading of the header(s): what the
/// proxy does with every request.
pub fn take<N: AsRef<str>>(
    headers: &mut HeaderMap,
    name: Option<&str>,
    names: &[N],
) -> Option<String> {
    let mentions_ours = headers.get_all(header::COOKIE).iter().any(|v| {
        let bytes = v.as_bytes();
        std::str::from_utf8(bytes).is_err()
            || names
                .iter()
                .any(|n| contains_ignore_case(bytes, n.as_ref().as_bytes()))
    });
    if !mentions_ours {
        // `name` is one of `names` wherever this is used; otherwise read it apart.
        return name
            .filter(|n| !names.iter().any(|o| o.as_ref() == *n))
            .and_then(|n| get(headers, n));
    }
    let mut found = None;
    // The cookies kept, joined with "; " as they are found.
    let mut kept = String::new();
    for v in headers.get_all(header::COOKIE).iter() {
        let text = super::utf8_or_lossy(v.as_bytes());
        // As `get` does, the value is read only from a header that is text.
        let readable = matches!(text, Cow::Borrowed(_));
        for c in Cookie::split_parse(text.as_ref()).filter_map(Result::ok) {
            if found.is_none() && readable && name == Some(c.name()) {
                found = Some(c.value().to_string());
            }
            let cname = c.name().trim();
            if !names.iter().any(|n| n.as_ref().eq_ignore_ascii_case(cname)) {
                if !kept.is_empty() {
                    kept.push_str("; ");
                }
                kept.push_str(c.name());
                kept.push('=');
                kept.push_str(c.value());
            }
        }
    }
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_bytes(kept.as_bytes())
    {
        headers.insert(header::COOKIE, v);
    }
    found
}

/// Whether `needle` occurs in `hay`, ignoring ASCII case. Only positions whose first byte
/// matches are compared in full: a header is scanned once per name at about a byte a step.
fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let first = first.to_ascii_lowercase();
    hay.iter().enumerate().any(|(i, b)| {
        b.to_ascii_lowercase() == first
            && hay
                .get(i + 1..i + 1 + rest.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(rest))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_remove_and_build() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; gh=tok; b=2"));
        h.append(header::COOKIE, HeaderValue::from_static("c=3"));
        assert_eq!(get(&h, "gh").as_deref(), Some("tok"));
        assert_eq!(get(&h, "c").as_deref(), Some("3"));
        remove(&mut h, &["gh"]);
        assert_eq!(h.get(header::COOKIE).unwrap(), "a=1; b=2; c=3");
        let mut odd = HeaderMap::new();
        odd.append(
            header::COOKIE,
            HeaderValue::from_bytes(b"x=\xff; GH=tok; y=2").unwrap(),
        );
        remove(&mut odd, &["gh"]);
        let left = String::from_utf8_lossy(odd.get(header::COOKIE).unwrap().as_bytes()).to_string();
        assert!(!left.contains("tok") && left.contains("y=2"), "{left}");
        // One reading: the value of ours, and every spelling of ours gone.
        let mut both = HeaderMap::new();
        both.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; Gh=upper; gh=tok; __Host-GH=x"),
        );
        both.append(header::COOKIE, HeaderValue::from_static("gh=second; b=2"));
        assert_eq!(
            take(&mut both, Some("gh"), &["gh", "__Host-gh"]).as_deref(),
            Some("tok")
        );
        assert_eq!(both.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(both.get(header::COOKIE).unwrap(), "a=1; b=2");
        let mut none = HeaderMap::new();
        none.append(header::COOKIE, HeaderValue::from_static("a=1"));
        assert_eq!(take(&mut none, Some("gh"), &["gh"]), None);
        assert_eq!(none.get(header::COOKIE).unwrap(), "a=1");
        // Not read from a header that is not text, but still removed from it.
        let mut bad = HeaderMap::new();
        bad.append(
            header::COOKIE,
            HeaderValue::from_bytes(b"gh=tok; z=\xff").unwrap(),
        );
        assert_eq!(take(&mut bad, Some("gh"), &["gh"]), None);
        assert!(
            !String::from_utf8_lossy(bad.get(header::COOKIE).unwrap().as_bytes()).contains("tok")
        );
        assert!(contains_ignore_case(
            b"x; GateHouse_Session=1",
            b"gatehouse_session"
        ));
        assert!(!contains_ignore_case(
            b"gatehouse_sessio",
            b"gatehouse_session"
        ));
        let set_cookie = set("__Host-gh", "v", true, None).unwrap();
        let s = set_cookie.to_str().unwrap();
        for part in [
            "__Host-gh=v",
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Secure",
        ] {
            assert!(s.contains(part), "{s}");
        }
        assert!(
            !set("gh", "v", false, None)
                .unwrap()
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }
}
