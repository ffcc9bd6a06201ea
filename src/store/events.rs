//! The `change_events` table: the change feed every running process tails (see `crate::feed`).
//!
//! A write that other processes must see in their caches (a session ended, an account locked,
//! a role revoked, ...) appends one [`Change`] with [`append_change!`] inside the transaction
//! that makes the change, so the row exists exactly when the change does. The helper macros
//! here turn the store's single statements into such transactions:
//!
//! ```text
//!  in_tx!(store, |tx| { UPDATE users …; UPDATE user_sessions …; append_change!(tx, &change) })
//!                                                              └ PostgreSQL: LOCK TABLE, INSERT
//!                                                                (the trigger NOTIFYs at commit)
//! ```
//!
//! On PostgreSQL the insert is preceded by `LOCK TABLE change_events IN EXCLUSIVE MODE`, held to
//! commit, so ids become visible in id order: a reader that has seen id `n` has seen every
//! committed id below it, and an id it never sees belongs to a rolled-back transaction. SQLite
//! serialises writers anyway, and its `AUTOINCREMENT` ids never go back.

use super::sql::{Counted, Tx};
use super::{Backend, Store, StoreError, Ts, UserId, on_pool};

/// What changed. Stored as text (`as_str`), so an older process reading a kind it does not know
/// still finds the user or token the row names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// One session ended (sign-out, revocation); names its token hash.
    SessionEnded,
    /// Several (or all) sessions of a user ended.
    SessionsEnded,
    UserLocked,
    UserUnlocked,
    UserDeleted,
    UserRestored,
    /// Profile, status, tier, verification or admin flags changed; `detail` names the fields.
    UserUpdated,
    PasswordChanged,
    PasswordReset,
    TwofaEnabled,
    TwofaDisabled,
    TwofaReset,
    EmailVerified,
    RoleGranted,
    RoleRevoked,
    /// An API token was revoked; names its hash.
    TokenRevoked,
    PasskeyAdded,
    PasskeyRemoved,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 18] = [
        ChangeKind::SessionEnded,
        ChangeKind::SessionsEnded,
        ChangeKind::UserLocked,
        ChangeKind::UserUnlocked,
        ChangeKind::UserDeleted,
        ChangeKind::UserRestored,
        ChangeKind::UserUpdated,
        ChangeKind::PasswordChanged,
        ChangeKind::PasswordReset,
        ChangeKind::TwofaEnabled,
        ChangeKind::TwofaDisabled,
        ChangeKind::TwofaReset,
        ChangeKind::EmailVerified,
        ChangeKind::RoleGranted,
        ChangeKind::RoleRevoked,
        ChangeKind::TokenRevoked,
        ChangeKind::PasskeyAdded,
        ChangeKind::PasskeyRemoved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::SessionEnded => "session_ended",
            ChangeKind::SessionsEnded => "sessions_ended",
            ChangeKind::UserLocked => "user_locked",
            ChangeKind::UserUnlocked => "user_unlocked",
            ChangeKind::UserDeleted => "user_deleted",
            ChangeKind::UserRestored => "user_restored",
            ChangeKind::UserUpdated => "user_updated",
            ChangeKind::PasswordChanged => "password_changed",
            ChangeKind::PasswordReset => "password_reset",
            ChangeKind::TwofaEnabled => "twofa_enabled",
            ChangeKind::TwofaDisabled => "twofa_disabled",
            ChangeKind::TwofaReset => "twofa_reset",
            ChangeKind::EmailVerified => "email_verified",
            ChangeKind::RoleGranted => "role_granted",
            ChangeKind::RoleRevoked => "role_revoked",
            ChangeKind::TokenRevoked => "token_revoked",
            ChangeKind::PasskeyAdded => "passkey_added",
            ChangeKind::PasskeyRemoved => "passkey_removed",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeKind> {
        ChangeKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One row to append.
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: ChangeKind,
    pub user_id: Option<UserId>,
    pub token_hash: Option<String>,
    pub detail: Option<String>,
}

impl Change {
    /// A change to one user's account.
    pub fn user(kind: ChangeKind, user: UserId) -> Change {
        Change {
            kind,
            user_id: Some(user),
            token_hash: None,
            detail: None,
        }
    }

    /// A change to one session or API token, named by its hash.
    pub fn token(kind: ChangeKind, user: Option<UserId>, hash: &str) -> Change {
        Change {
            kind,
            user_id: user,
            token_hash: Some(hash.to_string()),
            detail: None,
        }
    }

    pub fn detail(mut self, d: impl Into<String>) -> Change {
        self.detail = Some(d.into());
        self
    }
}

/// A row as read back by a tailer. `kind` stays text: see [`ChangeKind`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChangeRow {
    pub id: i64,
    pub created_at: Ts,
    pub kind: String,
    pub user_id: Option<UserId>,
    pub token_hash: Option<String>,
    pub detail: Option<String>,
}

/// The statement (if any) a backend runs before appending, to make ids visible in order.
pub(crate) trait FeedLock: sqlx::Database {
    const LOCK: &'static str;
}

impl FeedLock for sqlx::Sqlite {
    const LOCK: &'static str = "";
}

impl FeedLock for sqlx::Postgres {
    const LOCK: &'static str = "LOCK TABLE change_events IN EXCLUSIVE MODE";
}

