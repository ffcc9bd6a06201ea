//! Gatehouse's own pages under `/_auth/`: sign-in (with the two-factor step), sign-out,
//! password reset, sign-up and address verification, the account page and two-factor
//! settings, plus the stylesheet, a health check and metrics. Pages are rendered on the server
//! and work without JavaScript; every form carries a CSRF token (403 without a valid one);
//! every response carries the security headers of [`secure_headers`].
//!
//! | path | what |
//! |---|---|
//! | `/_auth/login`, `/_auth/login/2fa` | password, then the code when 2FA is on |
//! | `/_auth/logout` | sign out |
//! | `/_auth/reset`, `/_auth/reset/confirm` | reset request (field `email`), new password |
//! | `/_auth/signup`, `/_auth/verify` | open sign-up; the verification link |
//! | `/_auth/account` (+ `/profile`, `/password`, `/email`, `/verify`, `/sessions/revoke`, `/sessions/revoke-others`) | self-service |
//! | `/_auth/account/2fa` (+ `/disable`, `/recovery-codes`) | enrol, turn off, new codes |
//! | `/_auth/oidc/<id>/start`, `/_auth/oidc/<id>/callback` | sign-in with an external OpenID Connect provider ([`oidc`]) |
//! | `/_auth/account/identities/link`, `/unlink` | link or unlink a provider account |
//! | `/_auth/account/passkeys` (+ `/options`, `/remove`) | list, add, remove passkeys |
//! | `/_auth/login/passkey`, `/_auth/login/2fa/passkey` (+ `/options`) | sign in with a passkey |
//! | `/_auth/static/passkeys.js` | the passkey ceremony script |
//! | `/_auth/.well-known/jwks.json` | public keys of the identity assertion ([`crate::gateway::assertion`]) |
//! | `/_auth/authz/auth-request`, `/_auth/authz/forward-auth` | forward-auth for nginx, Traefik, Caddy ([`crate::gateway::forward_auth`]) |

mod account;
mod device;
mod forms;
mod login;
mod oidc;
mod ops;
pub use ops::{metrics_allowed, metrics_body};
mod page;
mod passkeys;
mod reset;
mod second_factor;
mod signup;
mod state;
mod twofa;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

pub use forms::safe_next;
pub use login::PENDING_COOKIE;
pub use oidc::OIDC_COOKIE;
pub use state::PortalState;

use crate::app::App;
use crate::web::render::TemplateSet;
use crate::web::{Body, RequestCtx, respond};

