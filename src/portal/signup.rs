//! `/_auth/signup` (when `portal.registration = "open"`) and `/_auth/verify`.
//!
//! Sign-up makes a free-tier, unverified account (3 credits) and mails a verification link;
//! following a link marks the account verified and, for an address change, swaps the address.

use http::{Request, StatusCode};
use hyper::body::Incoming;
use minijinja::context;

use super::error::PortalResult;
use super::{forms, page};
use crate::accounts::AccountError;
use crate::app::App;
use crate::config::{Registration, Secret};
use crate::store::UserId;
use crate::web::RequestCtx;
use crate::web::csrf::Csrf;

fn closed(app: &App) -> PortalResult {
    page::message(
        app,
        StatusCode::NOT_FOUND,
        "Sign-up is closed",
        "New accounts are made by an administrator. Ask yours for one.",
        Some(("/_auth/login", "Sign in")),
    )
}

fn signup_page(
    app: &App,
    csrf: &Csrf,
    username: &str,
    email: &str,
    errors: &[(&str, String)],
    status: StatusCode,
) -> PortalResult {
    page::render(
        app,
        "signup.html",
        csrf,
        context! {
            username,
            email,
            errors => page::errors(errors),
            min_length => app.settings.security.min_password_length,
        },
        status,
    )
}

pub fn show(app: &App, req: &Request<Incoming>) -> PortalResult {
    if app.settings.portal.registration != Registration::Open {
        return closed(app);
    }
    signup_page(
        app,
        &page::csrf_for(app, req.headers()),
        "",
        "",
        &[],
        StatusCode::OK,
    )
}

/// Mails a verification link for `to` (the account's address, or a new one).
pub(super) async fn send_verification(
    app: &App,
    id: UserId,
    to: &str,
    new_email: Option<&str>,
) -> Result<(), AccountError> {
    let token = app.accounts.issue_verification_token(id, new_email).await?;
    let s = &app.settings;
    app.mailer.send_later(crate::mail::verify_link(
        &s.server.public_url,
        &s.portal.product_name,
        to,
        token.expose(),
        &page::human(s.security.verification_token_ttl),
    ));
    Ok(())
}

pub async fn submit(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> PortalResult {
    if app.settings.portal.registration != Registration::Open {
        return closed(app);
    }
    let (_parts, form, csrf) = page::checked_form(app, req).await?;
    page::hit(app, &app.portal.mail_ip, &page::ip_key(ctx)).await?;
    let username = form.get("username").unwrap_or("").trim().to_string();
    let email = form.get("email").unwrap_or("").trim().to_string();
    let password = Secret::new(form.get("password").unwrap_or("").to_string());
    let bad = |errors: &[(&str, String)]| {
        signup_page(
            app,
            &csrf,
            &username,
            &email,
            errors,
            StatusCode::BAD_REQUEST,
        )
    };
    if form.get("password_confirm").unwrap_or("") != password.expose() {
        return bad(&[(
            "password_confirm",
            "The two passwords are not the same.".into(),
        )]);
    }
    let user = match app.accounts.sign_up(&username, &email, &password).await {
        Ok(u) => u,
        Err(AccountError::Invalid { field, message }) => return bad(&[(field, message)]),
        Err(AccountError::Duplicate { field: "email" }) => {
            // Answer exactly as a new account would, so the page never tells whether the
            // address has an account; its owner gets a mail about the attempt instead.
            tell_owner(app, &email).await?;
            return created(app, &username, &email);
        }
        Err(AccountError::Duplicate { field }) => {
            return bad(&[(field, format!("this {field} is already taken"))]);
        }
        Err(AccountError::Policy(p)) => return bad(&[("password", p.to_string())]),
        Err(e) => return Err(e.into()),
    };
    send_verification(app, user.id, &user.email, None).await?;
    created(app, &username, &email)
}

/// The answer to a sign-up, built from the submitted names so that it reads the same whether
/// an account was made or the address already had one.
fn created(app: &App, username: &str, email: &str) -> PortalResult {
    page::message(
        app,
        StatusCode::OK,
        "Account created",
        &format!(
            "Welcome, {}! We sent a link to {} to confirm the address. You can sign in now.",
            username.trim(),
            email.trim()
        ),
        Some(("/_auth/login", "Sign in")),
    )
}

/// Mails the owner of `email` that someone tried to sign up with it, at most as often as the
/// per-account mail throttle allows (so the form cannot be used to flood someone's inbox).
async fn tell_owner(app: &App, email: &str) -> Result<(), AccountError> {
    let Some(owner) = app.accounts.get_by_email(email).await? else {
        return Ok(());
    };
    let key = format!("user:{}", owner.id);
    if app.portal.mail_account.hit(&key, app.now()).await {
        let s = &app.settings;
        app.mailer.send_later(crate::mail::signup_attempt(
            &s.server.public_url,
            &s.portal.product_name,
            &owner.email,
        ));
    }
    Ok(())
}

/// GET `/_auth/verify?token=…`.
pub async fn verify(app: &App, req: &Request<Incoming>, ctx: &RequestCtx) -> PortalResult {
    let q = forms::query(req.uri());
    let token = q.get("token").unwrap_or("");
    match app.accounts.verify_email(token, &ctx.client()).await {
        Ok(user) => {
            app.sessions.evict_user(user.id);
            page::message(
                app,
                StatusCode::OK,
                "Address confirmed",
                &format!("{} is confirmed for your account.", user.email),
                Some(("/_auth/account", "Go to your account")),
            )
        }
        Err(AccountError::Invalid { field: "token", .. }) => page::message(
            app,
            StatusCode::BAD_REQUEST,
            "This link does not work",
            "The link is invalid, expired or was already used. Ask for a new one from your account page.",
            Some(("/_auth/account", "Go to your account")),
        ),
        Err(AccountError::Duplicate { .. }) => page::message(
            app,
            StatusCode::CONFLICT,
            "Address in use",
            "That address now belongs to another account, so it cannot be moved to yours.",
            Some(("/_auth/account", "Go to your account")),
        ),
        Err(e) => Err(e.into()),
    }
}
