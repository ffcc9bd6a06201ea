//! The filtered, paged listing of `users` behind the admin API, the console and `user list`.
//!
//! Apart from the reads in `users` because its SQL is built at run time: each filter adds a
//! condition with its value bound (never spliced into the text), through one generic builder
//! shared by the count and the page, so both always select the same rows.

use sqlx::{Database, QueryBuilder};

use super::sql::Bind;
use super::{Store, StoreError, Tier, Ts, UserRow, on_pool};

/// Filters for listing users. `deleted: None` means "not deleted".
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub active: Option<bool>,
    pub tier: Option<Tier>,
    pub role: Option<String>,
    pub verified: Option<bool>,
    pub deleted: Option<bool>,
    pub search: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// The most rows one page may ask for.
const MAX_PAGE: i64 = 10_000;

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
pub(crate) fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The columns a search term is looked for in.
const SEARCHED: [&str; 4] = [
    "lower(username)",
    "lower(email)",
    "lower(COALESCE(full_name, ''))",
    "lower(COALESCE(company_name, ''))",
];

/// Appends ` WHERE …` for `f`; a role is in force at `now`.
fn push_where<DB>(qb: &mut QueryBuilder<DB>, f: &UserFilter, now: Ts)
where
    DB: Database,
    bool: Bind<DB>,
    String: Bind<DB>,
    Ts: Bind<DB>,
{
    qb.push(" WHERE is_deleted = ")
        .push_bind(f.deleted.unwrap_or(false));
    if let Some(a) = f.active {
        qb.push(" AND is_active = ").push_bind(a);
    }
    if let Some(v) = f.verified {
        qb.push(" AND is_verified = ").push_bind(v);
    }
    if let Some(t) = f.tier {
        qb.push(" AND subscription_tier = ")
            .push_bind(t.as_str().to_string());
    }
    if let Some(role) = &f.role {
        // The flags grant these roles without a row in `user_roles`.
        let implicit = match role.as_str() {
            "admin" => " OR is_admin OR is_superuser",
            "superuser" => " OR is_superuser",
            _ => "",
        };
        qb.push(
            " AND (EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = users.id \
             AND r.role_name = ",
        )
        .push_bind(role.clone())
        .push(" AND r.is_active AND (r.expires_at IS NULL OR r.expires_at > ")
        .push_bind(now)
        .push(format_args!(")){implicit})"));
    }
    if let Some(s) = f.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let pattern = like_pattern(s);
        qb.push(" AND (");
        let mut any = qb.separated(" OR ");
        for col in SEARCHED {
            any.push(format_args!("{col} LIKE "))
                .push_bind_unseparated(pattern.clone())
                .push_unseparated(" ESCAPE '\\'");
        }
        qb.push(")");
    }
}

impl Store {
    /// Lists users matching `f`, ordered by id, with the total count of matches.
    pub async fn list_users(
        &self,
        f: &UserFilter,
        now: Ts,
    ) -> Result<(Vec<UserRow>, i64), StoreError> {
        let total: i64 = on_pool!(self, |p| {
            let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM users");
            push_where(&mut qb, f, now);
            qb.build_query_scalar().fetch_one(p).await
        })?;
        let rows = on_pool!(self, |p| {
            let mut qb = QueryBuilder::new("SELECT * FROM users");
            push_where(&mut qb, f, now);
            qb.push(" ORDER BY id LIMIT ")
                .push_bind(f.limit.clamp(0, MAX_PAGE))
                .push(" OFFSET ")
                .push_bind(f.offset.max(0));
            qb.build_query_as::<UserRow>().fetch_all(p).await
        })?;
        Ok((rows, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_bind_every_value() {
        let f = UserFilter {
            active: Some(true),
            role: Some("admin".into()),
            search: Some(" 50%_off ".into()),
            ..UserFilter::default()
        };
        let mut qb = QueryBuilder::<sqlx::Postgres>::new("SELECT COUNT(*) FROM users");
        push_where(&mut qb, &f, Ts(chrono::DateTime::UNIX_EPOCH));
        let sql = qb.into_string();
        assert!(sql.starts_with(
            "SELECT COUNT(*) FROM users WHERE is_deleted = $1 AND is_active = $2 AND (EXISTS"
        ));
        assert!(sql.contains("r.role_name = $3 AND"));
        assert!(sql.contains("r.expires_at > $4)) OR is_admin OR is_superuser)"));
        assert!(sql.ends_with(
            "(lower(username) LIKE $5 ESCAPE '\\' OR lower(email) LIKE $6 ESCAPE '\\' \
             OR lower(COALESCE(full_name, '')) LIKE $7 ESCAPE '\\' \
             OR lower(COALESCE(company_name, '')) LIKE $8 ESCAPE '\\')"
        ));
        assert_eq!(like_pattern("50%_Off\\"), "%50\\%\\_off\\\\%");
    }
}
