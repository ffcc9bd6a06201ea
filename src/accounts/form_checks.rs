//! Every problem with a form at once. The services that apply a form stop at its first
//! problem (they are the rule, and check again); these gather each field's problem, in the
//! form's order, so a page can list them all together. Each problem is the error the service
//! would have returned for that field.

use crate::config::Secret;
use crate::store::UserId;

use super::profile::{bounded, language, phone};
use super::validate::{self, validate_email};
use super::{AccountError, Accounts, ProfileInput};

/// A form's problems, one a field.
pub type Problems = Vec<AccountError>;

fn keep<T>(problems: &mut Problems, r: Result<T, AccountError>) {
    if let Err(e) = r {
        problems.push(e);
    }
}

fn required(field: &'static str, value: &str, message: &str) -> Result<(), AccountError> {
    if value.is_empty() {
        Err(AccountError::Invalid {
            field,
            message: message.into(),
        })
    } else {
        Ok(())
    }
}

impl Accounts {
    /// The sign-up form: the username's rules, the address, the password policy. (Whether a
    /// name or address is taken is the sign-up's to answer.)
    pub fn sign_up_problems(
        &self,
        username: &str,
        email: &str,
        password: &Secret<String>,
    ) -> Problems {
        let mut p = Problems::new();
        keep(&mut p, self.inner.security.username_rules.check(username));
        keep(&mut p, validate_email(email));
        keep(&mut p, self.check_password(password, &[username, email]));
        p
    }

    /// A new password for the account behind a reset token; `None` when the token is no good.
    pub async fn reset_problems(
        &self,
        token: &str,
        password: &Secret<String>,
    ) -> Result<Option<Problems>, AccountError> {
        let Some(user) = self.reset_token_user(token).await? else {
            return Ok(None);
        };
        let mut p = Problems::new();
        keep(
            &mut p,
            self.check_password(password, &[&user.username, &user.email]),
        );
        Ok(Some(p))
    }

    /// Changing one's own password: the current one (given and right), the new one's policy.
    /// The current password is checked only when given.
    pub async fn password_change_problems(
        &self,
        id: UserId,
        current: &Secret<String>,
        new: &Secret<String>,
    ) -> Result<Problems, AccountError> {
        let user = self.get(id).await?.ok_or(AccountError::NotFound)?;
        let mut p = Problems::new();
        if current.expose().is_empty() {
            keep(
                &mut p,
                required("current_password", "", "enter your current password"),
            );
        } else if !self.password_matches(&user, current).await? {
            p.push(AccountError::Invalid {
                field: "current_password",
                message: "the current password is not right".into(),
            });
        }
        keep(
            &mut p,
            self.check_password(new, &[&user.username, &user.email]),
        );
        Ok(p)
    }

    /// Changing one's address: the new address (valid, not the current one), the password
    /// (given and right; checked only when given).
    pub async fn email_change_problems(
        &self,
        id: UserId,
        new_email: &str,
        password: &Secret<String>,
    ) -> Result<Problems, AccountError> {
        let user = self.get(id).await?.ok_or(AccountError::NotFound)?;
        let mut p = Problems::new();
        match validate_email(new_email) {
            Ok(e) if e.eq_ignore_ascii_case(&user.email) => p.push(AccountError::Invalid {
                field: "email",
                message: "that is already your address".into(),
            }),
            r => keep(&mut p, r),
        }
        if password.expose().is_empty() {
            keep(
                &mut p,
                required("current_password", "", "enter your password"),
            );
        } else if !self.password_matches(&user, password).await? {
            p.push(AccountError::Invalid {
                field: "current_password",
                message: "the password is not right".into(),
            });
        }
        Ok(p)
    }

    /// The profile form, field by field; the time zone only when it changes (a zone stored
    /// before zones were checked does not block other edits).
    pub async fn profile_problems(
        &self,
        id: UserId,
        input: &ProfileInput,
    ) -> Result<Problems, AccountError> {
        let user = self.get(id).await?.ok_or(AccountError::NotFound)?;
        let mut p = Problems::new();
        keep(&mut p, bounded("first_name", &input.first_name, 100));
        keep(&mut p, bounded("last_name", &input.last_name, 100));
        keep(&mut p, phone(&input.phone));
        keep(&mut p, bounded("company_name", &input.company_name, 200));
        let tz = input.timezone.trim();
        if tz != user.timezone {
            keep(&mut p, validate::timezone(tz));
        }
        keep(&mut p, language(&input.language));
        Ok(p)
    }
}
