//! `/_auth/account`: the signed-in user's own page.
//!
//! Profile (via `Accounts::update_profile`), password (current one required; other sessions
//! end), email address (re-verified by mail before it changes), sessions (list, revoke one,
//! revoke all others), a link to two-factor settings, and the last 20 activity rows. Every
//! change evicts the user's cached sessions so identity headers refresh.

use http::{Request, StatusCode};
use hyper::body::Incoming;
use minijinja::{Value, context};

use super::error::{PortalError, PortalResult};
use super::{device, forms, page};
use crate::accounts::{AccountError, ProfileInput};
use crate::app::App;
use crate::audit::ActivityKind;
use crate::config::Secret;
use crate::session::Session;
use crate::store::{SessionId, Ts, UserRow};
use crate::web::csrf::Csrf;
use crate::web::{RequestCtx, respond};

const PATH: &str = "/_auth/account";

/// `t` in the user's time zone (UTC when theirs is not one of the list).
pub(super) fn when(t: Ts, tz: &str) -> String {
    let zone = jiff::tz::db().get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
    match jiff::Timestamp::from_second(t.0.timestamp()) {
        Ok(ts) => ts
            .to_zoned_datetime(zone)
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string(),
        Err(_) => t.0.format("%Y-%m-%d %H:%M UTC").to_string(),
    }
}

fn done_notice(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "welcome" => {
            "Welcome! Your account is ready and you are signed in. We sent a link to your address to confirm it."
        }
        "profile" => "Your profile is saved.",
        "password" => "Your password is changed. Your other sessions were signed out.",
        "email" => {
            "We sent a confirmation link to the new address. The change takes effect when you follow it."
        }
        "verify" => "We sent a new confirmation link.",
        "revoked" => "The session was signed out.",
        "revoked-others" => "All your other sessions were signed out.",
        "linked" => "The provider is linked: you can sign in with it now.",
        "unlinked" => "The provider is unlinked.",
        _ => return None,
    })
}

