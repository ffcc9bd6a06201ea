//! `/_auth/login` and `/_auth/logout`.
//!
//! ```text
//!  POST /_auth/login ─▶ per-IP throttle: count first (429) ─▶ authenticate (reserve an
//!     attempt in the database, then verify; lockout; one generic failure)
//!     ├─ 2FA on  ─▶ pending sign-in (cookie gatehouse_2fa) ─▶ 303 /_auth/login/2fa
//!     └─ 2FA off ─▶ fresh session ─▶ 303 next (an admin under require_2fa_for_admins: enrolment)
//! ```

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use minijinja::context;

use super::error::PortalError;
use super::forms::{self, safe_next};
use super::page;
use crate::accounts::AuthFailure;
use crate::app::App;
use crate::audit::ActivityKind;
use crate::config::{Registration, Secret};
use crate::session::SessionOptions;
use crate::web::cookies::{self, time_like::Seconds};
use crate::web::{Body, RequestCtx, respond};

const GENERIC_FAILURE: &str =
    "That username or password is not right, or the account cannot sign in right now.";

pub fn show(app: &App, req: &Request<Incoming>) -> Result<Response<Body>, PortalError> {
    let q = forms::query(req.uri());
    let next = safe_next(q.get("next"));
    let csrf = page::csrf_for(app, req.headers());
    login_page(app, &csrf, &next, "", None)
}

fn login_page(
    app: &App,
    csrf: &crate::web::csrf::Csrf,
    next: &str,
    username: &str,
    error: Option<&str>,
) -> Result<Response<Body>, PortalError> {
    let mut links = vec![context! { href => "/_auth/reset", text => "Forgot your password?" }];
    if app.settings.portal.registration == Registration::Open {
        links.push(context! { href => "/_auth/signup", text => "Create an account" });
    }
    page::render(
        app,
        "login.html",
        csrf,
        context! {
            next,
            username,
            error,
            links,
            remember_me => app.settings.session.remember_me_timeout.is_some(),
            providers => super::oidc::login_buttons(app, next),
            passkeys => app.passkeys.is_some(),
        },
        StatusCode::OK,
    )
}

/// Name of the cookie that holds a pending two-factor sign-in.
pub const PENDING_COOKIE: &str = "gatehouse_2fa";

/// The first step passed and a second is due: to the code step, carrying the pending
/// sign-in's cookie (`token`) for as long as the step may take.
pub(super) fn to_code_step(app: &App, token: &str) -> Response<Body> {
    let mut r = respond::redirect(StatusCode::SEE_OTHER, "/_auth/login/2fa");
    let ttl = app.settings.security.twofa_pending_ttl.as_secs() as i64;
    page::set_cookie(
        &mut r,
        cookies::set(
            &page::cookie_name(app, PENDING_COOKIE),
            token,
            app.secure_cookies(),
            Some(Seconds(ttl)),
        ),
    );
    r
}

/// An admin under `security.require_2fa_for_admins` who signed in with one factor goes to
/// enrolment first (then on to `next`); admin powers wait for it.
pub(super) fn enrol_first(r: &mut Response<Body>, session: &crate::session::Session, next: &str) {
    if session.identity.admin_suspended {
        let next = percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC);
        if let Ok(v) = HeaderValue::from_str(&format!("/_auth/account/2fa?next={next}")) {
            r.headers_mut().insert(header::LOCATION, v);
        }
    }
}

pub async fn submit(
    app: &App,
    req: Request<Incoming>,
    ctx: &RequestCtx,
) -> Result<Response<Body>, PortalError> {
    let (parts, form, csrf) = page::checked_form(app, req).await?;
    let ip = page::ip_key(ctx);
    // Counted before the password is checked (and given back on success), so concurrent
    // attempts from one address cannot all pass a check made before any of them failed.
    page::hit(app, &app.portal.login_ip, &ip)
        .await
        .inspect_err(|_| {
            app.metrics.signins.throttled.inc();
        })?;
    let next = safe_next(form.get("next"));
    let username = form.get("username").unwrap_or("").trim().to_string();
    let password = Secret::new(form.get("password").unwrap_or("").to_string());
    let remember =
        form.get("remember_me").is_some() && app.settings.session.remember_me_timeout.is_some();

    let user = match app
        .accounts
        .authenticate(&username, &password, &ctx.client())
        .await
    {
        Ok(u) => {
            app.metrics.signins.success.inc();
            app.portal.login_ip.release(&ip).await;
            u
        }
        Err(AuthFailure::InvalidCredentials) => {
            app.metrics.signins.refused.inc();
            return login_page(app, &csrf, &next, &username, Some(GENERIC_FAILURE));
        }
        Err(e) => {
            app.metrics.signins.error.inc();
            app.portal.login_ip.release(&ip).await;
            return Err(PortalError::Unavailable(Box::new(e)));
        }
    };
    if app.accounts.has_second_factor(&user).await? {
        // No session yet: the password only opens the code (or passkey) step.
        end_previous_session(app, &parts.headers).await;
        let token = app
            .portal
            .pending
            .start(user.id, remember, next, app.now())
            .await?;
        return Ok(to_code_step(app, &token));
    }
    let how = SignedInWith::Password;
    let (mut r, session) =
        start_session(app, &parts.headers, &user, ctx, remember, how, &next).await?;
    app.accounts
        .record(
            page::event(app, ActivityKind::Login, Some(user.id), ctx)
                .describe("Signed in with password"),
        )
        .await;
    enrol_first(&mut r, &session, &next);
    Ok(r)
}

