//! Which source column feeds which user field.
//!
//! The usual layout is found by column name alone ([`Field::aliases`]); a TOML mapping file
//! names the columns of any other layout, and may translate tier values. A mapping file is
//! checked as a whole, so one run reports every wrong key and missing column at once.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::source::SourceColumn;
use crate::store::Tier;

/// A user field an import can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Id,
    Email,
    Username,
    PasswordHash,
    FirstName,
    LastName,
    FullName,
    Phone,
    CompanyName,
    IsAdmin,
    IsSuperuser,
    IsVerified,
    IsActive,
    SubscriptionStatus,
    SubscriptionTier,
    CreditsBalance,
    EmailNotifications,
    SmsNotifications,
    Timezone,
    Language,
    CreatedAt,
    LastLogin,
}

impl Field {
    pub const ALL: [Field; 22] = [
        Field::Id,
        Field::Email,
        Field::Username,
        Field::PasswordHash,
        Field::FirstName,
        Field::LastName,
        Field::FullName,
        Field::Phone,
        Field::CompanyName,
        Field::IsAdmin,
        Field::IsSuperuser,
        Field::IsVerified,
        Field::IsActive,
        Field::SubscriptionStatus,
        Field::SubscriptionTier,
        Field::CreditsBalance,
        Field::EmailNotifications,
        Field::SmsNotifications,
        Field::Timezone,
        Field::Language,
        Field::CreatedAt,
        Field::LastLogin,
    ];

    /// The key in a mapping file's `[columns]` table.
    pub fn key(self) -> &'static str {
        self.aliases()[0]
    }

    /// Source column names recognised without a mapping file, best first.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Field::Id => &["id", "lead_id"],
            Field::Email => &["email", "email_address"],
            Field::Username => &["username", "user_name", "login"],
            Field::PasswordHash => &["password_hash", "password", "passwd", "pw_hash"],
            Field::FirstName => &["first_name", "firstname", "given_name"],
            Field::LastName => &["last_name", "lastname", "surname", "family_name"],
            Field::FullName => &["full_name", "name", "fullname", "display_name"],
            Field::Phone => &["phone", "phone_number", "mobile", "telephone"],
            Field::CompanyName => &["company_name", "company", "organisation", "organization"],
            Field::IsAdmin => &["is_admin", "admin"],
            Field::IsSuperuser => &["is_superuser", "superuser"],
            Field::IsVerified => &["is_verified", "verified", "email_verified"],
            Field::IsActive => &["is_active", "active"],
            Field::SubscriptionStatus => &["subscription_status"],
            Field::SubscriptionTier => &["subscription_tier", "tier", "plan"],
            Field::CreditsBalance => &["credits_balance", "credits"],
            Field::EmailNotifications => &["email_notifications"],
            Field::SmsNotifications => &["sms_notifications"],
            Field::Timezone => &["timezone", "time_zone", "tz"],
            Field::Language => &["language", "lang", "locale"],
            Field::CreatedAt => &["created_at", "created", "date_created", "signup_date"],
            Field::LastLogin => &["last_login", "last_login_at", "last_seen"],
        }
    }

    fn from_key(key: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.key() == key)
    }
}

/// A mapping file, as written. The default is what running without one means.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    /// The source table, when `--table` is not given.
    pub table: Option<String>,
    /// Whether fields missing from `[columns]` are still looked for by their usual names.
    #[serde(default = "yes")]
    pub auto_detect: bool,
    /// Field key → source column; an empty name leaves the field unmapped.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// Source tier value (any case) → Gatehouse tier.
    #[serde(default)]
    pub tiers: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

impl Default for MappingFile {
    fn default() -> Self {
        MappingFile {
            table: None,
            auto_detect: true,
            columns: BTreeMap::new(),
            tiers: BTreeMap::new(),
        }
    }
}

impl MappingFile {
    pub fn parse(text: &str) -> Result<MappingFile, MappingError> {
        toml::from_str(text).map_err(|e| MappingError(vec![e.message().to_string()]))
    }
}

/// Every problem found in a mapping, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct MappingError(pub Vec<String>);

/// How a field got its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Detected,
    MappingFile,
}

/// The resolved mapping: the columns to read, in select order, and how to read them.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// Mapped fields with their source column, in [`Field::ALL`] order.
    pub fields: Vec<(Field, SourceColumn, Origin)>,
    /// Source columns nothing reads.
    pub ignored: Vec<String>,
    tiers: HashMap<String, Tier>,
}

