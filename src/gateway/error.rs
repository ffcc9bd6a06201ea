//! Request errors and the one place they become responses.

use std::fmt;

use http::{Response, StatusCode};

use crate::app::App;
use crate::proxy::UpstreamError;
use crate::store::{StoreError, Tier};
use crate::web::{Body, ErrorPage, RequestCtx, respond};

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// Client: no valid session on a route that needs one.
    #[error("not signed in")]
    Unauthenticated,
    /// Client: signed in, but the route's conditions are not met.
    #[error("forbidden: {0}")]
    Forbidden(Missing),
    /// Client: the route is closed to everyone.
    #[error("route denied by configuration")]
    Denied,
    /// Client: a path we will not interpret.
    #[error("bad request path: {0}")]
    BadPath(&'static str),
    /// Client: a method, host or override we will not interpret.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Client: `CONNECT` (a proxy is not a tunnel service).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Us: the session store cannot answer.
    #[error("session store unavailable: {0}")]
    Unavailable(#[from] StoreError),
    /// Upstream.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

/// What a signed-in user lacks for a route: the first of its conditions they do not meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// None of these roles (the route's `roles`).
    Role(Vec<String>),
    /// A subscription tier outside the route's `tiers`.
    Tier(Vec<Tier>),
    /// A confirmed email address (`require_verified`).
    VerifiedAddress,
    /// A session that passed a second factor (`require_2fa`).
    TwoFactor,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Role(r) => write!(f, "one of the roles {}", r.join(", ")),
            Missing::Tier(t) => write!(f, "one of the tiers {}", join(t)),
            Missing::VerifiedAddress => f.write_str("a confirmed email address"),
            Missing::TwoFactor => f.write_str("a two-factor sign-in"),
        }
    }
}

fn join(tiers: &[Tier]) -> String {
    tiers
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Missing {
    /// The JSON `missing` field.
    fn code(&self) -> &'static str {
        match self {
            Missing::Role(_) => "role",
            Missing::Tier(_) => "tier",
            Missing::VerifiedAddress => "verified_address",
            Missing::TwoFactor => "two_factor",
        }
    }

    /// What the person reads: what is missing and what to do about it, with a link onward.
    fn explain(&self) -> (String, (&'static str, &'static str)) {
        const ACCOUNT: (&str, &str) = ("/_auth/account", "Go to your account");
        match self {
            Missing::Role(r) => (
                format!(
                    "This page needs one of these roles: {}. Your account has none of them; ask \
                     an administrator if you should have access.",
                    r.join(", ")
                ),
                ACCOUNT,
            ),
            Missing::Tier(t) => (
                format!(
                    "This page is part of the {} subscription; your account's tier does not \
                     include it.",
                    join(t)
                ),
                ACCOUNT,
            ),
            Missing::VerifiedAddress => (
                "This page needs a confirmed email address. Follow the link we mailed you, or \
                 ask for a new one on your account page."
                    .to_string(),
                ACCOUNT,
            ),
            Missing::TwoFactor => (
                "This page needs a two-factor sign-in. Sign out and sign in again with your \
                 authenticator code or a passkey; if two-factor sign-in is not on for your \
                 account, turn it on first."
                    .to_string(),
                ("/_auth/account/2fa", "Two-factor settings"),
            ),
        }
    }
}

impl GateError {
    /// Failures that are ours or the upstream's (logged as warnings), not the client's.
    pub fn is_server_side(&self) -> bool {
        matches!(self, GateError::Unavailable(_) | GateError::Upstream(_))
    }

    pub fn into_response(
        self,
        app: &App,
        ctx: &RequestCtx,
        page_load: bool,
        target: &str,
    ) -> Response<Body> {
        let explained;
        let page = match &self {
            GateError::Unauthenticated => {
                if page_load {
                    return respond::redirect(StatusCode::FOUND, &crate::portal::login_url(target));
                }
                ErrorPage::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "Sign-in required",
                    "Sign in to continue.",
                )
            }
            GateError::Forbidden(missing) => {
                tracing::info!(request_id = %ctx.request_id, missing = %missing, "access refused");
                explained = missing.explain();
                let (href, text) = explained.1;
                ErrorPage::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "Access denied",
                    &explained.0,
                )
                .link(href, text)
                .details(serde_json::json!({ "missing": missing.code() }))
            }
            GateError::Denied => ErrorPage::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Access denied",
                "Your account does not have access to this page.",
            ),
            GateError::BadPath(_) => ErrorPage::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Bad request",
                "The request path is not valid.",
            ),
            GateError::BadRequest(_) => ErrorPage::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Bad request",
                "The request is not valid.",
            ),
            GateError::MethodNotAllowed => ErrorPage::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                "This method is not accepted.",
            ),
            GateError::Unavailable(_) => crate::web::error_page::unavailable(),
            GateError::Upstream(UpstreamError::Timeout(_)) => ErrorPage::new(
                StatusCode::GATEWAY_TIMEOUT,
                "gateway_timeout",
                "The application did not respond",
                "The application took too long to answer. Please try again.",
            ),
            GateError::Upstream(
                UpstreamError::Unreachable(_)
                | UpstreamError::BadRequest(_)
                | UpstreamError::Protocol(_),
            ) => ErrorPage::new(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "The application is unavailable",
                "The application could not be reached. Please try again shortly.",
            ),
        };
        if matches!(self, GateError::Upstream(_)) {
            app.metrics
                .upstream_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let resp = page.respond(&app.templates, ctx, page_load);
        if page_load {
            crate::gateway::auth_routes::secure_headers(app, resp)
        } else {
            resp
        }
    }
}
