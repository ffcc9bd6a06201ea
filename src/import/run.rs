//! The import loop: read leads in id order, decide each one, write accepted users in batches.
//!
//! Every decision is made before anything is written, against the users already in the
//! target and the leads accepted so far, so a dry run reaches the same counts as a real one.
//! A lead is recognised as already imported by its id in `legacy_lead_id`; that is what makes
//! a re-run after a failure or an interruption finish the work instead of repeating it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;

use super::ImportError;
use super::convert::{HashKind, Lead, Warnings, language_ok, timezone_ok};
use super::mapping::{Field, Mapping};
use super::names::{Clash, Usernames};
use super::report::{Reason, Skipped, Summary, Warning};
use super::source::{Source, TableName, TextRow};
use crate::accounts::validate_email;
use crate::audit::ActivityKind;
use crate::store::import::ImportActivity;
use crate::store::{NewUser, Store, Ts};

#[derive(Debug, Clone)]
pub struct Options {
    /// Users per transaction.
    pub batch: usize,
    pub dry_run: bool,
    /// Names the source in each activity row (a masked URL and the table).
    pub source_label: String,
}

/// Told how far the import is; the CLI draws a bar or prints lines.
pub trait Progress {
    fn advance(&mut self, rows_read: u64, summary: &Summary);
}

/// Why a run ended before the last row.
#[derive(Debug)]
pub enum Stop {
    Interrupted,
    Failed(ImportError),
}

/// What a run did. With `stopped` set, everything counted as imported was committed and the
/// rest was not: a re-run picks up from there.
#[derive(Debug, Default)]
pub struct Outcome {
    pub summary: Summary,
    pub skipped: Vec<Skipped>,
    pub warnings: Vec<Warning>,
    pub stopped: Option<Stop>,
}

/// What to read: a table of a source, and how its columns map.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    pub source: &'a Source,
    pub table: &'a TableName,
    pub mapping: &'a Mapping,
    /// `security.username_pattern`: names outside it are replaced by generated ones (reported).
    pub usernames: &'a crate::accounts::UsernameRules,
}

/// Reads the job's table, converts and de-duplicates its rows, and writes them to `store` in
/// batches, checking `stop` between batches.
pub async fn import(
    job: Job<'_>,
    store: &Store,
    opts: &Options,
    now: Ts,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<Outcome, ImportError> {
    let Job {
        source,
        table,
        mapping,
        usernames: rules,
    } = job;
    let mut importer = Importer::new(mapping, store, now).await?;
    importer.rules = rules.clone();
    let order_by = mapping.column(Field::Id).ok_or_else(no_id)?;
    if let Some(username) = mapping.column(Field::Username) {
        let mut names = source.rows(table, std::slice::from_ref(username), order_by);
        while let Some(row) = names.next().await {
            let row = row.map_err(ImportError::Source)?;
            if let Some(name) = row.first().cloned().flatten()
                && let Ok(name) = rules.check(&name)
            {
                importer.names.reserve(&name);
            }
        }
    }
    let mut rows = source.rows(table, &mapping.select(), order_by);
    let mut batch = Vec::with_capacity(opts.batch);
    while let Some(row) = rows.next().await {
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                importer.out.stopped = Some(Stop::Failed(ImportError::Source(e)));
                break;
            }
        };
        if let Some(p) = importer.consider(&row) {
            batch.push(p);
        }
        if batch.len() >= opts.batch {
            if let Err(e) = importer.flush(store, &mut batch, opts).await {
                importer.out.stopped = Some(Stop::Failed(e));
                break;
            }
            progress.advance(importer.out.summary.rows, &importer.out.summary);
            if stop.load(Ordering::Relaxed) {
                importer.out.stopped = Some(Stop::Interrupted);
                break;
            }
        } else if importer.out.summary.rows.is_multiple_of(256) {
            progress.advance(importer.out.summary.rows, &importer.out.summary);
        }
    }
    if importer.out.stopped.is_none()
        && let Err(e) = importer.flush(store, &mut batch, opts).await
    {
        importer.out.stopped = Some(Stop::Failed(e));
    }
    progress.advance(importer.out.summary.rows, &importer.out.summary);
    Ok(importer.out)
}