impl Mapping {
    /// Matches fields to `columns` (the source table's, in table order).
    pub fn resolve(file: &MappingFile, columns: &[SourceColumn]) -> Result<Mapping, MappingError> {
        let mut problems = Vec::new();
        let find = |name: &str| columns.iter().find(|c| c.name.eq_ignore_ascii_case(name));
        let mut explicit: BTreeMap<Field, Option<SourceColumn>> = BTreeMap::new();
        for (key, column) in &file.columns {
            let Some(field) = Field::from_key(key) else {
                problems.push(format!(
                    "[columns] {key}: not a field; fields are: {}",
                    Field::ALL.map(Field::key).join(", ")
                ));
                continue;
            };
            if column.trim().is_empty() {
                explicit.insert(field, None);
            } else if let Some(c) = find(column.trim()) {
                explicit.insert(field, Some(c.clone()));
            } else {
                problems.push(format!(
                    "[columns] {key} = {column:?}: the table has no such column; it has: {}",
                    names(columns)
                ));
            }
        }
        let mut tiers = HashMap::new();
        for (from, to) in &file.tiers {
            match to.parse::<Tier>() {
                Ok(t) => {
                    tiers.insert(from.trim().to_lowercase(), t);
                }
                Err(e) => problems.push(format!("[tiers] {from:?}: {e}")),
            }
        }
        let mut fields = Vec::new();
        for field in Field::ALL {
            let chosen = match explicit.get(&field) {
                Some(c) => c.clone().map(|c| (c, Origin::MappingFile)),
                None if file.auto_detect => field
                    .aliases()
                    .iter()
                    .find_map(|a| find(a))
                    .map(|c| (c.clone(), Origin::Detected)),
                None => None,
            };
            match chosen {
                Some((c, origin)) => fields.push((field, c, origin)),
                None if matches!(field, Field::Id | Field::Email) => problems.push(format!(
                    "no column for {key}: name it in a mapping file ([columns] {key} = \"...\"); \
                     the table has: {}",
                    names(columns),
                    key = field.key()
                )),
                None => {}
            }
        }
        if !problems.is_empty() {
            return Err(MappingError(problems));
        }
        let ignored = columns
            .iter()
            .filter(|c| !fields.iter().any(|(_, used, _)| used.name == c.name))
            .map(|c| c.name.clone())
            .collect();
        Ok(Mapping {
            fields,
            ignored,
            tiers,
        })
    }

    /// Where `field` sits in a row read with [`Mapping::select`].
    pub fn position(&self, field: Field) -> Option<usize> {
        self.fields.iter().position(|(f, _, _)| *f == field)
    }

    /// The columns to read, in order; a column feeding two fields is read twice.
    pub fn select(&self) -> Vec<SourceColumn> {
        self.fields.iter().map(|(_, c, _)| c.clone()).collect()
    }

    pub fn column(&self, field: Field) -> Option<&SourceColumn> {
        self.fields
            .iter()
            .find(|(f, _, _)| *f == field)
            .map(|(_, c, _)| c)
    }

    /// A tier value translated by the file's `[tiers]`, else read as a tier name.
    pub fn tier(&self, value: &str) -> Option<Tier> {
        let key = value.trim().to_lowercase();
        self.tiers.get(&key).copied().or_else(|| key.parse().ok())
    }
}

fn names(columns: &[SourceColumn]) -> String {
    columns
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<SourceColumn> {
        names
            .iter()
            .map(|n| SourceColumn {
                name: n.to_string(),
                data_type: "text".into(),
            })
            .collect()
    }

    #[test]
    fn detects_the_usual_layout() {
        let columns = cols(&["ID", "Email", "password", "company", "credits", "notes"]);
        let m = Mapping::resolve(&MappingFile::parse("").unwrap(), &columns).unwrap();
        assert_eq!(m.column(Field::Id).unwrap().name, "ID");
        assert_eq!(m.column(Field::PasswordHash).unwrap().name, "password");
        assert_eq!(m.column(Field::CompanyName).unwrap().name, "company");
        assert_eq!(m.column(Field::CreditsBalance).unwrap().name, "credits");
        assert!(m.column(Field::Username).is_none());
        assert_eq!(m.ignored, vec!["notes"]);
    }

    #[test]
    fn a_file_overrides_and_reports_every_problem() {
        let columns = cols(&["lead_no", "mail", "plan", "password"]);
        let file = MappingFile::parse(
            "[columns]\nid = \"lead_no\"\nemail = \"mail\"\npassword_hash = \"\"\n\
             phone = \"tel\"\nemial = \"mail\"\n[tiers]\ngold = \"premium\"\nsilver = \"bronze\"\n",
        )
        .unwrap();
        let err = Mapping::resolve(&file, &columns).unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        let file = MappingFile::parse(
            "[columns]\nid = \"lead_no\"\nemail = \"mail\"\npassword_hash = \"\"\n\
             [tiers]\nGold = \"premium\"\n",
        )
        .unwrap();
        let m = Mapping::resolve(&file, &columns).unwrap();
        assert!(m.column(Field::PasswordHash).is_none());
        assert_eq!(m.column(Field::SubscriptionTier).unwrap().name, "plan");
        assert_eq!(m.tier(" GOLD "), Some(Tier::Premium));
        assert_eq!(m.tier("Enterprise"), Some(Tier::Enterprise));
        assert_eq!(m.tier("platinum"), None);
    }

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../../config/leads-mapping.example.toml");
        let file = MappingFile::parse(text).unwrap();
        assert_eq!(file.table.as_deref(), Some("customers"));
        let columns: Vec<&str> = file.columns.values().map(String::as_str).collect();
        let m = Mapping::resolve(&file, &cols(&columns)).unwrap();
        assert!(m.column(Field::Phone).is_none());
        assert_eq!(m.tier("Trial"), Some(Tier::Beta));
    }

    #[test]
    fn id_and_email_are_required() {
        let err = Mapping::resolve(&MappingFile::default(), &cols(&["mail", "x"])).unwrap_err();
        assert_eq!(err.0.len(), 2);
        assert!(MappingFile::parse("colums = {}").is_err());
    }
}
