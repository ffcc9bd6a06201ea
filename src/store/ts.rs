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

    /// [`Ts::to_sqlite_text`] written into `out` (cleared first): the activity writer fills
    /// one such column per row, and formatting machinery cost more than the row's insert
    /// into its index. Years outside 0–9999 and leap seconds take the general path.
    pub fn write_sqlite_text(self, out: &mut String) {
        use chrono::{Datelike, Timelike};
        out.clear();
        let (d, t) = (self.0.date_naive(), self.0.time());
        let (year, nanos) = (d.year(), t.nanosecond());
        let Ok(year) = u32::try_from(year) else {
            out.push_str(&self.to_sqlite_text());
            return;
        };
        if year > 9999 || nanos >= 1_000_000_000 {
            out.push_str(&self.to_sqlite_text());
            return;
        }
        let mut buf = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut v: u32| {
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, d.month());
        put(8, 2, d.day());
        put(11, 2, t.hour());
        put(14, 2, t.minute());
        put(17, 2, t.second());
        put(20, 6, nanos / 1000);
        match std::str::from_utf8(&buf) {
            Ok(text) => out.push_str(text),
            Err(_) => out.push_str(&self.to_sqlite_text()),
        }
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
    fn sqlite_text_written_in_place_is_the_same_text() {
        let mut out = String::from("left over");
        let samples = [
            Utc.with_ymd_and_hms(2026, 11, 27, 0, 28, 4).unwrap(),
            Utc.with_ymd_and_hms(1999, 1, 9, 23, 59, 59).unwrap()
                + chrono::Duration::microseconds(7),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap()
                + chrono::Duration::nanoseconds(999_999_999),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-5, 3, 1, 12, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 1, 7, 30, 0).unwrap()
                + chrono::Duration::microseconds(123_456),
        ];
        for t in samples {
            Ts(t).write_sqlite_text(&mut out);
            assert_eq!(out, Ts(t).to_sqlite_text());
        }
        // A leap second (chrono keeps it as nanoseconds past 1e9).
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_micro_opt(23, 59, 59, 1_500_000)
            .unwrap()
            .and_utc();
        Ts(leap).write_sqlite_text(&mut out);
        assert_eq!(out, Ts(leap).to_sqlite_text());
    }

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
