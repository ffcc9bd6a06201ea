//! Reading a lead's text values into a user's typed fields.
//!
//! The rule throughout: a value that is missing takes the default quietly; a value that is
//! present but unreadable takes the default too, with a warning naming the field, so one
//! odd cell never costs a person their account. Only the email decides whether a row can be
//! imported at all (see [`super::run`]).

use chrono::{DateTime, NaiveDateTime, Utc};

use super::mapping::{Field, Mapping};
use super::source::TextRow;
use crate::accounts::FREE_TIER_CREDITS;
use crate::auth::legacy::is_werkzeug_hash;
use crate::store::{Tier, Ts};

/// One source row, read field by field.
pub struct Lead<'a> {
    pub row: &'a TextRow,
    pub mapping: &'a Mapping,
}

/// Replaced values of one row, before they are tied to its id.
#[derive(Default)]
pub struct Warnings(pub Vec<(Field, Option<String>, &'static str)>);

impl Warnings {
    pub fn push(&mut self, field: Field, value: Option<&str>, message: &'static str) {
        self.0.push((field, value.map(str::to_string), message));
    }
}

impl Lead<'_> {
    /// The text of a field: trimmed, `None` when unmapped, NULL or blank.
    pub fn get(&self, field: Field) -> Option<&str> {
        let i = self.mapping.position(field)?;
        let v = self.row.get(i)?.as_deref()?.trim();
        (!v.is_empty()).then_some(v)
    }

    pub fn text(&self, field: Field) -> Option<String> {
        self.get(field).map(str::to_string)
    }

    pub fn flag(&self, field: Field, default: bool, w: &mut Warnings) -> bool {
        match self.get(field) {
            None => default,
            Some(v) => parse_bool(v).unwrap_or_else(|| {
                w.push(
                    field,
                    Some(v),
                    "not a yes/no value: imported as the default",
                );
                default
            }),
        }
    }

    /// A value that `ok` accepts, else `default`.
    pub fn shaped(
        &self,
        field: Field,
        ok: fn(&str) -> bool,
        default: &str,
        w: &mut Warnings,
    ) -> String {
        match self.get(field) {
            Some(v) if ok(v) => v.to_string(),
            Some(v) => {
                w.push(
                    field,
                    Some(v),
                    "not a usable value: imported as the default",
                );
                default.to_string()
            }
            None => default.to_string(),
        }
    }

    /// The hash to store: a usable one as it is, anything else dropped.
    pub fn password_hash(&self, w: &mut Warnings) -> (Option<String>, HashKind) {
        let hash = self.get(Field::PasswordHash);
        let kind = classify_hash(hash);
        if kind == HashKind::Unknown {
            // The value may be a plain-text password: it goes nowhere, not even the report.
            let message = "not a Werkzeug or argon2 hash: imported without a password";
            w.push(Field::PasswordHash, None, message);
        }
        let keep = (kind == HashKind::Usable).then(|| hash.map(str::to_string));
        (keep.flatten(), kind)
    }

    /// First and last name; split from the full name when neither is mapped or filled.
    pub fn names(&self) -> (Option<String>, Option<String>) {
        match (self.get(Field::FirstName), self.get(Field::LastName)) {
            (None, None) => self.get(Field::FullName).map_or((None, None), split_name),
            (first, last) => (first.map(str::to_string), last.map(str::to_string)),
        }
    }

    /// The tier, and whether it was unknown (and so became free).
    pub fn tier(&self, w: &mut Warnings) -> (Tier, bool) {
        let value = self.get(Field::SubscriptionTier);
        match value {
            None => (Tier::Free, false),
            Some(v) => match self.mapping.tier(v) {
                Some(t) => (t, false),
                None => {
                    w.push(
                        Field::SubscriptionTier,
                        value,
                        "unknown tier: imported as free",
                    );
                    (Tier::Free, true)
                }
            },
        }
    }

    pub fn credits(&self, w: &mut Warnings) -> i64 {
        let Some(v) = self.get(Field::CreditsBalance) else {
            return FREE_TIER_CREDITS;
        };
        match parse_int(v) {
            Some(n) if n >= 0 => n,
            Some(_) => {
                w.push(Field::CreditsBalance, Some(v), "negative: imported as 0");
                0
            }
            None => {
                let message = "not a number: imported as the default";
                w.push(Field::CreditsBalance, Some(v), message);
                FREE_TIER_CREDITS
            }
        }
    }

    pub fn created_at(&self, now: Ts, w: &mut Warnings) -> Ts {
        let Some(v) = self.get(Field::CreatedAt) else {
            return now;
        };
        parse_timestamp(v).unwrap_or_else(|| {
            w.push(Field::CreatedAt, Some(v), "not a timestamp: set to now");
            now
        })
    }

    pub fn last_login(&self, w: &mut Warnings) -> Option<Ts> {
        let v = self.get(Field::LastLogin)?;
        let t = parse_timestamp(v);
        if t.is_none() && !v.starts_with("0000-00-00") {
            w.push(Field::LastLogin, Some(v), "not a timestamp: left empty");
        }
        t
    }
}

/// Reads a flag however an engine or app spelt it.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "y" | "yes" | "on" | "\u{1}" | "1.0" => Some(true),
        "0" | "f" | "false" | "n" | "no" | "off" | "\u{0}" | "0.0" => Some(false),
        _ => None,
    }
}

