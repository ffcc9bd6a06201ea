//! Why a portal handler could not answer with its page, and the one place that turns it into a
//! response: a page for a browser (see [`crate::web::negotiate::wants_page`]), JSON for a
//! program, in the look of the gateway's own errors ([`crate::web::ErrorPage`]).

use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::forms::login_url;
use crate::app::App;
use crate::web::render::RenderError;
use crate::web::{Body, ErrorPage, RequestCtx, error_page, respond};

/// What every portal handler returns.
pub type PortalResult = Result<Response<Body>, PortalError>;

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// Client: a form without a valid CSRF token (an old page, or another site's form).
    /// `form` is the page that shows the form again.
    #[error("the form's CSRF token is missing or does not match")]
    Csrf { form: &'static str },
    /// Client: a body that is not a readable form (413, 415 or 400).
    #[error("unreadable form ({0})")]
    Form(StatusCode),
    /// Client: the page needs a session; to the sign-in page, then back to `next`.
    #[error("not signed in")]
    SignIn { next: String },
    /// Client: over a throttle; try again within `retry_after`.
    #[error("too many attempts")]
    Throttled { retry_after: Duration },
    /// Client: nothing here (the text says what).
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// Client: a form without what it needs (the text says what).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Us: a service that cannot answer now.
    #[error("unavailable: {0}")]
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
    /// Us: a page that does not render (a bug).
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// Every service error a handler does not turn into a page of its own is ours to own up to.
macro_rules! unavailable_from {
    ($($t:ty),*) => {$(
        impl From<$t> for PortalError {
            fn from(e: $t) -> PortalError {
                PortalError::Unavailable(Box::new(e))
            }
        }
    )*};
}
unavailable_from!(
    crate::store::StoreError,
    crate::accounts::AccountError,
    crate::accounts::TwofaError,
    crate::accounts::PasskeyFailure,
    crate::accounts::ExternalRefusal,
    crate::session::pending::PendingError,
    crate::oidc::OidcError
);

/// "There is no such page", for the router and for handlers.
pub const NO_SUCH_PAGE: &str = "There is no such page.";

impl PortalError {
    /// Over `throttle`'s limit: come back when its window has passed.
    pub fn throttled(throttle: &crate::auth::throttle::Throttle) -> PortalError {
        PortalError::Throttled {
            retry_after: throttle.window().to_std().unwrap_or_default(),
        }
    }

    pub fn into_response(self, app: &App, ctx: &RequestCtx, page: bool) -> Response<Body> {
        let text;
        let err = match &self {
            PortalError::Csrf { form } => ErrorPage::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "The form expired",
                "The form expired or did not come from this site. Go back, reload the page and \
                 submit it again.",
            )
            .link(form, "Back to the form"),
            PortalError::Form(status) => ErrorPage::new(
                *status,
                "unreadable_form",
                "The form could not be read",
                "The form could not be read. Go back, reload the page and submit it again.",
            ),
            PortalError::SignIn { next } => {
                return respond::redirect(StatusCode::SEE_OTHER, &login_url(next));
            }
            PortalError::Throttled { retry_after } => {
                text = format!(
                    "There were too many attempts from your network. Wait {}, then try again.",
                    super::page::human(*retry_after)
                );
                ErrorPage::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    "Too many attempts",
                    &text,
                )
                .details(serde_json::json!({ "retry_after": retry_after.as_secs().max(1) }))
            }
            PortalError::NotFound(what) => {
                ErrorPage::new(StatusCode::NOT_FOUND, "not_found", "Not found", what)
                    .link("/_auth/account", "Go to your account")
            }
            PortalError::BadRequest(what) => {
                ErrorPage::new(StatusCode::BAD_REQUEST, "bad_request", "Bad request", what)
            }
            PortalError::Unavailable(e) => {
                tracing::error!(request_id = %ctx.request_id, error = %e, "portal request failed on our side");
                error_page::unavailable()
            }
            PortalError::Render(e) => {
                tracing::error!(request_id = %ctx.request_id, error = %e, "template failed");
                ErrorPage::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Something went wrong",
                    "This page could not be shown. Please try again shortly.",
                )
            }
        };
        let mut resp = err.respond(&app.templates, ctx, page);
        if let PortalError::Throttled { retry_after } = &self
            && let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}
