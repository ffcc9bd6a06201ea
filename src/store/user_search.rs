//! The filtered, paged listing of `users` behind the admin API, the console and `user list`.
//!
//! Apart from the reads in `users` because its SQL is built at run time: each filter adds a
//! condition with its value bound (never spliced into the text), through one generic builder
//! shared by the count and the page, so both always select the same rows.

use sqlx::{Database, QueryBuilder};

use super::sql::Bind;
use super::{Store, StoreError, Tier, Ts, UserId, UserRow, on_pool};

/// Filters for listing users. `deleted: None` means "not deleted".
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub active: Option<bool>,
    pub tier: Option<Tier>,
    pub role: Option<String>,
    pub verified: Option<bool>,
    pub deleted: Option<bool>,
    pub search: Option<String>,
    /// Only accounts locked (or not locked) at the time of the query.
    pub locked: Option<bool>,
    pub sort: UserSort,
    pub descending: bool,
    pub limit: i64,
    pub offset: i64,
}

/// The orders a listing may take. The SQL of each is fixed text chosen here, never taken from
/// the request; ties are broken by id so paging is stable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UserSort {
    #[default]
    Id,
    Username,
    Email,
    Tier,
    Created,
    LastLogin,
}

impl UserSort {
    pub const ALL: [UserSort; 6] = [
        UserSort::Id,
        UserSort::Username,
        UserSort::Email,
        UserSort::Tier,
        UserSort::Created,
        UserSort::LastLogin,
    ];

    /// The name used in query strings (`sort=last_login`).
    pub fn as_str(self) -> &'static str {
        match self {
            UserSort::Id => "id",
            UserSort::Username => "username",
            UserSort::Email => "email",
            UserSort::Tier => "tier",
            UserSort::Created => "created",
            UserSort::LastLogin => "last_login",
        }
    }

    pub fn parse(s: &str) -> Option<UserSort> {
        UserSort::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The `ORDER BY` expression; tiers in their order of rank, not alphabetically.
    fn expression(self) -> &'static str {
        match self {
            UserSort::Id => "id",
            UserSort::Username => "lower(username)",
            UserSort::Email => "lower(email)",
            UserSort::Tier => {
                "CASE subscription_tier WHEN 'free' THEN 0 WHEN 'beta' THEN 1 \
                 WHEN 'premium' THEN 2 WHEN 'enterprise' THEN 3 ELSE 4 END"
            }
            UserSort::Created => "created_at",
            UserSort::LastLogin => "last_login",
        }
    }
}

/// Appends ` ORDER BY …` for `f`. Accounts never signed in come last either way (the
/// backends disagree on where NULL sorts).
fn push_order<DB: Database>(qb: &mut QueryBuilder<DB>, f: &UserFilter) {
    let dir = if f.descending { "DESC" } else { "ASC" };
    qb.push(" ORDER BY ");
    if f.sort == UserSort::LastLogin {
        qb.push("(last_login IS NULL), ");
    }
    qb.push(format_args!("{} {dir}, id {dir}", f.sort.expression()));
}

/// Numbers for the console's home page.
#[derive(Debug, Clone, Default)]
pub struct UserOverview {
    /// Live (not deleted) accounts per tier, for the tiers that have any.
    pub by_tier: Vec<(String, i64)>,
    pub locked: i64,
    pub unverified: i64,
    pub deleted: i64,
    pub active_sessions: i64,
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
    match f.locked {
        Some(true) => {
            qb.push(" AND account_locked_until > ").push_bind(now);
        }
        Some(false) => {
            qb.push(" AND (account_locked_until IS NULL OR account_locked_until <= ")
                .push_bind(now)
                .push(")");
        }
        None => {}
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
    /// Lists users matching `f`, in its order, with the total count of matches.
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
            push_order(&mut qb, f);
            qb.push(" LIMIT ")
                .push_bind(f.limit.clamp(0, MAX_PAGE))
                .push(" OFFSET ")
                .push_bind(f.offset.max(0));
            qb.build_query_as::<UserRow>().fetch_all(p).await
        })?;
        Ok((rows, total))
    }

    /// Counts for the console's home page.
    pub async fn user_overview(&self, now: Ts) -> Result<UserOverview, StoreError> {
        let by_tier: Vec<(String, i64)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT subscription_tier, COUNT(*) FROM users WHERE is_deleted = $1 \
             GROUP BY subscription_tier ORDER BY subscription_tier"
        )
        .bind(false)
        .fetch_all(p)
        .await)?;
        let (locked, unverified, deleted): (i64, i64, i64) = on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT \
             COALESCE(SUM(CASE WHEN is_deleted = $1 AND account_locked_until > $2 THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN is_deleted = $1 AND is_verified = $1 THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN is_deleted = $3 THEN 1 ELSE 0 END), 0) FROM users"
        )
        .bind(false)
        .bind(now)
        .bind(true)
        .fetch_one(p)
        .await
        })?;
        let active_sessions: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM user_sessions WHERE is_active AND expires_at > $1"
        )
        .bind(now)
        .fetch_one(p)
        .await)?;
        Ok(UserOverview {
            by_tier,
            locked,
            unverified,
            deleted,
            active_sessions,
        })
    }

    /// Roles held in force by anyone now, sorted; `admin` and `superuser` count when a flag
    /// grants them.
    pub async fn roles_in_use(&self, now: Ts) -> Result<Vec<String>, StoreError> {
        let mut roles: Vec<String> = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT DISTINCT role_name FROM user_roles \
             WHERE is_active AND (expires_at IS NULL OR expires_at > $1)"
        )
        .bind(now)
        .fetch_all(p)
        .await)?;
        let (admins, superusers): (i64, i64) = on_pool!(self, |p| sqlx::query_as(
            "SELECT COALESCE(SUM(CASE WHEN is_admin OR is_superuser THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN is_superuser THEN 1 ELSE 0 END), 0) FROM users"
        )
        .fetch_one(p)
        .await)?;
        for (n, role) in [(admins, "admin"), (superusers, "superuser")] {
            if n > 0 && !roles.iter().any(|r| r == role) {
                roles.push(role.to_string());
            }
        }
        roles.sort();
        Ok(roles)
    }

    /// Usernames of the given accounts (deleted ones included); unknown ids are left out.
    pub async fn usernames(&self, ids: &[UserId]) -> Result<Vec<(UserId, String)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(UserId, String)> = on_pool!(self, |p| {
            let mut qb = QueryBuilder::new("SELECT id, username FROM users WHERE id IN (");
            let mut list = qb.separated(", ");
            for id in ids {
                list.push_bind(id.0);
            }
            qb.push(")");
            qb.build_query_as().fetch_all(p).await
        })?;
        Ok(rows)
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
