//! What an import did: the counts, every skipped row with its reason, and every value that
//! was replaced by a default. The `--report` JSON is these, as they are.

use std::collections::HashMap;

use serde::Serialize;

/// Counts for the summary. `imported` means "would be imported" in a dry run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Rows read from the source.
    pub rows: u64,
    pub imported: u64,
    /// Leads whose id a user already carries: an earlier run brought them in.
    pub already_imported: u64,
    /// Leads whose email or username is already taken (any case), or whose id repeats.
    pub duplicate: u64,
    /// Leads without an id or a valid email address.
    pub invalid: u64,
    /// Imported leads whose password hash was in no known format: imported without one.
    pub unknown_hash_format: u64,
    /// Imported leads that had no password hash at all.
    pub no_password: u64,
    /// Imported leads that got a username made from their email address.
    pub generated_usernames: u64,
    /// Imported leads whose tier was unknown and became `free`.
    pub unknown_tier: u64,
    /// Imported leads with administrator rights.
    pub admins: u64,
}

/// Why a row was not imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    AlreadyImported,
    DuplicateId,
    DuplicateEmail,
    DuplicateUsername,
    EmailExists,
    UsernameExists,
    /// A clashing user appeared in the target while the import ran.
    Conflict,
    MissingId,
    MissingEmail,
    InvalidEmail,
}

impl Reason {
    pub(super) fn count(self, s: &mut Summary) {
        let slot = match self {
            Reason::AlreadyImported => &mut s.already_imported,
            Reason::DuplicateId
            | Reason::DuplicateEmail
            | Reason::DuplicateUsername
            | Reason::EmailExists
            | Reason::UsernameExists
            | Reason::Conflict => &mut s.duplicate,
            Reason::MissingId | Reason::MissingEmail | Reason::InvalidEmail => &mut s.invalid,
        };
        *slot += 1;
    }
}

/// A row that was not imported.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// 1-based position in id order.
    pub row: u64,
    /// The lead's id, when it has one.
    pub id: Option<String>,
    pub reason: Reason,
    pub detail: String,
}

/// A value of an imported row that was replaced. Never holds a password hash.
#[derive(Debug, Clone, Serialize)]
pub struct Warning {
    pub row: u64,
    pub id: String,
    pub field: &'static str,
    /// The value as the source had it.
    pub value: Option<String>,
    /// What was done instead; the same for every row with the same problem.
    pub message: &'static str,
}

/// The `--report` file.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub source: &'a str,
    pub table: &'a str,
    pub dry_run: bool,
    /// Whether the run stopped early (failure or interruption); a re-run finishes it.
    pub complete: bool,
    pub summary: &'a Summary,
    pub skipped: &'a [Skipped],
    pub warnings: &'a [Warning],
}

/// Lines for the end of a run: counts, then warnings grouped by field and message.
pub fn summary_lines(s: &Summary, dry_run: bool) -> Vec<String> {
    let verb = if dry_run { "would import" } else { "imported" };
    let mut lines = vec![
        format!("  rows read             {:>8}", s.rows),
        format!("  {verb:<21} {:>8}", s.imported),
        format!("  already imported      {:>8}", s.already_imported),
        format!("  duplicate             {:>8}", s.duplicate),
        format!("  invalid               {:>8}", s.invalid),
        format!(
            "  unknown hash format   {:>8}  (imported without a password: they must reset it)",
            s.unknown_hash_format
        ),
    ];
    for (n, what) in [
        (s.no_password, "no password           "),
        (s.generated_usernames, "usernames generated   "),
        (s.unknown_tier, "unknown tier -> free  "),
        (s.admins, "administrators        "),
    ] {
        if n > 0 {
            lines.push(format!("  {what}{n:>8}"));
        }
    }
    lines
}

/// Warnings folded by field and message, most frequent first, with a few lead ids and
/// values each.
pub fn warning_lines(warnings: &[Warning]) -> Vec<String> {
    struct Group<'a> {
        field: &'static str,
        message: &'static str,
        rows: usize,
        ids: Vec<&'a str>,
        values: Vec<&'a str>,
    }
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    let mut groups: Vec<Group<'_>> = Vec::new();
    for w in warnings {
        let i = *index.entry((w.field, w.message)).or_insert_with(|| {
            groups.push(Group {
                field: w.field,
                message: w.message,
                rows: 0,
                ids: Vec::new(),
                values: Vec::new(),
            });
            groups.len() - 1
        });
        let Some(g) = groups.get_mut(i) else { continue };
        g.rows += 1;
        if g.ids.len() < SHOWN {
            g.ids.push(&w.id);
        }
        if let Some(v) = w.value.as_deref()
            && g.values.len() < SHOWN
            && !g.values.contains(&v)
        {
            g.values.push(v);
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.rows));
    groups
        .iter()
        .map(|g| {
            let more = if g.rows > g.ids.len() { ", ..." } else { "" };
            let values = if g.values.is_empty() {
                String::new()
            } else {
                let quoted: Vec<String> = g.values.iter().map(|v| format!("{v:?}")).collect();
                format!("; values {}", quoted.join(", "))
            };
            format!(
                "warning: {}: {} ({} row{}: lead {}{more}{values})",
                g.field,
                g.message,
                g.rows,
                if g.rows == 1 { "" } else { "s" },
                g.ids.join(", ")
            )
        })
        .collect()
}

/// How many lead ids and values a warning line shows.
const SHOWN: usize = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_fold_by_problem() {
        let w = |id: &str, value: &str| Warning {
            row: 1,
            id: id.into(),
            field: "subscription_tier",
            value: Some(value.into()),
            message: "unknown tier: imported as free",
        };
        let lines = warning_lines(&[w("3", "Gold"), w("22", "PLATINUM"), w("40", "Gold")]);
        assert_eq!(
            lines,
            vec![
                "warning: subscription_tier: unknown tier: imported as free \
                 (3 rows: lead 3, 22, 40; values \"Gold\", \"PLATINUM\")"
            ]
        );
    }
}
