//! Self-service: what a signed-in user may change on their own account, and open sign-up.

use crate::auth::password::Verified;
use crate::config::Secret;
use crate::store::{Tier, UserId, UserPatch, UserRow};

use super::{AccountError, Accounts, NewAccount};

/// The profile form. Empty text clears a field.
#[derive(Debug, Clone, Default)]
pub struct ProfileInput {
    pub first_name: String,
    pub last_name: String,
    pub phone: String,
    pub company_name: String,
    pub email_notifications: bool,
    pub sms_notifications: bool,
    pub timezone: String,
    pub language: String,
}

pub(super) fn bounded(
    field: &'static str,
    v: &str,
    max: usize,
) -> Result<Option<String>, AccountError> {
    let v = v.trim();
    if v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(AccountError::Invalid {
            field,
            message: format!("must be at most {max} characters, without control characters"),
        });
    }
    Ok((!v.is_empty()).then(|| v.to_string()))
}

pub(super) fn phone(v: &str) -> Result<Option<String>, AccountError> {
    let v = bounded("phone", v, 32)?;
    if let Some(p) = &v
        && !p
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'))
    {
        return Err(AccountError::Invalid {
            field: "phone",
            message: "may contain only digits, spaces and + - ( ) .".into(),
        });
    }
    Ok(v)
}

pub(super) fn language(v: &str) -> Result<String, AccountError> {
    let v = v.trim();
    let ok = (2..=16).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && v.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if ok {
        Ok(v.to_string())
    } else {
        Err(AccountError::Invalid {
            field: "language",
            message: format!("{v:?} is not a language code like \"en\" or \"de-AT\""),
        })
    }
}

impl Accounts {
    /// Whether `password` is the account's current password.
    pub async fn password_matches(
        &self,
        user: &UserRow,
        password: &Secret<String>,
    ) -> Result<bool, AccountError> {
        Ok(matches!(
            self.hasher()
                .verify(user.password_hash.as_deref(), password)
                .await?,
            Verified::Match { .. }
        ))
    }

    /// Applies the profile form; only fields that differ are written (and named in the
    /// activity row).
    pub async fn update_profile(
        &self,
        id: UserId,
        input: &ProfileInput,
    ) -> Result<UserRow, AccountError> {
        let cur = self.get(id).await?.ok_or(AccountError::NotFound)?;
        let first = bounded("first_name", &input.first_name, 100)?;
        let last = bounded("last_name", &input.last_name, 100)?;
        let phone = phone(&input.phone)?;
        let company = bounded("company_name", &input.company_name, 200)?;
        let tz = input.timezone.trim().to_string();
        let lang = language(&input.language)?;
        let mut p = UserPatch::default();
        if first != cur.first_name {
            p.first_name = Some(first);
        }
        if last != cur.last_name {
            p.last_name = Some(last);
        }
        if phone != cur.phone {
            p.phone = Some(phone);
        }
        if company != cur.company_name {
            p.company_name = Some(company);
        }
        if input.email_notifications != cur.email_notifications {
            p.email_notifications = Some(input.email_notifications);
        }
        if input.sms_notifications != cur.sms_notifications {
            p.sms_notifications = Some(input.sms_notifications);
        }
        if tz != cur.timezone {
            p.timezone = Some(tz);
        }
        if lang != cur.language {
            p.language = Some(lang);
        }
        self.update(id, p, Some(id)).await
    }

    /// Open sign-up: a free-tier, unverified account (with the free tier's credits).
    pub async fn sign_up(
        &self,
        username: &str,
        email: &str,
        password: &Secret<String>,
    ) -> Result<UserRow, AccountError> {
        let mut a = NewAccount::new(username, email, Some(password.clone()));
        a.tier = Tier::Free;
        a.is_verified = false;
        self.create_user(a, None).await
    }
}
