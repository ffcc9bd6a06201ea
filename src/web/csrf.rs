//! CSRF protection for our forms: a random pre-session cookie, and in each form a token that
//! is an HMAC of that cookie under the server's CSRF key — and, when the browser has a session
//! cookie, of the session too. A cross-site page can neither read the cookies nor compute the
//! tag, so it cannot forge a matching pair; and a token minted for one session (say, the
//! attacker's own, with a CSRF cookie planted from a sibling subdomain) fails for another.
//! Anonymous forms (sign-in, reset, sign-up) keep the cookie-only token.

use http::HeaderMap;
use subtle::ConstantTimeEq;

use super::cookies;
use crate::auth::bearer::{looks_like_token, random_token};
use crate::auth::keys::Keys;

pub const COOKIE_BASE: &str = "gatehouse_csrf";
/// Form field carrying the token.
pub const FIELD: &str = "csrf_token";
/// Header carrying the token for API writes made with a browser session.
pub const HEADER: &str = "x-csrf-token";

/// The CSRF state of a request: the cookie value to use, and whether it must be (re)set.
#[derive(Debug, Clone)]
pub struct Csrf {
    pub cookie_value: String,
    pub is_new: bool,
    pub token: String,
}

impl Csrf {
    /// Uses the request's CSRF cookie, or makes a new one; the token is bound to the session
    /// cookie named `session_cookie` when the request has one.
    pub fn for_request(
        keys: &Keys,
        headers: &HeaderMap,
        secure: bool,
        session_cookie: &str,
    ) -> Csrf {
        let name = cookies::name(COOKIE_BASE, secure);
        let (cookie_value, is_new) =
            match cookies::get(headers, &name).filter(|v| looks_like_token(v)) {
                Some(v) => (v, false),
                None => (random_token(), true),
            };
        let token = tag(keys, &cookie_value, headers, session_cookie);
        Csrf {
            cookie_value,
            is_new,
            token,
        }
    }

    /// The `Set-Cookie` header to send when the cookie is new.
    pub fn set_cookie(&self, secure: bool) -> Option<http::HeaderValue> {
        if !self.is_new {
            return None;
        }
        cookies::set(
            &cookies::name(COOKIE_BASE, secure),
            &self.cookie_value,
            secure,
            None,
        )
    }
}

/// The token for a CSRF cookie value, bound to the request's session cookie when present.
fn tag(keys: &Keys, cookie: &str, headers: &HeaderMap, session_cookie: &str) -> String {
    match cookies::get(headers, session_cookie).filter(|s| !s.is_empty()) {
        // A newline cannot occur in either cookie value, so the two parts cannot be shifted.
        Some(session) => keys.csrf_tag(format!("{cookie}\n{session}").as_bytes()),
        None => keys.csrf_tag(cookie.as_bytes()),
    }
}

/// Checks a submitted token against the request's CSRF cookie (and session cookie, if any).
pub fn verify(
    keys: &Keys,
    headers: &HeaderMap,
    secure: bool,
    session_cookie: &str,
    submitted: Option<&str>,
) -> bool {
    let Some(cookie) =
        cookies::get(headers, &cookies::name(COOKIE_BASE, secure)).filter(|v| looks_like_token(v))
    else {
        return false;
    };
    let Some(submitted) = submitted else {
        return false;
    };
    let expected = tag(keys, &cookie, headers, session_cookie);
    expected.as_bytes().ct_eq(submitted.as_bytes()).into()
}
