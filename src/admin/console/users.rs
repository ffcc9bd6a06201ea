//! The users list: one filter bar (search, tier, role in use, status), sortable columns, page
//! size, CSV export of the same selection, and the create-user form.

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use minijinja::{Value, context};

use super::form::{self, Fields};
use super::pages::link;
use super::{BASE, page};
use crate::accounts::UserView;
use crate::admin::api::input::Query;
use crate::admin::api::users::user_filter;
use crate::admin::error::ApiError;
use crate::admin::principal::AdminPrincipal;
use crate::admin::service::AdminOps;
use crate::admin::views::NewUserBody;
use crate::app::App;
use crate::store::{TIERS, UserFilter, UserSort};
use crate::web::{Body, respond};

/// Page sizes offered; anything else is refused.
const PAGE_SIZES: [i64; 3] = [25, 50, 100];

/// The status filter: each a fixed combination of the store's flags.
const STATUSES: [(&str, &str); 6] = [
    ("active", "active"),
    ("inactive", "inactive"),
    ("locked", "locked"),
    ("unverified", "unverified"),
    ("verified", "verified"),
    ("deleted", "deleted"),
];

/// Rows per query while exporting (the export walks every page of the selection).
const EXPORT_CHUNK: i64 = 1_000;

/// The listing's filters: the API's (`q`, `tier`, `role`, `is_active`, `verified`, `deleted`)
/// plus `status`, `sort`, `dir`, `per_page` and `offset`.
fn filter_of(fields: &Fields) -> Result<UserFilter, ApiError> {
    let q = Query::from_pairs(fields.pairs().filter(|(k, _)| k.as_str() != "limit"));
    let mut f = user_filter(&q)?;
    match fields.get("status") {
        None => {}
        Some("active") => {
            f.active = Some(true);
            f.locked = Some(false);
        }
        Some("inactive") => f.active = Some(false),
        Some("locked") => f.locked = Some(true),
        Some("unverified") => f.verified = Some(false),
        Some("verified") => f.verified = Some(true),
        Some("deleted") => f.deleted = Some(true),
        Some(_) => {
            return Err(ApiError::invalid(
                "status",
                "must be active, inactive, locked, unverified, verified or deleted",
            ));
        }
    }
    if let Some(s) = fields.get("sort") {
        f.sort = UserSort::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "sort",
                "must be id, username, email, tier, created or last_login",
            )
        })?;
    }
    f.descending = match fields.get("dir") {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(ApiError::invalid("dir", "must be asc or desc")),
    };
    f.limit = match q.int("per_page", 1, 100)? {
        None => PAGE_SIZES[0],
        Some(n) if PAGE_SIZES.contains(&n) => n,
        Some(_) => return Err(ApiError::invalid("per_page", "must be 25, 50 or 100")),
    };
    Ok(f)
}

/// What the create-user form showed when it failed, to show it again.
#[derive(Debug, Default)]
pub struct CreateForm {
    pub error: Option<ApiError>,
    pub values: Vec<(String, String)>,
}

pub async fn list(
    app: &App,
    req: &Request<Incoming>,
    admin: &AdminPrincipal,
) -> Result<Response<Body>, ApiError> {
    render(
        app,
        req.headers(),
        form::query(req.uri()),
        admin,
        CreateForm::default(),
    )
    .await
}

