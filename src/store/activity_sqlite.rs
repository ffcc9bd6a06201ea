//! The activity writer's own connection to a SQLite store.
//!
//! Through the pool a batch costs, per row, an argument object per value (each text copied into
//! it, then dropped) and a hop to sqlx's worker thread per statement; the rows themselves had to
//! be owned strings first. Here the writer's thread owns a connection, binds each row's values
//! straight from borrowed text into one prepared statement, and runs the batch in one
//! transaction. Same file, same settings as the pool's connections (WAL, `synchronous =
//! NORMAL`, a busy timeout for when another connection holds the write lock), except foreign
//! keys: see [`insert_sql`].

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::activity::{SQLITE_INTO_JOINED, SQLITE_JOIN_USERS};
use super::{Store, StoreError};

/// Rows per statement, largest first: a batch is cut into statements of these sizes only, each
/// prepared once per connection. One statement per row costs about twice as much per row
/// (cursors on the table, its three indexes and `users` opened and closed for each); beyond 32
/// rows the saving is small, and a statement is also the unit of work between two chances for
/// a request thread on the same core to run (see `ActivityInserter::insert`).
const CHUNKS: [usize; 3] = [32, 8, 1];
const COLUMNS: usize = 7;

/// The rows' user ids are joined to `users`, so a row whose user no longer exists is stored
/// unlinked (as `ON DELETE SET NULL` left the rows written before the user went) instead of
/// failing the batch. A foreign-key check on the writer's connection would refuse that row,
/// and with it every other row of the batch, five times over until the batch was dropped.
///
/// The join is also why this connection leaves foreign keys off and conflicts roll the whole
/// transaction back (`OR ROLLBACK`, the batch being the unit of retry anyway): with an
/// immediate foreign key or an `ABORT` conflict SQLite must be able to undo one statement
/// alone, and keeps a statement journal of every page a multi-row statement touches. Joined
/// rows cannot break the key: the join reads `users` inside the batch's write transaction.
/// Together, about 2,300 instructions less per row (`bench/README.md`, eighth round).
fn insert_sql(rows: usize) -> String {
    let mut sql = format!("INSERT OR ROLLBACK {SQLITE_INTO_JOINED}VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?,?)");
    }
    // The left operand of a LEFT JOIN stays the outer loop: rows go in as they were bound.
    sql.push_str(SQLITE_JOIN_USERS);
    sql
}

static INSERTS: std::sync::LazyLock<[String; 3]> =
    std::sync::LazyLock::new(|| CHUNKS.map(insert_sql));

/// One row, borrowed; `created_at` in the store's SQLite text form (`Ts::to_sqlite_text`).
#[derive(Debug, Clone, Copy)]
pub struct ActivityRef<'a> {
    pub user_id: Option<i64>,
    pub activity_type: &'a str,
    pub description: Option<&'a str>,
    pub ip_address: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// JSON text.
    pub metadata: Option<&'a str>,
    pub created_at: &'a str,
}

/// A connection for writing activity batches; blocking, so it lives on a thread of its own.
pub struct SqliteActivityWriter {
    conn: Connection,
    /// For the background statement count (one per batch, as through the pool).
    store: Store,
}

/// Inserts the rows of one batch (see [`SqliteActivityWriter::write_batch`]), binding each
/// into the current multi-row statement and running it once it is full.
pub struct ActivityInserter<'t> {
    tx: &'t rusqlite::Transaction<'t>,
    /// Rows of the batch not yet bound.
    left: usize,
    /// The statement being filled, its row count, and rows bound so far.
    current: Option<(rusqlite::CachedStatement<'t>, usize, usize)>,
    /// Offer the core after each statement (see `insert`).
    yield_between: bool,
}

