//! Backend dispatch, and the one door every statement goes through.
//!
//! The store holds a pool of either backend ([`Pool`]). A query is written once and run with
//! [`on_pool!`], which expands the same code once per backend, each copy typed for its own
//! driver; SQL text with `$n` placeholders is accepted by both. Dynamic SQL is built with
//! [`sqlx::QueryBuilder`] in functions generic over the backend (bounded by [`Bind`]), so the
//! text is one where the backends agree and only the placeholders differ (`?` on SQLite, `$n` on
//! PostgreSQL).
//!
//! ```text
//!  on_pool!(store, |p| query.fetch_one(p))      in_tx!(store, |tx| { query.execute(tx.conn()) … })
//!             │                                              │
//!             └──── Counted executor ── one count per statement, then the driver
//! ```
//!
//! Every statement runs on a [`Counted`] executor: [`on_pool!`] hands the body a counted pool,
//! and a transaction ([`Counted::begin`], `in_tx!`) hands out a counted connection per
//! statement ([`Tx::conn`]). Its `Executor` impl adds one to the store's counter for each
//! statement it runs, so [`Store::query_count`](super::Store::query_count) counts statements,
//! not store calls: a transaction of three statements counts three. `BEGIN` and `COMMIT` are
//! not counted; they are the driver's, not statements the store writes.

use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{Database, Describe, Either, Encode, Execute, Executor, SqlStr, Type};

/// The pool of whichever backend the store was opened on.
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A value that binds on backend `DB`. Stated as one bound (`String: Bind<DB>`) in the where
/// clauses of generic query builders; the blanket impls of sqlx then cover `&T` and `Option<T>`.
pub(crate) trait Bind<DB: Database>: for<'t> Encode<'t, DB> + Type<DB> {}

impl<DB: Database, T: for<'t> Encode<'t, DB> + Type<DB>> Bind<DB> for T {}

/// Expands `$body` once per backend with `$p` bound to that backend's pool, wrapped in a
/// [`Counted`] executor (`Copy`, so the body may run several statements on it).
macro_rules! on_pool {
    ($store:expr, |$p:ident| $body:expr) => {{
        let store: &$crate::store::Store = $store;
        let counter = store.counter();
        match &store.pool {
            $crate::store::sql::Pool::Sqlite(pool) => {
                let $p = $crate::store::sql::Counted::new(pool, counter);
                $body
            }
            $crate::store::sql::Pool::Postgres(pool) => {
                let $p = $crate::store::sql::Counted::new(pool, counter);
                $body
            }
        }
    }};
}
pub(crate) use on_pool;

/// Runs one statement with `$n` binds on either backend; evaluates to rows affected.
macro_rules! execute {
    ($store:expr, $sql:expr $(, $arg:expr)* $(,)?) => {
        $crate::store::sql::on_pool!($store, |p| sqlx::query($sql)$(.bind($arg))*
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
    };
}
pub(crate) use execute;

/// An executor (a pool, or a transaction's connection) that counts each statement it runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counted<'a, E> {
    inner: E,
    counter: &'a AtomicU64,
}

impl<'a, E> Counted<'a, E> {
    pub(crate) fn new(inner: E, counter: &'a AtomicU64) -> Self {
        Counted { inner, counter }
    }

    fn count(&self) {
        self.counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl<'a, DB: Database> Counted<'a, &sqlx::Pool<DB>> {
    /// Begins a transaction whose statements are counted like the pool's.
    pub(crate) async fn begin(self) -> Result<Tx<'a, DB>, sqlx::Error> {
        Ok(Tx {
            tx: self.inner.begin().await?,
            counter: self.counter,
        })
    }

    /// [`Counted::begin`] with the backend's own `BEGIN` statement (e.g. `BEGIN IMMEDIATE`).
    pub(crate) async fn begin_with(self, begin: &'static str) -> Result<Tx<'a, DB>, sqlx::Error> {
        Ok(Tx {
            tx: self.inner.begin_with(begin).await?,
            counter: self.counter,
        })
    }
}

/// A transaction whose statements are counted; commit it, or dropping it rolls back.
#[derive(Debug)]
pub(crate) struct Tx<'a, DB: Database> {
    tx: sqlx::Transaction<'static, DB>,
    counter: &'a AtomicU64,
}

impl<'a, DB: Database> Tx<'a, DB> {
    /// The executor for the transaction's next statement.
    pub(crate) fn conn(&mut self) -> Counted<'a, &mut DB::Connection> {
        Counted::new(&mut *self.tx, self.counter)
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

// Every way of running a statement (`execute`, `fetch_all`, `fetch_one`, ...) ends in
// `fetch_many` or `fetch_optional`, so counting in those two counts each statement once.
impl<'c, E> Executor<'c> for Counted<'_, E>
where
    E: Executor<'c>,
{
    type Database = E::Database;

    fn fetch_many<'e, 'q: 'e, Q>(
        self,
        query: Q,
    ) -> BoxStream<
        'e,
        Result<
            Either<<Self::Database as Database>::QueryResult, <Self::Database as Database>::Row>,
            sqlx::Error,
        >,
    >
    where
        'c: 'e,
        Q: 'q + Execute<'q, Self::Database>,
    {
        self.count();
        self.inner.fetch_many(query)
    }

    fn fetch_optional<'e, 'q: 'e, Q>(
        self,
        query: Q,
    ) -> BoxFuture<'e, Result<Option<<Self::Database as Database>::Row>, sqlx::Error>>
    where
        'c: 'e,
        Q: 'q + Execute<'q, Self::Database>,
    {
        self.count();
        self.inner.fetch_optional(query)
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [<Self::Database as Database>::TypeInfo],
    ) -> BoxFuture<'e, Result<<Self::Database as Database>::Statement, sqlx::Error>>
    where
        'c: 'e,
    {
        self.inner.prepare_with(sql, parameters)
    }

    // Required while sqlx's `macros` feature (which turns on its `offline` feature) is on.
    fn describe<'e>(
        self,
        sql: SqlStr,
    ) -> BoxFuture<'e, Result<Describe<Self::Database>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.inner.describe(sql)
    }
}
