//! Activity in the console: the log page (`/_auth/admin/activity`) and the rows a user page
//! shows. Per-request rows are left out unless asked for (`requests=1`); the user is named by
//! username, email or id; dates may be plain days; actors and targets show by name with links;
//! details show as key/value pairs.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use minijinja::{Value, context};

use super::form::{self, Fields};
use super::page;
use super::pages::link;
use crate::admin::api::input::parse_time;
use crate::admin::error::ApiError;
use crate::admin::principal::AdminPrincipal;
use crate::admin::service::AdminOps;
use crate::admin::views::ActivityView;
use crate::app::App;
use crate::audit::ActivityKind;
use crate::store::{ActivityFilter, Ts, UserId};

const PAGE_SIZE: i64 = 50;

/// A time filter: a plain day (`2026-11-30`, UTC; the start of that day, or for an end bound
/// the start of the next, so the whole day is in), a `datetime-local` value, or RFC 3339.
fn time_bound(key: &str, s: &str, end: bool) -> Result<Ts, ApiError> {
    let s = s.trim();
    if let Ok(day) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let day = if end {
            day.succ_opt().unwrap_or(day)
        } else {
            day
        };
        return Ok(Ts(day.and_time(chrono::NaiveTime::MIN).and_utc()));
    }
    for fmt in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(Ts(t.and_utc()));
        }
    }
    parse_time(key, s).map_err(|_| {
        ApiError::invalid(
            key,
            format!("{s:?} is not a date (2026-11-30) or a time (2026-11-30T08:00:00Z)"),
        )
    })
}

/// The filter for the log page's query: `type`, `user` (username, email or id) or `user_id`,
/// `from`/`to` (or `since`/`until`), `requests=1`, `before`.
async fn filter_of(app: &App, fields: &Fields) -> Result<ActivityFilter, ApiError> {
    let mut f = ActivityFilter {
        limit: PAGE_SIZE,
        activity_type: fields.text("type"),
        ..ActivityFilter::default()
    };
    if let Some(id) = fields.get("user_id") {
        let id = id.trim().parse::<i64>().ok().filter(|n| *n > 0);
        f.user_id = Some(UserId(id.ok_or_else(|| {
            ApiError::invalid("user_id", "must be a user's number")
        })?));
    }
    if let Some(key) = fields.text("user") {
        let user = AdminOps::new(app)
            .find_user(&key)
            .await
            .map_err(|e| match e {
                ApiError::NotFound(_) => {
                    ApiError::invalid("user", format!("no user has the name, email or id {key:?}"))
                }
                other => other,
            })?;
        f.user_id = Some(user.id);
    }
    for (key, end) in [
        ("since", false),
        ("from", false),
        ("until", true),
        ("to", true),
    ] {
        if let Some(v) = fields.get(key) {
            let t = time_bound(key, v, end)?;
            if end {
                f.until = Some(t)
            } else {
                f.since = Some(t)
            }
        }
    }
    if let Some(b) = fields.get("before") {
        f.before_id = Some(
            b.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::invalid("before", "must be a row number"))?,
        );
    }
    let request = ActivityKind::Request.as_str();
    if fields.get("requests") != Some("1") && f.activity_type.as_deref() != Some(request) {
        f.exclude_type = Some(request.to_string());
    }
    Ok(f)
}