/// Reads a whole number; a decimal (`7.0`, `7.9`) is cut to its whole part.
pub fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let f = s.parse::<f64>().ok().filter(|f| f.is_finite())?;
    // In range, so the cast cannot saturate.
    (f.abs() < 9.0e15).then_some(f.trunc() as i64)
}

/// Reads a timestamp as SQLite text, PostgreSQL's and MySQL's text forms, RFC 3339, a date,
/// or Unix seconds. Text without an offset is UTC. MySQL's zero date means "none".
pub fn parse_timestamp(s: &str) -> Option<Ts> {
    let s = s.trim();
    if s.starts_with("0000-00-00") {
        return None;
    }
    if let Some(t) = Ts::parse_text(s) {
        return Some(t);
    }
    // PostgreSQL prints offsets as `+02` or `+05:30`; `%#z` reads both.
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(Ts(t.with_timezone(&Utc)));
        }
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M") {
        return Some(Ts(t.and_utc()));
    }
    let secs = parse_int(s).filter(|_| s.bytes().all(|b| b.is_ascii_digit() || b == b'.'))?;
    // Milliseconds are common too; no sign-up happened before 1973 in seconds' terms.
    let secs = if secs > 100_000_000_000 {
        secs / 1000
    } else {
        secs
    };
    DateTime::from_timestamp(secs, 0).map(Ts)
}

/// How a stored password hash will fare at sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// Werkzeug or argon2: copied unchanged, verified and upgraded at sign-in.
    Usable,
    /// Something else (plain text, bcrypt, ...): dropped; the user must reset.
    Unknown,
    Missing,
}

pub fn classify_hash(h: Option<&str>) -> HashKind {
    match h {
        None => HashKind::Missing,
        Some(h) if h.starts_with("$argon2") || is_werkzeug_hash(h) => HashKind::Usable,
        Some(_) => HashKind::Unknown,
    }
}

/// A name split for first/last when only a full name exists: the first word, then the rest.
pub fn split_name(full: &str) -> (Option<String>, Option<String>) {
    let full = full.trim();
    match full.split_once(char::is_whitespace) {
        Some((first, rest)) => (Some(first.to_string()), Some(rest.trim().to_string())),
        None if full.is_empty() => (None, None),
        None => (Some(full.to_string()), None),
    }
}

/// The accounts rule for time zone names, so imported rows obey what the account page does.
pub use crate::accounts::is_timezone_name as timezone_ok;

/// A language tag shaped like `en` or `pt-BR`.
pub fn language_ok(lang: &str) -> bool {
    !lang.is_empty()
        && lang.len() <= 16
        && lang
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Ts {
        Ts(Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap())
    }

    #[test]
    fn flags() {
        for t in ["1", "t", "TRUE", " yes ", "on", "\u{1}"] {
            assert_eq!(parse_bool(t), Some(true), "{t:?}");
        }
        for f in ["0", "f", "False", "no", "off", "\u{0}"] {
            assert_eq!(parse_bool(f), Some(false), "{f:?}");
        }
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_int("25"), Some(25));
        assert_eq!(parse_int("7.0"), Some(7));
        assert_eq!(parse_int("-5"), Some(-5));
        assert_eq!(parse_int("lots"), None);
        assert_eq!(parse_int("1e300"), None);
    }

    #[test]
    fn timestamps_from_every_engine() {
        let want = at(2023, 2, 3, 2, 5, 6);
        for s in [
            "2023-02-03 02:05:06",
            "2023-02-03T02:05:06Z",
            "2023-02-03 04:05:06+02",
            "2023-02-03 04:05:06+02:00",
            "2023-02-03 02:05:06.000000",
            "1675389906",
            "1675389906000",
        ] {
            assert_eq!(parse_timestamp(s), Some(want), "{s}");
        }
        assert_eq!(parse_timestamp("2020-01-01"), Some(at(2020, 1, 1, 0, 0, 0)));
        assert_eq!(parse_timestamp("0000-00-00 00:00:00"), None);
        assert_eq!(parse_timestamp("last tuesday"), None);
        assert_eq!(parse_timestamp("-5"), None);
    }

    #[test]
    fn hashes() {
        assert_eq!(
            classify_hash(Some("pbkdf2:sha256:1000$salt$abcd")),
            HashKind::Usable
        );
        assert_eq!(
            classify_hash(Some("$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA")),
            HashKind::Usable
        );
        assert_eq!(classify_hash(Some("hunter2")), HashKind::Unknown);
        assert_eq!(
            classify_hash(Some("$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9")),
            HashKind::Unknown
        );
        assert_eq!(classify_hash(Some("plain$$hunter2")), HashKind::Unknown);
        assert_eq!(classify_hash(None), HashKind::Missing);
    }

    #[test]
    fn names_and_shapes() {
        assert_eq!(
            split_name(" Carol  Ann Smith "),
            (Some("Carol".into()), Some("Ann Smith".into()))
        );
        assert_eq!(split_name("Bob"), (Some("Bob".into()), None));
        assert!(timezone_ok("Europe/Berlin") && !timezone_ok("Not a zone!!"));
        assert!(language_ok("pt-BR") && !language_ok("english (uk)"));
    }
}
