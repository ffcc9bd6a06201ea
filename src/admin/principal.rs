//! Who is calling, and what they may do.
//!
//! Every admin request first becomes a [`Principal`] (a browser session or an API token).
//! The API router and the console build an [`AdminPrincipal`] once per request, before any
//! handler runs, and admin-only handlers take it by type: only [`Principal::admin`] constructs
//! one, so a handler's signature states that the role check (and, when
//! `security.require_2fa_for_admins` is set, the two-factor check) ran. Endpoints that also
//! serve a user on their own account take a [`Scope`] from [`Principal::scope`], which goes
//! through the same check. Roles are the user's effective roles at `now` (the `is_admin` /
//! `is_superuser` flags imply `admin`); anything that cannot be looked up denies.

use http::{HeaderMap, Method, header};

use super::error::ApiError;
use crate::app::App;
use crate::session::{Identity, Session, TokenPrincipal};
use crate::store::{SessionId, TokenId, Ts, UserId};
use crate::web::{RequestCtx, cookies, csrf};

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Session { id: SessionId, twofa_verified: bool },
    Token(TokenId),
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    user_id: UserId,
    username: String,
    roles: Vec<String>,
    via: Via,
    /// An admin whose session has not passed two-factor sign-in while
    /// `security.require_2fa_for_admins` is set: the session service withholds the role.
    admin_pending_2fa: bool,
}

/// A caller whose effective roles include `admin` (and, when `security.require_2fa_for_admins`
/// is set, whose browser session passed two-factor sign-in). Only [`Principal::admin`] makes one.
#[derive(Debug, Clone)]
pub struct AdminPrincipal {
    user_id: UserId,
    username: String,
    superuser: bool,
    /// The browser session the request came with (none for an API token).
    session: Option<SessionId>,
}

/// What a caller may do to one user's account: as that user, or as an admin.
#[derive(Debug, Clone)]
pub enum Scope {
    Own,
    Admin(AdminPrincipal),
}

impl Scope {
    /// Who acts on `target`'s account: the admin, or the user themself.
    pub fn actor(&self, target: UserId) -> UserId {
        match self {
            Scope::Own => target,
            Scope::Admin(a) => a.user_id(),
        }
    }
}

impl Principal {
    fn new(identity: &Identity, now: Ts, via: Via) -> Principal {
        Principal {
            user_id: identity.user_id,
            username: identity.username.clone(),
            roles: identity
                .roles_at(now)
                .into_iter()
                .map(str::to_string)
                .collect(),
            via,
            admin_pending_2fa: identity.admin_suspended,
        }
    }

    pub fn from_session(s: &Session, now: Ts) -> Principal {
        Principal::new(
            &s.identity,
            now,
            Via::Session {
                id: s.id,
                twofa_verified: s.twofa_verified,
            },
        )
    }

    pub fn from_token(t: &TokenPrincipal, now: Ts) -> Principal {
        Principal::new(&t.identity, now, Via::Token(t.token_id))
    }

    pub fn user_id(&self) -> UserId {
        self.user_id
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    pub fn via(&self) -> Via {
        self.via
    }

    pub fn session_id(&self) -> Option<SessionId> {
        match self.via {
            Via::Session { id, .. } => Some(id),
            Via::Token(_) => None,
        }
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// The role check: the only constructor of [`AdminPrincipal`], and the one place that
    /// applies `security.require_2fa_for_admins`.
    pub fn admin(&self, app: &App) -> Result<AdminPrincipal, ApiError> {
        self.admin_with(app.settings.security.require_2fa_for_admins)
    }

    fn admin_with(&self, require_2fa: bool) -> Result<AdminPrincipal, ApiError> {
        const NEED_2FA: &str = "administrators must sign in with two-factor authentication first";
        if self.admin_pending_2fa {
            return Err(ApiError::forbidden(NEED_2FA));
        }
        if !self.has_role("admin") {
            return Err(ApiError::forbidden("this needs the admin role"));
        }
        if let Via::Session {
            twofa_verified: false,
            ..
        } = self.via
            && require_2fa
        {
            return Err(ApiError::forbidden(NEED_2FA));
        }
        Ok(AdminPrincipal {
            user_id: self.user_id,
            username: self.username.clone(),
            superuser: self.has_role("superuser"),
            session: self.session_id(),
        })
    }

    /// Access to `target`'s account: admins act as admins (on anyone, themselves included);
    /// everyone else only on their own account.
    pub fn scope(&self, app: &App, target: UserId) -> Result<Scope, ApiError> {
        match self.admin(app) {
            Ok(a) => Ok(Scope::Admin(a)),
            Err(_) if target == self.user_id => Ok(Scope::Own),
            Err(ApiError::Forbidden(m)) if self.has_role("admin") => Err(ApiError::Forbidden(m)),
            Err(_) => Err(ApiError::forbidden(
                "you may only see and change your own account",
            )),
        }
    }
}

impl AdminPrincipal {
    pub fn user_id(&self) -> UserId {
        self.user_id
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    pub fn is_superuser(&self) -> bool {
        self.superuser
    }

    /// The browser session the request came with (none for an API token).
    pub fn session_id(&self) -> Option<SessionId> {
        self.session
    }
}

/// Resolves the caller of an API request: `Authorization: Bearer` first (no fallback when it
/// is present but wrong), else the browser session cookie, whose writes need the CSRF header.
pub async fn authenticate(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    ctx: &RequestCtx,
) -> Result<Principal, ApiError> {
    let now = app.now();
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        if app.tokens.too_many_failures(ctx.client_ip).await {
            return Err(ApiError::TooManyRequests);
        }
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        let found = match token {
            Some(t) => app.tokens.authenticate(t).await?,
            None => None,
        };
        return match found {
            Some(p) => Ok(Principal::from_token(&p, now)),
            None => {
                app.tokens.note_failure(ctx.client_ip).await;
                Err(ApiError::Unauthenticated)
            }
        };
    }
    let session = session_of(app, headers)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let submitted = headers.get(csrf::HEADER).and_then(|v| v.to_str().ok());
        if !csrf::verify(
            &app.keys,
            headers,
            app.secure_cookies(),
            &app.session_cookie,
            submitted,
        ) {
            return Err(ApiError::Csrf);
        }
    }
    Ok(Principal::from_session(&session, now))
}

/// The live browser session behind the request's cookie, if any.
pub async fn session_of(
    app: &App,
    headers: &HeaderMap,
) -> Result<Option<std::sync::Arc<Session>>, ApiError> {
    match cookies::get(headers, &app.session_cookie_name()) {
        Some(token) => Ok(app.sessions.lookup(&token).await?),
        None => Ok(None),
    }
}
