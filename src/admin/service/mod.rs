//! The admin business rules, apart from HTTP: [`AdminOps`] says who may change what beyond the
//! role check (a plain admin leaves superusers alone; privileged roles and flags need a
//! superuser), calls the account and session services (which write the rows and record the
//! activity), and evicts cached identities so a change is in force on the next request. The
//! JSON API and the console both call it; neither reaches the store.
//!
//! Users and their lifecycle are here; the field rules in [`fields`]; roles, sessions,
//! credits, passkeys and activity in `access`.

mod access;
pub mod fields;
mod overview;

pub use overview::Overview;

use super::error::ApiError;
use super::principal::{AdminPrincipal, Scope};
use super::views::{NewUserBody, UserPatchBody};
use crate::accounts::{ClientInfo, UserView};
use crate::app::App;
use crate::store::{UserFilter, UserId, UserRow};

/// The admin operations over one application.
#[derive(Debug, Clone, Copy)]
pub struct AdminOps<'a> {
    app: &'a App,
}

/// How the new user will get a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSetup {
    /// The request gave one.
    Given,
    /// A set-password link (a reset token) was mailed to the new user.
    Mailed,
}

impl PasswordSetup {
    pub fn as_str(self) -> &'static str {
        match self {
            PasswordSetup::Given => "not_needed",
            PasswordSetup::Mailed => "sent",
        }
    }
}

/// A plain admin may not act on a superuser's account (beyond reading it).
fn guard_target(admin: &AdminPrincipal, target: &UserRow) -> Result<(), ApiError> {
    if target.is_superuser && !admin.is_superuser() && target.id != admin.user_id() {
        return Err(ApiError::forbidden(
            "only a superuser may change a superuser's account",
        ));
    }
    Ok(())
}

impl<'a> AdminOps<'a> {
    pub fn new(app: &'a App) -> AdminOps<'a> {
        AdminOps { app }
    }

    pub async fn load_user(&self, id: UserId) -> Result<UserRow, ApiError> {
        self.app
            .accounts
            .get(id)
            .await?
            .ok_or_else(ApiError::user_not_found)
    }

    /// The account with this id, username or email.
    pub async fn find_user(&self, key: &str) -> Result<UserRow, ApiError> {
        Ok(self.app.accounts.find(key).await?)
    }

    /// `id`'s account, which `admin` may change.
    async fn target(&self, admin: &AdminPrincipal, id: UserId) -> Result<UserRow, ApiError> {
        let target = self.load_user(id).await?;
        guard_target(admin, &target)?;
        Ok(target)
    }

    /// Drops cached identities of `user` (sessions and API tokens), so the next request sees
    /// the change.
    fn refresh(&self, user: UserId) {
        self.app.sessions.evict_user(user);
        self.app.tokens.evict_user(user);
    }

    pub async fn view(&self, user: &UserRow) -> Result<UserView, ApiError> {
        Ok(self.app.accounts.view(user).await?)
    }

    /// A page of users and the number matching in all; their roles come in one query.
    pub async fn list_users(
        &self,
        _admin: &AdminPrincipal,
        filter: &UserFilter,
    ) -> Result<(Vec<UserView>, i64), ApiError> {
        let (rows, total) = self.app.accounts.list(filter).await?;
        Ok((self.app.accounts.views(&rows).await?, total))
    }

    /// Applies a PATCH body (already typed; `unknown` names the fields it had besides). Every
    /// field must be one the caller may change, or the whole request is refused naming the
    /// offending ones. Returns the account and the names of the fields set.
    pub async fn patch_user(
        &self,
        scope: &Scope,
        target: &UserRow,
        body: UserPatchBody,
        unknown: Vec<String>,
    ) -> Result<(UserRow, Vec<String>), ApiError> {
        if let Scope::Admin(a) = scope {
            guard_target(a, target)?;
        }
        fields::check_patch(scope, target, &body, unknown)?;
        let changed: Vec<String> = body.fields_set().into_iter().map(String::from).collect();
        let patch = fields::patch_from(body)?;
        if changed.is_empty() {
            return Ok((target.clone(), changed));
        }
        let user = self
            .app
            .accounts
            .update(target.id, patch, Some(scope.actor(target.id)))
            .await?;
        self.refresh(user.id);
        Ok((user, changed))
    }

    pub async fn create_user(
        &self,
        admin: &AdminPrincipal,
        body: NewUserBody,
    ) -> Result<(UserRow, PasswordSetup), ApiError> {
        fields::check_new_user(&body, admin.is_superuser())?;
        let account = fields::new_account_from(body)?;
        let given = account.password.is_some();
        let user = self
            .app
            .accounts
            .create_user(account, Some(admin.user_id()))
            .await?;
        if given {
            return Ok((user, PasswordSetup::Given));
        }
        // The account has no password: mail a one-time link to the reset form to choose one.
        let token = self
            .app
            .accounts
            .issue_reset_token(&user, &ClientInfo::default())
            .await?;
        let s = &self.app.settings;
        self.app.mailer.send_later(crate::mail::set_password_link(
            &s.server.public_url,
            &s.portal.product_name,
            &user.email,
            token.expose(),
            &humantime::format_duration(s.security.reset_token_ttl).to_string(),
        ));
        Ok((user, PasswordSetup::Mailed))
    }

    /// Soft-deletes an account (not the caller's own); returns how many sessions ended. The
    /// reason, when given, goes into the activity row.
    pub async fn soft_delete(
        &self,
        admin: &AdminPrincipal,
        id: UserId,
        reason: Option<&str>,
    ) -> Result<usize, ApiError> {
        self.target(admin, id).await?;
        if id == admin.user_id() {
            return Err(ApiError::conflict(
                "you cannot delete your own account here",
            ));
        }
        let ended = self
            .app
            .accounts
            .soft_delete_because(id, Some(admin.user_id()), reason)
            .await?;
        self.app.sessions.evict_token_hashes(&ended).await;
        self.refresh(id);
        Ok(ended.len())
    }

    pub async fn restore(&self, admin: &AdminPrincipal, id: UserId) -> Result<(), ApiError> {
        self.target(admin, id).await?;
        self.app.accounts.restore(id, Some(admin.user_id())).await?;
        self.refresh(id);
        Ok(())
    }

    /// Locks an account until `until` (not the caller's own): sign-in is refused meanwhile.
    pub async fn lock(
        &self,
        admin: &AdminPrincipal,
        id: UserId,
        until: crate::store::Ts,
    ) -> Result<(), ApiError> {
        self.target(admin, id).await?;
        if id == admin.user_id() {
            return Err(ApiError::conflict("you cannot lock your own account"));
        }
        self.app
            .accounts
            .lock(id, until, Some(admin.user_id()))
            .await?;
        self.refresh(id);
        Ok(())
    }

    pub async fn unlock(&self, admin: &AdminPrincipal, id: UserId) -> Result<(), ApiError> {
        self.target(admin, id).await?;
        self.app.accounts.unlock(id, Some(admin.user_id())).await?;
        self.refresh(id);
        Ok(())
    }

    pub async fn reset_twofa(
        &self,
        admin: &AdminPrincipal,
        id: UserId,
        reason: Option<&str>,
    ) -> Result<(), ApiError> {
        self.target(admin, id).await?;
        self.app
            .accounts
            .reset_twofa_because(id, Some(admin.user_id()), reason)
            .await?;
        self.refresh(id);
        Ok(())
    }
}
