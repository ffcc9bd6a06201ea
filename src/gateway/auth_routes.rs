//! The router for `/_auth/`: one table of method, path and destination, matched by `matchit`.
//! A path in the table asked with another method is 405 (with `Allow`), known from the table
//! itself; a path not in it is 404. Every answer carries the headers of [`secure_headers`].
//!
//! | method | path | to |
//! |---|---|---|
//! | GET | `/_auth`, `/_auth/` | the account page when signed in, else the sign-in page |
//! | GET | `/_auth/login`, `/login/2fa`, `/logout`, `/reset`, `/reset/sent`, `/reset/confirm`, `/signup`, `/verify` | portal pages |
//! | POST | `/_auth/login`, `/login/2fa`, `/logout`, `/reset`, `/reset/confirm`, `/signup` | portal forms |
//! | POST | `/_auth/login/passkey`, `/login/2fa/passkey` (+ `/options`) | passkey sign-in |
//! | GET | `/_auth/account`, `/account/2fa`, `/account/passkeys` | self-service pages |
//! | POST | `/_auth/account/{profile,password,email,verify}`, `/account/sessions/{revoke,revoke-others}` | self-service forms |
//! | POST | `/_auth/account/2fa` (+ `/disable`, `/recovery-codes`), `/account/passkeys` (+ `/options`, `/remove`), `/account/identities/{link,unlink}` | 2FA, passkeys, linked providers |
//! | GET | `/_auth/oidc/{provider}/start`, `/_auth/oidc/{provider}/callback` (GET only) | external sign-in ([`crate::portal`]) |
//! | GET | `/_auth/static/gatehouse.css`, `/_auth/static/passkeys.js`, `/_auth/static/recovery-codes.js` | portal assets |
//! | GET | `/_auth/health`, `/healthz`, `/readyz`, `/metrics`, `/.well-known/jwks.json` | operational endpoints ([`super::endpoints`]) |
//! | any | `/_auth/authz/auth-request`, `/_auth/authz/forward-auth` | forward-auth ([`super::forward_auth`]) |
//! | any | `/_auth/api/…` | admin JSON API ([`crate::admin::api`]) |
//! | any | `/_auth/admin`, `/_auth/admin/…` | admin console ([`crate::admin`]) |
//!
//! "GET" includes HEAD, except for a provider's callback, which uses up its flow. The admin
//! surfaces route their own sub-paths. A portal form post (or a provider flow) is also when
//! expired shared state is pruned ([`crate::portal::PortalState::prune_if_due`]); forward-auth
//! and the other endpoints stay free of it.

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::endpoints::{self, Endpoint};
use crate::app::App;
use crate::portal::{self, NO_SUCH_PAGE, Page};
use crate::web::{Body, ErrorPage, RequestCtx, negotiate};

/// The methods a row accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    /// GET and HEAD.
    Read,
    /// GET alone.
    Get,
    Post,
    Any,
}

impl On {
    fn allows(self, m: &Method) -> bool {
        match self {
            On::Read => m == Method::GET || m == Method::HEAD,
            On::Get => m == Method::GET,
            On::Post => m == Method::POST,
            On::Any => true,
        }
    }

    fn names(self) -> &'static str {
        match self {
            On::Read => "GET, HEAD",
            On::Get => "GET",
            On::Post => "POST",
            On::Any => "*",
        }
    }
}

/// Where a row sends the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    Portal(Page),
    Endpoint(Endpoint),
    AdminApi,
    Console,
}

