//! Roles, sessions, credits, passkeys and activity of an account.

use super::{AdminOps, guard_target};
use crate::admin::error::ApiError;
use crate::admin::principal::{AdminPrincipal, Principal, Scope};
use crate::admin::views::{ActivityPage, ActivityView};
use crate::audit::ActivityKind;
use crate::store::{
    ActivityFilter, PasskeyRow, RoleRow, SessionId, SessionRow, Ts, UserId, UserRow,
};

/// Roles that carry admin power; only a superuser grants or revokes them.
const PRIVILEGED_ROLES: [&str; 2] = ["admin", "superuser"];

fn guard_role(admin: &AdminPrincipal, role: &str) -> Result<(), ApiError> {
    // Judged on the normalised name: `Admin` or ` ADMIN ` is the admin role.
    let role = crate::accounts::normalize_role(role);
    if PRIVILEGED_ROLES.contains(&role.as_str()) && !admin.is_superuser() {
        return Err(ApiError::forbidden(format!(
            "only a superuser may grant or revoke the {role} role"
        )));
    }
    Ok(())
}

fn no_such_session() -> ApiError {
    ApiError::NotFound("no such session".into())
}

impl AdminOps<'_> {
    /// A user's role rows and the roles in force now.
    pub async fn roles(&self, user: &UserRow) -> Result<(Vec<RoleRow>, Vec<String>), ApiError> {
        let rows = self.app.accounts.roles(user.id).await?;
        let effective = crate::accounts::effective_roles(user, &rows, self.app.now());
        Ok((rows, effective))
    }

    pub async fn grant_role(
        &self,
        admin: &AdminPrincipal,
        id: UserId,
        role: &str,
        expires_at: Option<Ts>,
    ) -> Result<RoleRow, ApiError> {
        self.target(admin, id).await?;
        guard_role(admin, role)?;
        let row = self
            .app
            .accounts
            .grant_role(id, role, expires_at, Some(admin.user_id()))
            .await?;
        self.refresh(id);
        Ok(row)
    }

    pub async fn revoke_role(
        &self,
        admin: &AdminPrincipal,
        id: UserId,
        role: &str,
    ) -> Result<(), ApiError> {
        self.target(admin, id).await?;
        guard_role(admin, role)?;
        let role = &crate::accounts::normalize_role(role);
        let held = self
            .app
            .accounts
            .roles(id)
            .await?
            .iter()
            .any(|r| r.role_name == *role && r.is_active);
        if !held {
            return Err(ApiError::NotFound(format!(
                "the user does not hold the role {role:?}"
            )));
        }
        self.app
            .accounts
            .revoke_role(id, role, Some(admin.user_id()))
            .await?;
        self.refresh(id);
        Ok(())
    }

    /// A user's live sessions, newest first.
    pub async fn sessions(&self, id: UserId) -> Result<Vec<SessionRow>, ApiError> {
        Ok(self
            .app
            .sessions
            .sessions_of_user(id, self.app.now())
            .await?)
    }

    /// Ends one session: its owner, or an admin. Someone else's session is "not found", so
    /// its existence is not revealed.
    pub async fn end_session(&self, caller: &Principal, sid: SessionId) -> Result<(), ApiError> {
        let owner = self
            .app
            .sessions
            .owner_of(sid)
            .await?
            .ok_or_else(no_such_session)?;
        let scope = caller
            .scope(self.app, owner)
            .map_err(|_| no_such_session())?;
        self.end_owned_session(&scope, owner, sid).await
    }

    /// Ends session `sid` of `user` (the console's user page): another user's is not found.
    pub async fn end_session_of(
        &self,
        admin: &AdminPrincipal,
        user: UserId,
        sid: SessionId,
    ) -> Result<(), ApiError> {
        if self.app.sessions.owner_of(sid).await? != Some(user) {
            return Err(no_such_session());
        }
        self.end_owned_session(&Scope::Admin(admin.clone()), user, sid)
            .await
    }

    async fn end_owned_session(
        &self,
        scope: &Scope,
        owner: UserId,
        sid: SessionId,
    ) -> Result<(), ApiError> {
        if let Scope::Admin(a) = scope {
            guard_target(a, &self.load_user(owner).await?)?;
        }
        if !self.app.sessions.revoke_owned(owner, sid).await? {
            return Err(ApiError::conflict("the session has already ended"));
        }
        self.record_session_end(
            owner,
            scope.actor(owner),
            format!("Session {sid} ended"),
            None,
        )
        .await;
        Ok(())
    }

    /// Signs a user out everywhere; returns how many sessions ended. The reason, when given,
    /// goes into the activity row.
    pub async fn end_all_sessions(
        &self,
        scope: &Scope,
        id: UserId,
        reason: Option<&str>,
    ) -> Result<usize, ApiError> {
        let target = self.load_user(id).await?;
        if let Scope::Admin(a) = scope {
            guard_target(a, &target)?;
        }
        let n = self.app.sessions.end_all_for_user(id, None).await?;
        self.record_session_end(
            id,
            scope.actor(id),
            format!("Signed out everywhere ({n} sessions)"),
            reason,
        )
        .await;
        Ok(n)
    }

    async fn record_session_end(
        &self,
        owner: UserId,
        actor: UserId,
        what: String,
        reason: Option<&str>,
    ) {
        let accounts = &self.app.accounts;
        accounts
            .record(
                accounts
                    .event(ActivityKind::SessionRevoked, Some(owner))
                    .describe(what)
                    .meta(crate::accounts::actor_meta(Some(actor), reason)),
            )
            .await;
    }

    pub async fn adjust_credits(
        &self,
        admin: &AdminPrincipal,
        id: UserId,
        delta: i64,
        reason: &str,
    ) -> Result<i64, ApiError> {
        self.target(admin, id).await?;
        let balance = self
            .app
            .accounts
            .adjust_credits(id, delta, reason, Some(admin.user_id()))
            .await?;
        self.refresh(id);
        Ok(balance)
    }

    /// A user's passkeys, oldest first.
    pub async fn passkeys(&self, id: UserId) -> Result<Vec<PasskeyRow>, ApiError> {
        Ok(self.app.accounts.passkeys(id).await?)
    }

    /// Removes one passkey of a user (a superuser's only by a superuser) and ends the user's
    /// sessions: one signed in with a lost key must not outlive its removal.
    pub async fn remove_passkey(
        &self,
        admin: &AdminPrincipal,
        id: UserId,
        passkey: i64,
    ) -> Result<(), ApiError> {
        self.target(admin, id).await?;
        let client = crate::accounts::ClientInfo::default();
        if !self
            .app
            .accounts
            .remove_passkey(id, passkey, Some(admin.user_id()), &client)
            .await?
        {
            return Err(ApiError::NotFound("no such passkey of this user".into()));
        }
        self.app.sessions.end_all_for_user(id, None).await?;
        self.app.sessions.evict_user(id);
        Ok(())
    }

    /// A page of activity rows, newest first, plus the cursor for the next page.
    pub async fn activity_page(&self, f: &ActivityFilter) -> Result<ActivityPage, ApiError> {
        // One extra row tells whether another page follows.
        let mut probe = f.clone();
        probe.limit = f.limit + 1;
        let mut rows = self.app.accounts.activity(&probe).await?;
        let more = rows.len() as i64 > f.limit;
        rows.truncate(f.limit.max(0) as usize);
        let next_before = if more {
            rows.last().map(|r| r.id)
        } else {
            None
        };
        Ok(ActivityPage {
            activity: rows.into_iter().map(ActivityView::from).collect(),
            next_before,
        })
    }
}