pub(crate) fn lock_sql<DB: FeedLock>(_: &Tx<'_, DB>) -> &'static str {
    DB::LOCK
}

/// Appends a [`Change`] on a transaction (`&mut Tx`); use it as the transaction's last
/// statement (the PostgreSQL table lock is held until commit). Evaluates to
/// `Result<(), sqlx::Error>`.
macro_rules! append_change {
    ($tx:expr, $change:expr) => {
        async {
            let tx = &mut *$tx;
            let lock = $crate::store::events::lock_sql(&*tx);
            if !lock.is_empty() {
                sqlx::query(lock).execute(tx.conn()).await?;
            }
            let c: &$crate::store::events::Change = $change;
            sqlx::query(
                "INSERT INTO change_events (kind, user_id, token_hash, detail) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(c.kind.as_str())
            .bind(c.user_id)
            .bind(&c.token_hash)
            .bind(&c.detail)
            .execute(tx.conn())
            .await
            .map(|_| ())
        }
    };
}
pub(crate) use append_change;

/// Runs `$body` (an expression that may use `?` on sqlx errors and `.await`) in a transaction on
/// either backend and commits it; `$tx` is a `&mut Tx` whose `conn()` runs each statement.
/// Evaluates to `Result<T, sqlx::Error>`.
macro_rules! in_tx {
    ($store:expr, |$tx:ident| $body:expr) => {
        $crate::store::sql::on_pool!($store, |p| async {
            let mut $tx = p.begin().await?;
            let out = {
                let $tx = &mut $tx;
                $body
            };
            $tx.commit().await?;
            Ok::<_, sqlx::Error>(out)
        }
        .await)
    };
}
pub(crate) use in_tx;

/// How many rows a tailer reads per query.
pub const READ_BATCH: i64 = 500;

impl Store {
    /// The newest event id (0 when the table is empty): where a tailer starts.
    pub async fn newest_change_id(&self) -> Result<i64, StoreError> {
        let id: Option<i64> = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT MAX(id) FROM change_events"
        )
        .fetch_one(p)
        .await)?;
        Ok(id.unwrap_or(0))
    }

    /// Events after `after`, oldest first, at most [`READ_BATCH`].
    pub async fn changes_after(&self, after: i64) -> Result<Vec<ChangeRow>, StoreError> {
        let rows = on_pool!(self, |p| sqlx::query_as::<_, ChangeRow>(
            "SELECT id, created_at, kind, user_id, token_hash, detail FROM change_events \
             WHERE id > $1 ORDER BY id LIMIT $2"
        )
        .bind(after)
        .bind(READ_BATCH)
        .fetch_all(p)
        .await)?;
        Ok(rows)
    }

    /// Deletes events older than `age_secs` (by the database's clock) that this reader has
    /// applied (`id <= applied`); returns how many.
    pub async fn prune_changes(&self, applied: i64, age_secs: i64) -> Result<u64, StoreError> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "DELETE FROM change_events WHERE id <= $1 AND \
                 created_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('%+d seconds', -$2))"
            }
            Backend::Postgres => {
                "DELETE FROM change_events WHERE id <= $1 AND \
                 created_at < now() - ($2::float8 * interval '1 second')"
            }
        };
        let n = on_pool!(self, |p| sqlx::query(sql)
            .bind(applied)
            .bind(age_secs)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n)
    }

    /// Appends one change on its own (for changes that are not a store write of ours, and for
    /// tests and benchmarks of the feed).
    pub async fn append_change(&self, change: &Change) -> Result<(), StoreError> {
        in_tx!(self, |tx| append_change!(tx, change).await?)?;
        Ok(())
    }

    /// On PostgreSQL, a listener on this schema's change channel, on a connection of its own
    /// (application name `gatehouse-feed`, outside the pool). `None` on SQLite.
    pub async fn change_listener(&self) -> Result<Option<sqlx::postgres::PgListener>, StoreError> {
        let super::Pool::Postgres(p) = &self.pool else {
            return Ok(None);
        };
        let Some(channel) = self.change_channel().await? else {
            return Ok(None);
        };
        let opts = (*p.connect_options())
            .clone()
            .application_name("gatehouse-feed");
        let own = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_lazy_with(opts);
        let mut listener = sqlx::postgres::PgListener::connect_with(&own).await?;
        // A lost connection is reported (`try_recv` gives `None`), not silently made again: the
        // tailer must flush after it.
        listener.eager_reconnect(false);
        listener.listen(&channel).await?;
        Ok(Some(listener))
    }

    /// The PostgreSQL channel this database's (schema's) feed is notified on; see the
    /// `0004_events` migration.
    pub async fn change_channel(&self) -> Result<Option<String>, StoreError> {
        match &self.pool {
            super::Pool::Sqlite(_) => Ok(None),
            super::Pool::Postgres(p) => {
                let name: String = sqlx::query_scalar(
                    "SELECT 'gatehouse_changes_' || md5(n.nspname) FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.oid = 'change_events'::regclass",
                )
                .fetch_one(Counted::new(p, self.counter()))
                .await?;
                Ok(Some(name))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_are_distinct() {
        let mut names: Vec<&str> = ChangeKind::ALL.iter().map(|k| k.as_str()).collect();
        for k in ChangeKind::ALL {
            assert_eq!(ChangeKind::parse(k.as_str()), Some(k));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ChangeKind::ALL.len());
        assert_eq!(ChangeKind::parse("from_a_newer_version"), None);
    }
}