/// The table. A path segment `{provider}` matches any one non-empty segment; a path ending in
/// `/*` matches itself and everything below it. Forward-auth comes first: it is the hot path here.
const ROUTES: &[(On, &str, To)] = {
    use Endpoint as E;
    use Page as P;
    use To::{Endpoint as Ep, Portal as Pg};
    &[
        (On::Any, "/_auth/authz/auth-request", Ep(E::AuthRequest)),
        (On::Any, "/_auth/authz/forward-auth", Ep(E::ForwardAuth)),
        (On::Read, "/_auth", Pg(P::Home)),
        (On::Read, "/_auth/", Pg(P::Home)),
        (On::Read, "/_auth/login", Pg(P::Login)),
        (On::Post, "/_auth/login", Pg(P::LoginSubmit)),
        (On::Read, "/_auth/logout", Pg(P::Logout)),
        (On::Post, "/_auth/logout", Pg(P::LogoutSubmit)),
        (On::Read, "/_auth/login/2fa", Pg(P::CodeStep)),
        (On::Post, "/_auth/login/2fa", Pg(P::CodeStepSubmit)),
        (On::Post, "/_auth/login/2fa/passkey", Pg(P::CodeStepPasskey)),
        (
            On::Post,
            "/_auth/login/2fa/passkey/options",
            Pg(P::PasskeySignInOptions),
        ),
        (On::Post, "/_auth/login/passkey", Pg(P::PasskeySignIn)),
        (
            On::Post,
            "/_auth/login/passkey/options",
            Pg(P::PasskeySignInOptions),
        ),
        (On::Read, "/_auth/reset", Pg(P::Reset)),
        (On::Post, "/_auth/reset", Pg(P::ResetSubmit)),
        (On::Read, "/_auth/reset/sent", Pg(P::ResetSent)),
        (On::Read, "/_auth/reset/confirm", Pg(P::ResetConfirm)),
        (On::Post, "/_auth/reset/confirm", Pg(P::ResetConfirmSubmit)),
        (On::Read, "/_auth/signup", Pg(P::Signup)),
        (On::Post, "/_auth/signup", Pg(P::SignupSubmit)),
        (On::Read, "/_auth/verify", Pg(P::Verify)),
        (On::Read, "/_auth/account", Pg(P::Account)),
        (On::Post, "/_auth/account/profile", Pg(P::Profile)),
        (On::Post, "/_auth/account/password", Pg(P::Password)),
        (On::Post, "/_auth/account/email", Pg(P::Email)),
        (On::Post, "/_auth/account/verify", Pg(P::ResendVerification)),
        (
            On::Post,
            "/_auth/account/sessions/revoke",
            Pg(P::RevokeSession),
        ),
        (
            On::Post,
            "/_auth/account/sessions/revoke-others",
            Pg(P::RevokeOtherSessions),
        ),
        (
            On::Post,
            "/_auth/account/identities/link",
            Pg(P::LinkProvider),
        ),
        (
            On::Post,
            "/_auth/account/identities/unlink",
            Pg(P::UnlinkProvider),
        ),
        (On::Read, "/_auth/account/2fa", Pg(P::Twofa)),
        (On::Post, "/_auth/account/2fa", Pg(P::TwofaConfirm)),
        (On::Post, "/_auth/account/2fa/disable", Pg(P::TwofaDisable)),
        (
            On::Post,
            "/_auth/account/2fa/recovery-codes",
            Pg(P::RecoveryCodes),
        ),
        (On::Read, "/_auth/account/passkeys", Pg(P::Passkeys)),
        (On::Post, "/_auth/account/passkeys", Pg(P::PasskeyAdd)),
        (
            On::Post,
            "/_auth/account/passkeys/options",
            Pg(P::PasskeyAddOptions),
        ),
        (
            On::Post,
            "/_auth/account/passkeys/remove",
            Pg(P::PasskeyRemove),
        ),
        (
            On::Read,
            "/_auth/oidc/{provider}/start",
            Pg(P::ProviderStart),
        ),
        (
            On::Get,
            "/_auth/oidc/{provider}/callback",
            Pg(P::ProviderCallback),
        ),
        (On::Read, "/_auth/static/gatehouse.css", Pg(P::Stylesheet)),
        (On::Read, "/_auth/static/passkeys.js", Pg(P::PasskeysScript)),
        (
            On::Read,
            "/_auth/static/recovery-codes.js",
            Pg(P::RecoveryCodesScript),
        ),
        (On::Read, "/_auth/health", Ep(E::Health)),
        (On::Read, "/_auth/healthz", Ep(E::Healthz)),
        (On::Read, "/_auth/readyz", Ep(E::Readyz)),
        (On::Get, "/_auth/metrics", Ep(E::Metrics)),
        (On::Read, "/_auth/.well-known/jwks.json", Ep(E::Jwks)),
        (On::Any, "/_auth/api/*", To::AdminApi),
        (On::Any, "/_auth/admin", To::Console),
        (On::Any, "/_auth/admin/*", To::Console),
    ]
};

