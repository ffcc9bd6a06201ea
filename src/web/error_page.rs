//! The one look of an error we answer ourselves, for the proxy path and for `/_auth/`: an HTML
//! page (`message.html`: title, what happened, what to do next, a link onward, the request id)
//! when a person is reading, JSON (`error`, `message`, `request_id`, plus any details) when a
//! program is.

use http::{Response, StatusCode};

use super::render::Templates;
use super::{Body, RequestCtx, respond};

/// An error as a person reads it and a program parses it.
#[derive(Debug)]
pub struct ErrorPage<'a> {
    pub status: StatusCode,
    /// Machine-readable code: the JSON `error` field.
    pub code: &'static str,
    pub title: &'a str,
    /// What happened and what to do next.
    pub message: &'a str,
    /// Where to go from here: (href, text).
    pub link: Option<(&'a str, &'a str)>,
    /// Extra JSON fields (an object), merged after the standard ones.
    pub details: Option<serde_json::Value>,
}

impl<'a> ErrorPage<'a> {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'a str,
        message: &'a str,
    ) -> ErrorPage<'a> {
        ErrorPage {
            status,
            code,
            title,
            message,
            link: None,
            details: None,
        }
    }

    pub fn link(mut self, href: &'a str, text: &'a str) -> ErrorPage<'a> {
        self.link = Some((href, text));
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> ErrorPage<'a> {
        self.details = Some(details);
        self
    }

    /// HTML when `html`, else JSON. A page that cannot be rendered falls back to JSON, which
    /// cannot fail.
    pub fn respond(self, templates: &Templates, ctx: &RequestCtx, html: bool) -> Response<Body> {
        if html {
            let v = minijinja::context! {
                title => self.title,
                message => self.message,
                request_id => ctx.request_id.as_str(),
                link => self.link.map(|(href, text)| minijinja::context! { href, text }),
            };
            match templates.render("message.html", v) {
                Ok(body) => return respond::html(self.status, body),
                Err(e) => tracing::error!(error = %e, "error page failed to render"),
            }
        }
        let mut body = serde_json::json!({
            "error": self.code,
            "message": self.message,
            "request_id": ctx.request_id,
        });
        if let (Some(serde_json::Value::Object(extra)), Some(obj)) =
            (self.details, body.as_object_mut())
        {
            obj.extend(extra);
        }
        respond::json(self.status, &body)
    }
}

/// Our side cannot answer right now: the one "temporarily unavailable" answer, for the proxy
/// path and for `/_auth/`. Says nothing about any account.
pub fn unavailable() -> ErrorPage<'static> {
    ErrorPage::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Temporarily unavailable",
        "This is temporarily unavailable. Please try again shortly.",
    )
}
