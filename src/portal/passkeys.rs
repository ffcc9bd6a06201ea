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

use super::error::{PortalError, PortalResult};
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

/// The relying party, when passkeys can work here at all.
fn relying_party(app: &App) -> Result<&RelyingParty, PortalError> {
    app.passkeys.as_ref().ok_or(PortalError::NotFound(
        "Passkeys are not available: server.public_url has no usable host name.",
    ))
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
) -> PortalResult {
    let json = match started {
        Ok((json, ceremony)) => {
            app.accounts.keep_ceremony(kind, &ceremony).await?;
            json
        }
        Err(PasskeyError::Busy) => return Ok(json_error(StatusCode::SERVICE_UNAVAILABLE, "busy")),
        Err(e) => return Ok(json_error(StatusCode::BAD_REQUEST, &e.to_string())),
    };
    let mut r = respond::text(StatusCode::OK, json);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// Recent sign-in, or the right password in the form's `password` field. `Some` is the
/// refusal, for the person.
async fn confirm_identity(
    app: &App,
    s: &Session,
    form: &forms::Form,
    ctx: &RequestCtx,
) -> Result<Option<&'static str>, PortalError> {
    if recent(app, s) {
        return Ok(None);
    }
    let ip = page::ip_key(ctx);
    let throttle = &app.portal.login_ip;
    if throttle.is_blocked(&ip, app.now()).await {
        return Err(PortalError::throttled(throttle));
    }
    let pw = Secret::new(form.get("password").unwrap_or("").to_string());
    let user = super::account::current_user(app, s).await?;
    if app.accounts.password_matches(&user, &pw).await? {
        return Ok(None);
    }
    throttle.hit(&ip, app.now()).await;
    Ok(Some(
        "You signed in more than 10 minutes ago: enter your password to change passkeys.",
    ))
}