/// What the table says about a request.
#[derive(Debug, PartialEq, Eq)]
enum Lookup<'p> {
    /// A row for this path and method; the `{provider}` segment if the path has one.
    Route(To, Option<&'p str>),
    /// Rows for this path, none for this method: the `Allow` header's value.
    WrongMethod(String, Option<&'p str>),
    NotFound,
}

/// The table as a `matchit` router: every path once, with the rows that share it in table
/// order. `/*` becomes the path itself plus `/{*rest}` below it.
type Rows = Vec<(On, To)>;

static ROUTER: std::sync::LazyLock<matchit::Router<Rows>> =
    std::sync::LazyLock::new(|| match build(ROUTES) {
        Ok(r) => r,
        Err(e) => {
            // A table that does not build is a programming error the unit test below catches;
            // at run time every `/_auth/` path then answers 404, never something unchecked.
            tracing::error!(error = %e, "the /_auth/ route table does not build");
            matchit::Router::new()
        }
    });

fn build(table: &[(On, &str, To)]) -> Result<matchit::Router<Rows>, matchit::InsertError> {
    let mut paths: Vec<(String, Rows)> = Vec::new();
    for (on, pattern, to) in table {
        let expanded = match pattern.strip_suffix('*') {
            Some(base) => vec![base.to_string(), format!("{base}{{*rest}}")],
            None => vec![(*pattern).to_string()],
        };
        for path in expanded {
            match paths.iter_mut().find(|(p, _)| *p == path) {
                Some((_, rows)) => rows.push((*on, *to)),
                None => paths.push((path, vec![(*on, *to)])),
            }
        }
    }
    let mut router = matchit::Router::new();
    for (path, rows) in paths {
        router.insert(path, rows)?;
    }
    Ok(router)
}

fn lookup<'p>(method: &Method, path: &'p str) -> Lookup<'p> {
    let Ok(found) = ROUTER.at(path) else {
        return Lookup::NotFound;
    };
    let param = found.params.get("provider");
    match found.value.iter().find(|(on, _)| on.allows(method)) {
        Some((_, to)) => Lookup::Route(*to, param),
        None => {
            let allow: Vec<&str> = found.value.iter().map(|(on, _)| on.names()).collect();
            Lookup::WrongMethod(allow.join(", "), param)
        }
    }
}

/// Serves a request under `/_auth/`.
pub async fn handle(app: &App, req: Request<Incoming>, ctx: &RequestCtx) -> Response<Body> {
    let method = req.method().clone();
    let wants_page = negotiate::wants_page(&method, req.headers());
    let resp = match lookup(&method, req.uri().path()) {
        Lookup::Route(to, param) => {
            // Owned: the request moves into the handler.
            let param = param.map(str::to_string);
            route(app, to, param.as_deref(), req, ctx).await
        }
        // A provider id names a page only when that provider is configured.
        Lookup::WrongMethod(_, Some(p)) if app.settings.identity_provider(p).is_none() => {
            not_found(app, ctx, wants_page)
        }
        Lookup::WrongMethod(allow, _) => {
            let mut r = ErrorPage::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                "This address does not take that kind of request. Go back and use the page's \
                 links and forms.",
            )
            .link("/_auth/account", "Go to your account")
            .respond(&app.templates, ctx, wants_page);
            if let Ok(v) = HeaderValue::from_str(&allow) {
                r.headers_mut().insert(header::ALLOW, v);
            }
            r
        }
        Lookup::NotFound => not_found(app, ctx, wants_page),
    };
    secure_headers(app, resp)
}

async fn route(
    app: &App,
    to: To,
    param: Option<&str>,
    req: Request<Incoming>,
    ctx: &RequestCtx,
) -> Response<Body> {
    match to {
        To::Portal(page) => {
            if page.prunes(req.method()) {
                app.portal.prune_if_due(app.now()).await;
            }
            portal::serve(app, page, param, req, ctx).await
        }
        To::Endpoint(e) => endpoints::serve(app, e, req, ctx).await,
        To::AdminApi => crate::admin::api::handle(app, req, ctx).await,
        To::Console => crate::admin::handle(app, req, ctx).await,
    }
}

