//! Unique usernames for leads, given or made from the email address.
//!
//! Names are compared in lower case, like the unique index. A made-up name must not take a
//! name that a later lead asks for by itself, so every name the source table spells out is
//! reserved before the first row is read.

use std::collections::{HashMap, HashSet};

use crate::accounts::validate_username;

/// Longest generated base, leaving room for a numeric suffix within the 64-character limit.
const MAX_BASE: usize = 56;

/// Why a lead cannot have the username it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clash {
    /// A user in the target already has it.
    Existing,
    /// An earlier lead of this import took it.
    Earlier,
}

#[derive(Debug, Default)]
pub struct Usernames {
    existing: HashSet<String>,
    claimed: HashSet<String>,
    reserved: HashSet<String>,
    /// The next suffix to try per base, so many leads sharing a base stay linear.
    next_suffix: HashMap<String, u32>,
}

impl Usernames {
    pub fn new(existing: impl IntoIterator<Item = String>) -> Usernames {
        Usernames {
            existing: existing.into_iter().map(|u| u.to_lowercase()).collect(),
            ..Usernames::default()
        }
    }

    /// Keeps `name` (a name the source spells out) away from generated names.
    pub fn reserve(&mut self, name: &str) {
        self.reserved.insert(name.trim().to_lowercase());
    }

    /// Takes a name a lead asks for.
    pub fn claim(&mut self, name: &str) -> Result<(), Clash> {
        let key = name.to_lowercase();
        if self.existing.contains(&key) {
            return Err(Clash::Existing);
        }
        if !self.claimed.insert(key) {
            return Err(Clash::Earlier);
        }
        Ok(())
    }

    /// Makes and takes a name from an email's local part: `carol.smith+news@x` → `carol.smith`,
    /// then `carol.smith2`, `carol.smith3`, ... when taken.
    pub fn generate(&mut self, email: &str) -> String {
        let base = base_from_email(email);
        let mut n = self.next_suffix.get(&base).copied().unwrap_or(1);
        loop {
            let candidate = if n == 1 {
                base.clone()
            } else {
                format!("{base}{n}")
            };
            n += 1;
            if !self.existing.contains(&candidate)
                && !self.reserved.contains(&candidate)
                && self.claimed.insert(candidate.clone())
            {
                self.next_suffix.insert(base, n);
                return candidate;
            }
        }
    }
}

/// The local part, without a `+tag`, lower-cased, with characters the username rules refuse
/// replaced by `_`; `user` when nothing usable is left.
fn base_from_email(email: &str) -> String {
    let local = email.rsplit_once('@').map_or(email, |(l, _)| l);
    let local = local.split_once('+').map_or(local, |(l, _)| l);
    let cleaned: String = local
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_BASE)
        .collect();
    let cleaned = cleaned.trim_matches(|c| matches!(c, '.' | '_' | '-'));
    match validate_username(cleaned) {
        Ok(u) => u,
        Err(_) => "user".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases() {
        assert_eq!(
            base_from_email("Carol.Smith+news@example.org"),
            "carol.smith"
        );
        assert_eq!(base_from_email("o'neil@example.com"), "o_neil");
        assert_eq!(base_from_email("+tag@example.com"), "user");
        assert_eq!(base_from_email("__@example.com"), "user");
        assert_eq!(
            base_from_email(&format!("{}@x.io", "a".repeat(80))).len(),
            56
        );
    }

    #[test]
    fn generated_names_are_unique_and_avoid_reserved_ones() {
        let mut names = Usernames::new(["Kim".to_string()]);
        names.reserve("carol.smith");
        assert_eq!(names.generate("carol.smith@a.org"), "carol.smith2");
        assert_eq!(names.generate("CAROL.SMITH@b.org"), "carol.smith3");
        assert_eq!(names.claim("Carol.Smith"), Ok(()));
        assert_eq!(names.claim("carol.smith"), Err(Clash::Earlier));
        assert_eq!(names.claim("KIM"), Err(Clash::Existing));
        assert_eq!(names.generate("kim@c.org"), "kim2");
        assert_eq!(names.claim("kim2"), Err(Clash::Earlier));
    }
}
