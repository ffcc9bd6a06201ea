//! Persistence: one sqlx pool per process, SQLite (embedded default) or PostgreSQL.
//!
//! Every query is written once with `$n` placeholders, which both backends accept, and run
//! through `on_pool!` (see the `sql` module), which expands the same code for each backend. Where the
//! backends really differ (DDL, a few functions) the migrations and a few `match` arms branch.
//! One module per table or aggregate; `users` is split by what a caller does with it (reads,
//! writes, the filtered listing, the attempt counters).
//!
//! The store counts the statements it runs ([`Store::query_count`]); the proxy's promise that
//! its hot path makes no database query in steady state is checked against that counter.

mod activity;
mod activity_sqlite;
mod api_tokens;
mod error;
pub mod events;
mod identities;
pub mod ids;
pub mod import;
mod login_attempts;
mod mailed_tokens;
pub mod passkeys;
mod roles;
mod sessions;
mod shared_state;
pub(crate) mod sql;
mod ts;
mod twofa;
mod user_ops;
mod user_search;
mod user_write;
mod users;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use activity::{ActivityFilter, ActivityRow, NewActivity};
pub use activity_sqlite::{ActivityInserter, ActivityRef, SqliteActivityWriter};
pub use api_tokens::{NewToken, TokenRow};
pub use error::StoreError;
pub use events::{Change, ChangeKind, ChangeRow};
pub use identities::{IdentityRow, OidcFlowRow};
pub use ids::{SessionId, TokenId, UserId};
pub use passkeys::{NewPasskey, PasskeyRow};
pub use roles::RoleRow;
pub use sessions::{NewSession, SessionRow};
pub use shared_state::{NewPendingLogin, PendingLoginRow};
pub use ts::Ts;
pub use user_ops::CreditChange;
pub use user_search::{UserFilter, UserOverview, UserSort};
pub use user_write::{NewUser, UserPatch};
pub use users::{TIERS, Tier, UnknownTier, UserRow, full_name as users_full_name};

pub(crate) use sql::{Pool, execute, on_pool};

/// Which database engine a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// Handle to the account database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: Pool,
    /// The database file of a file-backed SQLite store (not an in-memory one).
    sqlite_file: Option<Arc<std::path::Path>>,
    counters: Arc<Counters>,
    /// Statements through this handle are counted as background work (batched writers), apart
    /// from the queries made while serving requests.
    background: bool,
}

#[derive(Debug, Default)]
struct Counters {
    foreground: AtomicU64,
    background: AtomicU64,
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Replaces a password in a database URL so the URL can be shown in errors and logs.
pub fn mask_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

impl Store {
    /// Opens a pool. A `sqlite://` file that does not exist yet is created, in WAL mode.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let masked = mask_url(url);
        let connect_err = |source: sqlx::Error| StoreError::Connect {
            url: masked.clone(),
            source,
        };
        let mut sqlite_file = None;
        let pool = match Backend::of_url(url) {
            Some(Backend::Sqlite) => {
                let opts = SqliteConnectOptions::from_str(url)
                    .map_err(connect_err)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10));
                if let Some(parent) = opts.get_filename().parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent).map_err(|e| StoreError::Connect {
                        url: masked.clone(),
                        source: sqlx::Error::Io(e),
                    })?;
                }
                if !url.contains(":memory:") && !url.contains("mode=memory") {
                    sqlite_file = Some(Arc::from(opts.get_filename()));
                }
                let pool = SqlitePoolOptions::new()
                    .max_connections(max_connections.max(1))
                    .acquire_timeout(Duration::from_secs(10))
                    // No idle reaping or lifetime recycling: they run sqlx's maintenance task,
                    // which reads the idle count while a release can have it wrapped below
                    // zero for an instant, and then loops without yielding (a worker thread
                    // spinning for good). Broken connections are still found, by the ping
                    // before each use (`test_before_acquire`).
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(opts)
                    .await
                    .map_err(connect_err)?;
                Pool::Sqlite(pool)
            }
            Some(Backend::Postgres) => {
                let opts = PgConnectOptions::from_str(url).map_err(connect_err)?;
                // One direct connection first: its error says why (refused, auth, no such
                // database) where the pool would only report a timeout.
                let probe = sqlx::ConnectOptions::connect(&opts)
                    .await
                    .map_err(connect_err)?;
                sqlx::Connection::close(probe).await.map_err(connect_err)?;
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections.max(1))
                    .acquire_timeout(Duration::from_secs(10))
                    // No idle reaping or lifetime recycling: they run sqlx's maintenance task,
                    // which reads the idle count while a release can have it wrapped below
                    // zero for an instant, and then loops without yielding (a worker thread
                    // spinning for good). Broken connections are still found, by the ping
                    // before each use (`test_before_acquire`).
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(opts)
                    .await
                    .map_err(connect_err)?;
                Pool::Postgres(pool)
            }
            None => return Err(StoreError::UnsupportedUrl(masked)),
        };
        Ok(Store {
            pool,
            sqlite_file,
            counters: Arc::default(),
            background: false,
        })
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies pending migrations for this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATOR.run(p).await?,
            Pool::Postgres(p) => POSTGRES_MIGRATOR.run(p).await?,
        }
        Ok(())
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The newest migration applied to the database and the newest this build carries; ready
    /// only when they agree (an older schema lacks what this build queries, a newer one was
    /// written by a newer release).
    pub async fn schema_versions(&self) -> Result<(Option<i64>, Option<i64>), StoreError> {
        const Q: &str = "SELECT MAX(version) FROM _sqlx_migrations WHERE success";
        let applied: Option<i64> = on_pool!(self, |p| sqlx::query_scalar(Q).fetch_one(p).await)?;
        let migrator = match &self.pool {
            Pool::Sqlite(_) => &SQLITE_MIGRATOR,
            Pool::Postgres(_) => &POSTGRES_MIGRATOR,
        };
        let expected = migrator.iter().map(|m| m.version).max();
        Ok((applied, expected))
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }

    /// A connection of its own for the activity writer, when this is a file-backed SQLite
    /// store; `None` otherwise (the writer then uses the pool).
    pub fn sqlite_activity_writer(&self) -> Option<Result<SqliteActivityWriter, StoreError>> {
        let file = self.sqlite_file.as_ref()?;
        Some(SqliteActivityWriter::open(file, self.for_background()))
    }

    /// The same pool, with its queries counted as background work.
    pub fn for_background(&self) -> Store {
        Store {
            background: true,
            ..self.clone()
        }
    }

    /// Statements run by request handling (not by background writers) since the pool opened.
    pub fn query_count(&self) -> u64 {
        self.counters.foreground.load(Ordering::Relaxed)
    }

    /// Statements run by background writers (activity batches, session touches, change feed).
    pub fn background_query_count(&self) -> u64 {
        self.counters.background.load(Ordering::Relaxed)
    }

    /// The counter this handle's statements add to (see [`sql::Counted`]).
    pub(crate) fn counter(&self) -> &AtomicU64 {
        if self.background {
            &self.counters.background
        } else {
            &self.counters.foreground
        }
    }
}
