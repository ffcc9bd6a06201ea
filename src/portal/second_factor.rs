//! `/_auth/login/2fa`: the code step of a two-factor sign-in.
//!
//! The pending sign-in (see [`crate::session::pending`], kept in the database so that any
//! instance can take the code) allows a few attempts within a few minutes; each wrong code also counts against the client address. A correct TOTP code (of a
//! time step not used before) or an unused recovery code ends the pending state and starts a
//! session with a fresh id, marked `twofa_verified`.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use minijinja::context;

use super::login::{PENDING_COOKIE, SignedInWith, start_session};
use super::page;
use crate::accounts::{SecondFactor, TwofaError};
use crate::app::App;
use crate::audit::ActivityKind;
use crate::session::pending::PendingError;
use crate::web::csrf::Csrf;
use crate::web::{Body, RequestCtx, cookies};

fn pending_token(app: &App, headers: &http::HeaderMap) -> Option<String> {
    cookies::get(headers, &page::cookie_name(app, PENDING_COOKIE))
}

async fn code_page(
    app: &App,
    csrf: &Csrf,
    token: &str,
    user: crate::store::UserId,
    error: Option<String>,
    status: StatusCode,
) -> Response<Body> {
    let passkey = super::passkeys::offered_at_code_step(app, token, user).await;
    page::render(
        app,
        "login_2fa.html",
        csrf,
        context! { error, passkey },
        status,
    )
}

/// The pending sign-in cannot go on: clear its cookie and say why.
fn spent(app: &App, why: PendingError) -> Response<Body> {
    let (status, text) = match why {
        PendingError::TooManyAttempts => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong codes. Sign in again to get new attempts.",
        ),
        PendingError::Expired => (
            StatusCode::BAD_REQUEST,
            "The sign-in expired before a code was entered. Sign in again.",
        ),
        PendingError::Unknown => (
            StatusCode::BAD_REQUEST,
            "There is no sign-in waiting for a code. Sign in first.",
        ),
        // Logged where it happened; the pending sign-in may still be usable.
        PendingError::Unavailable => {
            return page::unavailable(&why);
        }
    };
    let mut r = page::message(
        app,
        status,
        "Sign in again",
        text,
        Some(("/_auth/login", "Sign in")),
    );
    page::set_cookie(
        &mut r,
        cookies::clear(
            &page::cookie_name(app, PENDING_COOKIE),
            app.secure_cookies(),
        ),
    );
    r
}

pub async fn show(app: &App, req: &Request<Incoming>) -> Response<Body> {
    let Some(token) = pending_token(app, req.headers()) else {
        return spent(app, PendingError::Unknown);
    };
    let pending = match app.portal.pending.peek(&token, app.now()).await {
        Ok(p) => p,
        Err(e) => {
            if e != PendingError::Unavailable {
                app.portal.pending.finish(&token).await;
            }
            return spent(app, e);
        }
    };
    code_page(
        app,
        &page::csrf_for(app, req.headers()),
        &token,
        pending.user_id,
        None,
        StatusCode::OK,
    )
    .await
}

/// Counts one second-step attempt against the address (given back by the caller when it
/// succeeds) and against the pending sign-in behind the cookie; returns the cookie's token and
/// the pending sign-in, or the answer that ends the step.
async fn take_attempt(
    app: &App,
    headers: &http::HeaderMap,
    ip: &str,
) -> Result<(String, crate::session::pending::PendingLogin), Response<Body>> {
    if !app.portal.login_ip.hit(ip, app.now()).await {
        return Err(page::too_many(app));
    }
    let Some(token) = pending_token(app, headers) else {
        return Err(spent(app, PendingError::Unknown));
    };
    match app.portal.pending.attempt(&token, app.now()).await {
        Ok(p) => Ok((token, p)),
        Err(e) => {
            if e != PendingError::Unavailable {
                app.portal.pending.finish(&token).await;
            }
            Err(spent(app, e))
        }
    }
}

