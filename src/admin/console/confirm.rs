//! The confirmation step of destructive actions: `GET /_auth/admin/users/{id}/{action}` (and
//! any post of the action without `confirm=yes` and a reason) shows a page that says what will
//! happen and asks why; its form posts the action with `confirm=yes` and the reason.

use http::{Response, StatusCode};
use minijinja::{Value, context};

use super::page;
use crate::admin::error::ApiError;
use crate::admin::principal::AdminPrincipal;
use crate::admin::service::AdminOps;
use crate::app::App;
use crate::store::UserId;
use crate::web::Body;

/// The actions that ask for confirmation and a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    Delete,
    ResetTwofa,
    EndAllSessions,
}

impl Confirmed {
    pub fn of(action: &[&str]) -> Option<Confirmed> {
        match action {
            ["delete"] => Some(Confirmed::Delete),
            ["reset-2fa"] => Some(Confirmed::ResetTwofa),
            ["sessions", "revoke-all"] => Some(Confirmed::EndAllSessions),
            _ => None,
        }
    }

    fn path(self) -> &'static str {
        match self {
            Confirmed::Delete => "delete",
            Confirmed::ResetTwofa => "reset-2fa",
            Confirmed::EndAllSessions => "sessions/revoke-all",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Confirmed::Delete => "Delete account",
            Confirmed::ResetTwofa => "Reset two-factor sign-in",
            Confirmed::EndAllSessions => "Sign out everywhere",
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            Confirmed::Delete => "delete the account",
            Confirmed::ResetTwofa => "reset two-factor sign-in",
            Confirmed::EndAllSessions => "sign the user out everywhere",
        }
    }

    fn consequence(self) -> &'static str {
        match self {
            Confirmed::Delete => {
                "The account can no longer sign in and all its sessions end. It can be restored later."
            }
            Confirmed::ResetTwofa => {
                "Two-factor sign-in is turned off: the authenticator key and recovery codes are \
                 removed and the user's sessions end. They can set it up again after signing in."
            }
            Confirmed::EndAllSessions => {
                "Every session of this user ends at once, on every device."
            }
        }
    }
}

/// The confirmation page for `c` on user `id`, with the error of a post that did not confirm.
pub async fn confirm_page(
    app: &App,
    headers: &http::HeaderMap,
    admin: &AdminPrincipal,
    id: UserId,
    c: Confirmed,
    error: Option<&ApiError>,
) -> Result<Response<Body>, ApiError> {
    let ops = AdminOps::new(app);
    let user = ops.load_user(id).await?;
    let view = ops.view(&user).await?;
    page(
        app,
        headers,
        admin,
        "admin/confirm.html",
        error.map_or(StatusCode::OK, |e| e.status_and_code().0),
        context! {
            user => Value::from_serialize(&view),
            title => c.title(),
            consequence => c.consequence(),
            danger => c == Confirmed::Delete,
            path => c.path(),
            error => error.map(ApiError::public_message),
            reason_invalid => error.is_some_and(|e| e.fields().iter().any(|f| f == "reason")),
        },
    )
}
