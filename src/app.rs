//! The assembled service: everything a request handler needs, built once at start.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::accounts::Accounts;
use crate::audit::{AuditLog, AuditWriter};
use crate::auth::PasswordHasher;
use crate::auth::keys::Keys;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::proxy::Upstream;
use crate::proxy::headers::StripSet;
use crate::session::{ApiTokens, SessionService};
use crate::store::Store;
use crate::web::render::Templates;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Password(#[from] crate::auth::PasswordError),
    #[error(transparent)]
    Keys(#[from] crate::auth::keys::KeyError),
    #[error(transparent)]
    Templates(#[from] crate::web::render::RenderError),
    #[error(transparent)]
    Upstream(#[from] crate::proxy::UpstreamConfigError),
    #[error(transparent)]
    Tls(#[from] crate::server::tls::TlsError),
    #[error(transparent)]
    Mail(#[from] crate::mail::MailError),
    #[error(transparent)]
    Assertion(#[from] crate::gateway::assertion::AssertionKeyError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Request counters for `/_auth/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_open: std::sync::atomic::AtomicI64,
    /// Connections closed because they missed a handshake or idle deadline.
    pub connections_timed_out: AtomicU64,
    pub requests: AtomicU64,
    pub proxied: AtomicU64,
    pub upstream_errors: AtomicU64,
}

#[derive(Clone, Debug)]
pub struct App {
    inner: Arc<AppInner>,
}

#[derive(Debug)]
pub struct AppInner {
    pub settings: Settings,
    pub store: Store,
    pub accounts: Accounts,
    pub sessions: SessionService,
    pub tokens: ApiTokens,
    /// The change-feed tailer: applies changes made by other processes to the caches.
    pub feed: crate::feed::Feed,
    pub audit: AuditLog,
    pub keys: Keys,
    pub templates: Templates,
    pub upstream: Upstream,
    pub strip: StripSet,
    pub clock: SharedClock,
    pub metrics: Metrics,
    /// Outgoing mail (SMTP or the outbox folder).
    pub mailer: crate::mail::Mailer,
    /// The portal's shared state (in the database): throttles and pending two-factor sign-ins.
    pub portal: crate::portal::PortalState,
    /// Cookie names as sent (with `__Host-` when Secure), computed once.
    pub session_cookie: String,
    pub csrf_cookie: String,
    /// Every cookie name Gatehouse sets, in both spellings; never forwarded to the app.
    pub own_cookies: Vec<String>,
    /// Signer and cache of the identity assertion, and the published keys.
    pub assertions: crate::gateway::assertion::Assertions,
    /// The WebAuthn relying party of `server.public_url`; `None` when its host cannot be one
    /// (passkeys are then not offered).
    pub passkeys: Option<crate::auth::passkey::RelyingParty>,
}

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.inner
    }
}

impl App {
    /// Opens the database (migrating it), starts the background writers, loads keys and
    /// templates. Returns the app and the audit writer to flush at shutdown.
    pub async fn build(
        settings: Settings,
        clock: SharedClock,
    ) -> Result<(App, AuditWriter), StartError> {
        let store =
            Store::connect(&settings.database.url, settings.database.max_connections).await?;
        store.migrate().await?;
        let hasher =
            PasswordHasher::new(settings.security.argon2, settings.security.hash_concurrency)?;
        let (audit, writer) = AuditLog::spawn(store.for_background(), &settings.audit);
        let accounts = Accounts::new(
            store.clone(),
            hasher,
            clock.clone(),
            audit.clone(),
            settings.security.clone(),
        );
        let sessions = SessionService::with_admin_2fa(
            store.clone(),
            clock.clone(),
            settings.session.clone(),
            settings.security.require_2fa_for_admins,
        );
        let tokens = ApiTokens::new(store.clone(), clock.clone(), audit.clone());
        let feed =
            crate::feed::Feed::start(store.clone(), sessions.clone(), tokens.clone()).await?;
        let mailer = crate::mail::Mailer::new(&settings.mail)?;
        let portal = crate::portal::PortalState::new(&store, &settings.security);
        let keys = Keys::load(&settings.security, &settings.server.data_dir)?;
        let templates = Templates::new(
            &settings.portal,
            &[crate::portal::TEMPLATES, crate::admin::TEMPLATES].concat(),
        )?;
        let upstream = Upstream::new(&settings.upstream)?;
        let strip = StripSet::new(&settings.headers);
        let assertions = crate::gateway::assertion::Assertions::load(&settings)?;
        let passkeys = match crate::auth::passkey::RelyingParty::new(&settings.server.public_url) {
            Ok(rp) => Some(rp),
            Err(e) => {
                tracing::warn!(error = %e, "passkeys are off");
                None
            }
        };
        let secure = settings.server.secure_cookies();
        // `__Host-` forbids `Domain`: a session cookie shared by several hosts goes without it.
        let session_cookie = crate::web::cookies::name(
            &settings.session.cookie_name,
            secure && settings.session.cookie_domain.is_none(),
        );
        let csrf_cookie = crate::web::cookies::name(crate::web::csrf::COOKIE_BASE, secure);
        let own_cookies = [
            settings.session.cookie_name.as_str(),
            crate::web::csrf::COOKIE_BASE,
            crate::portal::PENDING_COOKIE,
        ]
        .iter()
        .flat_map(|base| {
            [
                crate::web::cookies::name(base, false),
                crate::web::cookies::name(base, true),
            ]
        })
        .collect();
        let app = App {
            inner: Arc::new(AppInner {
                settings,
                store,
                accounts,
                sessions,
                tokens,
                feed,
                audit,
                keys,
                templates,
                upstream,
                strip,
                clock,
                metrics: Metrics::default(),
                mailer,
                portal,
                session_cookie,
                csrf_cookie,
                own_cookies,
                assertions,
                passkeys,
            }),
        };
        Ok((app, writer))
    }

    pub fn now(&self) -> crate::store::Ts {
        crate::store::Ts(self.clock.now())
    }

    /// Whether our cookies are `Secure` (and `__Host-` prefixed).
    pub fn secure_cookies(&self) -> bool {
        self.settings.server.secure_cookies()
    }

    pub fn session_cookie_name(&self) -> String {
        self.session_cookie.clone()
    }
}