/// The list page for the filters in `fields`, with the create form's outcome.
async fn render(
    app: &App,
    headers: &http::HeaderMap,
    fields: Fields,
    admin: &AdminPrincipal,
    create: CreateForm,
) -> Result<Response<Body>, ApiError> {
    let ops = AdminOps::new(app);
    let mut status = create
        .error
        .as_ref()
        .map_or(StatusCode::OK, |e| e.status_and_code().0);
    let mut error = None;
    let (filter, (users, total)) = match filter_of(&fields) {
        Ok(f) => {
            let found = ops.list_users(admin, &f).await?;
            (f, found)
        }
        Err(e) => {
            status = e.status_and_code().0;
            error = Some(e.public_message());
            let f = UserFilter {
                limit: PAGE_SIZES[0],
                ..UserFilter::default()
            };
            (f, (Vec::new(), 0))
        }
    };
    let per = filter.limit;
    let prev = (filter.offset > 0).then(|| {
        link(
            &fields,
            &[("offset", (filter.offset - per).max(0).to_string())],
        )
    });
    let next = (filter.offset + per < total)
        .then(|| link(&fields, &[("offset", (filter.offset + per).to_string())]));
    let columns: Vec<Value> = UserSort::ALL
        .iter()
        .map(|&s| {
            let current = filter.sort == s;
            let dir = if current && !filter.descending { "desc" } else { "asc" };
            context! {
                key => s.as_str(),
                href => link(&fields, &[("sort", s.as_str().to_string()), ("dir", dir.to_string()), ("offset", String::new())]),
                aria_sort => current.then_some(if filter.descending { "descending" } else { "ascending" }),
            }
        })
        .collect();
    let f = |k: &str| fields.get(k).unwrap_or("").to_string();
    let roles = ops.roles_in_use().await?;
    let create_value = |k: &str| {
        create
            .values
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    page(
        app,
        headers,
        admin,
        "admin/users.html",
        status,
        context! {
            users => Value::from_serialize(&users),
            total,
            first => if total == 0 { 0 } else { filter.offset + 1 },
            last => filter.offset + users.len() as i64,
            prev, next, error,
            export => link(&fields, &[("offset", String::new())]),
            columns => columns,
            tiers => TIERS.to_vec(),
            roles,
            statuses => STATUSES.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            page_sizes => PAGE_SIZES.to_vec(),
            per_page => per,
            q => f("q"), tier => f("tier"), role => f("role"), status_ => f("status"),
            sort => filter.sort.as_str(), dir => if filter.descending { "desc" } else { "asc" },
            create_error => create.error.as_ref().map(ApiError::public_message),
            create_fields => create.error.as_ref().map(|e| e.fields().to_vec()),
            create_open => create.error.is_some(),
            new_username => create_value("username"),
            new_email => create_value("email"),
            new_tier => create_value("tier"),
        },
    )
}

/// `GET /_auth/admin/users.csv`: every user the same filters select, as CSV.
pub async fn csv(
    app: &App,
    req: &Request<Incoming>,
    admin: &AdminPrincipal,
) -> Result<Response<Body>, ApiError> {
    let fields = form::query(req.uri());
    let mut filter = filter_of(&fields)?;
    filter.limit = EXPORT_CHUNK;
    filter.offset = 0;
    let ops = AdminOps::new(app);
    let mut out = String::from(
        "id,username,email,name,company,tier,status,roles,created_at,last_login,login_count\r\n",
    );
    loop {
        let (users, total) = ops.list_users(admin, &filter).await?;
        for u in &users {
            csv_row(&mut out, u);
        }
        filter.offset += EXPORT_CHUNK;
        if users.is_empty() || filter.offset >= total {
            break;
        }
    }
    let mut r = respond::text(StatusCode::OK, out);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"users.csv\""),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

fn csv_row(out: &mut String, u: &UserView) {
    let status = if u.is_deleted {
        "deleted"
    } else if u.is_locked {
        "locked"
    } else if u.is_active {
        "active"
    } else {
        "inactive"
    };
    let cells = [
        u.id.0.to_string(),
        u.username.clone(),
        u.email.clone(),
        u.full_name.clone().unwrap_or_default(),
        u.company_name.clone().unwrap_or_default(),
        u.subscription_tier.clone(),
        status.to_string(),
        u.roles.join(" "),
        u.created_at.0.to_rfc3339(),
        u.last_login.map(|t| t.0.to_rfc3339()).unwrap_or_default(),
        u.login_count.to_string(),
    ];
    let cells: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
    out.push_str(&cells.join(","));
    out.push_str("\r\n");
}

/// One CSV cell. A cell a spreadsheet would read as a formula (starting with `=`, `+`, `-`,
/// `@`, tab or carriage return) gets a leading `'`, so opening the export runs nothing;
/// cells with separators, quotes or line breaks are quoted.
pub fn csv_cell(s: &str) -> String {
    let mut cell = String::with_capacity(s.len() + 3);
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        cell.push('\'');
    }
    cell.push_str(s);
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell
    }
}

/// `POST /_auth/admin/users`: creates an account without a password; the new user gets the
/// mailed link to set one. Errors show the list again with the form open.
pub async fn create(
    app: &App,
    req: Request<Incoming>,
    admin: &AdminPrincipal,
) -> Result<Response<Body>, ApiError> {
    let (parts, fields) = form::read(req).await?;
    super::actions::check_csrf(app, &parts.headers, &fields)?;
    let text = |k: &str| fields.get(k).unwrap_or("").trim().to_string();
    let body = NewUserBody {
        username: text("username"),
        email: text("email"),
        subscription_tier: Some(text("tier")).filter(|t| !t.is_empty()),
        ..NewUserBody::default()
    };
    match AdminOps::new(app).create_user(admin, body).await {
        Ok((user, _)) => Ok(respond::redirect(
            StatusCode::SEE_OTHER,
            &format!("{BASE}/users/{}?done=created", user.id),
        )),
        Err(e) if e.is_server_side() => Err(e),
        Err(e) => {
            let values = ["username", "email", "tier"]
                .iter()
                .map(|k| (k.to_string(), text(k)))
                .collect();
            let create = CreateForm {
                error: Some(e),
                values,
            };
            render(app, &parts.headers, form::query(&parts.uri), admin, create).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn cells_never_start_a_formula() {
        assert_eq!(csv_cell("=1+2"), "'=1+2");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("-5"), "'-5");
        assert_eq!(csv_cell("+x"), "'+x");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("=\"x\",1"), "\"'=\"\"x\"\",1\"");
        assert_eq!(csv_cell("plain"), "plain");
    }
}
