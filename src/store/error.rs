use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot open database {url}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("unsupported database URL {0}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{field} is already taken")]
    Duplicate { field: &'static str },
    #[error("not found")]
    NotFound,
    #[error("database error: {0}")]
    Db(#[source] sqlx::Error),
    /// From the activity writer's own SQLite connection.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A batch writer was given more or fewer rows than it was told to expect (a bug).
    #[error("activity batch: row count does not match")]
    BatchSize,
}

impl StoreError {
    /// Whether the pool was closed (the process is shutting down).
    pub fn is_closed(&self) -> bool {
        matches!(self, StoreError::Db(sqlx::Error::PoolClosed))
    }

    /// Whether the database itself is unreachable or failing, as opposed to a bad request.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Connect { .. }
                | StoreError::Db(
                    sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::Io(_)
                        | sqlx::Error::Tls(_)
                )
        )
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            let msg = db.message().to_ascii_lowercase();
            let c = db.constraint().unwrap_or_default().to_ascii_lowercase();
            if c.contains("username") || msg.contains("username") {
                return StoreError::Duplicate { field: "username" };
            }
            if c.contains("email") || msg.contains("email") {
                return StoreError::Duplicate { field: "email" };
            }
            if c.contains("legacy") || msg.contains("legacy_lead_id") {
                return StoreError::Duplicate {
                    field: "legacy_lead_id",
                };
            }
        }
        StoreError::Db(e)
    }
}
