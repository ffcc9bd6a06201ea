//! The console's home page: counts at a glance, each a link into the list it counts.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use minijinja::context;

use super::page;
use crate::admin::error::ApiError;
use crate::admin::principal::AdminPrincipal;
use crate::admin::service::AdminOps;
use crate::app::App;
use crate::store::TIERS;
use crate::web::Body;

/// A query string value.
fn q(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

pub async fn home(
    app: &App,
    req: &Request<Incoming>,
    admin: &AdminPrincipal,
) -> Result<Response<Body>, ApiError> {
    let o = AdminOps::new(app).overview().await?;
    let mut tiers: Vec<_> = TIERS
        .iter()
        .map(|t| {
            let n = o.users.by_tier.iter().find(|(k, _)| k == t).map_or(0, |(_, n)| *n);
            context! { label => *t, count => n, path => "users", query => format!("tier={t}"), id => format!("count-tier-{t}") }
        })
        .collect();
    // A tier outside the known four (from an import) still shows.
    for (t, n) in o
        .users
        .by_tier
        .iter()
        .filter(|(t, _)| !TIERS.contains(&t.as_str()))
    {
        tiers.push(context! { label => t, count => n, path => "users", query => format!("tier={}", q(t)), id => "" });
    }
    let since = q(&o.since.0.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    let status = [
        (
            "count-locked",
            "Locked accounts",
            o.users.locked,
            ("users", "status=locked".to_string()),
        ),
        (
            "count-unverified",
            "Unverified",
            o.users.unverified,
            ("users", "status=unverified".to_string()),
        ),
        (
            "count-deleted",
            "Deleted",
            o.users.deleted,
            ("users", "status=deleted".to_string()),
        ),
        (
            "count-sessions",
            "Active sessions",
            o.users.active_sessions,
            ("users", "sort=last_login&dir=desc".to_string()),
        ),
        (
            "count-sign-ins",
            "Sign-ins, last 24\u{a0}h",
            o.sign_ins,
            ("activity", format!("type=login&from={since}")),
        ),
        (
            "count-sign-in-failures",
            "Failed sign-ins, last 24\u{a0}h",
            o.sign_in_failures,
            ("activity", format!("type=login_failed&from={since}")),
        ),
    ];
    let status: Vec<_> = status
        .into_iter()
        .map(|(id, label, count, (path, query))| context! { id, label, count, path, query })
        .collect();
    let total: i64 = o.users.by_tier.iter().map(|(_, n)| n).sum();
    page(
        app,
        req.headers(),
        admin,
        "admin/home.html",
        StatusCode::OK,
        context! { tiers, status, total },
    )
}