pub async fn submit(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> Response<Body> {
    let (parts, form, csrf) = match page::checked_form(app, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let ip = page::ip_key(ctx);
    let (token, pending) = match take_attempt(app, &parts.headers, &ip).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let code = form.get("code").unwrap_or("");
    let factor = match app
        .accounts
        .verify_second_factor(&app.keys, pending.user_id, code, &ctx.client())
        .await
    {
        Ok(f) => {
            app.portal.login_ip.release(&ip).await;
            f
        }
        Err(TwofaError::Locked) => {
            app.metrics.second_factor_failures.inc();
            // The account's budget is spent (or it was locked): this sign-in is over.
            app.portal.pending.finish(&token).await;
            return spent(app, PendingError::TooManyAttempts);
        }
        Err(TwofaError::WrongCode | TwofaError::Replayed | TwofaError::NotEnabled) => {
            app.metrics.second_factor_failures.inc();
            let left = app
                .portal
                .pending
                .max_attempts()
                .saturating_sub(pending.attempts());
            if left == 0 {
                app.portal.pending.finish(&token).await;
                return spent(app, PendingError::TooManyAttempts);
            }
            let msg = format!(
                "That code is not right, or it was already used. {left} attempt{} left.",
                if left == 1 { "" } else { "s" }
            );
            return code_page(
                app,
                &csrf,
                &token,
                pending.user_id,
                Some(msg),
                StatusCode::OK,
            )
            .await;
        }
        Err(e) => return page::unavailable(&e),
    };
    let first = pending
        .provider
        .as_ref()
        .map_or("password".to_string(), |p| p.name.clone());
    let how = match factor {
        SecondFactor::Totp => format!("Signed in with {first} and authenticator code"),
        SecondFactor::RecoveryCode { remaining } => {
            format!("Signed in with {first} and a recovery code ({remaining} left)")
        }
    };
    finish(
        app,
        &parts.headers,
        ctx,
        &token,
        &pending,
        how,
        if pending.provider.is_some() {
            SignedInWith::ProviderAndCode
        } else if pending.passkey_first {
            SignedInWith::PasskeyAndCode
        } else {
            SignedInWith::PasswordAndCode
        },
    )
    .await
}

/// The second factor passed: end the pending state and start a two-factor session.
async fn finish(
    app: &App,
    headers: &http::HeaderMap,
    ctx: &RequestCtx,
    token: &str,
    pending: &crate::session::pending::PendingLogin,
    how: String,
    with: SignedInWith,
) -> Response<Body> {
    let user = match app.accounts.get(pending.user_id).await {
        Ok(Some(u)) if u.is_active && !u.is_deleted => u,
        Ok(_) => return spent(app, PendingError::Unknown),
        Err(e) => return page::unavailable(&e),
    };
    app.portal.pending.finish(token).await;
    let (mut r, _session) = match start_session(
        app,
        headers,
        &user,
        ctx,
        pending.remember_me,
        with,
        &pending.next,
    )
    .await
    {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut event = page::event(app, ActivityKind::Login, Some(user.id), ctx).describe(how);
    if let Some(p) = &pending.provider {
        event = event.meta(serde_json::json!({ "provider": p.id, "subject": p.subject }));
    }
    app.accounts.record(event).await;
    page::set_cookie(
        &mut r,
        cookies::clear(
            &page::cookie_name(app, PENDING_COOKIE),
            app.secure_cookies(),
        ),
    );
    r
}

/// POST `/_auth/login/2fa/passkey`: a passkey of the pending user as the second factor
/// (`credential`). Counts against the pending sign-in's attempts like a wrong code.
pub async fn submit_passkey(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> Response<Body> {
    let Some(rp) = app.passkeys.as_ref() else {
        return spent(app, PendingError::Unknown);
    };
    let (parts, form, csrf) = match page::checked_form(app, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let ip = page::ip_key(ctx);
    let (token, pending) = match take_attempt(app, &parts.headers, &ip).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    // From the attempt just counted (a peek now could see the budget used up by it).
    if pending.passkey_first || app.passkeys.is_none() {
        let msg = "A passkey cannot finish this sign-in: enter a code.".to_string();
        return code_page(
            app,
            &csrf,
            &token,
            pending.user_id,
            Some(msg),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let answer = form.get("credential").unwrap_or("");
    match app
        .accounts
        .use_passkey(
            rp,
            &app.keys,
            answer.as_bytes(),
            Some(pending.user_id),
            &ctx.client(),
        )
        .await
    {
        Ok(used) => {
            app.portal.login_ip.release(&ip).await;
            let how = format!(
                "Signed in with password and passkey \"{}\"",
                used.passkey_name
            );
            finish(
                app,
                &parts.headers,
                ctx,
                &token,
                &pending,
                how,
                if pending.provider.is_some() {
                    SignedInWith::ProviderAndPasskey
                } else {
                    SignedInWith::PasswordAndPasskey
                },
            )
            .await
        }
        Err(crate::accounts::PasskeyFailure::Store(e)) => page::unavailable(&e),
        Err(_) => {
            let left = app
                .portal
                .pending
                .max_attempts()
                .saturating_sub(pending.attempts());
            if left == 0 {
                app.portal.pending.finish(&token).await;
                return spent(app, PendingError::TooManyAttempts);
            }
            let msg = format!(
                "That passkey was not accepted. {left} attempt{} left.",
                if left == 1 { "" } else { "s" }
            );
            code_page(
                app,
                &csrf,
                &token,
                pending.user_id,
                Some(msg),
                StatusCode::OK,
            )
            .await
        }
    }
}
