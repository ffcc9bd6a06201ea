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

use super::forms::{self, safe_next};
use super::{page, render_failed};
use crate::accounts::AuthFailure;
use crate::app::App;
use crate::audit::ActivityKind;
use crate::config::{Registration, Secret};
use crate::session::SessionOptions;
use crate::web::cookies::{self, time_like::Seconds};
use crate::web::csrf::{self, Csrf};
use crate::web::{Body, RequestCtx, respond};

const GENERIC_FAILURE: &str =
    "That username or password is not right, or the account cannot sign in right now.";

pub async fn show(app: &App, req: &Request<Incoming>, _ctx: &RequestCtx) -> Response<Body> {
    let q = forms::query(req.uri());
    let next = safe_next(q.get("next"));
    let csrf = Csrf::for_request(
        &app.keys,
        req.headers(),
        app.secure_cookies(),
        &app.session_cookie,
    );
    login_page(app, &csrf, &next, "", None, StatusCode::OK)
}

fn login_page(
    app: &App,
    csrf: &Csrf,
    next: &str,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response<Body> {
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
        status,
    )
}

/// A rendered form page, setting the CSRF cookie when it is new.
pub fn page_with_csrf(
    app: &App,
    csrf: &Csrf,
    page: Result<String, crate::web::render::RenderError>,
    status: StatusCode,
) -> Response<Body> {
    match page {
        Ok(body) => {
            let mut r = respond::html(status, body);
            if let Some(c) = csrf.set_cookie(app.secure_cookies()) {
                r.headers_mut().append(header::SET_COOKIE, c);
            }
            r
        }
        Err(e) => render_failed(&e),
    }
}

pub fn forbidden_csrf() -> Response<Body> {
    respond::text(
        StatusCode::FORBIDDEN,
        "The form expired or did not come from this site. Go back, reload the page and try again.",
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

pub async fn submit(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> Response<Body> {
    let (parts, form, csrf) = match page::checked_form(app, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let ip = page::ip_key(ctx);
    // Counted before the password is checked (and given back on success), so concurrent
    // attempts from one address cannot all pass a check made before any of them failed.
    if !app.portal.login_ip.hit(&ip, app.now()).await {
        app.metrics.signins.throttled.inc();
        return page::too_many(app);
    }
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
            return login_page(
                app,
                &csrf,
                &next,
                &username,
                Some(GENERIC_FAILURE),
                StatusCode::OK,
            );
        }
        Err(e) => {
            app.metrics.signins.error.inc();
            app.portal.login_ip.release(&ip).await;
            tracing::error!(error = %e, "sign-in failed on our side");
            return respond::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is temporarily unavailable. Please try again shortly.",
            );
        }
    };
    let second_factor = match app.accounts.has_second_factor(&user).await {
        Ok(b) => b,
        Err(e) => return page::unavailable(&e),
    };
    if second_factor {
        // No session yet: the password only opens the code (or passkey) step.
        end_previous_session(app, &parts.headers).await;
        let token = match app
            .portal
            .pending
            .start(user.id, remember, next, app.now())
            .await
        {
            Ok(t) => t,
            Err(e) => return page::unavailable(&e),
        };
        return to_code_step(app, &token);
    }
    let (mut r, session) = match start_session(
        app,
        &parts.headers,
        &user,
        ctx,
        remember,
        SignedInWith::Password,
        &next,
    )
    .await
    {
        Ok(x) => x,
        Err(r) => return r,
    };
    app.accounts
        .record(
            page::event(app, ActivityKind::Login, Some(user.id), ctx)
                .describe("Signed in with password"),
        )
        .await;
    if session.identity.admin_suspended {
        // security.require_2fa_for_admins: enrol first; admin powers wait for it.
        let next = percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC);
        if let Ok(v) = HeaderValue::from_str(&format!("/_auth/account/2fa?next={next}")) {
            r.headers_mut().insert(header::LOCATION, v);
        }
    }
    r
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
) -> Result<(Response<Body>, std::sync::Arc<crate::session::Session>), Response<Body>> {
    end_previous_session(app, headers).await;
    let opts = SessionOptions {
        remember_me: remember,
        twofa_verified: how.twofa_verified(),
    };
    let (token, session) = match app
        .sessions
        .create_with(user, &ctx.client(), opts, how.auth_method())
        .await
    {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, "could not create session");
            return Err(respond::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is temporarily unavailable. Please try again shortly.",
            ));
        }
    };
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

pub async fn show_logout(app: &App, req: &Request<Incoming>) -> Response<Body> {
    let secure = app.secure_cookies();
    let csrf = Csrf::for_request(&app.keys, req.headers(), secure, &app.session_cookie);
    let session = match cookies::get(req.headers(), &app.session_cookie_name()) {
        Some(t) => app.sessions.lookup(&t).await.ok().flatten(),
        None => None,
    };
    let page = app.templates.render(
        "logout.html",
        context! {
            signed_in => session.is_some(),
            username => session.as_ref().map(|s| s.identity.username.clone()),
            nav_user => session.as_ref().map(|s| s.identity.username.clone()),
            csrf_token => csrf.token.clone(),
        },
    );
    page_with_csrf(app, &csrf, page, StatusCode::OK)
}

pub async fn submit_logout(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> Response<Body> {
    let (parts, form) = match forms::read(req).await {
        Ok(x) => x,
        Err(status) => return respond::text(status, "unreadable form"),
    };
    let secure = app.secure_cookies();
    let session = &app.session_cookie;
    if !csrf::verify(
        &app.keys,
        &parts.headers,
        secure,
        session,
        form.get(csrf::FIELD),
    ) {
        return forbidden_csrf();
    }
    let name = app.session_cookie_name();
    if let Some(token) = cookies::get(&parts.headers, &name) {
        let session = app.sessions.lookup(&token).await.ok().flatten();
        if let Err(e) = app.sessions.end_token(&token).await {
            tracing::error!(error = %e, "could not end session at sign-out");
            return respond::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-out failed; please try again.",
            );
        }
        if let Some(s) = session {
            app.accounts
                .record(
                    app.accounts
                        .event(ActivityKind::Logout, Some(s.identity.user_id))
                        .client(
                            Some(ctx.client_ip.to_string()),
                            ctx.user_agent.as_deref().map(str::to_string),
                        )
                        .describe("Signed out"),
                )
                .await;
        }
    }
    let mut r = respond::redirect(StatusCode::SEE_OTHER, "/_auth/logout");
    if let Some(c) = cookies::clear(&name, secure) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r.headers_mut()
        .insert("clear-site-data", HeaderValue::from_static("\"cookies\""));
    r
}