fn no_id() -> ImportError {
    ImportError::Mapping(super::mapping::MappingError(vec!["no id column".into()]))
}

/// An accepted lead, waiting for its batch.
struct Pending {
    meta: PendingMeta,
    user: NewUser,
}

struct PendingMeta {
    row: u64,
    id: String,
    hash: HashKind,
    generated_username: bool,
    unknown_tier: bool,
    admin: bool,
}

struct Importer<'a> {
    mapping: &'a Mapping,
    now: Ts,
    known_ids: HashSet<String>,
    known_emails: HashSet<String>,
    seen_ids: HashSet<String>,
    /// Lower-cased email → the lead that has it.
    seen_emails: HashMap<String, String>,
    names: Usernames,
    rules: crate::accounts::UsernameRules,
    out: Outcome,
}

impl<'a> Importer<'a> {
    async fn new(mapping: &'a Mapping, store: &Store, now: Ts) -> Result<Self, ImportError> {
        let identities = store.user_identities().await.map_err(ImportError::Target)?;
        let mut known_ids = HashSet::new();
        let mut known_emails = HashSet::with_capacity(identities.len());
        let mut usernames = Vec::with_capacity(identities.len());
        for i in identities {
            known_emails.insert(i.email.to_lowercase());
            usernames.push(i.username);
            known_ids.extend(i.legacy_lead_id);
        }
        Ok(Importer {
            rules: crate::accounts::UsernameRules::default(),
            mapping,
            now,
            known_ids,
            known_emails,
            seen_ids: HashSet::new(),
            seen_emails: HashMap::new(),
            names: Usernames::new(usernames),
            out: Outcome::default(),
        })
    }

    fn skip(&mut self, id: Option<&str>, reason: Reason, detail: String) -> Option<Pending> {
        reason.count(&mut self.out.summary);
        self.out.skipped.push(Skipped {
            row: self.out.summary.rows,
            id: id.map(str::to_string),
            reason,
            detail,
        });
        None
    }

    /// Decides one row: `Some` to import it, `None` when it was skipped (and recorded).
    fn consider(&mut self, row: &TextRow) -> Option<Pending> {
        self.out.summary.rows += 1;
        let lead = Lead {
            row,
            mapping: self.mapping,
        };
        let Some(id) = lead.get(Field::Id) else {
            return self.skip(None, Reason::MissingId, "the id column is empty".into());
        };
        if self.known_ids.contains(id) {
            let detail = "a user already carries this lead id".into();
            return self.skip(Some(id), Reason::AlreadyImported, detail);
        }
        if self.seen_ids.contains(id) {
            let detail = "an earlier row has the same id".into();
            return self.skip(Some(id), Reason::DuplicateId, detail);
        }
        let email = match lead.get(Field::Email).map(validate_email) {
            None => return self.skip(Some(id), Reason::MissingEmail, "no email address".into()),
            Some(Err(e)) => return self.skip(Some(id), Reason::InvalidEmail, e.to_string()),
            Some(Ok(e)) => e,
        };
        let key = email.to_lowercase();
        if self.known_emails.contains(&key) {
            let detail = format!("a user with email {email} already exists");
            return self.skip(Some(id), Reason::EmailExists, detail);
        }
        if let Some(first) = self.seen_emails.get(&key) {
            let detail = format!("lead {first} has the same email address (any case)");
            return self.skip(Some(id), Reason::DuplicateEmail, detail);
        }
        let mut w = Warnings::default();
        let (username, generated_username) = match lead.get(Field::Username) {
            None => (self.names.generate(&email), true),
            Some(asked) => match self.rules.check(asked) {
                Ok(name) => match self.names.claim(&name) {
                    Ok(()) => (name, false),
                    Err(Clash::Existing) => {
                        let detail = format!("a user named {name} already exists (any case)");
                        return self.skip(Some(id), Reason::UsernameExists, detail);
                    }
                    Err(Clash::Earlier) => {
                        let detail = format!("an earlier lead has the username {name} (any case)");
                        return self.skip(Some(id), Reason::DuplicateUsername, detail);
                    }
                },
                Err(_) => {
                    let message = "not an accepted username (security.username_pattern): one was made from the email address";
                    w.push(Field::Username, Some(asked), message);
                    (self.names.generate(&email), true)
                }
            },
        };
        let id = id.to_string();
        self.seen_ids.insert(id.clone());
        self.seen_emails.insert(key, id.clone());
        let (user, hash, unknown_tier) = self.user(&lead, username, email, id.clone(), &mut w);
        let row = self.out.summary.rows;
        self.out
            .warnings
            .extend(w.0.into_iter().map(|(f, value, message)| Warning {
                row,
                id: id.clone(),
                field: f.key(),
                value,
                message,
            }));
        Some(Pending {
            meta: PendingMeta {
                row,
                id,
                hash,
                generated_username,
                unknown_tier,
                admin: user.is_admin,
            },
            user,
        })
    }

