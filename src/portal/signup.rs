//! `/_auth/signup` (when `portal.registration = "open"`) and `/_auth/verify`.
//!
//! Sign-up makes a free-tier, unverified account (3 credits), mails a verification link and
//! signs the new user in: 303 to the form's `next` (kept from `/_auth/signup?next=` in a hidden
//! field), or to the account page, which says a confirmation link was sent. Following a link
//! marks the account verified and, for an address change, swaps the address.
//!
//! An address that already has an account gets the same redirect without a session, and its
//! owner a mail about the attempt: the page never says whether the address is known. (Whoever
//! chose the password could sign in with it one request later anyway; the mail is what tells
//! the owner.)

use http::{Request, StatusCode};
use hyper::body::Incoming;
use minijinja::context;

use super::error::{PortalError, PortalResult};
use super::{forms, page};
use crate::accounts::AccountError;
use crate::app::App;
use crate::audit::ActivityKind;
use crate::config::{Registration, Secret};
use crate::store::UserId;
use crate::web::csrf::Csrf;
use crate::web::{RequestCtx, respond};

fn closed(app: &App) -> PortalResult {
    page::message(
        app,
        StatusCode::NOT_FOUND,
        "Sign-up is closed",
        "New accounts are made by an administrator. Ask yours for one.",
        Some(("/_auth/login", "Sign in")),
    )
}

/// The sign-up form's values, shown again with its problems.
struct Filled<'a> {
    username: &'a str,
    email: &'a str,
    next: &'a str,
}

fn signup_page(
    app: &App,
    csrf: &Csrf,
    filled: &Filled<'_>,
    errors: &[(&str, String)],
    status: StatusCode,
) -> PortalResult {
    page::render(
        app,
        "signup.html",
        csrf,
        context! {
            username => filled.username,
            email => filled.email,
            next => filled.next,
            login_href => if filled.next.is_empty() {
                "/_auth/login".to_string()
            } else {
                forms::login_url(filled.next)
            },
            errors => page::errors(errors),
            min_length => app.settings.security.min_password_length,
        },
        status,
    )
}

/// Where to go after signing up: `next` when the form carried one, else the account page.
fn after(next: Option<&str>) -> String {
    match next.filter(|n| !n.is_empty()) {
        Some(n) => forms::safe_next(Some(n)),
        None => "/_auth/account?done=welcome".to_string(),
    }
}

pub fn show(app: &App, req: &Request<Incoming>) -> PortalResult {
    if app.settings.portal.registration != Registration::Open {
        return closed(app);
    }
    let q = forms::query(req.uri());
    let next = q.get("next").map(|n| forms::safe_next(Some(n)));
    let filled = Filled {
        username: "",
        email: "",
        next: next.as_deref().unwrap_or(""),
    };
    let csrf = page::csrf_for(app, req.headers());
    signup_page(app, &csrf, &filled, &[], StatusCode::OK)
}

/// A sign-up refusal as a field and its message; anything else is ours.
fn field_error(e: AccountError) -> Result<(&'static str, String), PortalError> {
    Ok(match e {
        AccountError::Invalid { field, message } => (field, message),
        AccountError::Duplicate { field } => (field, format!("this {field} is already taken")),
        AccountError::Policy(p) => ("password", p.to_string()),
        other => return Err(other.into()),
    })
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
    let (parts, form, csrf) = page::checked_form(app, req).await?;
    page::hit(app, &app.portal.mail_ip, &page::ip_key(ctx)).await?;
    let username = form.get("username").unwrap_or("").trim().to_string();
    let email = form.get("email").unwrap_or("").trim().to_string();
    let password = Secret::new(form.get("password").unwrap_or("").to_string());
    let next = form.get("next").filter(|n| !n.is_empty());
    let shown_next = next.map(|n| forms::safe_next(Some(n))).unwrap_or_default();
    let filled = Filled {
        username: &username,
        email: &email,
        next: &shown_next,
    };
    let bad = |errors: &[(&str, String)]| {
        signup_page(app, &csrf, &filled, errors, StatusCode::BAD_REQUEST)
    };
    let mut errors = app
        .accounts
        .sign_up_problems(&username, &email, &password)
        .into_iter()
        .map(field_error)
        .collect::<Result<Vec<_>, _>>()?;
    if form.get("password_confirm").unwrap_or("") != password.expose() {
        errors.push((
            "password_confirm",
            "The two passwords are not the same.".into(),
        ));
    }
    if !errors.is_empty() {
        return bad(&errors);
    }
    let to = after(next);
    let user = match app.accounts.sign_up(&username, &email, &password).await {
        Ok(u) => u,
        Err(AccountError::Duplicate { field: "email" }) => {
            // Answered like a new account (see the module docs); its owner gets a mail instead.
            tell_owner(app, &email).await?;
            return Ok(respond::redirect(StatusCode::SEE_OTHER, &to));
        }
        Err(e) => return bad(&[field_error(e)?]),
    };
    send_verification(app, user.id, &user.email, None).await?;
    let how = super::login::SignedInWith::Password;
    let (r, _) =
        super::login::start_session(app, &parts.headers, &user, ctx, false, how, &to).await?;
    app.accounts
        .record(
            page::event(app, ActivityKind::Login, Some(user.id), ctx)
                .describe("Signed in after signing up"),
        )
        .await;
    Ok(r)
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
