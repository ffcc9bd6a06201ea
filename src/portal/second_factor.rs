//! `/_auth/login/2fa`: the code step of a two-factor sign-in.
//!
//! The pending sign-in (see [`crate::session::pending`], kept in the database so that any
//! instance can take the code) allows a few attempts within a few minutes; each wrong code also counts against the client address. A correct TOTP code (of a
//! time step not used before) or an unused recovery code ends the pending state and starts a
//! session with a fresh id, marked `twofa_verified`.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use minijinja::context;

use super::error::{PortalError, PortalResult};
use super::login::{PENDING_COOKIE, SignedInWith, start_session};
use super::page;
use crate::accounts::{SecondFactor, TwofaError};
use crate::app::App;
use crate::audit::ActivityKind;
use crate::session::pending::{PendingError, PendingLogin};
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
) -> PortalResult {
    let passkey = super::passkeys::offered_at_code_step(app, token, user).await;
    page::render(
        app,
        "login_2fa.html",
        csrf,
        context! { error, passkey },
        status,
    )
}

/// The pending sign-in is over (finished or given up): its cookie goes.
fn clear_pending(app: &App, r: &mut Response<Body>) {
    let name = page::cookie_name(app, PENDING_COOKIE);
    page::set_cookie(r, cookies::clear(&name, app.secure_cookies()));
}

/// The pending sign-in cannot go on: clear its cookie and say why.
fn spent(app: &App, why: PendingError) -> PortalResult {
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
        // The pending sign-in may still be usable: keep its cookie.
        PendingError::Unavailable => return Err(why.into()),
    };
    let mut r = page::message(
        app,
        status,
        "Sign in again",
        text,
        Some(("/_auth/login", "Sign in")),
    )?;
    clear_pending(app, &mut r);
    Ok(r)
}

/// Ends the pending sign-in behind `token` (unless the store could not say) and says why.
async fn give_up(app: &App, token: &str, why: PendingError) -> PortalResult {
    if why != PendingError::Unavailable {
        app.portal.pending.finish(token).await;
    }
    spent(app, why)
}

pub async fn show(app: &App, req: &Request<Incoming>) -> PortalResult {
    let Some(token) = pending_token(app, req.headers()) else {
        return spent(app, PendingError::Unknown);
    };
    let pending = match app.portal.pending.peek(&token, app.now()).await {
        Ok(p) => p,
        Err(e) => return give_up(app, &token, e).await,
    };
    let csrf = page::csrf_for(app, req.headers());
    code_page(app, &csrf, &token, pending.user_id, None, StatusCode::OK).await
}

/// Where a second-step attempt stands after it was counted.
enum Attempt {
    /// The pending sign-in and its cookie's token.
    Counted(String, PendingLogin),
    /// The step is over: the answer says why.
    Over(Response<Body>),
}

/// Counts one second-step attempt against the address (given back by the caller when it
/// succeeds) and against the pending sign-in behind the cookie.
async fn take_attempt(
    app: &App,
    headers: &http::HeaderMap,
    ip: &str,
) -> Result<Attempt, PortalError> {
    page::hit(app, &app.portal.login_ip, ip).await?;
    let Some(token) = pending_token(app, headers) else {
        return spent(app, PendingError::Unknown).map(Attempt::Over);
    };
    match app.portal.pending.attempt(&token, app.now()).await {
        Ok(p) => Ok(Attempt::Counted(token, p)),
        Err(e) => give_up(app, &token, e).await.map(Attempt::Over),
    }
}

/// A wrong answer at the code step: the page again with the attempts left, or the end of the
/// step when none are.
async fn wrong_answer(
    app: &App,
    csrf: &Csrf,
    token: &str,
    pending: &PendingLogin,
    what: &str,
) -> PortalResult {
    let left = app
        .portal
        .pending
        .max_attempts()
        .saturating_sub(pending.attempts());
    if left == 0 {
        return give_up(app, token, PendingError::TooManyAttempts).await;
    }
    let msg = format!(
        "{what} {left} attempt{} left.",
        if left == 1 { "" } else { "s" }
    );
    code_page(app, csrf, token, pending.user_id, Some(msg), StatusCode::OK).await
}

pub async fn submit(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> PortalResult {
    let (parts, form, csrf) = page::checked_form(app, req).await?;
    let ip = page::ip_key(ctx);
    let (token, pending) = match take_attempt(app, &parts.headers, &ip).await? {
        Attempt::Counted(t, p) => (t, p),
        Attempt::Over(r) => return Ok(r),
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
            return give_up(app, &token, PendingError::TooManyAttempts).await;
        }
        Err(TwofaError::WrongCode | TwofaError::Replayed | TwofaError::NotEnabled) => {
            app.metrics.second_factor_failures.inc();
            let what = "That code is not right, or it was already used.";
            return wrong_answer(app, &csrf, &token, &pending, what).await;
        }
        Err(e) => return Err(e.into()),
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
    pending: &PendingLogin,
    how: String,
    with: SignedInWith,
) -> PortalResult {
    let user = match app.accounts.get(pending.user_id).await? {
        Some(u) if u.is_active && !u.is_deleted => u,
        _ => return spent(app, PendingError::Unknown),
    };
    app.portal.pending.finish(token).await;
    let remember = pending.remember_me;
    let (mut r, _session) =
        start_session(app, headers, &user, ctx, remember, with, &pending.next).await?;
    let mut event = page::event(app, ActivityKind::Login, Some(user.id), ctx).describe(how);
    if let Some(p) = &pending.provider {
        event = event.meta(serde_json::json!({ "provider": p.id, "subject": p.subject }));
    }
    app.accounts.record(event).await;
    clear_pending(app, &mut r);
    Ok(r)
}

/// POST `/_auth/login/2fa/passkey`: a passkey of the pending user as the second factor
/// (`credential`). Counts against the pending sign-in's attempts like a wrong code.
pub async fn submit_passkey(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> PortalResult {
    let Some(rp) = app.passkeys.as_ref() else {
        return spent(app, PendingError::Unknown);
    };
    let (parts, form, csrf) = page::checked_form(app, req).await?;
    let ip = page::ip_key(ctx);
    let (token, pending) = match take_attempt(app, &parts.headers, &ip).await? {
        Attempt::Counted(t, p) => (t, p),
        Attempt::Over(r) => return Ok(r),
    };
    // From the attempt just counted (a peek now could see the budget used up by it).
    if pending.passkey_first {
        let msg = "A passkey cannot finish this sign-in: enter a code.".to_string();
        let status = StatusCode::BAD_REQUEST;
        return code_page(app, &csrf, &token, pending.user_id, Some(msg), status).await;
    }
    let answer = form.get("credential").unwrap_or("");
    let user = Some(pending.user_id);
    let used = match app
        .accounts
        .use_passkey(rp, &app.keys, answer.as_bytes(), user, &ctx.client())
        .await
    {
        Ok(used) => used,
        Err(crate::accounts::PasskeyFailure::Store(e)) => return Err(e.into()),
        Err(_) => {
            let what = "That passkey was not accepted.";
            return wrong_answer(app, &csrf, &token, &pending, what).await;
        }
    };
    app.portal.login_ip.release(&ip).await;
    let how = format!(
        "Signed in with password and passkey \"{}\"",
        used.passkey_name
    );
    let with = if pending.provider.is_some() {
        SignedInWith::ProviderAndPasskey
    } else {
        SignedInWith::PasswordAndPasskey
    };
    finish(app, &parts.headers, ctx, &token, &pending, how, with).await
}
