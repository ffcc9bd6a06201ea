//! Input rules for account fields.

use super::AccountError;

use unicode_normalization::UnicodeNormalization;

/// The default `security.username_pattern`: ASCII letters, digits, `.`, `_`, `-`, `@`, `+`
/// (so email-style names work), and nothing that can look like something else.
pub const DEFAULT_USERNAME_PATTERN: &str = "[A-Za-z0-9._@+-]+";

/// Which usernames are accepted: NFKC-normalised (`ａｄｍｉｎ` becomes `admin`), trimmed, 1–64
/// characters, matching `security.username_pattern` as a whole.
#[derive(Debug, Clone, Default)]
pub struct UsernameRules {
    /// A configured pattern (anchored) and its text for messages; `None`: the default set,
    /// checked without a regex.
    custom: Option<(regex::Regex, String)>,
}

impl UsernameRules {
    /// Compiles `pattern`, anchored so that it must match the whole name.
    pub fn new(pattern: &str) -> Result<UsernameRules, regex::Error> {
        if pattern == DEFAULT_USERNAME_PATTERN {
            return Ok(UsernameRules::default());
        }
        let re = regex::Regex::new(&format!("^(?:{pattern})$"))?;
        Ok(UsernameRules {
            custom: Some((re, pattern.to_string())),
        })
    }

    fn matches(&self, u: &str) -> bool {
        match &self.custom {
            Some((re, _)) => re.is_match(u),
            None => u
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '-')),
        }
    }

    /// The normalised username, or why it is refused.
    pub fn check(&self, u: &str) -> Result<String, AccountError> {
        let u: String = u.nfkc().collect();
        let u = u.trim();
        let bad = |m: String| AccountError::Invalid {
            field: "username",
            message: m,
        };
        if u.is_empty() {
            return Err(bad("must not be empty".into()));
        }
        if u.chars().count() > 64 {
            return Err(bad("must be at most 64 characters".into()));
        }
        if !self.matches(u) {
            return Err(bad(match &self.custom {
                None => "may contain only ASCII letters, digits, '.', '_', '-', '@' and '+'".into(),
                Some((_, source)) => format!("must match the pattern {source}"),
            }));
        }
        Ok(u.to_string())
    }
}

/// The confusable skeleton of a username (Unicode TR39, case-folded): two names with the same
/// skeleton look alike (`admin`, `adrnin`, Cyrillic `аdmin`), so only one may exist.
pub fn username_skeleton(u: &str) -> String {
    let lower: String = u.nfkc().collect::<String>().to_lowercase();
    unicode_security::skeleton(&lower)
        .collect::<String>()
        .to_lowercase()
}

/// A username under the default rules (see [`UsernameRules`]).
pub fn validate_username(u: &str) -> Result<String, AccountError> {
    UsernameRules::default().check(u)
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

/// [`role_name`] for callers outside accounts (the config check of mapped roles).
pub fn role_name_is_valid(r: &str) -> Result<String, AccountError> {
    role_name(r)
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

/// A time zone of the IANA list (`Europe/Berlin`, `UTC`), as bundled with the binary.
pub fn is_timezone_name(tz: &str) -> bool {
    !tz.is_empty()
        && tz.len() <= 64
        && tz
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'))
        && jiff::tz::db().get(tz).is_ok()
}

pub(super) fn timezone(tz: &str) -> Result<(), AccountError> {
    if is_timezone_name(tz) {
        Ok(())
    } else {
        Err(AccountError::Invalid {
            field: "timezone",
            message: format!(
                "{tz:?} is not a time zone of the IANA list; use a name like \"Europe/Berlin\" or \"UTC\""
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timezones_come_from_the_iana_list() {
        for tz in [
            "UTC",
            "Europe/Berlin",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
        ] {
            assert!(is_timezone_name(tz), "{tz}");
        }
        for tz in [
            "Mars/Olympus",
            "",
            "Europe/Berlin ",
            "../etc/passwd",
            "Not a zone!",
        ] {
            assert!(!is_timezone_name(tz), "{tz}");
        }
    }

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
        assert_eq!(validate_username("a+b@c.io").unwrap(), "a+b@c.io");
        assert_eq!(validate_username("ａｄｍｉｎ").unwrap(), "admin");
        assert!(validate_username("\u{430}dmin").is_err(), "Cyrillic а");
        assert!(validate_username("a b").is_err());
        assert!(validate_username("zoë").is_err());
        let wide = UsernameRules::new("[\\p{L}0-9]+").unwrap();
        assert_eq!(wide.check("zoë").unwrap(), "zoë");
        assert!(wide.check("zo ë").is_err());
        assert!(UsernameRules::new("[a-z").is_err());
        assert_eq!(username_skeleton("adrnin"), username_skeleton("admin"));
        assert_eq!(username_skeleton("\u{430}dmin"), username_skeleton("ADMIN"));
        assert_ne!(username_skeleton("admin"), username_skeleton("admln2"));
        assert!(validate_username("").is_err());
        assert!(validate_username(&"x".repeat(65)).is_err());
    }
}
