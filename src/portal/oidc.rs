//! Sign-in with an external OpenID Connect provider, and linking one from the account page.
//!
//! ```text
//!  GET  /_auth/oidc/<id>/start?next=        ─▶ 303 provider (cookie gatehouse_oidc)
//!  POST /_auth/account/identities/link      ─▶ the same, for the signed-in user (CSRF form)
//!  GET  /_auth/oidc/<id>/callback?code&state ─▶ flow taken by the cookie ─▶ checked identity
//!     ├─ link flow ─▶ linked to the session's user ─▶ 303 /_auth/account
//!     └─ sign-in  ─▶ account (link / verified email / create / refuse)
//!          ├─ Gatehouse 2FA on (and not trusted provider MFA) ─▶ pending 2FA ─▶ /_auth/login/2fa
//!          └─ fresh session ─▶ 303 next
//!  POST /_auth/account/identities/unlink    ─▶ refused when it would leave no way to sign in
//! ```

use http::{Request, StatusCode};
use hyper::body::Incoming;

use super::error::{NO_SUCH_PAGE, PortalError, PortalResult};
use super::forms::{self, safe_next};
use super::login::{enrol_first, start_session, to_code_step};
use super::page;
use crate::accounts::{ExternalMatch, ExternalRefusal};
use crate::app::App;
use crate::audit::ActivityKind;
use crate::config::IdentityProvider;
use crate::oidc::{Callback, ExternalIdentity, FLOW_TTL, Flow, OidcError};
use crate::web::cookies::{self, time_like::Seconds};
use crate::web::{RequestCtx, respond};

/// Name of the cookie that ties a provider's callback to the browser that started it.
pub const OIDC_COOKIE: &str = "gatehouse_oidc";

const ACCOUNT: &str = "/_auth/account";

fn provider<'a>(app: &'a App, id: &str) -> Result<&'a IdentityProvider, PortalError> {
    app.settings
        .identity_provider(id)
        .ok_or(PortalError::NotFound(NO_SUCH_PAGE))
}

/// GET `/_auth/oidc/<id>/start?next=`.
pub async fn start(app: &App, req: &Request<Incoming>, id: &str) -> PortalResult {
    let p = provider(app, id)?;
    let next = safe_next(forms::query(req.uri()).get("next"));
    begin(app, p, next, None).await
}

/// Starts a flow and sends the browser to the provider.
async fn begin(
    app: &App,
    p: &IdentityProvider,
    next: String,
    link_user: Option<crate::store::UserId>,
) -> PortalResult {
    match app.oidc.start(p, next, link_user, app.now()).await {
        Ok((url, token)) => {
            let mut r = respond::redirect(StatusCode::SEE_OTHER, url.as_str());
            page::set_cookie(
                &mut r,
                cookies::set(
                    &page::cookie_name(app, OIDC_COOKIE),
                    &token,
                    app.secure_cookies(),
                    Some(Seconds(FLOW_TTL.as_secs() as i64)),
                ),
            );
            Ok(r)
        }
        // Our own database failing is not the provider's fault: say which it is.
        Err(e @ OidcError::Store(_)) => Err(e.into()),
        Err(e) => {
            tracing::error!(provider = %p.id, error = %e, "cannot start a provider sign-in");
            let text = format!(
                "{} cannot be reached right now. Try again shortly, or sign in another way.",
                p.name
            );
            page::message(
                app,
                StatusCode::SERVICE_UNAVAILABLE,
                "Provider unavailable",
                &text,
                Some(("/_auth/login", "Sign in")),
            )
        }
    }
}

/// GET `/_auth/oidc/<id>/callback?code&state`.
pub async fn callback(
    app: &App,
    req: Request<Incoming>,
    ctx: &RequestCtx,
    id: &str,
) -> PortalResult {
    let p = provider(app, id)?;
    let q = forms::query(req.uri());
    let cb = Callback {
        code: q.get("code").map(str::to_string),
        state: q.get("state").map(str::to_string),
        error: q.get("error").map(str::to_string),
    };
    let now = app.now();
    let flow = match cookies::get(req.headers(), &page::cookie_name(app, OIDC_COOKIE)) {
        Some(t) => app.oidc.take_flow(&t, now).await,
        None => Err(OidcError::NoFlow),
    };
    let checked = match flow {
        Ok(flow) => app
            .oidc
            .finish(p, &flow, &cb, now)
            .await
            .map(|id| (flow, id)),
        Err(e) => Err(e),
    };
    let mut r = match checked {
        Err(e) => failed(app, ctx, p, &e).await,
        Ok((flow, id)) => match flow.link_user {
            Some(_) => link(app, req.headers(), ctx, p, &flow, &id).await,
            None => sign_in(app, req.headers(), ctx, p, &flow, &id).await,
        },
    }?;
    page::set_cookie(
        &mut r,
        cookies::clear(&page::cookie_name(app, OIDC_COOKIE), app.secure_cookies()),
    );
    Ok(r)
}