/// Form values to show instead of the stored ones (after a refused edit).
type Overrides<'a> = &'a [(&'a str, String)];

async fn account_page(
    app: &App,
    s: &Session,
    csrf: &Csrf,
    errors: &[(&str, String)],
    overrides: Overrides<'_>,
    notice: Option<&str>,
    status: StatusCode,
) -> PortalResult {
    let id = s.identity.user_id;
    let user = current_user(app, s).await?;
    let sessions = app.sessions.sessions_of_user(id, app.now()).await?;
    let activity = app.audit.recent_for_user(id, 20).await?;
    let providers = super::oidc::account_providers(app, id).await?;
    // A passkey is a second factor too: with one, a password sign-in asks for a second step.
    let passkeys = app.accounts.passkeys(id).await?.len();
    let sessions: Vec<Value> = sessions
        .iter()
        .map(|r| {
            context! {
                id => r.id.0,
                device => device::describe(r.user_agent.as_deref()),
                ip => r.ip_address.clone().unwrap_or_default(),
                created => when(r.created_at, &user.timezone),
                last_activity => when(r.last_activity, &user.timezone),
                current => r.id == s.id,
                twofa => r.twofa_verified,
            }
        })
        .collect();
    let activity: Vec<Value> = activity
        .iter()
        .map(|a| {
            context! {
                when => when(a.created_at, &user.timezone),
                kind => a.activity_type.clone(),
                description => a.activity_description.clone().unwrap_or_default(),
                ip => a.ip_address.clone().unwrap_or_default(),
            }
        })
        .collect();
    page::render(
        app,
        "account.html",
        csrf,
        context! {
            nav_user => s.identity.username.clone(),
            user => profile_values(&user, overrides),
            sessions,
            activity,
            errors => page::errors(errors),
            notice,
            admin_required => s.identity.admin_suspended,
            console => s.identity.is_admin_at(app.now()),
            min_length => app.settings.security.min_password_length,
            providers,
            passkeys,
        },
        status,
    )
}

/// The signed-in user's account as stored now; gone (deleted meanwhile), to sign-in.
pub(super) async fn current_user(app: &App, s: &Session) -> Result<UserRow, PortalError> {
    app.accounts
        .get(s.identity.user_id)
        .await?
        .ok_or_else(|| PortalError::SignIn {
            next: PATH.to_string(),
        })
}

fn profile_values(u: &UserRow, overrides: Overrides<'_>) -> Value {
    let get = |k: &str, stored: Option<&str>| -> String {
        overrides
            .iter()
            .find(|(f, _)| *f == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| stored.unwrap_or("").to_string())
    };
    context! {
        username => u.username.clone(),
        email => u.email.clone(),
        pending_email => u.pending_email.clone(),
        is_verified => u.is_verified,
        twofa_enabled => u.twofa_enabled,
        tier => u.subscription_tier.clone(),
        credits => u.credits_balance,
        first_name => get("first_name", u.first_name.as_deref()),
        last_name => get("last_name", u.last_name.as_deref()),
        phone => get("phone", u.phone.as_deref()),
        company_name => get("company_name", u.company_name.as_deref()),
        timezone => get("timezone", Some(&u.timezone)),
        language => get("language", Some(&u.language)),
        email_notifications => u.email_notifications,
        sms_notifications => u.sms_notifications,
    }
}

pub async fn show(app: &App, req: &Request<Incoming>) -> PortalResult {
    let s = page::require_session(app, req.headers(), PATH).await?;
    let q = forms::query(req.uri());
    let csrf = page::csrf_for(app, req.headers());
    account_page(
        app,
        &s,
        &csrf,
        &[],
        &[],
        done_notice(q.get("done")),
        StatusCode::OK,
    )
    .await
}

fn done(what: &str) -> PortalResult {
    Ok(respond::redirect(
        StatusCode::SEE_OTHER,
        &format!("{PATH}?done={what}"),
    ))
}

/// An account-layer refusal as a field and its message; anything else is ours.
fn field_error(e: AccountError) -> Result<(&'static str, String), PortalError> {
    Ok(match e {
        AccountError::Invalid { field, message } => (field, message),
        AccountError::Duplicate { field } => (field, format!("this {field} is already in use")),
        AccountError::Policy(p) => ("new_password", p.to_string()),
        other => return Err(other.into()),
    })
}

/// Account-layer refusals shown together: each next to its field and all in the summary.
async fn refused(
    app: &App,
    s: &Session,
    csrf: &Csrf,
    problems: Vec<AccountError>,
    overrides: Overrides<'_>,
) -> PortalResult {
    let errors = problems
        .into_iter()
        .map(field_error)
        .collect::<Result<Vec<_>, _>>()?;
    account_page(
        app,
        s,
        csrf,
        &errors,
        overrides,
        None,
        StatusCode::BAD_REQUEST,
    )
    .await
}

/// A refusal that names the current password, as the form in question calls that field.
fn rename_current(e: AccountError, field: &'static str) -> AccountError {
    match e {
        AccountError::Invalid {
            field: "current_password",
            message,
        } => AccountError::Invalid { field, message },
        other => other,
    }
}

/// Whether `problems` say a given password was wrong (which keeps its throttle count).
fn wrong_password(problems: &[AccountError], given: &Secret<String>) -> bool {
    !given.expose().is_empty()
        && problems.iter().any(|e| {
            matches!(
                e,
                AccountError::Invalid {
                    field: "current_password",
                    ..
                }
            )
        })
}

pub async fn profile(app: &App, req: Request<Incoming>) -> PortalResult {
    let (_, s, form, csrf) = page::signed_in_form(app, req, PATH).await?;
    let text = |k: &str| form.get(k).unwrap_or("").to_string();
    let input = ProfileInput {
        first_name: text("first_name"),
        last_name: text("last_name"),
        phone: text("phone"),
        company_name: text("company_name"),
        email_notifications: form.get("email_notifications").is_some(),
        sms_notifications: form.get("sms_notifications").is_some(),
        timezone: text("timezone"),
        language: text("language"),
    };
    let id = s.identity.user_id;
    let keep: Vec<(&str, String)> = [
        "first_name",
        "last_name",
        "phone",
        "company_name",
        "timezone",
        "language",
    ]
    .iter()
    .map(|k| (*k, text(k)))
    .collect();
    let problems = app.accounts.profile_problems(id, &input).await?;
    if !problems.is_empty() {
        return refused(app, &s, &csrf, problems, &keep).await;
    }
    match app.accounts.update_profile(id, &input).await {
        Ok(_) => {
            app.sessions.evict_user(id);
            done("profile")
        }
        Err(e) => refused(app, &s, &csrf, vec![e], &keep).await,
    }
}

pub async fn password(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> PortalResult {
    let (_, s, form, csrf) = page::signed_in_form(app, req, PATH).await?;
    // The attempt is counted against the address before the current password is checked
    // (given back unless that password was wrong), so parallel guesses cannot all get through.
    let ip = page::ip_key(ctx);
    page::hit(app, &app.portal.login_ip, &ip).await?;
    let current = Secret::new(form.get("current_password").unwrap_or("").to_string());
    let new = Secret::new(form.get("new_password").unwrap_or("").to_string());
    let id = s.identity.user_id;
    let mut problems = app
        .accounts
        .password_change_problems(id, &current, &new)
        .await?;
    if form.get("new_password_confirm").unwrap_or("") != new.expose() {
        problems.push(AccountError::Invalid {
            field: "new_password_confirm",
            message: "the two new passwords are not the same".into(),
        });
    }
    if !wrong_password(&problems, &current) {
        app.portal.login_ip.release(&ip).await;
    }
    if !problems.is_empty() {
        return refused(app, &s, &csrf, problems, &[]).await;
    }
    // The current password was checked with the rest of the form just now.
    match app.accounts.change_password(id, &new, Some(s.id)).await {
        Ok(ended) => {
            app.sessions.evict_token_hashes(&ended).await;
            app.sessions.evict_user(id);
            if let Ok(Some(u)) = app.accounts.get(id).await {
                app.mailer.send_later(crate::mail::password_changed(
                    &app.settings.portal.product_name,
                    &u.email,
                    "on the account page",
                ));
            }
            done("password")
        }
        Err(e) => refused(app, &s, &csrf, vec![e], &[]).await,
    }
}

pub async fn email(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> PortalResult {
    let (_, s, form, csrf) = page::signed_in_form(app, req, PATH).await?;
    let ip = page::ip_key(ctx);
    page::hit(app, &app.portal.mail_ip, &ip).await?;
    page::hit(app, &app.portal.login_ip, &ip).await?;
    let new_email = form.get("email").unwrap_or("");
    let pw = Secret::new(form.get("email_password").unwrap_or("").to_string());
    let id = s.identity.user_id;
    let problems = app
        .accounts
        .email_change_problems(id, new_email, &pw)
        .await?;
    if !wrong_password(&problems, &pw) {
        app.portal.login_ip.release(&ip).await;
    }
    if !problems.is_empty() {
        let problems = problems
            .into_iter()
            .map(|e| rename_current(e, "email_password"))
            .collect();
        return refused(app, &s, &csrf, problems, &[]).await;
    }
    match app
        .accounts
        .request_email_change(id, new_email, &ctx.client())
        .await
    {
        Ok((address, token)) => {
            let st = &app.settings;
            app.mailer.send_later(crate::mail::verify_link(
                &st.server.public_url,
                &st.portal.product_name,
                &address,
                token.expose(),
                &page::human(st.security.verification_token_ttl),
            ));
            app.sessions.evict_user(id);
            done("email")
        }
        Err(e) => {
            let e = rename_current(e, "email_password");
            refused(app, &s, &csrf, vec![e], &[]).await
        }
    }
}

/// POST `/_auth/account/verify`: send the confirmation link again.
pub async fn resend_verification(
    app: &App,
    req: Request<Incoming>,
    ctx: &RequestCtx,
) -> PortalResult {
    let (_, s, _form, _csrf) = page::signed_in_form(app, req, PATH).await?;
    let id = s.identity.user_id;
    page::hit(app, &app.portal.mail_ip, &page::ip_key(ctx)).await?;
    page::hit(app, &app.portal.mail_account, &format!("user:{id}")).await?;
    let user = current_user(app, &s).await?;
    let (to, change) = match &user.pending_email {
        Some(p) => (p.clone(), Some(p.as_str())),
        None if !user.is_verified => (user.email.clone(), None),
        None => return done("verify"),
    };
    super::signup::send_verification(app, id, &to, change).await?;
    done("verify")
}

pub async fn revoke(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> PortalResult {
    let (_, s, form, _csrf) = page::signed_in_form(app, req, PATH).await?;
    let target = form
        .get("session_id")
        .and_then(|v| v.parse::<i64>().ok())
        .map(SessionId)
        .ok_or(PortalError::BadRequest("which session? (session_id)"))?;
    let id = s.identity.user_id;
    // Someone else's session id gets the same answer as an unknown one.
    if target == s.id || !app.sessions.revoke_owned(id, target).await? {
        return Err(PortalError::NotFound(
            "No such session of yours. To end this session, sign out.",
        ));
    }
    app.accounts
        .record(
            page::event(app, ActivityKind::SessionRevoked, Some(id), ctx)
                .describe("Signed out one session from the account page"),
        )
        .await;
    done("revoked")
}

pub async fn revoke_others(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> PortalResult {
    let (_, s, _form, _csrf) = page::signed_in_form(app, req, PATH).await?;
    let id = s.identity.user_id;
    let n = app.sessions.end_all_for_user(id, Some(s.id)).await?;
    app.accounts
        .record(
            page::event(app, ActivityKind::SessionRevoked, Some(id), ctx)
                .describe(format!("Signed out all other sessions ({n})"))
                .meta(serde_json::json!({ "count": n })),
        )
        .await;
    done("revoked-others")
}