    /// The user a lead becomes, once its email and username are settled.
    fn user(
        &self,
        lead: &Lead<'_>,
        username: String,
        email: String,
        id: String,
        w: &mut Warnings,
    ) -> (NewUser, HashKind, bool) {
        let (password_hash, kind) = lead.password_hash(w);
        let (first_name, last_name) = lead.names();
        let (tier, unknown_tier) = lead.tier(w);
        let is_superuser = lead.flag(Field::IsSuperuser, false, w);
        let user = NewUser {
            username,
            email,
            password_hash,
            first_name,
            last_name,
            phone: lead.text(Field::Phone),
            company_name: lead.text(Field::CompanyName),
            tier,
            subscription_status: lead
                .text(Field::SubscriptionStatus)
                .unwrap_or_else(|| "active".into()),
            credits_balance: lead.credits(w),
            is_active: lead.flag(Field::IsActive, true, w),
            is_verified: lead.flag(Field::IsVerified, false, w),
            is_admin: lead.flag(Field::IsAdmin, false, w) || is_superuser,
            is_superuser,
            email_notifications: lead.flag(Field::EmailNotifications, true, w),
            sms_notifications: lead.flag(Field::SmsNotifications, false, w),
            timezone: lead.shaped(Field::Timezone, timezone_ok, "UTC", w),
            language: lead.shaped(Field::Language, language_ok, "en", w),
            created_at: lead.created_at(self.now, w),
            last_login: lead.last_login(w),
            legacy_lead_id: Some(id),
        };
        (user, kind, unknown_tier)
    }

    /// Writes a batch (or, in a dry run, only counts it).
    async fn flush(
        &mut self,
        store: &Store,
        batch: &mut Vec<Pending>,
        opts: &Options,
    ) -> Result<(), ImportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (metas, users): (Vec<PendingMeta>, Vec<NewUser>) =
            batch.drain(..).map(|p| (p.meta, p.user)).unzip();
        if opts.dry_run {
            metas.iter().for_each(|m| self.count_imported(m));
            return Ok(());
        }
        let activity = ImportActivity {
            activity_type: ActivityKind::UserImported.as_str(),
            source: &opts.source_label,
        };
        let written = store
            .import_users(&users, self.now, activity)
            .await
            .map_err(|source| ImportError::Batch {
                first: metas.first().map(|m| m.id.clone()).unwrap_or_default(),
                last: metas.last().map(|m| m.id.clone()).unwrap_or_default(),
                count: metas.len(),
                source,
            })?;
        let clashed: HashSet<String> = written.clashed.into_iter().collect();
        for m in &metas {
            if !clashed.contains(&m.id) {
                self.count_imported(m);
            } else {
                Reason::Conflict.count(&mut self.out.summary);
                self.out.skipped.push(Skipped {
                    row: m.row,
                    id: Some(m.id.clone()),
                    reason: Reason::Conflict,
                    detail: "a user with this email, username or lead id was created while \
                             the import ran"
                        .into(),
                });
            }
        }
        Ok(())
    }

    fn count_imported(&mut self, m: &PendingMeta) {
        let s = &mut self.out.summary;
        s.imported += 1;
        s.unknown_hash_format += u64::from(m.hash == HashKind::Unknown);
        s.no_password += u64::from(m.hash == HashKind::Missing);
        s.generated_usernames += u64::from(m.generated_username);
        s.unknown_tier += u64::from(m.unknown_tier);
        s.admins += u64::from(m.admin);
    }
}
