//! Building our own responses.

use http::{HeaderValue, Response, StatusCode, header};

use super::Body;
use super::body::{empty, full};

pub fn html(status: StatusCode, body: String) -> Response<Body> {
    with_type(status, "text/html; charset=utf-8", body)
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    with_type(status, "application/json", value.to_string())
}

pub fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    with_type(status, "text/plain; charset=utf-8", body.into())
}

fn with_type(status: StatusCode, ctype: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A redirect; `303 See Other` after a form POST, `302 Found` otherwise.
pub fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