/// The portal's templates, compiled into the binary.
pub const TEMPLATES: &[TemplateSet] = &[&[
    ("layout.html", include_str!("templates/layout.html")),
    ("login.html", include_str!("templates/login.html")),
    ("login_2fa.html", include_str!("templates/login_2fa.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("twofa.html", include_str!("templates/twofa.html")),
    (
        "recovery_codes.html",
        include_str!("templates/recovery_codes.html"),
    ),
    (
        "reset_request.html",
        include_str!("templates/reset_request.html"),
    ),
    (
        "reset_confirm.html",
        include_str!("templates/reset_confirm.html"),
    ),
    ("signup.html", include_str!("templates/signup.html")),
    ("account.html", include_str!("templates/account.html")),
    ("logout.html", include_str!("templates/logout.html")),
    ("message.html", include_str!("templates/message.html")),
    ("gatehouse.css", include_str!("templates/gatehouse.css")),
    ("passkeys.html", include_str!("templates/passkeys.html")),
]];

/// The passkey ceremony script (the only script the portal serves; see `passkeys`).
const PASSKEYS_JS: &str = include_str!("static/passkeys.js");

pub async fn handle(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if path.starts_with("/_auth/api/")
        || path == "/_auth/admin"
        || path.starts_with("/_auth/admin/")
    {
        return secure_headers(app, crate::admin::handle(app, req, ctx).await);
    }
    // The portal's own forms are what write throttle and pending rows, and a provider sign-in
    // writes its flow row on any method; forward-auth (any method) is a hot path and stays
    // free of this.
    let oidc_rest = path.strip_prefix("/_auth/oidc/");
    if (method == Method::POST && !path.starts_with("/_auth/authz/")) || oidc_rest.is_some() {
        app.portal.prune_if_due(app.now()).await;
    }
    if let Some(rest) = oidc_rest {
        return secure_headers(app, oidc::route(app, req, ctx, rest).await);
    }
    let resp = match (method, path.as_str()) {
        (Method::GET | Method::HEAD, "/_auth/login") => login::show(app, &req, ctx).await,
        (Method::POST, "/_auth/login") => login::submit(app, req, ctx).await,
        (Method::GET | Method::HEAD, "/_auth/logout") => login::show_logout(app, &req).await,
        (Method::POST, "/_auth/logout") => login::submit_logout(app, req, ctx).await,
        (Method::GET | Method::HEAD, "/_auth/login/2fa") => second_factor::show(app, &req).await,
        (Method::POST, "/_auth/login/2fa") => second_factor::submit(app, req, ctx).await,
        (Method::GET | Method::HEAD, "/_auth/reset") => reset::show(app, &req).await,
        (Method::POST, "/_auth/reset") => reset::submit(app, req, ctx).await,
        (Method::GET | Method::HEAD, "/_auth/reset/confirm") => {
            reset::show_confirm(app, &req).await
        }
        (Method::POST, "/_auth/reset/confirm") => reset::submit_confirm(app, req, ctx).await,
        (Method::GET | Method::HEAD, "/_auth/signup") => signup::show(app, &req).await,
        (Method::POST, "/_auth/signup") => signup::submit(app, req, ctx).await,
        (Method::GET | Method::HEAD, "/_auth/verify") => signup::verify(app, &req, ctx).await,
        (Method::GET | Method::HEAD, "/_auth/account") => account::show(app, &req).await,
        (Method::POST, "/_auth/account/profile") => account::profile(app, req).await,
        (Method::POST, "/_auth/account/password") => account::password(app, req, ctx).await,
        (Method::POST, "/_auth/account/email") => account::email(app, req, ctx).await,
        (Method::POST, "/_auth/account/verify") => {
            account::resend_verification(app, req, ctx).await
        }
        (Method::POST, "/_auth/account/sessions/revoke") => account::revoke(app, req, ctx).await,
        (Method::POST, "/_auth/account/sessions/revoke-others") => {
            account::revoke_others(app, req, ctx).await
        }
        (Method::POST, "/_auth/account/identities/link") => oidc::start_link(app, req).await,
        (Method::POST, "/_auth/account/identities/unlink") => oidc::unlink(app, req, ctx).await,
        (Method::GET | Method::HEAD, "/_auth/account/2fa") => twofa::show(app, &req).await,
        (Method::POST, "/_auth/account/2fa") => twofa::confirm(app, req, ctx).await,
        (Method::POST, "/_auth/account/2fa/disable") => twofa::disable(app, req, ctx).await,
        (Method::POST, "/_auth/account/2fa/recovery-codes") => {
            twofa::regenerate(app, req, ctx).await
        }
        (Method::GET | Method::HEAD, "/_auth/static/gatehouse.css") => ops::stylesheet(app),
        (Method::GET | Method::HEAD, "/_auth/static/passkeys.js") => ops::script(PASSKEYS_JS),
        (Method::GET | Method::HEAD, "/_auth/account/passkeys") => passkeys::show(app, &req).await,
        (Method::POST, "/_auth/account/passkeys") => passkeys::register(app, req, ctx).await,
        (Method::POST, "/_auth/account/passkeys/options") => {
            passkeys::register_options(app, req, ctx).await
        }
        (Method::POST, "/_auth/account/passkeys/remove") => passkeys::remove(app, req, ctx).await,
        (Method::POST, "/_auth/login/passkey/options" | "/_auth/login/2fa/passkey/options") => {
            passkeys::sign_in_options(app, req).await
        }
        (Method::POST, "/_auth/login/passkey") => passkeys::sign_in(app, req, ctx).await,
        (Method::POST, "/_auth/login/2fa/passkey") => {
            second_factor::submit_passkey(app, req, ctx).await
        }
        (Method::GET | Method::HEAD, "/_auth/health") => ops::health(app).await,
        (Method::GET | Method::HEAD, "/_auth/healthz") => ops::healthz(),
        (Method::GET | Method::HEAD, "/_auth/readyz") => ops::readyz(app).await,
        (Method::GET, "/_auth/metrics") => ops::metrics(app, ctx, req.headers()),
        (Method::GET | Method::HEAD, "/_auth/.well-known/jwks.json") => {
            crate::gateway::assertion::jwks_response(app)
        }
        (_, "/_auth/authz/auth-request") => {
            use crate::gateway::forward_auth::{Flavor, handle};
            handle(app, req, ctx, Flavor::AuthRequest).await
        }
        (_, "/_auth/authz/forward-auth") => {
            use crate::gateway::forward_auth::{Flavor, handle};
            handle(app, req, ctx, Flavor::ForwardAuth).await
        }
        (
            _,
            "/_auth/login"
            | "/_auth/logout"
            | "/_auth/login/2fa"
            | "/_auth/reset"
            | "/_auth/reset/confirm"
            | "/_auth/signup"
            | "/_auth/verify"
            | "/_auth/account"
            | "/_auth/account/profile"
            | "/_auth/account/password"
            | "/_auth/account/email"
            | "/_auth/account/verify"
            | "/_auth/account/sessions/revoke"
            | "/_auth/account/sessions/revoke-others"
            | "/_auth/account/2fa"
            | "/_auth/account/2fa/disable"
            | "/_auth/account/2fa/recovery-codes"
            | "/_auth/account/identities/link"
            | "/_auth/account/identities/unlink"
            | "/_auth/account/passkeys"
            | "/_auth/account/passkeys/options"
            | "/_auth/account/passkeys/remove"
            | "/_auth/login/passkey"
            | "/_auth/login/passkey/options"
            | "/_auth/login/2fa/passkey"
            | "/_auth/login/2fa/passkey/options",
        ) => method_not_allowed(),
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
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'",
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
    // `session.cookie_domain`: the session cookie is set and cleared for the parent domain,
    // here in one place for every page that signs in or out.
    if let Some(domain) = &app.settings.session.cookie_domain
        && h.contains_key(header::SET_COOKIE)
    {
        let scoped: Vec<HeaderValue> = h
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| crate::web::cookies::with_domain(v, &app.session_cookie, domain))
            .collect();
        h.remove(header::SET_COOKIE);
        for v in scoped {
            h.append(header::SET_COOKIE, v);
        }
    }
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
