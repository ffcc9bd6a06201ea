//! Gatehouse's own pages under `/_auth/`: sign-in and sign-out, plus the stylesheet, a health
//! check and metrics. Every response carries the security headers of [`secure_headers`].

mod forms;
mod login;
mod ops;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

pub use forms::safe_next;

use crate::app::App;
use crate::web::render::TemplateSet;
use crate::web::{Body, RequestCtx, respond};

/// The portal's templates, compiled into the binary.
pub const TEMPLATES: &[TemplateSet] = &[&[
    ("layout.html", include_str!("templates/layout.html")),
    ("login.html", include_str!("templates/login.html")),
    ("logout.html", include_str!("templates/logout.html")),
    ("message.html", include_str!("templates/message.html")),
    ("gatehouse.css", include_str!("templates/gatehouse.css")),
]];

pub async fn handle(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if path.starts_with("/_auth/api/")
        || path == "/_auth/admin"
        || path.starts_with("/_auth/admin/")
    {
        return secure_headers(app, crate::admin::handle(app, req, ctx).await);
    }
    let resp = match (method, path.as_str()) {
        (Method::GET | Method::HEAD, "/_auth/login") => login::show(app, &req, ctx).await,
        (Method::POST, "/_auth/login") => login::submit(app, req, ctx).await,
        (Method::GET | Method::HEAD, "/_auth/logout") => login::show_logout(app, &req).await,
        (Method::POST, "/_auth/logout") => login::submit_logout(app, req, ctx).await,
        (Method::GET | Method::HEAD, "/_auth/static/gatehouse.css") => ops::stylesheet(app),
        (Method::GET | Method::HEAD, "/_auth/health") => ops::health(app).await,
        (Method::GET, "/_auth/metrics") => ops::metrics(app, ctx),
        (_, "/_auth/login" | "/_auth/logout") => method_not_allowed(),
        _ => not_found(app),
    };
    secure_headers(app, resp)
}

/// Headers every `/_auth/` response carries.
pub fn secure_headers(app: &App, mut resp: Response<Body>) -> Response<Body> {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if app.settings.server.tls.is_some() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    resp
}

fn not_found(app: &App) -> Response<Body> {
    let ctx = minijinja::context! { title => "Not found", message => "There is no such page." };
    match app.templates.render("message.html", ctx) {
        Ok(b) => respond::html(StatusCode::NOT_FOUND, b),
        Err(_) => respond::text(StatusCode::NOT_FOUND, "not found"),
    }
}

fn method_not_allowed() -> Response<Body> {
    respond::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

/// A page that could not be rendered: a bug, never the user's fault.
pub(crate) fn render_failed(e: &crate::web::render::RenderError) -> Response<Body> {
    tracing::error!(error = %e, "template failed");
    respond::text(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}
