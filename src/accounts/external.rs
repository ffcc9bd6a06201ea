//! Which Gatehouse account an external provider's user is.
//!
//! 1. An existing link (provider, subject) wins.
//! 2. Else, when the provider says the address is verified and it is a Gatehouse account's
//!    confirmed address, that account is linked (an unconfirmed one is refused: it may have
//!    been registered by someone else, waiting for the owner to come by the provider).
//! 3. Else, with `create_users = true` and a verified address, an account is made (free tier,
//!    3 credits, verified, no password) and linked.
//! 4. Else the sign-in is refused.
//!
//! `allowed_email_domains` applies to every sign-in through the provider. Deactivated, deleted
//! and locked accounts are refused like at the password form. Every outcome writes an activity
//! row naming the provider and subject (never a token).

use crate::audit::ActivityKind;
use crate::config::IdentityProvider;
use crate::oidc::ExternalIdentity;
use crate::store::{IdentityRow, UserId, UserRow};

use super::{AccountError, Accounts, ClientInfo, NewAccount};

/// Why a provider's user may not sign in.
#[derive(Debug, thiserror::Error)]
pub enum ExternalRefusal {
    #[error("no account matches and this provider does not create accounts")]
    NoAccount,
    #[error("the provider did not give a verified address")]
    Unverified,
    #[error("the matching account has not confirmed its address")]
    UnconfirmedHere,
    #[error("the address's domain is not allowed for this provider")]
    DomainNotAllowed,
    #[error("the account is deactivated, deleted or locked")]
    CannotSignIn,
    #[error("this provider account is linked to another Gatehouse account")]
    LinkedElsewhere,
    #[error("the account already has a link with this provider")]
    AlreadyLinked,
    #[error("unlinking would leave no way to sign in: set a password first")]
    LastWayIn,
    #[error("no link with this provider")]
    NotLinked,
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl From<crate::store::StoreError> for ExternalRefusal {
    fn from(e: crate::store::StoreError) -> Self {
        ExternalRefusal::Account(e.into())
    }
}

/// How the account was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternalMatch {
    Linked,
    LinkedByEmail,
    Created,
}

impl Accounts {
    /// The account for a verified external identity (see the module docs), with sign-in
    /// recorded on it.
    pub async fn external_sign_in(
        &self,
        p: &IdentityProvider,
        id: &ExternalIdentity,
        client: &ClientInfo,
    ) -> Result<(UserRow, ExternalMatch), ExternalRefusal> {
        let outcome = self.external_account(p, id, client).await;
        let (user, how) = match outcome {
            Ok(x) => x,
            Err(e) => {
                let user = match &e {
                    ExternalRefusal::CannotSignIn => self
                        .store()
                        .identity_by_subject(&p.id, &id.subject)
                        .await
                        .ok()
                        .flatten()
                        .map(|l| l.user_id),
                    _ => None,
                };
                self.record(
                    self.client_event(ActivityKind::LoginFailed, user, client)
                        .describe(format!("Sign-in with {} refused: {e}", p.name))
                        .meta(serde_json::json!({ "provider": p.id, "subject": id.subject })),
                )
                .await;
                return Err(e);
            }
        };
        let now = self.now();
        self.store()
            .record_login_success(user.id, now, client.ip.as_deref(), None)
            .await?;
        self.store().touch_identity(&p.id, &id.subject, now).await?;
        self.map_roles(p, id, user.id).await?;
        let user = self.get(user.id).await?.ok_or(AccountError::NotFound)?;
        Ok((user, how))
    }

    async fn external_account(
        &self,
        p: &IdentityProvider,
        id: &ExternalIdentity,
        client: &ClientInfo,
    ) -> Result<(UserRow, ExternalMatch), ExternalRefusal> {
        let email = domain_check(p, id)?;
        let store = self.store();
        if let Some(link) = store.identity_by_subject(&p.id, &id.subject).await? {
            let user = self
                .get(link.user_id)
                .await?
                .ok_or(ExternalRefusal::NoAccount)?;
            self.usable(&user)?;
            return Ok((user, ExternalMatch::Linked));
        }
        let email = email.ok_or(ExternalRefusal::Unverified)?;
        if let Some(user) = store.user_by_email(&email).await? {
            self.usable(&user)?;
            // Someone could have registered the address here before its owner came by the
            // provider; only an address confirmed here too proves it is the same person.
            if !user.is_verified {
                return Err(ExternalRefusal::UnconfirmedHere);
            }
            self.link(p, id, user.id, client).await?;
            return Ok((user, ExternalMatch::LinkedByEmail));
        }
        if !p.create_users {
            return Err(ExternalRefusal::NoAccount);
        }
        let user = self.create_external(p, id, &email).await?;
        self.link(p, id, user.id, client).await?;
        Ok((user, ExternalMatch::Created))
    }

    fn usable(&self, user: &UserRow) -> Result<(), ExternalRefusal> {
        if !user.is_active || user.is_deleted || user.is_locked(self.now()) {
            return Err(ExternalRefusal::CannotSignIn);
        }
        Ok(())
    }

