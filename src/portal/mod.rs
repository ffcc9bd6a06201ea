//! Gatehouse's own pages under `/_auth/`: sign-in (with the two-factor step), sign-out,
//! password reset, sign-up and address verification, the account page, two-factor and passkey
//! settings, sign-in with external providers, and the stylesheet and passkey script. Pages are
//! rendered on the server and work without JavaScript; every form carries a CSRF token (403
//! without a valid one). Which path serves which [`Page`] is the gateway's router
//! (`crate::gateway::auth_routes`); the security headers are added there too.
//!
//! Handlers have the gateway's shape: [`serve`] is the outer function (the one place a
//! [`PortalError`] becomes a response: a page for a browser, JSON for a program), and each
//! handler is an inner function returning `Result<Response, PortalError>` that reads top to
//! bottom with `?`. A refusal the person can act on (a wrong code, a field to fix) is a page
//! the handler renders; everything else (CSRF, throttles, no session, our failures) is a
//! `PortalError`, written once in [`error`].

mod account;
mod assets;
mod device;
mod error;
mod forms;
mod login;
mod oidc;
mod page;
mod passkeys;
mod reset;
mod second_factor;
mod signup;
mod state;
mod twofa;

use http::{Request, Response};
use hyper::body::Incoming;

pub use error::{NO_SUCH_PAGE, PortalError};
pub use forms::{login_url, safe_next};
pub use login::PENDING_COOKIE;
pub use oidc::OIDC_COOKIE;
pub use state::PortalState;

use crate::app::App;
use crate::web::render::TemplateSet;
use crate::web::{Body, RequestCtx, negotiate};

/// The portal's templates, compiled into the binary.
pub const TEMPLATES: &[TemplateSet] = &[&[
    ("layout.html", include_str!("templates/layout.html")),
    ("login.html", include_str!("templates/login.html")),
    ("login_2fa.html", include_str!("templates/login_2fa.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("twofa.html", include_str!("templates/twofa.html")),
    (
        "recovery_codes.html",
        include_str!("templates/recovery_codes.html"),
    ),
    (
        "reset_request.html",
        include_str!("templates/reset_request.html"),
    ),
    (
        "reset_confirm.html",
        include_str!("templates/reset_confirm.html"),
    ),
    ("signup.html", include_str!("templates/signup.html")),
    ("account.html", include_str!("templates/account.html")),
    ("logout.html", include_str!("templates/logout.html")),
    ("message.html", include_str!("templates/message.html")),
    ("gatehouse.css", include_str!("templates/gatehouse.css")),
    ("passkeys.html", include_str!("templates/passkeys.html")),
]];

/// A portal page or form action; the router maps paths and methods to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Login,
    LoginSubmit,
    Logout,
    LogoutSubmit,
    CodeStep,
    CodeStepSubmit,
    CodeStepPasskey,
    PasskeySignIn,
    PasskeySignInOptions,
    Reset,
    ResetSubmit,
    ResetConfirm,
    ResetConfirmSubmit,
    Signup,
    SignupSubmit,
    Verify,
    Account,
    Profile,
    Password,
    Email,
    ResendVerification,
    RevokeSession,
    RevokeOtherSessions,
    LinkProvider,
    UnlinkProvider,
    Twofa,
    TwofaConfirm,
    TwofaDisable,
    RecoveryCodes,
    Passkeys,
    PasskeyAdd,
    PasskeyAddOptions,
    PasskeyRemove,
    /// `/_auth/oidc/<provider>/start`.
    ProviderStart,
    /// `/_auth/oidc/<provider>/callback`.
    ProviderCallback,
    Stylesheet,
    PasskeysScript,
}

impl Page {
    /// Whether serving this page may write shared state (throttle and pending rows, a
    /// provider's flow), and so is the moment to prune expired rows.
    pub fn prunes(self, method: &http::Method) -> bool {
        method == http::Method::POST || matches!(self, Page::ProviderStart | Page::ProviderCallback)
    }
}

/// The outer function: serves `page` and turns a [`PortalError`] into the response.
/// `provider` is the path's provider id for the provider pages.
pub async fn serve(
    app: &App,
    page: Page,
    provider: Option<&str>,
    req: Request<Incoming>,
    ctx: &RequestCtx,
) -> Response<Body> {
    let wants_page = negotiate::wants_page(req.method(), req.headers());
    match dispatch(app, page, provider, req, ctx).await {
        Ok(r) => r,
        Err(e) => e.into_response(app, ctx, wants_page),
    }
}

async fn dispatch(
    app: &App,
    page: Page,
    provider: Option<&str>,
    req: Request<Incoming>,
    ctx: &RequestCtx,
) -> Result<Response<Body>, PortalError> {
    match page {
        Page::Login => login::show(app, &req),
        Page::LoginSubmit => login::submit(app, req, ctx).await,
        Page::Logout => login::show_logout(app, &req).await,
        Page::LogoutSubmit => login::submit_logout(app, req, ctx).await,
        Page::CodeStep => second_factor::show(app, &req).await,
        Page::CodeStepSubmit => second_factor::submit(app, req, ctx).await,
        Page::CodeStepPasskey => second_factor::submit_passkey(app, req, ctx).await,
        Page::PasskeySignIn => passkeys::sign_in(app, req, ctx).await,
        Page::PasskeySignInOptions => passkeys::sign_in_options(app, req).await,
        Page::Reset => reset::show(app, &req),
        Page::ResetSubmit => reset::submit(app, req, ctx).await,
        Page::ResetConfirm => reset::show_confirm(app, &req).await,
        Page::ResetConfirmSubmit => reset::submit_confirm(app, req, ctx).await,
        Page::Signup => signup::show(app, &req),
        Page::SignupSubmit => signup::submit(app, req, ctx).await,
        Page::Verify => signup::verify(app, &req, ctx).await,
        Page::Account => account::show(app, &req).await,
        Page::Profile => account::profile(app, req).await,
        Page::Password => account::password(app, req, ctx).await,
        Page::Email => account::email(app, req, ctx).await,
        Page::ResendVerification => account::resend_verification(app, req, ctx).await,
        Page::RevokeSession => account::revoke(app, req, ctx).await,
        Page::RevokeOtherSessions => account::revoke_others(app, req, ctx).await,
        Page::LinkProvider => oidc::start_link(app, req).await,
        Page::UnlinkProvider => oidc::unlink(app, req, ctx).await,
        Page::Twofa => twofa::show(app, &req).await,
        Page::TwofaConfirm => twofa::confirm(app, req, ctx).await,
        Page::TwofaDisable => twofa::manage(app, req, ctx, twofa::Manage::Disable).await,
        Page::RecoveryCodes => twofa::manage(app, req, ctx, twofa::Manage::Regenerate).await,
        Page::Passkeys => passkeys::show(app, &req).await,
        Page::PasskeyAdd => passkeys::register(app, req, ctx).await,
        Page::PasskeyAddOptions => passkeys::register_options(app, req, ctx).await,
        Page::PasskeyRemove => passkeys::remove(app, req, ctx).await,
        Page::ProviderStart => oidc::start(app, &req, provider.unwrap_or_default()).await,
        Page::ProviderCallback => oidc::callback(app, req, ctx, provider.unwrap_or_default()).await,
        Page::Stylesheet => assets::stylesheet(app),
        Page::PasskeysScript => Ok(assets::passkeys_script()),
    }
}