/// The protocol step failed: an activity row with the reason, and a page that says what to do.
async fn failed(app: &App, ctx: &RequestCtx, p: &IdentityProvider, e: &OidcError) -> PortalResult {
    app.accounts
        .record(
            page::event(app, ActivityKind::LoginFailed, None, ctx)
                .describe(format!("Sign-in with {} failed: {e}", p.name))
                .meta(serde_json::json!({ "provider": p.id })),
        )
        .await;
    if e.is_unavailable() {
        tracing::error!(provider = %p.id, error = %e, "provider sign-in failed on the provider's or our side");
        return page::message(
            app,
            StatusCode::SERVICE_UNAVAILABLE,
            "Provider unavailable",
            &format!(
                "The sign-in with {} could not be completed. Try again shortly.",
                p.name
            ),
            Some(("/_auth/login", "Sign in")),
        );
    }
    tracing::info!(provider = %p.id, error = %e, "provider sign-in refused");
    let why = match e {
        OidcError::NoFlow | OidcError::FlowExpired => {
            "it was not started in this browser, or it took too long"
        }
        OidcError::ProviderError(_) => "the provider did not sign you in",
        _ => "the answer from the provider did not check out",
    };
    page::message(
        app,
        StatusCode::BAD_REQUEST,
        "Sign-in failed",
        &format!(
            "The sign-in with {} could not be completed: {why}. Start again from the sign-in page.",
            p.name
        ),
        Some(("/_auth/login", "Sign in")),
    )
}

async fn sign_in(
    app: &App,
    headers: &http::HeaderMap,
    ctx: &RequestCtx,
    p: &IdentityProvider,
    flow: &Flow,
    id: &ExternalIdentity,
) -> PortalResult {
    let (user, how) = match app.accounts.external_sign_in(p, id, &ctx.client()).await {
        Ok(x) => x,
        Err(ExternalRefusal::Account(e)) => return Err(e.into()),
        Err(e) => return refused(app, p, &e),
    };
    let trusted_mfa = p.trust_provider_mfa && id.mfa;
    // Any second factor counts (an authenticator app or a passkey), as after a password.
    if app.accounts.has_second_factor(&user).await? && !trusted_mfa {
        // The provider only opens Gatehouse's own code step, as a password would.
        let token = app
            .portal
            .pending
            .start_with(
                user.id,
                false,
                flow.next.clone(),
                Some(crate::session::pending::ProviderSignIn {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    subject: id.subject.clone(),
                }),
                app.now(),
            )
            .await?;
        return Ok(to_code_step(app, &token));
    }
    let with = if trusted_mfa {
        super::login::SignedInWith::ProviderWithMfa
    } else {
        super::login::SignedInWith::Provider
    };
    let (mut r, session) = start_session(app, headers, &user, ctx, false, with, &flow.next).await?;
    let how = match how {
        ExternalMatch::Linked => "linked account",
        ExternalMatch::LinkedByEmail => "linked now by verified address",
        ExternalMatch::Created => "account created",
    };
    app.accounts
        .record(
            page::event(app, ActivityKind::Login, Some(user.id), ctx)
                .describe(format!("Signed in with {} ({how})", p.name))
                .meta(serde_json::json!({
                    "provider": p.id,
                    "subject": id.subject,
                    "provider_mfa": id.mfa,
                    "twofa_skipped": trusted_mfa && user.twofa_enabled,
                })),
        )
        .await;
    enrol_first(&mut r, &session, &flow.next);
    Ok(r)
}

