//! A timestamp that both backends store in a way SQL can compare.
//!
//! PostgreSQL keeps it as `TIMESTAMPTZ`. SQLite has no time type, so it is stored as fixed-width
//! RFC 3339 text (`2026-11-27T00:28:04.123456Z`): fixed width makes text order equal time order,
//! which lets the same `expires_at > $1` query run on both.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ts(pub DateTime<Utc>);

impl Ts {
    pub fn to_sqlite_text(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    /// Reads what SQLite may hold: our own format, other RFC 3339 text, or the
    /// `YYYY-MM-DD HH:MM:SS[.fff]` that `CURRENT_TIMESTAMP` and imported data use.
    pub fn parse_text(s: &str) -> Option<Ts> {
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Some(Ts(t.with_timezone(&Utc)));
        }
        for fmt in [
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S",
        ] {
            if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
                return Some(Ts(t.and_utc()));
            }
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return d.and_hms_opt(0, 0, 0).map(|t| Ts(t.and_utc()));
        }
        None
    }
}

impl From<DateTime<Utc>> for Ts {
    fn from(t: DateTime<Utc>) -> Self {
        Ts(t)
    }
}

impl From<Ts> for DateTime<Utc> {
    fn from(t: Ts) -> Self {
        t.0
    }
}

impl std::fmt::Display for Ts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

impl Type<Sqlite> for Ts {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Ts {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<'_, Sqlite>>::encode(self.to_sqlite_text(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Ts {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let s = <&str as Decode<'r, Sqlite>>::decode(value)?;
        Ts::parse_text(s).ok_or_else(|| format!("not a timestamp: {s:?}").into())
    }
}

impl Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <DateTime<Utc> as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for Ts {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<'_, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Ts {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <DateTime<Utc> as Decode<'r, Postgres>>::decode(value).map(Ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sqlite_text_sorts_like_time() {
        let a = Ts(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap());
        let b = Ts(a.0 + chrono::Duration::microseconds(1));
        let c = Ts(a.0 + chrono::Duration::seconds(10));
        assert!(a.to_sqlite_text() < b.to_sqlite_text());
        assert!(b.to_sqlite_text() < c.to_sqlite_text());
        assert_eq!(a.to_sqlite_text().len(), c.to_sqlite_text().len());
    }

    #[test]
    fn parses_the_forms_sqlite_may_hold() {
        let want = Ts(Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap());
        for s in [
            "2024-05-06T07:08:09Z",
            "2024-05-06 07:08:09",
            "2024-05-06T07:08:09.000",
            "2024-05-06 07:08:09+00:00",
        ] {
            assert_eq!(Ts::parse_text(s), Some(want), "{s}");
        }
        assert_eq!(Ts::parse_text("yesterday"), None);
    }
}
