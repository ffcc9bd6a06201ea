//! `/_auth/account/2fa`: enrol in two-factor sign-in, turn it off, make new recovery codes.
//!
//! Enrolment shows a QR code (inline SVG, so the CSP needs no `data:` images) of the
//! `otpauth://` URI and the base32 secret in `#totp-secret`; 2FA turns on only when a valid
//! code is posted. The confirming code's time step counts as used. Passing enrolment is a
//! second-factor proof, so the session is replaced by a fresh one marked `twofa_verified`
//! (which also lifts the admin suspension of `security.require_2fa_for_admins`).

use http::{Request, StatusCode};
use hyper::body::Incoming;
use minijinja::context;
use qrcode::QrCode;
use qrcode::render::svg;

use super::account::current_user;
use super::error::PortalResult;
use super::forms::{self, safe_next};
use super::login::start_session;
use super::page;
use crate::accounts::TwofaError;
use crate::app::App;
use crate::config::Secret;
use crate::session::Session;
use crate::web::csrf::Csrf;
use crate::web::{RequestCtx, respond};

const PATH: &str = "/_auth/account/2fa";

fn qr_svg(uri: &str) -> Option<String> {
    let code = QrCode::new(uri.as_bytes()).ok()?;
    let svg = code
        .render::<svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    // Inline markup: drop the XML declaration.
    Some(match svg.find("<svg") {
        Some(i) => svg[i..].to_string(),
        None => svg,
    })
}

/// The 2FA page: enrolment when off, management when on.
async fn twofa_page(
    app: &App,
    s: &Session,
    csrf: &Csrf,
    next: &str,
    errors: &[(&str, String)],
    notice: Option<&str>,
    status: StatusCode,
) -> PortalResult {
    let user = current_user(app, s).await?;
    let common = context! {
        nav_user => s.identity.username.clone(),
        next,
        errors => page::errors(errors),
        notice,
        admin_required => s.identity.admin_suspended,
    };
    if user.twofa_enabled {
        let left = crate::accounts::Accounts::recovery_codes_left(&user);
        return page::render(
            app,
            "twofa.html",
            csrf,
            context! { enabled => true, codes_left => left, ..common },
            status,
        );
    }
    let enrol = app
        .accounts
        .twofa_enrolment(&app.keys, &user, &app.settings.portal.product_name)
        .await?;
    let qr = qr_svg(enrol.otpauth_uri.expose());
    page::render(
        app,
        "twofa.html",
        csrf,
        context! {
            enabled => false,
            secret => enrol.secret_base32.expose().clone(),
            otpauth_uri => enrol.otpauth_uri.expose().clone(),
            qr_svg => qr.map(minijinja::Value::from_safe_string),
            ..common
        },
        status,
    )
}

pub async fn show(app: &App, req: &Request<Incoming>) -> PortalResult {
    let s = page::require_session(app, req.headers(), PATH).await?;
    let q = forms::query(req.uri());
    let next = q
        .get("next")
        .map(|n| safe_next(Some(n)))
        .unwrap_or_default();
    let notice = match q.get("done") {
        Some("disabled") => Some("Two-factor sign-in is off."),
        _ => None,
    };
    let csrf = page::csrf_for(app, req.headers());
    twofa_page(app, &s, &csrf, &next, &[], notice, StatusCode::OK).await
}

fn codes_page(
    app: &App,
    s: &Session,
    csrf: &Csrf,
    codes: &[Secret<String>],
    next: &str,
) -> PortalResult {
    let list: Vec<String> = codes.iter().map(|c| c.expose().clone()).collect();
    let next = if next.is_empty() {
        "/_auth/account"
    } else {
        next
    };
    page::render(
        app,
        "recovery_codes.html",
        csrf,
        context! { codes => list, next, nav_user => s.identity.username.clone() },
        StatusCode::OK,
    )
}