impl ActivityInserter<'_> {
    pub fn insert(&mut self, r: ActivityRef<'_>) -> Result<(), StoreError> {
        if self.left == 0 {
            return Err(StoreError::BatchSize);
        }
        // A statement that ran stays current while the rows left fill another of its size:
        // returned to the cache, it would have all its bindings cleared first.
        if let Some((_, rows, 0)) = &self.current
            && *rows > self.left
        {
            self.current = None;
        }
        let (stmt, rows, bound) = match &mut self.current {
            Some(c) => c,
            None => {
                let (i, &rows) = CHUNKS
                    .iter()
                    .enumerate()
                    .find(|&(_, &n)| n <= self.left)
                    .ok_or(StoreError::BatchSize)?;
                let stmt = self.tx.prepare_cached(&INSERTS[i])?;
                self.current.insert((stmt, rows, 0))
            }
        };
        let at = *bound * COLUMNS;
        stmt.raw_bind_parameter(at + 1, r.user_id)?;
        stmt.raw_bind_parameter(at + 2, r.activity_type)?;
        stmt.raw_bind_parameter(at + 3, r.description)?;
        stmt.raw_bind_parameter(at + 4, r.ip_address)?;
        stmt.raw_bind_parameter(at + 5, r.user_agent)?;
        stmt.raw_bind_parameter(at + 6, r.metadata)?;
        stmt.raw_bind_parameter(at + 7, r.created_at)?;
        *bound += 1;
        self.left -= 1;
        if *bound == *rows {
            stmt.raw_execute()?;
            *bound = 0;
            // A batch is milliseconds of work. The scheduler lets a running thread finish its
            // time slice before a request thread that wakes up on the same core may run, lower
            // priority or not; offering the core after each statement bounds that wait by one
            // statement's work (about 0.1 ms) instead of the batch's. Not when the writer is
            // behind: on a core that request threads keep busy, each offer costs the writer a
            // whole time slice of theirs, and it fell behind for good (about 30,000 rows/s,
            // a tenth of what it writes alone) until the full queue held the requests up.
            if self.yield_between {
                std::thread::yield_now();
            }
        }
        Ok(())
    }
}

impl SqliteActivityWriter {
    pub(super) fn open(file: &Path, store: Store) -> Result<SqliteActivityWriter, StoreError> {
        let conn = Connection::open_with_flags(
            file,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // The pool set WAL on the file when it created it; these are per connection.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Checked by the insert's join instead (see `insert_sql`).
        conn.pragma_update(None, "foreign_keys", false)?;
        // Temporary structures (a statement journal, which the insert no longer needs, or a
        // materialised subquery) in memory: on disk a statement journal was a temporary file
        // per batch and about one extra `pwrite` per row.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        Ok(SqliteActivityWriter { conn, store })
    }

    /// Runs `fill` in one transaction; it inserts the batch's `rows` rows, no more and no
    /// fewer, through the inserter it is given. An error from `fill` or the commit, or a row
    /// count other than `rows`, rolls the whole batch back. With `yield_between`, the thread
    /// offers its core to other threads after each statement (for when the writer keeps up).
    pub fn write_batch<F>(
        &mut self,
        rows: usize,
        yield_between: bool,
        fill: F,
    ) -> Result<(), StoreError>
    where
        F: FnOnce(&mut ActivityInserter<'_>) -> Result<(), StoreError>,
    {
        self.store.counter().fetch_add(1, Ordering::Relaxed);
        // IMMEDIATE: take the write lock at BEGIN, waiting out the busy timeout, rather than
        // fail when a read snapshot cannot be upgraded.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut ins = ActivityInserter {
                tx: &tx,
                left: rows,
                current: None,
                yield_between,
            };
            fill(&mut ins)?;
            if ins.left > 0 || matches!(ins.current, Some((_, _, bound)) if bound > 0) {
                return Err(StoreError::BatchSize);
            }
        }
        tx.commit()?;
        Ok(())
    }
}

impl std::fmt::Debug for SqliteActivityWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteActivityWriter")
            .finish_non_exhaustive()
    }
}
