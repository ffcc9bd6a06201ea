//! Passkeys in the portal: the account's list (`/_auth/account/passkeys`), sign-in with a
//! passkey alone (`/_auth/login/passkey`) and a passkey at the code step
//! (`/_auth/login/2fa/passkey`).
//!
//! ```text
//!  page ─▶ passkeys.js: POST …/options (CSRF form) ─▶ options JSON ─▶ navigator.credentials
//!       ─▶ the answer goes into the form's hidden `credential` field ─▶ ordinary form POST
//!       ─▶ verify (crate::auth::passkey) ─▶ 303 (or the page again with the reason)
//! ```
//!
//! Adding or removing a passkey needs a sign-in within the last 10 minutes, or the password.
//! A passkey assertion with user verification is both factors; without it, one factor.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use minijinja::{Value, context};

use super::login::{SignedInWith, start_session, to_code_step};
use super::{forms, page};
use crate::accounts::{PasskeyFailure, passkey_name};
use crate::app::App;
use crate::audit::ActivityKind;
use crate::auth::passkey::{Ceremony, PasskeyError, RelyingParty};
use crate::config::Secret;
use crate::session::Session;
use crate::web::csrf::Csrf;
use crate::web::{Body, RequestCtx, respond};

const PATH: &str = "/_auth/account/passkeys";
/// How recent a sign-in must be to add or remove a passkey without the password again.
const RECENT_SIGN_IN: chrono::Duration = chrono::Duration::minutes(10);

fn when(t: crate::store::Ts) -> String {
    t.0.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn unavailable_here() -> Response<Body> {
    respond::text(
        StatusCode::NOT_FOUND,
        "Passkeys are not available: server.public_url has no usable host name.",
    )
}

fn recent(app: &App, s: &Session) -> bool {
    app.now().0 - s.created_at.0 <= RECENT_SIGN_IN
}

fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    respond::json(status, &serde_json::json!({ "error": message }))
}

/// Keeps the ceremony and answers with its options (JSON).
async fn options_response(
    app: &App,
    kind: &str,
    started: Result<(String, Ceremony), PasskeyError>,
) -> Response<Body> {
    let started = match started {
        Ok((json, ceremony)) => match app.accounts.keep_ceremony(kind, &ceremony).await {
            Ok(()) => Ok(json),
            Err(e) => return page::unavailable(&e),
        },
        Err(e) => Err(e),
    };
    match started {
        Ok(j) => {
            let mut r = respond::text(StatusCode::OK, j);
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            r.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-store"),
            );
            r
        }
        Err(PasskeyError::Busy) => json_error(StatusCode::SERVICE_UNAVAILABLE, "busy"),
        Err(e) => json_error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// Recent sign-in, or the right password in the form's `password` field. `Err` carries the
/// message for the person.
async fn confirm_identity(
    app: &App,
    s: &Session,
    form: &forms::Form,
    ctx: &RequestCtx,
) -> Result<(), Result<&'static str, Response<Body>>> {
    if recent(app, s) {
        return Ok(());
    }
    let ip = page::ip_key(ctx);
    if app.portal.login_ip.is_blocked(&ip, app.now()).await {
        return Err(Err(page::too_many(app)));
    }
    let pw = Secret::new(form.get("password").unwrap_or("").to_string());
    let user = match app.accounts.get(s.identity.user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            return Err(Err(respond::redirect(
                StatusCode::SEE_OTHER,
                "/_auth/login",
            )));
        }
        Err(e) => return Err(Err(page::unavailable(&e))),
    };
    match app.accounts.password_matches(&user, &pw).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            app.portal.login_ip.hit(&ip, app.now()).await;
            Err(Ok(
                "You signed in more than 10 minutes ago: enter your password to change passkeys.",
            ))
        }
        Err(e) => Err(Err(page::unavailable(&e))),
    }
}

async fn list_page(
    app: &App,
    s: &Session,
    csrf: &Csrf,
    error: Option<&str>,
    notice: Option<&str>,
    status: StatusCode,
) -> Response<Body> {
    let rows = match app.accounts.passkeys(s.identity.user_id).await {
        Ok(r) => r,
        Err(e) => return page::unavailable(&e),
    };
    let passkeys: Vec<Value> = rows
        .iter()
        .map(|p| {
            context! {
                id => p.id,
                name => p.name.clone(),
                created => when(p.created_at),
                last_used => p.last_used_at.map(when),
            }
        })
        .collect();
    page::render(
        app,
        "passkeys.html",
        csrf,
        context! {
            nav_user => s.identity.username.clone(),
            passkeys,
            error,
            notice,
            needs_password => !recent(app, s),
            available => app.passkeys.is_some(),
        },
        status,
    )
}