    /// Links a provider account to a signed-in user (the account page's "link").
    pub async fn link_external(
        &self,
        p: &IdentityProvider,
        id: &ExternalIdentity,
        user: UserId,
        client: &ClientInfo,
    ) -> Result<(), ExternalRefusal> {
        if let Some(link) = self.store().identity_by_subject(&p.id, &id.subject).await? {
            return if link.user_id == user {
                Ok(())
            } else {
                Err(ExternalRefusal::LinkedElsewhere)
            };
        }
        self.link(p, id, user, client).await
    }

    async fn link(
        &self,
        p: &IdentityProvider,
        id: &ExternalIdentity,
        user: UserId,
        client: &ClientInfo,
    ) -> Result<(), ExternalRefusal> {
        let email = id.email.as_deref();
        if !self
            .store()
            .link_identity(user, &p.id, &id.subject, email, self.now())
            .await?
        {
            // Lost a race for this subject, or the user has another account of this provider.
            return match self.store().identity_by_subject(&p.id, &id.subject).await? {
                Some(l) if l.user_id != user => Err(ExternalRefusal::LinkedElsewhere),
                Some(_) => Ok(()),
                None => Err(ExternalRefusal::AlreadyLinked),
            };
        }
        self.record(
            self.client_event(ActivityKind::IdentityLinked, Some(user), client)
                .describe(format!("Linked to {}", p.name))
                .meta(serde_json::json!({ "provider": p.id, "subject": id.subject })),
        )
        .await;
        Ok(())
    }

    /// Removes a link, unless the account would be left with no way to sign in: no password
    /// and no other link with a configured provider.
    pub async fn unlink_external(
        &self,
        user: UserId,
        provider: &str,
        configured: &[IdentityProvider],
        client: &ClientInfo,
    ) -> Result<(), ExternalRefusal> {
        let row = self.get(user).await?.ok_or(AccountError::NotFound)?;
        let links = self.identities(user).await?;
        let Some(link) = links.iter().find(|l| l.provider == provider) else {
            return Err(ExternalRefusal::NotLinked);
        };
        let other_ways = links
            .iter()
            .filter(|l| l.provider != provider)
            .any(|l| configured.iter().any(|p| p.id == l.provider));
        if row.password_hash.is_none() && !other_ways {
            return Err(ExternalRefusal::LastWayIn);
        }
        if self.store().unlink_identity(user, provider).await? {
            self.record(
                self.client_event(ActivityKind::IdentityUnlinked, Some(user), client)
                    .describe(format!("Unlinked {provider}"))
                    .meta(serde_json::json!({ "provider": provider, "subject": link.subject })),
            )
            .await;
        }
        Ok(())
    }

    pub async fn identities(&self, user: UserId) -> Result<Vec<IdentityRow>, AccountError> {
        Ok(self.store().identities_of(user).await?)
    }

    /// A new account for a provider's user: a username from `preferred_username` or the
    /// address, made unique with a number when taken.
    async fn create_external(
        &self,
        p: &IdentityProvider,
        id: &ExternalIdentity,
        email: &str,
    ) -> Result<UserRow, ExternalRefusal> {
        let local = email.split('@').next().unwrap_or("user");
        let base: String = id
            .preferred_username
            .as_deref()
            .filter(|u| !u.contains('@'))
            .unwrap_or(local)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .take(40)
            .collect();
        let base = if base.is_empty() {
            "user".to_string()
        } else {
            base
        };
        for n in 0..20 {
            let username = if n == 0 {
                base.clone()
            } else {
                format!("{base}-{}", n + 1)
            };
            let mut a = NewAccount::new(username, email, None);
            a.first_name = id.given_name.clone();
            a.last_name = id.family_name.clone();
            a.is_verified = true;
            match self.create_user(a, None).await {
                Ok(u) => {
                    tracing::info!(provider = %p.id, user = %u.username, "account created at first provider sign-in");
                    return Ok(u);
                }
                Err(AccountError::Duplicate { field: "username" }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AccountError::Duplicate { field: "username" }.into())
    }

    /// Grants the Gatehouse roles `role_map` gives for the values of the provider's roles
    /// claim (roles already in force are left as they are).
    async fn map_roles(
        &self,
        p: &IdentityProvider,
        id: &ExternalIdentity,
        user: UserId,
    ) -> Result<(), AccountError> {
        if p.role_map.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let held = self.roles(user).await?;
        for (from, roles) in &p.role_map {
            if !id.groups.iter().any(|g| g == from) {
                continue;
            }
            for role in roles {
                if !held.iter().any(|r| &r.role_name == role && r.in_force(now)) {
                    self.grant_role(user, role, None, None).await?;
                }
            }
        }
        Ok(())
    }
}

/// The verified address when there is one, after the provider's domain rule.
fn domain_check(
    p: &IdentityProvider,
    id: &ExternalIdentity,
) -> Result<Option<String>, ExternalRefusal> {
    let email = id
        .email
        .as_deref()
        .filter(|_| id.email_verified)
        .map(|e| e.trim().to_string());
    if p.allowed_email_domains.is_empty() {
        return Ok(email);
    }
    let Some(e) = &email else {
        return Err(ExternalRefusal::Unverified);
    };
    let domain = e.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
    if p.allowed_email_domains.contains(&domain) {
        Ok(email)
    } else {
        Err(ExternalRefusal::DomainNotAllowed)
    }
}
