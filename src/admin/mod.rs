//! The admin JSON API (`/_auth/api/`) and console (`/_auth/admin/`).
//!
//! ```text
//!  api::handle / console::handle
//!    ─▶ principal: who is calling (API token, or session cookie)
//!    ─▶ the check, once per request:  AdminPrincipal (admin-only)  or  Scope (own account / admin)
//!    ─▶ handler, taking what the check produced by type
//!    ─▶ service::AdminOps (who may change what) ─▶ accounts / sessions services
//! ```
//!
//! Both surfaces share one core: [`principal`] says who is calling and constructs an
//! [`AdminPrincipal`](principal::AdminPrincipal) only after the role check (and the admin
//! two-factor check, applied there alone); the dispatchers run it once per request and hand
//! the result to handlers by type. [`service`] holds the rules (who may change what, cache
//! eviction) over the account and session services, which write the rows and record the
//! activity; no handler reaches the store. Request bodies parse into the typed shapes of
//! [`views`], which also generate the OpenAPI document. The API speaks JSON with typed errors
//! ([`error::ApiError`]); the console is server-rendered HTML with CSRF-protected forms and
//! renders the same errors as pages.

pub mod api;
mod console;
pub mod error;
pub mod openapi;
pub mod principal;
pub mod service;
pub mod views;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::app::App;
use crate::web::render::TemplateSet;
use crate::web::{Body, RequestCtx};

/// The console's templates (they extend the portal's `layout.html`).
pub const TEMPLATES: &[TemplateSet] = &[&[
    ("admin/home.html", include_str!("templates/home.html")),
    ("admin/users.html", include_str!("templates/users.html")),
    ("admin/confirm.html", include_str!("templates/confirm.html")),
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
