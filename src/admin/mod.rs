//! The admin JSON API (`/_auth/api/`) and console (`/_auth/admin/`).
//!
//! Both share one core: [`principal`] says who is calling and constructs an
//! [`AdminPrincipal`](principal::AdminPrincipal) only after the role check; [`ops`] holds the
//! rules (who may change what, cache eviction) over the accounts library, which records the
//! activity rows. The API speaks JSON with typed errors ([`error::ApiError`]); the console is
//! server-rendered HTML with CSRF-protected forms.

pub mod api;
mod console;
pub mod error;
pub mod openapi;
pub mod ops;
pub mod principal;
pub mod views;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::app::App;
use crate::web::render::TemplateSet;
use crate::web::{Body, RequestCtx};

/// The console's templates (they extend the portal's `layout.html`).
pub const TEMPLATES: &[TemplateSet] = &[&[
    ("admin/users.html", include_str!("templates/users.html")),
    ("admin/user.html", include_str!("templates/user.html")),
    (
        "admin/activity.html",
        include_str!("templates/activity.html"),
    ),
    ("admin/macros.html", include_str!("templates/macros.html")),
    (
        "admin/activity_table.html",
        include_str!("templates/activity_table.html"),
    ),
]];

pub async fn handle(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> Response<Body> {
    if req.uri().path().starts_with("/_auth/api/") {
        api::handle(app, req, ctx).await
    } else {
        console::handle(app, req, ctx).await
    }
}
