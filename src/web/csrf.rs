//! CSRF protection for our forms: a random pre-session cookie, and in each form a token that
//! is an HMAC of that cookie under the server's CSRF key. A cross-site page can neither read
//! the cookie nor compute the tag, so it cannot forge a matching pair.

use http::HeaderMap;
use subtle::ConstantTimeEq;

use super::cookies;
use crate::auth::keys::Keys;
use crate::auth::tokens::{looks_like_token, random_token};

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
    /// Uses the request's CSRF cookie, or makes a new one.
    pub fn for_request(keys: &Keys, headers: &HeaderMap, secure: bool) -> Csrf {
        let name = cookies::name(COOKIE_BASE, secure);
        let (cookie_value, is_new) =
            match cookies::get(headers, &name).filter(|v| looks_like_token(v)) {
                Some(v) => (v, false),
                None => (random_token(), true),
            };
        let token = keys.csrf_tag(cookie_value.as_bytes());
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

/// Checks a submitted token against the request's CSRF cookie.
pub fn verify(keys: &Keys, headers: &HeaderMap, secure: bool, submitted: Option<&str>) -> bool {
    let Some(cookie) =
        cookies::get(headers, &cookies::name(COOKIE_BASE, secure)).filter(|v| looks_like_token(v))
    else {
        return false;
    };
    let Some(submitted) = submitted else {
        return false;
    };
    let expected = keys.csrf_tag(cookie.as_bytes());
    expected.as_bytes().ct_eq(submitted.as_bytes()).into()
}