fn not_found(app: &App, ctx: &RequestCtx, wants_page: bool) -> Response<Body> {
    ErrorPage::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "Not found",
        NO_SUCH_PAGE,
    )
    .link("/_auth/account", "Go to your account")
    .respond(&app.templates, ctx, wants_page)
}

/// Headers every `/_auth/` response carries.
pub fn secure_headers(app: &App, mut resp: Response<Body>) -> Response<Body> {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // `session.cookie_domain`: the session cookie is set and cleared for the parent domain,
    // here in one place for every page that signs in or out.
    if let Some(domain) = &app.settings.session.cookie_domain
        && h.contains_key(header::SET_COOKIE)
    {
        let scoped: Vec<HeaderValue> = h
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| crate::web::cookies::with_domain(v, &app.session_cookie, domain))
            .collect();
        h.remove(header::SET_COOKIE);
        for v in scoped {
            h.append(header::SET_COOKIE, v);
        }
    }
    if app.settings.server.tls.is_some() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_builds() {
        assert!(build(ROUTES).is_ok());
    }

    #[test]
    fn the_table_decides_405_and_404() {
        let post = Method::POST;
        let get = Method::GET;
        assert_eq!(
            lookup(&post, "/_auth/login"),
            Lookup::Route(To::Portal(Page::LoginSubmit), None)
        );
        assert_eq!(
            lookup(&Method::HEAD, "/_auth/login"),
            Lookup::Route(To::Portal(Page::Login), None)
        );
        assert_eq!(
            lookup(&Method::DELETE, "/_auth/login"),
            Lookup::WrongMethod("GET, HEAD, POST".into(), None)
        );
        assert_eq!(
            lookup(&get, "/_auth/account/profile"),
            Lookup::WrongMethod("POST".into(), None)
        );
        assert_eq!(
            lookup(&post, "/_auth/healthz"),
            Lookup::WrongMethod("GET, HEAD".into(), None)
        );
        assert_eq!(lookup(&get, "/_auth/nothing"), Lookup::NotFound);
        assert_eq!(
            lookup(&get, "/_auth"),
            Lookup::Route(To::Portal(Page::Home), None)
        );
        assert_eq!(
            lookup(&post, "/_auth/"),
            Lookup::WrongMethod("GET, HEAD".into(), None)
        );
        assert_eq!(lookup(&get, "/_auth/api"), Lookup::NotFound);
        assert_eq!(
            lookup(&Method::PATCH, "/_auth/api/users/1"),
            Lookup::Route(To::AdminApi, None)
        );
        assert_eq!(
            lookup(&get, "/_auth/admin"),
            Lookup::Route(To::Console, None)
        );
        assert_eq!(
            lookup(&Method::PUT, "/_auth/authz/forward-auth"),
            Lookup::Route(To::Endpoint(Endpoint::ForwardAuth), None)
        );
        assert_eq!(
            lookup(&get, "/_auth/oidc/corp/start"),
            Lookup::Route(To::Portal(Page::ProviderStart), Some("corp"))
        );
        assert_eq!(
            lookup(&Method::HEAD, "/_auth/oidc/corp/callback"),
            Lookup::WrongMethod("GET".into(), Some("corp"))
        );
        assert_eq!(lookup(&get, "/_auth/oidc/corp/other"), Lookup::NotFound);
        assert_eq!(lookup(&get, "/_auth/oidc//start"), Lookup::NotFound);
        assert_eq!(lookup(&get, "/_auth/oidc/a/b/start"), Lookup::NotFound);
        // Other spellings of a known path name nothing: no case folding, trailing slash,
        // `;` parameter, doubled slash or percent-encoding reaches a page.
        for odd in [
            "/_auth/LOGIN",
            "/_auth/login/",
            "/_auth/login;x",
            "/_auth//login",
            "/_auth/%6cogin",
            "/_auth/healthz/",
            "/_auth/Admin/",
        ] {
            assert_eq!(lookup(&get, odd), Lookup::NotFound, "{odd}");
        }
    }
}