async fn list_page(
    app: &App,
    s: &Session,
    csrf: &Csrf,
    error: Option<&str>,
    notice: Option<&str>,
    status: StatusCode,
) -> PortalResult {
    let rows = app.accounts.passkeys(s.identity.user_id).await?;
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

pub async fn show(app: &App, req: &Request<Incoming>) -> PortalResult {
    let s = page::require_session(app, req.headers(), PATH).await?;
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
pub async fn register_options(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> PortalResult {
    let rp = relying_party(app)?;
    let (parts, form, _csrf) = page::checked_form(app, req).await?;
    let Some(s) = page::session(app, &parts.headers).await else {
        return Ok(json_error(StatusCode::UNAUTHORIZED, "Sign in first."));
    };
    if let Some(msg) = confirm_identity(app, &s, &form, ctx).await? {
        return Ok(json_error(StatusCode::FORBIDDEN, msg));
    }
    let id = s.identity.user_id;
    let existing: Vec<(String, u8)> = app
        .accounts
        .passkeys(id)
        .await?
        .into_iter()
        .map(|p| (p.credential_id, u8::try_from(p.transports).unwrap_or(0)))
        .collect();
    let started = rp.start_registration(
        app.keys.passkey_user_handle(id.0),
        &s.identity.username,
        &existing,
    );
    options_response(app, "reg", started).await
}

/// POST `/_auth/account/passkeys`: the registration answer (`credential`) and a `name`.
pub async fn register(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> PortalResult {
    let rp = relying_party(app)?;
    let (_, s, form, csrf) = page::signed_in_form(app, req, PATH).await?;
    let id = s.identity.user_id;
    let answer = form.get("credential").unwrap_or("");
    let finished = match RelyingParty::parse_registration(answer.as_bytes()) {
        Ok((reg, challenge)) => match app.accounts.take_ceremony("reg", &challenge).await {
            Ok(state) => rp.finish_registration(app.keys.passkey_user_handle(id.0), &reg, &state),
            Err(PasskeyFailure::Refused(e)) => Err(e),
            Err(e) => return Err(e.into()),
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
    if !app
        .accounts
        .add_passkey(id, &name, cred, &ctx.client())
        .await?
    {
        // The same words whoever holds it: a credential id is not to be probed here.
        let msg = "That passkey cannot be added. Try another one.";
        return list_page(app, &s, &csrf, Some(msg), None, StatusCode::CONFLICT).await;
    }
    app.sessions.evict_user(id);
    Ok(respond::redirect(
        StatusCode::SEE_OTHER,
        &format!("{PATH}?done=added"),
    ))
}

/// POST `/_auth/account/passkeys/remove`: `passkey_id` (and `password` unless recent).
pub async fn remove(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> PortalResult {
    let (_, s, form, csrf) = page::signed_in_form(app, req, PATH).await?;
    if let Some(msg) = confirm_identity(app, &s, &form, ctx).await? {
        return list_page(app, &s, &csrf, Some(msg), None, StatusCode::FORBIDDEN).await;
    }
    let pk = form
        .get("passkey_id")
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or(PortalError::BadRequest("which passkey? (passkey_id)"))?;
    let id = s.identity.user_id;
    if !app
        .accounts
        .remove_passkey(id, pk, Some(id), &ctx.client())
        .await?
    {
        return Err(PortalError::NotFound("No such passkey of yours."));
    }
    // A session signed in elsewhere with this key (a lost one) ends with it.
    app.sessions.end_all_for_user(id, Some(s.id)).await?;
    app.sessions.evict_user(id);
    Ok(respond::redirect(
        StatusCode::SEE_OTHER,
        &format!("{PATH}?done=removed"),
    ))
}

/// POST `/_auth/login/passkey/options` and `/_auth/login/2fa/passkey/options`: request
/// options for any passkey of this site (JSON).
pub async fn sign_in_options(app: &App, req: Request<Incoming>) -> PortalResult {
    let rp = relying_party(app)?;
    page::checked_form(app, req).await?;
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
pub async fn sign_in(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> PortalResult {
    let rp = relying_party(app)?;
    let (parts, form, _csrf) = page::checked_form(app, req).await?;
    let ip = page::ip_key(ctx);
    page::hit(app, &app.portal.login_ip, &ip).await?;
    let next = forms::safe_next(form.get("next"));
    let back = super::forms::login_url(&next);
    let not_accepted = |text: &str| {
        page::message(
            app,
            StatusCode::UNAUTHORIZED,
            "Passkey not accepted",
            text,
            Some((back.as_str(), "Back to sign-in")),
        )
    };
    let answer = form.get("credential").unwrap_or("");
    let used = match app
        .accounts
        .use_passkey(rp, &app.keys, answer.as_bytes(), None, &ctx.client())
        .await
    {
        Ok(u) => u,
        Err(PasskeyFailure::Store(e)) => return Err(e.into()),
        Err(e) => return not_accepted(refused_message(&e)),
    };
    app.portal.login_ip.release(&ip).await;
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
        return not_accepted(
            "This passkey did not check that it is you (no PIN, fingerprint or face). Sign in \
             with your password, then use the passkey as the second step.",
        );
    }
    if !used.asserted.user_verified {
        // One factor: the code step still stands, and the same passkey cannot be the second.
        let token = app
            .portal
            .pending
            .start_after_passkey(user.id, next, app.now())
            .await?;
        return Ok(to_code_step(app, &token));
    }
    let both = used.asserted.user_verified;
    let (method, factors) = if both {
        (SignedInWith::VerifiedPasskey, "user verified")
    } else {
        (SignedInWith::Passkey, "one factor: no user verification")
    };
    let (r, _session) =
        start_session(app, &parts.headers, &user, ctx, false, method, &next).await?;
    let how = format!(
        "Signed in with passkey \"{}\" ({factors})",
        used.passkey_name
    );
    app.accounts
        .record(
            page::event(app, ActivityKind::Login, Some(user.id), ctx)
                .describe(how)
                .meta(serde_json::json!({ "method": "passkey", "user_verified": both })),
        )
        .await;
    Ok(r)
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
    !passkey_first
        && app
            .accounts
            .passkeys(user)
            .await
            .is_ok_and(|p| !p.is_empty())
}