/// POST `/_auth/account/2fa`: confirm enrolment with a code.
pub async fn confirm(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> PortalResult {
    let (parts, s, form, csrf) = page::signed_in_form(app, req, PATH).await?;
    let next = form
        .get("next")
        .filter(|n| !n.is_empty())
        .map(|n| safe_next(Some(n)))
        .unwrap_or_default();
    let code = form.get("code").unwrap_or("");
    let codes = match app
        .accounts
        .confirm_twofa(&app.keys, s.identity.user_id, code, &ctx.client())
        .await
    {
        Ok(c) => c,
        Err(TwofaError::WrongCode | TwofaError::Replayed) => {
            let e = [("code", "That code is not right, or it was already used. Enter the code your app shows now.".to_string())];
            return twofa_page(app, &s, &csrf, &next, &e, None, StatusCode::BAD_REQUEST).await;
        }
        Err(TwofaError::AlreadyEnabled) => {
            return Ok(respond::redirect(StatusCode::SEE_OTHER, PATH));
        }
        Err(e) => return Err(e.into()),
    };
    app.sessions.evict_user(s.identity.user_id);
    let user = current_user(app, &s).await?;
    // A fresh session id, now marked as having passed a second factor.
    let remember = false;
    let how = super::login::SignedInWith::PasswordAndCode;
    let (redirect, new_session) =
        start_session(app, &parts.headers, &user, ctx, remember, how, "/").await?;
    let mut r = codes_page(app, &new_session, &csrf, &codes, &next)?;
    for c in redirect.headers().get_all(http::header::SET_COOKIE) {
        r.headers_mut().append(http::header::SET_COOKIE, c.clone());
    }
    Ok(r)
}

pub enum Manage {
    Disable,
    Regenerate,
}

/// POST `/_auth/account/2fa/disable` and `/_auth/account/2fa/recovery-codes` (password and
/// a code).
pub async fn manage(
    app: &App,
    req: Request<Incoming>,
    ctx: &RequestCtx,
    what: Manage,
) -> PortalResult {
    let (_, s, form, csrf) = page::signed_in_form(app, req, PATH).await?;
    let ip = page::ip_key(ctx);
    // Counted before the password and code are checked, given back when both are right.
    page::hit(app, &app.portal.login_ip, &ip).await?;
    let password = Secret::new(form.get("password").unwrap_or("").to_string());
    let code = form.get("code").unwrap_or("");
    let id = s.identity.user_id;
    let result = match what {
        Manage::Disable => app
            .accounts
            .disable_twofa(&app.keys, id, &password, code, &ctx.client())
            .await
            .map(|()| None),
        Manage::Regenerate => app
            .accounts
            .regenerate_recovery_codes(&app.keys, id, &password, code, &ctx.client())
            .await
            .map(Some),
    };
    let prefix = match what {
        Manage::Disable => "disable",
        Manage::Regenerate => "regenerate",
    };
    if result.is_ok() {
        app.portal.login_ip.release(&ip).await;
    }
    match result {
        Ok(None) => {
            app.sessions.evict_user(id);
            Ok(respond::redirect(
                StatusCode::SEE_OTHER,
                &format!("{PATH}?done=disabled"),
            ))
        }
        Ok(Some(codes)) => codes_page(app, &s, &csrf, &codes, ""),
        Err(
            e @ (TwofaError::WrongPassword
            | TwofaError::WrongCode
            | TwofaError::Replayed
            | TwofaError::Locked),
        ) => {
            let (key, msg) = match e {
                TwofaError::WrongPassword => {
                    (format!("{prefix}-password"), "The password is not right.")
                }
                TwofaError::Locked => (
                    format!("{prefix}-code"),
                    "Too many wrong codes: the account is locked for a while.",
                ),
                _ => (
                    format!("{prefix}-code"),
                    "That code is not right, or it was already used.",
                ),
            };
            let errors = [(key.as_str(), msg.to_string())];
            twofa_page(app, &s, &csrf, "", &errors, None, StatusCode::BAD_REQUEST).await
        }
        Err(TwofaError::NotEnabled) => Ok(respond::redirect(StatusCode::SEE_OTHER, PATH)),
        Err(e) => Err(e.into()),
    }
}
