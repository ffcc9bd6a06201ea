//! The legacy database the leads come from: SQLite, PostgreSQL or MySQL/MariaDB.
//!
//! A legacy table is messy: the same flag may be an integer, a boolean, `'t'` or `'yes'`, and
//! a timestamp a native type in one engine and text in another. So every column is read as
//! text, cast by the engine itself (which knows how to print each of its types), and
//! [`super::convert`] reads the text. Rows are streamed in id order, never held all at once.

use std::str::FromStr;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{ColumnIndex, ConnectOptions, Decode, Row};

use super::ImportError;
use crate::store::mask_url;

/// A column of the source table, with the engine's name for its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceColumn {
    pub name: String,
    pub data_type: String,
}

/// A table name, optionally qualified by a schema (PostgreSQL), database (MySQL) or attached
/// database (SQLite): `leads` or `legacy.leads`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    pub fn parse(s: &str) -> TableName {
        match s.trim().split_once('.') {
            Some((schema, name)) => TableName {
                schema: Some(schema.to_string()),
                name: name.to_string(),
            },
            None => TableName {
                schema: None,
                name: s.trim().to_string(),
            },
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One source row: the selected columns as text, `None` for SQL NULL.
pub type TextRow = Vec<Option<String>>;

#[derive(Debug, Clone)]
pub enum Source {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// Expands `$body` once per engine with `$p` bound to that engine's pool.
macro_rules! on_source {
    ($source:expr, |$p:ident| $body:expr) => {
        match $source {
            Source::Sqlite($p) => $body,
            Source::Postgres($p) => $body,
            Source::MySql($p) => $body,
        }
    };
}

impl Source {
    /// Opens `url`: `sqlite://PATH` (or a bare path to an existing file), `postgres://...`,
    /// `mysql://...` or `mariadb://...`. A SQLite file is never created. Statement logging is
    /// off: reading the whole table is one long statement by design, which sqlx would otherwise
    /// report as slow.
    pub async fn connect(url: &str) -> Result<Source, ImportError> {
        let masked = mask_url(url);
        let err = |source: sqlx::Error| ImportError::SourceConnect {
            url: masked.clone(),
            source,
        };
        let timeout = Duration::from_secs(10);
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)
                .map_err(err)?
                .disable_statement_logging();
            let pool = PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(timeout)
                .connect_with(opts)
                .await
                .map_err(err)?;
            return Ok(Source::Postgres(pool));
        }
        if let Some(rest) = url
            .strip_prefix("mysql://")
            .or_else(|| url.strip_prefix("mariadb://"))
        {
            let opts = MySqlConnectOptions::from_str(&format!("mysql://{rest}"))
                .map_err(err)?
                .disable_statement_logging();
            let pool = MySqlPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(timeout)
                .connect_with(opts)
                .await
                .map_err(err)?;
            return Ok(Source::MySql(pool));
        }
        let opts = if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url).map_err(err)?
        } else if !url.contains("://") && std::path::Path::new(url).is_file() {
            SqliteConnectOptions::new().filename(url)
        } else {
            return Err(ImportError::UnsupportedSource(masked));
        };
        let opts = opts.disable_statement_logging();
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .acquire_timeout(timeout)
            // Rows cross from SQLite's worker thread one by one; a deep channel lets the worker
            // run ahead instead of waking this side for every row.
            .connect_with(opts.create_if_missing(false).row_buffer_size(4096))
            .await
            .map_err(err)?;
        Ok(Source::Sqlite(pool))
    }

    pub fn engine(&self) -> &'static str {
        match self {
            Source::Sqlite(_) => "SQLite",
            Source::Postgres(_) => "PostgreSQL",
            Source::MySql(_) => "MySQL/MariaDB",
        }
    }

    /// The table's columns in table order, read from the engine's catalogue.
    pub async fn columns(&self, table: &TableName) -> Result<Vec<SourceColumn>, ImportError> {
        let sql = match self {
            Source::Sqlite(_) => {
                "SELECT name, type FROM pragma_table_info($2, COALESCE($1, 'main')) ORDER BY cid"
            }
            Source::Postgres(_) => {
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = COALESCE($1::text, current_schema()::text) \
                 AND table_name = $2::text ORDER BY ordinal_position"
            }
            Source::MySql(_) => {
                "SELECT CAST(column_name AS CHAR), CAST(data_type AS CHAR) \
                 FROM information_schema.columns \
                 WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? \
                 ORDER BY ordinal_position"
            }
        };
        let rows: Vec<TextRow> = on_source!(self, |p| sqlx::query(sql)
            .bind(table.schema.as_deref())
            .bind(table.name.as_str())
            .fetch_all(p)
            .await
            .map(|rows| rows.iter().map(row_texts).collect()))
        .map_err(ImportError::Source)?;
        let columns: Vec<SourceColumn> = rows
            .into_iter()
            .filter_map(|r| {
                let mut r = r.into_iter();
                let name = r.next().flatten()?;
                let data_type = r.next().flatten().unwrap_or_default().to_lowercase();
                Some(SourceColumn { name, data_type })
            })
            .collect();
        if columns.is_empty() {
            return Err(ImportError::NoTable {
                table: table.to_string(),
                engine: self.engine(),
            });
        }
        Ok(columns)
    }

    /// How many rows the table has, for the progress bar.
    pub async fn count(&self, table: &TableName) -> Result<u64, ImportError> {
        let sql = format!("SELECT COUNT(*) FROM {}", self.quote_table(table));
        let n: i64 = on_source!(self, |p| sqlx::query_scalar(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .fetch_one(p)
        .await)
        .map_err(ImportError::Source)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Streams `columns` of every row as text, ordered by `order_by`.
    pub fn rows<'a>(
        &'a self,
        table: &TableName,
        columns: &[SourceColumn],
        order_by: &SourceColumn,
    ) -> BoxStream<'a, Result<TextRow, sqlx::Error>> {
        let select: Vec<String> = columns.iter().map(|c| self.as_text(c)).collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            select.join(", "),
            self.quote_table(table),
            self.quote(&order_by.name)
        );
        on_source!(self, |p| sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch(p)
            .map(|r| r.map(|row| row_texts(&row)))
            .boxed())
    }

    pub async fn close(&self) {
        on_source!(self, |p| p.close().await)
    }

    fn quote(&self, ident: &str) -> String {
        match self {
            Source::MySql(_) => format!("`{}`", ident.replace('`', "``")),
            _ => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }

    fn quote_table(&self, t: &TableName) -> String {
        match &t.schema {
            Some(s) => format!("{}.{}", self.quote(s), self.quote(&t.name)),
            None => self.quote(&t.name),
        }
    }

    /// An expression giving the column's value as text in this engine.
    fn as_text(&self, c: &SourceColumn) -> String {
        let q = self.quote(&c.name);
        match self {
            Source::Sqlite(_) => format!("CAST({q} AS TEXT)"),
            Source::Postgres(_) => format!("{q}::text"),
            // A BIT column casts to raw bytes; as a number it prints as digits.
            Source::MySql(_) if c.data_type == "bit" => format!("CAST({q} + 0 AS CHAR)"),
            Source::MySql(_) => format!("CAST({q} AS CHAR)"),
        }
    }
}

/// Reads every column as text; bytes that are not UTF-8 are read lossily rather than failing
/// the row, since the fields that matter are ASCII.
fn row_texts<R>(row: &R) -> TextRow
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> Option<String>: Decode<'r, R::Database>,
    for<'r> Option<Vec<u8>>: Decode<'r, R::Database>,
{
    (0..row.len())
        .map(|i| match row.try_get_unchecked::<Option<String>, _>(i) {
            Ok(v) => v,
            Err(_) => row
                .try_get_unchecked::<Option<Vec<u8>>, _>(i)
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        assert_eq!(
            TableName::parse("legacy.leads"),
            TableName {
                schema: Some("legacy".into()),
                name: "leads".into()
            }
        );
        assert_eq!(TableName::parse(" leads ").to_string(), "leads");
    }
}