pub async fn show(app: &App, req: &Request<Incoming>) -> Response<Body> {
    let s = match page::require_session(app, req.headers(), PATH).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = forms::query(req.uri());
    let notice = match q.get("done") {
        Some("added") => Some("The passkey is added. You can now sign in with it."),
        Some("removed") => Some("The passkey is removed."),
        _ => None,
    };
    let csrf = page::csrf_for(app, req.headers());
    list_page(app, &s, &csrf, None, notice, StatusCode::OK).await
}

/// POST `/_auth/account/passkeys/options`: creation options for the signed-in user (JSON).
pub async fn register_options(
    app: &App,
    req: Request<Incoming>,
    ctx: &RequestCtx,
) -> Response<Body> {
    let Some(rp) = app.passkeys.as_ref() else {
        return unavailable_here();
    };
    let (parts, form, _csrf) = match page::checked_form(app, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(s) = page::session(app, &parts.headers).await else {
        return json_error(StatusCode::UNAUTHORIZED, "Sign in first.");
    };
    match confirm_identity(app, &s, &form, ctx).await {
        Ok(()) => {}
        Err(Ok(msg)) => return json_error(StatusCode::FORBIDDEN, msg),
        Err(Err(r)) => return r,
    }
    let id = s.identity.user_id;
    let existing: Vec<(String, u8)> = match app.accounts.passkeys(id).await {
        Ok(rows) => rows
            .into_iter()
            .map(|p| (p.credential_id, u8::try_from(p.transports).unwrap_or(0)))
            .collect(),
        Err(e) => return page::unavailable(&e),
    };
    let started = rp.start_registration(
        app.keys.passkey_user_handle(id.0),
        &s.identity.username,
        &existing,
    );
    options_response(app, "reg", started).await
}

/// POST `/_auth/account/passkeys`: the registration answer (`credential`) and a `name`.
pub async fn register(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> Response<Body> {
    let Some(rp) = app.passkeys.as_ref() else {
        return unavailable_here();
    };
    let (parts, form, csrf) = match page::checked_form(app, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let s = match page::require_session(app, &parts.headers, PATH).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = s.identity.user_id;
    let answer = form.get("credential").unwrap_or("");
    let finished = match RelyingParty::parse_registration(answer.as_bytes()) {
        Ok((reg, challenge)) => match app.accounts.take_ceremony("reg", &challenge).await {
            Ok(state) => rp.finish_registration(app.keys.passkey_user_handle(id.0), &reg, &state),
            Err(PasskeyFailure::Refused(e)) => Err(e),
            Err(e) => return page::unavailable(&e),
        },
        Err(e) => Err(e),
    };
    let cred = match finished {
        Ok(c) => c,
        Err(e) => {
            app.accounts
                .record(
                    page::event(app, ActivityKind::LoginFailed, Some(id), ctx)
                        .describe(format!("Passkey registration refused: {e}")),
                )
                .await;
            let msg = format!("The passkey was not added: {e}.");
            return list_page(app, &s, &csrf, Some(&msg), None, StatusCode::BAD_REQUEST).await;
        }
    };
    let name = passkey_name(form.get("name").unwrap_or(""));
    match app
        .accounts
        .add_passkey(id, &name, cred, &ctx.client())
        .await
    {
        Ok(true) => {
            app.sessions.evict_user(id);
            respond::redirect(StatusCode::SEE_OTHER, &format!("{PATH}?done=added"))
        }
        Ok(false) => {
            // The same words whoever holds it: a credential id is not to be probed here.
            let msg = "That passkey cannot be added. Try another one.";
            list_page(app, &s, &csrf, Some(msg), None, StatusCode::CONFLICT).await
        }
        Err(e) => page::unavailable(&e),
    }
}

/// POST `/_auth/account/passkeys/remove`: `passkey_id` (and `password` unless recent).
pub async fn remove(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> Response<Body> {
    let (parts, form, csrf) = match page::checked_form(app, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let s = match page::require_session(app, &parts.headers, PATH).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match confirm_identity(app, &s, &form, ctx).await {
        Ok(()) => {}
        Err(Ok(msg)) => {
            return list_page(app, &s, &csrf, Some(msg), None, StatusCode::FORBIDDEN).await;
        }
        Err(Err(r)) => return r,
    }
    let Some(pk) = form.get("passkey_id").and_then(|v| v.parse::<i64>().ok()) else {
        return respond::text(StatusCode::BAD_REQUEST, "which passkey? (passkey_id)");
    };
    let id = s.identity.user_id;
    match app
        .accounts
        .remove_passkey(id, pk, Some(id), &ctx.client())
        .await
    {
        Ok(true) => {
            // A session signed in elsewhere with this key (a lost one) ends with it.
            if let Err(e) = app.sessions.end_all_for_user(id, Some(s.id)).await {
                return page::unavailable(&e);
            }
            app.sessions.evict_user(id);
            respond::redirect(StatusCode::SEE_OTHER, &format!("{PATH}?done=removed"))
        }
        Ok(false) => respond::text(StatusCode::NOT_FOUND, "No such passkey of yours."),
        Err(e) => page::unavailable(&e),
    }
}

/// POST `/_auth/login/passkey/options` and `/_auth/login/2fa/passkey/options`: request
/// options for any passkey of this site (JSON).
pub async fn sign_in_options(app: &App, req: Request<Incoming>) -> Response<Body> {
    let Some(rp) = app.passkeys.as_ref() else {
        return unavailable_here();
    };
    if let Err(r) = page::checked_form(app, req).await {
        return r;
    }
    options_response(app, "auth", rp.start_authentication()).await
}

fn refused_message(e: &PasskeyFailure) -> &'static str {
    match e {
        PasskeyFailure::Refused(PasskeyError::UnknownChallenge) => {
            "The passkey sign-in expired or was already used. Try again."
        }
        _ => "The passkey could not sign you in. Try again, or sign in with your password.",
    }
}

/// POST `/_auth/login/passkey`: sign in with a passkey alone (`credential`, `next`).
pub async fn sign_in(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> Response<Body> {
    let Some(rp) = app.passkeys.as_ref() else {
        return unavailable_here();
    };
    let (parts, form, _csrf) = match page::checked_form(app, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let ip = page::ip_key(ctx);
    if !app.portal.login_ip.hit(&ip, app.now()).await {
        return page::too_many(app);
    }
    let next = forms::safe_next(form.get("next"));
    let answer = form.get("credential").unwrap_or("");
    let used = match app
        .accounts
        .use_passkey(rp, &app.keys, answer.as_bytes(), None, &ctx.client())
        .await
    {
        Ok(u) => {
            app.portal.login_ip.release(&ip).await;
            u
        }
        Err(PasskeyFailure::Store(e)) => return page::unavailable(&e),
        Err(e) => {
            let back = format!(
                "/_auth/login?next={}",
                percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC)
            );
            return page::message(
                app,
                StatusCode::UNAUTHORIZED,
                "Passkey not accepted",
                refused_message(&e),
                Some((back.as_str(), "Back to sign-in")),
            );
        }
    };
    let user = used.user;
    if !used.asserted.user_verified && !user.twofa_enabled {
        // A passkey that did not verify the person is something held, one factor; and the
        // user's passkeys are their second factor, so it cannot stand alone. With no code
        // to follow it, the password comes first.
        app.accounts
            .record(
                page::event(app, ActivityKind::LoginFailed, Some(user.id), ctx)
                    .describe("Passkey refused: no user verification, and no code step to follow")
                    .meta(serde_json::json!({ "method": "passkey", "user_verified": false })),
            )
            .await;
        let back = format!(
            "/_auth/login?next={}",
            percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC)
        );
        return page::message(
            app,
            StatusCode::UNAUTHORIZED,
            "Passkey not accepted",
            "This passkey did not check that it is you (no PIN, fingerprint or face). Sign in \
             with your password, then use the passkey as the second step.",
            Some((back.as_str(), "Back to sign-in")),
        );
    }
    if !used.asserted.user_verified {
        // One factor: the code step still stands, and the same passkey cannot be the second.
        let token = match app
            .portal
            .pending
            .start_after_passkey(user.id, next, app.now())
            .await
        {
            Ok(t) => t,
            Err(e) => return page::unavailable(&e),
        };
        return to_code_step(app, &token);
    }
    let both = used.asserted.user_verified;
    let method = if both {
        SignedInWith::VerifiedPasskey
    } else {
        SignedInWith::Passkey
    };
    let (r, _session) =
        match start_session(app, &parts.headers, &user, ctx, false, method, &next).await {
            Ok(x) => x,
            Err(r) => return r,
        };
    let how = if both {
        format!(
            "Signed in with passkey \"{}\" (user verified)",
            used.passkey_name
        )
    } else {
        format!(
            "Signed in with passkey \"{}\" (one factor: no user verification)",
            used.passkey_name
        )
    };
    app.accounts
        .record(
            page::event(app, ActivityKind::Login, Some(user.id), ctx)
                .describe(how)
                .meta(serde_json::json!({ "method": "passkey", "user_verified": both })),
        )
        .await;
    r
}

/// Whether the pending sign-in behind `token` may finish with a passkey: the user has one,
/// and the first step was not a passkey already.
/// Read from the shared pending sign-in, so any instance answers the same; when it cannot be
/// read, no passkey is offered (the code step still works).
pub async fn offered_at_code_step(app: &App, token: &str, user: crate::store::UserId) -> bool {
    if app.passkeys.is_none() {
        return false;
    }
    let passkey_first = app
        .portal
        .pending
        .peek(token, app.now())
        .await
        .map_or(true, |p| p.passkey_first);
    !passkey_first && app.store.passkey_count(user).await.is_ok_and(|n| n > 0)
}
