//! The 10,000 most common passwords, for refusing them when a password is set.
//!
//! The list and where it comes from are described in `data/README.md`.

use std::collections::HashSet;
use std::sync::LazyLock;

/// Lowercase, one a line, most common first.
const LIST: &str = include_str!("../../data/common-passwords.txt");

/// Built on first use so processes that never set a password don't pay for it.
static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| LIST.lines().filter(|line| !line.is_empty()).collect());

/// True when `password` (compared case-insensitively) is among the 10,000 most common passwords.
pub fn is_common(password: &str) -> bool {
    COMMON.contains(password.to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_ten_thousand_unique_lowercase_lines() {
        let lines: Vec<&str> = LIST.lines().collect();
        assert_eq!(lines.len(), 10_000);
        assert_eq!(COMMON.len(), 10_000, "duplicates in the list");
        for line in &lines {
            assert!(!line.is_empty(), "empty line");
            assert_eq!(line.trim(), *line, "whitespace around {line:?}");
            assert_eq!(line.to_lowercase(), *line, "{line:?} is not lowercase");
        }
        assert!(LIST.ends_with('\n') && !LIST.contains('\r'));
    }

    #[test]
    fn most_common_comes_first() {
        let first: Vec<&str> = LIST.lines().take(4).collect();
        assert_eq!(first, ["123456", "123456789", "qwerty", "password"]);
    }

    #[test]
    fn common_passwords_are_found_in_any_case() {
        for password in [
            "123456", "password", "PASSWORD", "PassWord", "qwerty", "iloveyou", "Michael",
            "letmein", "trustno1",
        ] {
            assert!(is_common(password), "{password:?}");
        }
    }

    #[test]
    fn non_ascii_entries_fold_case_too() {
        assert!(is_common("пароль"));
        assert!(is_common("ПАРОЛЬ"));
    }

    #[test]
    fn uncommon_passwords_are_not() {
        for password in [
            "",
            "correct horse battery staple",
            "pässwörd ✓",
            "Tr0ub4dor&3-gatehouse",
            "password ",
            " password",
        ] {
            assert!(!is_common(password), "{password:?}");
        }
    }
}
