//! Request errors and the one place they become responses.

use http::{Response, StatusCode};

use crate::app::App;
use crate::proxy::UpstreamError;
use crate::store::StoreError;
use crate::web::{Body, RequestCtx, respond};

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// Client: no valid session on a route that needs one.
    #[error("not signed in")]
    Unauthenticated,
    /// Client: signed in, but the route's conditions are not met.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
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
        let (status, code, title, message) = match &self {
            GateError::Unauthenticated => {
                if page_load {
                    let next = percent_encoding::utf8_percent_encode(
                        target,
                        percent_encoding::NON_ALPHANUMERIC,
                    );
                    return respond::redirect(
                        StatusCode::FOUND,
                        &format!("/_auth/login?next={next}"),
                    );
                }
                (
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "Sign-in required",
                    "Sign in to continue.",
                )
            }
            GateError::Forbidden(_) | GateError::Denied => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Access denied",
                "Your account does not have access to this page.",
            ),
            GateError::BadPath(_) => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Bad request",
                "The request path is not valid.",
            ),
            GateError::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Bad request",
                "The request is not valid.",
            ),
            GateError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                "This method is not accepted.",
            ),
            GateError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Temporarily unavailable",
                "Sign-in is temporarily unavailable. Please try again shortly.",
            ),
            GateError::Upstream(UpstreamError::Timeout(_)) => (
                StatusCode::GATEWAY_TIMEOUT,
                "gateway_timeout",
                "The application did not respond",
                "The application took too long to answer. Please try again.",
            ),
            GateError::Upstream(
                UpstreamError::Unreachable(_)
                | UpstreamError::BadRequest(_)
                | UpstreamError::Protocol(_),
            ) => (
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
        if page_load {
            let ctx_v =
                minijinja::context! { title, message, request_id => ctx.request_id.as_str() };
            if let Ok(body) = app.templates.render("message.html", ctx_v) {
                return crate::portal::secure_headers(app, respond::html(status, body));
            }
        }
        respond::json(
            status,
            &serde_json::json!({ "error": code, "message": message, "request_id": ctx.request_id }),
        )
    }
}