pub async fn page_of_log(
    app: &App,
    req: &Request<Incoming>,
    admin: &AdminPrincipal,
) -> Result<Response<Body>, ApiError> {
    let fields = form::query(req.uri());
    let mut status = StatusCode::OK;
    let mut error = None;
    let mut error_fields = Vec::new();
    let mut rows = Vec::new();
    let mut next = None;
    match filter_of(app, &fields).await {
        Ok(f) => {
            let p = AdminOps::new(app).activity_page(&f).await?;
            rows = rows_of(app, &p.activity).await?;
            next = p
                .next_before
                .map(|b| link(&fields, &[("before", b.to_string())]));
        }
        Err(e) if e.is_server_side() => return Err(e),
        Err(e) => {
            status = e.status_and_code().0;
            error_fields = e.fields().to_vec();
            error = Some(e.public_message());
        }
    }
    let f = |k: &str| fields.get(k).unwrap_or("").to_string();
    let user = fields.get("user").or(fields.get("user_id")).unwrap_or("");
    page(
        app,
        req.headers(),
        admin,
        "admin/activity.html",
        status,
        context! {
            rows, next, error, error_fields,
            newest => fields.get("before").map(|_| link(&fields, &[("before", String::new())])),
            kinds => ActivityKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            type_ => f("type"), user => user,
            from => fields.get("from").or(fields.get("since")).unwrap_or(""),
            to => fields.get("to").or(fields.get("until")).unwrap_or(""),
            requests => fields.get("requests") == Some("1"),
        },
    )
}

/// A user's latest security events (no request rows), for their page.
pub async fn recent_of(app: &App, id: UserId) -> Result<Vec<Value>, ApiError> {
    let f = ActivityFilter {
        user_id: Some(id),
        exclude_type: Some(ActivityKind::Request.as_str().to_string()),
        limit: 20,
        ..ActivityFilter::default()
    };
    let p = AdminOps::new(app).activity_page(&f).await?;
    rows_of(app, &p.activity).await
}

/// The acting user a row's metadata names, if any.
fn actor_of(a: &ActivityView) -> Option<UserId> {
    a.metadata.as_ref()?.get("actor")?.as_i64().map(UserId)
}

/// Rows for `activity_table.html`: the user and actor by name, details as pairs.
async fn rows_of(app: &App, rows: &[ActivityView]) -> Result<Vec<Value>, ApiError> {
    let ids: Vec<UserId> = rows
        .iter()
        .flat_map(|a| [a.user_id, actor_of(a)])
        .flatten()
        .collect();
    let names = AdminOps::new(app).usernames(&ids).await?;
    let person =
        |id: Option<UserId>| id.map(|id| context! { id => id.0, name => names.get(&id).cloned() });
    Ok(rows
        .iter()
        .map(|a| {
            context! {
                row => Value::from_serialize(a),
                user => person(a.user_id),
                actor => person(actor_of(a)),
                details => details(a.metadata.as_ref()),
            }
        })
        .collect())
}

/// Metadata as (key, text) pairs, the actor left out (it has its own column).
fn details(meta: Option<&serde_json::Value>) -> Vec<(String, String)> {
    fn text(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "–".into(),
            serde_json::Value::Array(items) => {
                items.iter().map(text).collect::<Vec<_>>().join(", ")
            }
            other => other.to_string(),
        }
    }
    match meta {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Object(m)) => m
            .iter()
            .filter(|(k, _)| k.as_str() != "actor")
            .map(|(k, v)| (k.clone(), text(v)))
            .collect(),
        Some(other) => vec![("value".into(), text(other))],
    }
}

use crate::web::Body;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_days_cover_the_whole_day() {
        let from = time_bound("from", "2026-11-30", false).unwrap();
        let to = time_bound("to", "2026-11-30", true).unwrap();
        assert_eq!(from.0.to_rfc3339(), "2026-11-30T00:00:00+00:00");
        assert_eq!(to.0.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        let t = time_bound("from", "2026-11-30T08:00:00Z", false).unwrap();
        assert_eq!(t.0.to_rfc3339(), "2026-11-30T08:00:00+00:00");
        assert!(time_bound("from", "yesterday", false).is_err());
    }

    #[test]
    fn details_are_pairs_without_the_actor() {
        let m = serde_json::json!({"actor": 1, "fields": ["a", "b"], "reason": "gone"});
        assert_eq!(
            details(Some(&m)),
            vec![
                ("fields".to_string(), "a, b".to_string()),
                ("reason".to_string(), "gone".to_string())
            ]
        );
    }
}
