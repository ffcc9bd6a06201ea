//! `/_auth/login` and `/_auth/logout`.

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use minijinja::context;

use super::forms::{self, safe_next};
use super::render_failed;
use crate::accounts::AuthFailure;
use crate::app::App;
use crate::audit::ActivityKind;
use crate::config::Secret;
use crate::session::SessionOptions;
use crate::web::cookies::{self, time_like::Seconds};
use crate::web::csrf::{self, Csrf};
use crate::web::{Body, RequestCtx, respond};

const GENERIC_FAILURE: &str =
    "That username or password is not right, or the account cannot sign in right now.";

pub async fn show(app: &App, req: &Request<Incoming>, _ctx: &RequestCtx) -> Response<Body> {
    let q = forms::query(req.uri());
    let next = safe_next(q.get("next"));
    let csrf = Csrf::for_request(&app.keys, req.headers(), app.secure_cookies());
    login_page(app, &csrf, &next, "", None, StatusCode::OK)
}

fn login_page(
    app: &App,
    csrf: &Csrf,
    next: &str,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response<Body> {
    let page = app.templates.render(
        "login.html",
        context! {
            csrf_token => csrf.token.clone(),
            next,
            username,
            error,
            remember_me => app.settings.session.remember_me_timeout.is_some(),
        },
    );
    page_with_csrf(app, csrf, page, status)
}

/// A rendered form page, setting the CSRF cookie when it is new.
pub fn page_with_csrf(
    app: &App,
    csrf: &Csrf,
    page: Result<String, crate::web::render::RenderError>,
    status: StatusCode,
) -> Response<Body> {
    match page {
        Ok(body) => {
            let mut r = respond::html(status, body);
            if let Some(c) = csrf.set_cookie(app.secure_cookies()) {
                r.headers_mut().append(header::SET_COOKIE, c);
            }
            r
        }
        Err(e) => render_failed(&e),
    }
}

pub fn forbidden_csrf() -> Response<Body> {
    respond::text(
        StatusCode::FORBIDDEN,
        "The form expired or did not come from this site. Go back, reload the page and try again.",
    )
}

pub async fn submit(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> Response<Body> {
    let (parts, form) = match forms::read(req).await {
        Ok(x) => x,
        Err(status) => return respond::text(status, "unreadable form"),
    };
    let secure = app.secure_cookies();
    if !csrf::verify(&app.keys, &parts.headers, secure, form.get(csrf::FIELD)) {
        return forbidden_csrf();
    }
    let csrf = Csrf::for_request(&app.keys, &parts.headers, secure);
    let next = safe_next(form.get("next"));
    let username = form.get("username").unwrap_or("").trim().to_string();
    let password = Secret::new(form.get("password").unwrap_or("").to_string());
    let remember =
        form.get("remember_me").is_some() && app.settings.session.remember_me_timeout.is_some();

    let user = match app
        .accounts
        .authenticate(&username, &password, &ctx.client())
        .await
    {
        Ok(u) => u,
        Err(AuthFailure::InvalidCredentials) => {
            return login_page(
                app,
                &csrf,
                &next,
                &username,
                Some(GENERIC_FAILURE),
                StatusCode::OK,
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-in failed on our side");
            return respond::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is temporarily unavailable. Please try again shortly.",
            );
        }
    };
    // A fresh session id at every sign-in; any session this browser had is ended.
    if let Some(old) = cookies::get(&parts.headers, &app.session_cookie_name())
        && let Err(e) = app.sessions.end_token(&old).await
    {
        tracing::warn!(error = %e, "could not end the previous session");
    }
    let opts = SessionOptions {
        remember_me: remember,
        twofa_verified: false,
    };
    let (token, _session) = match app.sessions.create(&user, &ctx.client(), opts).await {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, "could not create session");
            return respond::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is temporarily unavailable. Please try again shortly.",
            );
        }
    };
    app.accounts
        .record(
            app.accounts
                .event(ActivityKind::Login, Some(user.id))
                .client(Some(ctx.client_ip.to_string()), ctx.user_agent.clone())
                .describe("Signed in with password"),
        )
        .await;
    let mut r = respond::redirect(StatusCode::SEE_OTHER, &next);
    let max_age = remember
        .then_some(app.settings.session.remember_me_timeout)
        .flatten()
        .map(|d| Seconds(d.as_secs() as i64));
    if let Some(c) = cookies::set(&app.session_cookie_name(), &token, secure, max_age) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

pub async fn show_logout(app: &App, req: &Request<Incoming>) -> Response<Body> {
    let secure = app.secure_cookies();
    let csrf = Csrf::for_request(&app.keys, req.headers(), secure);
    let session = match cookies::get(req.headers(), &app.session_cookie_name()) {
        Some(t) => app.sessions.lookup(&t).await.ok().flatten(),
        None => None,
    };
    let page = app.templates.render(
        "logout.html",
        context! {
            signed_in => session.is_some(),
            username => session.as_ref().map(|s| s.identity.username.clone()),
            nav_user => session.as_ref().map(|s| s.identity.username.clone()),
            csrf_token => csrf.token.clone(),
        },
    );
    page_with_csrf(app, &csrf, page, StatusCode::OK)
}

pub async fn submit_logout(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> Response<Body> {
    let (parts, form) = match forms::read(req).await {
        Ok(x) => x,
        Err(status) => return respond::text(status, "unreadable form"),
    };
    let secure = app.secure_cookies();
    if !csrf::verify(&app.keys, &parts.headers, secure, form.get(csrf::FIELD)) {
        return forbidden_csrf();
    }
    let name = app.session_cookie_name();
    if let Some(token) = cookies::get(&parts.headers, &name) {
        let session = app.sessions.lookup(&token).await.ok().flatten();
        if let Err(e) = app.sessions.end_token(&token).await {
            tracing::error!(error = %e, "could not end session at sign-out");
            return respond::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-out failed; please try again.",
            );
        }
        if let Some(s) = session {
            app.accounts
                .record(
                    app.accounts
                        .event(ActivityKind::Logout, Some(s.identity.user_id))
                        .client(Some(ctx.client_ip.to_string()), ctx.user_agent.clone())
                        .describe("Signed out"),
                )
                .await;
        }
    }
    let mut r = respond::redirect(StatusCode::SEE_OTHER, "/_auth/logout");
    if let Some(c) = cookies::clear(&name, secure) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r.headers_mut()
        .insert("clear-site-data", HeaderValue::from_static("\"cookies\""));
    r
}
