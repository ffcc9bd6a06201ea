//! `/_auth/reset`: forgotten passwords.
//!
//! ```text
//!  POST /_auth/reset (email) ─▶ per-IP throttle (429) ─▶ account found and under its own
//!       throttle? ─▶ token (hash stored, 1 h) ─▶ mail with public_url link (in the background)
//!       └─ always the same answer, whether or not an account exists
//!  GET  /_auth/reset/confirm?token=… ─▶ new-password form
//!  POST /_auth/reset/confirm ─▶ policy ─▶ token spent, password set ─▶ every session ends
//!       ─▶ notice mail; 2FA is untouched, so the next sign-in still asks for a code
//! ```

use http::{Request, StatusCode};
use hyper::body::Incoming;
use minijinja::context;

use super::error::PortalResult;
use super::{forms, page};
use crate::accounts::AccountError;
use crate::app::App;
use crate::audit::ActivityKind;
use crate::config::Secret;
use crate::web::csrf::Csrf;
use crate::web::{RequestCtx, cookies};

const SENT: &str = "If an account exists for the address you entered, we have sent it a link to choose a new password. Check your mail; the link works for";

pub fn show(app: &App, req: &Request<Incoming>) -> PortalResult {
    let csrf = page::csrf_for(app, req.headers());
    page::render(
        app,
        "reset_request.html",
        &csrf,
        context! { email => "" },
        StatusCode::OK,
    )
}

pub async fn submit(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> PortalResult {
    let (_parts, form, _csrf) = page::checked_form(app, req).await?;
    let now = app.now();
    page::hit(app, &app.portal.mail_ip, &page::ip_key(ctx)).await?;
    let email = form.get("email").unwrap_or("").trim();
    match app.accounts.reset_candidate(email).await? {
        Some(user) => {
            if app
                .portal
                .mail_account
                .hit(&format!("user:{}", user.id), now)
                .await
            {
                let token = app.accounts.issue_reset_token(&user, &ctx.client()).await?;
                let s = &app.settings;
                app.mailer.send_later(crate::mail::reset_link(
                    &s.server.public_url,
                    &s.portal.product_name,
                    &user.email,
                    token.expose(),
                    &page::human(s.security.reset_token_ttl),
                ));
            } else {
                app.accounts
                    .record(
                        page::event(
                            app,
                            ActivityKind::PasswordResetRequested,
                            Some(user.id),
                            ctx,
                        )
                        .describe("Password reset refused: too many requests for this account"),
                    )
                    .await;
            }
        }
        None => {
            app.accounts
                .record(
                    page::event(app, ActivityKind::PasswordResetRequested, None, ctx)
                        .describe("Password reset asked for an unknown or closed account"),
                )
                .await;
        }
    }
    let ttl = page::human(app.settings.security.reset_token_ttl);
    page::message(
        app,
        StatusCode::OK,
        "Check your mail",
        &format!("{SENT} {ttl}."),
        Some(("/_auth/login", "Back to sign-in")),
    )
}

fn invalid_link(app: &App) -> PortalResult {
    page::message(
        app,
        StatusCode::BAD_REQUEST,
        "This link does not work",
        "The link is invalid, expired or was already used. Ask for a new one.",
        Some(("/_auth/reset", "Reset your password")),
    )
}

fn confirm_page(
    app: &App,
    csrf: &Csrf,
    token: &str,
    errors: &[(&str, String)],
    status: StatusCode,
) -> PortalResult {
    page::render(
        app,
        "reset_confirm.html",
        csrf,
        context! {
            token,
            errors => page::errors(errors),
            min_length => app.settings.security.min_password_length,
        },
        status,
    )
}

pub async fn show_confirm(app: &App, req: &Request<Incoming>) -> PortalResult {
    let q = forms::query(req.uri());
    let token = q.get("token").unwrap_or("");
    if app.accounts.reset_token_user(token).await?.is_none() {
        return invalid_link(app);
    }
    let csrf = page::csrf_for(app, req.headers());
    confirm_page(app, &csrf, token, &[], StatusCode::OK)
}

pub async fn submit_confirm(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> PortalResult {
    let (_parts, form, csrf) = page::checked_form(app, req).await?;
    let token = form.get("token").unwrap_or("").to_string();
    let password = Secret::new(form.get("password").unwrap_or("").to_string());
    if form.get("password_confirm").unwrap_or("") != password.expose() {
        let e = [(
            "password_confirm",
            "The two passwords are not the same.".to_string(),
        )];
        return confirm_page(app, &csrf, &token, &e, StatusCode::BAD_REQUEST);
    }
    let user = match app
        .accounts
        .reset_password(&token, &password, &ctx.client())
        .await
    {
        Ok(u) => u,
        Err(AccountError::Invalid { field: "token", .. }) => return invalid_link(app),
        Err(AccountError::Policy(p)) => {
            let e = [("password", p.to_string())];
            return confirm_page(app, &csrf, &token, &e, StatusCode::BAD_REQUEST);
        }
        Err(e) => return Err(e.into()),
    };
    if let Err(e) = app.sessions.end_all_for_user(user.id, None).await {
        tracing::error!(error = %e, "could not end sessions after a password reset");
    }
    app.sessions.evict_user(user.id);
    app.mailer.send_later(crate::mail::password_changed(
        &app.settings.portal.product_name,
        &user.email,
        "through a reset link",
    ));
    let mut r = page::message(
        app,
        StatusCode::OK,
        "Password changed",
        "Your new password is set and every session was signed out. Sign in with the new password.",
        Some(("/_auth/login", "Sign in")),
    )?;
    page::set_cookie(
        &mut r,
        cookies::clear(&app.session_cookie_name(), app.secure_cookies()),
    );
    Ok(r)
}
