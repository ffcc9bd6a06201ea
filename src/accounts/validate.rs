//! Input rules for account fields.

use super::AccountError;

/// Usernames: 1–64 characters of letters, digits, `.`, `_`, `-`; no `@`, so a username can
/// never be mistaken for someone else's email at sign-in.
pub fn validate_username(u: &str) -> Result<String, AccountError> {
    let u = u.trim();
    let bad = |m: &str| AccountError::Invalid {
        field: "username",
        message: m.to_string(),
    };
    if u.is_empty() {
        return Err(bad("must not be empty"));
    }
    if u.chars().count() > 64 {
        return Err(bad("must be at most 64 characters"));
    }
    if !u
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(bad("may contain only letters, digits, '.', '_' and '-'"));
    }
    Ok(u.to_string())
}

/// A pragmatic address check (one `@`, a dotted domain, no spaces or control characters); the
/// real proof is the verification mail.
pub fn validate_email(e: &str) -> Result<String, AccountError> {
    let e = e.trim();
    let bad = || AccountError::Invalid {
        field: "email",
        message: format!("{e:?} is not a valid email address"),
    };
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = e.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty() || local.contains('@') || local.len() > 64 {
        return Err(bad());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels.iter().any(|l| {
            l.is_empty()
                || l.starts_with('-')
                || l.ends_with('-')
                || !l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
    {
        return Err(bad());
    }
    Ok(e.to_string())
}

/// The one spelling of a role name: trimmed and lowercase, so `Admin`, ` ADMIN ` and `admin`
/// are the same role wherever a name comes in (API, console, CLI, route config).
pub fn normalize_role(r: &str) -> String {
    r.trim().to_lowercase()
}

pub(super) fn role_name(r: &str) -> Result<String, AccountError> {
    let r = normalize_role(r);
    let r = r.as_str();
    if r.is_empty()
        || r.len() > 64
        || !r
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    {
        return Err(AccountError::Invalid {
            field: "role",
            message: format!(
                "{r:?} is not a role name (letters, digits, '_', '-', '.', ':'; at most 64)"
            ),
        });
    }
    Ok(r.to_string())
}

/// A time zone name shaped like `Europe/Berlin` or `UTC`; checked by shape, not against a
/// zone database.
pub fn is_timezone_name(tz: &str) -> bool {
    !tz.is_empty()
        && tz.len() <= 64
        && tz
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'))
}

pub(super) fn timezone(tz: &str) -> Result<(), AccountError> {
    if is_timezone_name(tz) {
        Ok(())
    } else {
        Err(AccountError::Invalid {
            field: "timezone",
            message: format!("{tz:?} is not a time zone name like \"Europe/Berlin\""),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(validate_email("john@example.com").is_ok());
        assert!(validate_email(" John.Doe+x@sub.example.co ").is_ok());
        for bad in [
            "",
            "john",
            "john@",
            "@example.com",
            "john@localhost",
            "jo hn@example.com",
            "a@b@c.com",
            "x@-a.com",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn usernames() {
        assert_eq!(validate_username(" alice ").unwrap(), "alice");
        assert!(validate_username("a@b").is_err());
        assert!(validate_username("").is_err());
        assert!(validate_username(&"x".repeat(65)).is_err());
    }
}