/// How a sign-in was completed: whether the session counts as two-factor, and its
/// `auth_method` (the identity assertion's `amr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SignedInWith {
    Password,
    PasswordAndCode,
    PasswordAndPasskey,
    /// A passkey without user verification: one factor.
    Passkey,
    /// A passkey with user verification: both factors.
    VerifiedPasskey,
    /// An external identity provider: one factor, as far as Gatehouse knows.
    Provider,
    /// An external identity provider, then Gatehouse's code step.
    ProviderAndCode,
    /// An external identity provider, then a passkey as the second step.
    ProviderAndPasskey,
    /// A passkey without user verification, then the code step.
    PasskeyAndCode,
    /// An external identity provider whose multi-factor sign-in is trusted
    /// (`trust_provider_mfa`): both factors.
    ProviderWithMfa,
}

impl SignedInWith {
    fn twofa_verified(self) -> bool {
        !matches!(
            self,
            SignedInWith::Password | SignedInWith::Passkey | SignedInWith::Provider
        )
    }

    fn auth_method(self) -> &'static str {
        match self {
            SignedInWith::Password | SignedInWith::PasswordAndCode => "pwd",
            SignedInWith::PasswordAndPasskey => "pwd+hwk",
            SignedInWith::Passkey => "hwk",
            SignedInWith::VerifiedPasskey => "hwk+user",
            SignedInWith::Provider => "ext",
            SignedInWith::ProviderAndCode => "ext+otp",
            SignedInWith::ProviderAndPasskey => "ext+hwk",
            SignedInWith::PasskeyAndCode => "hwk+otp",
            SignedInWith::ProviderWithMfa => "ext+mfa",
        }
    }
}

async fn end_previous_session(app: &App, headers: &http::HeaderMap) {
    if let Some(old) = cookies::get(headers, &app.session_cookie_name())
        && let Err(e) = app.sessions.end_token(&old).await
    {
        tracing::warn!(error = %e, "could not end the previous session");
    }
}

/// Starts a session with a fresh id (ending any session this browser had) and answers with a
/// redirect to `next` that sets the cookie.
pub(super) async fn start_session(
    app: &App,
    headers: &http::HeaderMap,
    user: &crate::store::UserRow,
    ctx: &RequestCtx,
    remember: bool,
    how: SignedInWith,
    next: &str,
) -> Result<(Response<Body>, std::sync::Arc<crate::session::Session>), PortalError> {
    end_previous_session(app, headers).await;
    let opts = SessionOptions {
        remember_me: remember,
        twofa_verified: how.twofa_verified(),
    };
    let (token, session) = app
        .sessions
        .create_with(user, &ctx.client(), opts, how.auth_method())
        .await?;
    let mut r = respond::redirect(StatusCode::SEE_OTHER, next);
    let max_age = remember
        .then_some(app.settings.session.remember_me_timeout)
        .flatten()
        .map(|d| Seconds(d.as_secs() as i64));
    page::set_cookie(
        &mut r,
        cookies::set(
            &app.session_cookie_name(),
            &token,
            app.secure_cookies(),
            max_age,
        ),
    );
    Ok((r, session))
}

pub async fn show_logout(
    app: &App,
    req: &Request<Incoming>,
) -> Result<Response<Body>, PortalError> {
    let csrf = page::csrf_for(app, req.headers());
    let session = page::session(app, req.headers()).await;
    let username = session.as_ref().map(|s| s.identity.username.clone());
    page::render(
        app,
        "logout.html",
        &csrf,
        context! {
            signed_in => session.is_some(),
            nav_user => username.clone(),
            username,
        },
        StatusCode::OK,
    )
}

pub async fn submit_logout(
    app: &App,
    req: Request<Incoming>,
    ctx: &RequestCtx,
) -> Result<Response<Body>, PortalError> {
    let (parts, _form, _csrf) = page::checked_form(app, req).await?;
    let name = app.session_cookie_name();
    if let Some(token) = cookies::get(&parts.headers, &name) {
        let session = app.sessions.lookup(&token).await.ok().flatten();
        app.sessions.end_token(&token).await?;
        if let Some(s) = session {
            app.accounts
                .record(
                    page::event(app, ActivityKind::Logout, Some(s.identity.user_id), ctx)
                        .describe("Signed out"),
                )
                .await;
        }
    }
    let mut r = respond::redirect(StatusCode::SEE_OTHER, "/_auth/logout");
    page::set_cookie(&mut r, cookies::clear(&name, app.secure_cookies()));
    r.headers_mut()
        .insert("clear-site-data", HeaderValue::from_static("\"cookies\""));
    Ok(r)
}