fn refused(app: &App, p: &IdentityProvider, e: &ExternalRefusal) -> PortalResult {
    let text = match e {
        ExternalRefusal::NoAccount => format!(
            "There is no account here for the address {} gave, and new accounts are not created \
             through it. Ask an administrator for an account, or sign in with your password.",
            p.name
        ),
        ExternalRefusal::Unverified => format!(
            "{} did not confirm that your email address is verified, so it cannot be matched to \
             an account here. Verify the address with {} first.",
            p.name, p.name
        ),
        ExternalRefusal::UnconfirmedHere => {
            "The account here with your address has not confirmed it yet. Sign in with its \
             password, confirm the address, then link the provider from your account page."
                .to_string()
        }
        ExternalRefusal::DomainNotAllowed => format!(
            "Sign-in with {} is open only to addresses of certain domains, and yours is not one of \
             them.",
            p.name
        ),
        ExternalRefusal::CannotSignIn => {
            "This account cannot sign in right now. If you think that is wrong, ask an administrator."
                .to_string()
        }
        other => other.to_string(),
    };
    page::message(
        app,
        StatusCode::FORBIDDEN,
        "Sign-in refused",
        &text,
        Some(("/_auth/login", "Sign in")),
    )
}

/// The callback of a link flow: the provider account joins the session's user.
async fn link(
    app: &App,
    headers: &http::HeaderMap,
    ctx: &RequestCtx,
    p: &IdentityProvider,
    flow: &Flow,
    id: &ExternalIdentity,
) -> PortalResult {
    let session = page::session(app, headers).await;
    let user = match (session, flow.link_user) {
        (Some(s), Some(u)) if s.identity.user_id == u => u,
        _ => {
            return page::message(
                app,
                StatusCode::BAD_REQUEST,
                "Sign in again",
                "The account that asked for this link is no longer signed in here.",
                Some(("/_auth/login", "Sign in")),
            );
        }
    };
    match app.accounts.link_external(p, id, user, &ctx.client()).await {
        Ok(()) => Ok(respond::redirect(
            StatusCode::SEE_OTHER,
            &format!("{ACCOUNT}?done=linked"),
        )),
        Err(ExternalRefusal::Account(e)) => Err(e.into()),
        Err(e) => page::message(
            app,
            StatusCode::CONFLICT,
            "Not linked",
            &format!("{} was not linked: {e}.", p.name),
            Some((ACCOUNT, "Back to your account")),
        ),
    }
}

/// `POST /_auth/account/identities/link` (field `provider`).
pub async fn start_link(app: &App, req: Request<Incoming>) -> PortalResult {
    let (_, s, form, _csrf) = page::signed_in_form(app, req, ACCOUNT).await?;
    let p = form
        .get("provider")
        .and_then(|id| app.settings.identity_provider(id))
        .ok_or(PortalError::BadRequest("unknown provider"))?;
    begin(app, p, ACCOUNT.to_string(), Some(s.identity.user_id)).await
}

/// `POST /_auth/account/identities/unlink` (field `provider`).
pub async fn unlink(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> PortalResult {
    let (_, s, form, _csrf) = page::signed_in_form(app, req, ACCOUNT).await?;
    let provider = form.get("provider").unwrap_or("");
    match app
        .accounts
        .unlink_external(
            s.identity.user_id,
            provider,
            &app.settings.identity_providers,
            &ctx.client(),
        )
        .await
    {
        Ok(()) => Ok(respond::redirect(
            StatusCode::SEE_OTHER,
            &format!("{ACCOUNT}?done=unlinked"),
        )),
        Err(ExternalRefusal::Account(e)) => Err(e.into()),
        Err(e) => page::message(
            app,
            StatusCode::CONFLICT,
            "Not unlinked",
            &format!("The provider was not unlinked: {e}."),
            Some((ACCOUNT, "Back to your account")),
        ),
    }
}

/// The account page's list: every configured provider, linked or not.
pub async fn account_providers(
    app: &App,
    user: crate::store::UserId,
) -> Result<Vec<minijinja::Value>, crate::accounts::AccountError> {
    if app.settings.identity_providers.is_empty() {
        return Ok(Vec::new());
    }
    let links = app.accounts.identities(user).await?;
    Ok(app
        .settings
        .identity_providers
        .iter()
        .map(|p| {
            let link = links.iter().find(|l| l.provider == p.id);
            minijinja::context! {
                id => p.id.clone(),
                name => p.name.clone(),
                linked => link.is_some(),
                email => link.and_then(|l| l.email.clone()),
                linked_at => link.map(|l| l.linked_at.to_string()),
            }
        })
        .collect())
}

/// The login page's buttons, each carrying `next`.
pub fn login_buttons(app: &App, next: &str) -> Vec<minijinja::Value> {
    let next = percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC);
    app.settings
        .identity_providers
        .iter()
        .map(|p| {
            minijinja::context! {
                id => p.id.clone(),
                name => p.name.clone(),
                href => format!("/_auth/oidc/{}/start?next={next}", p.id),
            }
        })
        .collect()
}
