//! The portal's static assets: the stylesheet (rendered once per request from the brand) and
//! the passkey ceremony script (the only script the portal serves; see `passkeys`).

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::error::PortalError;
use crate::app::App;
use crate::web::{Body, respond};

const PASSKEYS_JS: &str = include_str!("static/passkeys.js");

/// An asset's response: its type, cached for an hour.
fn asset(body: String, content_type: &'static str) -> Response<Body> {
    let mut r = respond::text(StatusCode::OK, body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

pub fn passkeys_script() -> Response<Body> {
    asset(PASSKEYS_JS.to_string(), "text/javascript; charset=utf-8")
}

pub fn stylesheet(app: &App) -> Result<Response<Body>, PortalError> {
    let css = app
        .templates
        .render("gatehouse.css", minijinja::context! {})?;
    Ok(asset(css, "text/css; charset=utf-8"))
}
