//! Importing users from an existing app's `leads` table (`gatehouse import-leads`).
//!
//! ```text
//!  source (SQLite / PostgreSQL / MySQL)
//!    │ columns from the catalogue ──▶ mapping (usual names, or a TOML file)
//!    │ rows as text, in id order
//!    ▼
//!  convert + de-duplicate ──skipped rows, warnings──▶ summary, --report JSON
//!    │ NewUser × batch
//!    ▼
//!  store.import_users: one transaction per batch (users + user_imported activity)
//! ```
//!
//! Werkzeug hashes are copied as they are: they verify at the first sign-in and are then
//! replaced by argon2id ([`crate::accounts::Accounts::authenticate`]). A hash in no known
//! format is dropped, so its user must reset the password.

mod convert;
pub mod mapping;
mod names;
pub mod report;
mod run;
pub mod source;

pub use mapping::{Field, Mapping, MappingError, MappingFile, Origin};
pub use report::{Reason, Report, Skipped, Summary, Warning};
pub use run::{Job, Options, Outcome, Progress, Stop, import};
pub use source::{Source, SourceColumn, TableName};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "unsupported source {0}: use sqlite://PATH, postgres://..., mysql://... or mariadb://..."
    )]
    UnsupportedSource(String),
    #[error("cannot open the source database {url}")]
    SourceConnect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "the source {engine} database has no table {table:?}: name it with --table, or with \
         table = \"...\" in the mapping file"
    )]
    NoTable { table: String, engine: &'static str },
    #[error("the column mapping does not fit the table:\n{0}")]
    Mapping(#[from] MappingError),
    #[error("reading the source table failed")]
    Source(#[source] sqlx::Error),
    #[error("reading the existing users failed")]
    Target(#[source] StoreError),
    #[error(
        "writing the batch of leads {first}..{last} ({count} users) failed, so none of that \
         batch was written; earlier batches were. Fix the cause and run the same command \
         again: leads already imported are skipped"
    )]
    Batch {
        first: String,
        last: String,
        count: usize,
        #[source]
        source: StoreError,
    },
}

impl ImportError {
    /// Whether the command as given cannot work (exit code 2), rather than having failed.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ImportError::UnsupportedSource(_)
                | ImportError::NoTable { .. }
                | ImportError::Mapping(_)
        )
    }
}
