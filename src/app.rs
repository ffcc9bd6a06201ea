//! The assembled service: everything a request handler needs, built once at start.

use std::sync::Arc;

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

pub use crate::metrics::Metrics;

#[derive(Clone, Debug)]
pub struct App {
    inner: Arc<AppInner>,
}

#[derive(Debug)]
/// Fields that tools and tests outside the crate need (settings, the services, the store for its
/// query counters) are public; the rest is the crate's own wiring.
pub struct AppInner {
    pub settings: Settings,
    pub store: Store,
    pub accounts: Accounts,
    pub sessions: SessionService,
    pub tokens: ApiTokens,
    /// The change-feed tailer: applies changes made by other processes to the caches.
    pub feed: Arc<crate::feed::Feed>,
    pub(crate) audit: AuditLog,
    pub keys: Keys,
    pub(crate) templates: Templates,
    pub(crate) upstream: Upstream,
    pub(crate) strip: StripSet,
    pub(crate) clock: SharedClock,
    pub metrics: Arc<Metrics>,
    /// Outgoing mail (SMTP or the outbox folder).
    pub(crate) mailer: crate::mail::Mailer,
    /// The portal's shared state (in the database): throttles and pending two-factor sign-ins.
    pub(crate) portal: Arc<crate::portal::PortalState>,
    /// The session cookie's name as sent (with `__Host-` when Secure), computed once.
    pub(crate) session_cookie: String,
    /// Every cookie name Gatehouse sets, in both spellings; never forwarded to the app.
    pub(crate) own_cookies: Vec<String>,
    /// Signer and cache of the identity assertion, and the published keys.
    pub assertions: Arc<crate::gateway::assertion::Assertions>,
    /// Request-duration histograms, index for index with `settings.routes`.
    pub(crate) route_metrics: crate::metrics::RouteMetrics,
    /// External OpenID Connect providers: discovery cache (by issuer) and sign-ins in progress.
    pub(crate) oidc: Arc<crate::oidc::Oidc>,
    /// The WebAuthn relying party of `server.public_url`; `None` when its host cannot be one
    /// (passkeys are then not offered).
    pub(crate) passkeys: Option<crate::auth::passkey::RelyingParty>,
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
        let keys = Keys::load(&settings.security, &settings.server.data_dir)?;
        let assertions = Arc::new(crate::gateway::assertion::Assertions::load(&settings)?);
        let oidc = Arc::new(crate::oidc::Oidc::new(
            &settings.server.public_url,
            store.clone(),
        ));
        let shared = Shared {
            store,
            accounts,
            sessions,
            tokens,
            feed: Arc::new(feed),
            audit,
            keys,
            clock,
            metrics: Arc::new(Metrics::new()),
            mailer,
            assertions,
            oidc,
        };
        let app = App::assemble(settings, shared, None)?;
        Ok((app, writer))
    }

    /// The same services and state with a new configuration (a reload): what the settings
    /// shape is built again (routes, headers, upstream, the throttles' limits), what holds
    /// state (caches, the database, the activity writer, keys, metrics) is shared.
    pub fn reconfigured(&self, settings: Settings) -> Result<App, StartError> {
        let shared = Shared {
            store: self.store.clone(),
            accounts: self.accounts.clone(),
            sessions: self.sessions.clone(),
            tokens: self.tokens.clone(),
            feed: self.feed.clone(),
            audit: self.audit.clone(),
            keys: self.keys.clone(),
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
            mailer: self.mailer.clone(),
            assertions: self.assertions.clone(),
            oidc: self.oidc.clone(),
        };
        // Unchanged upstream settings keep the client: its warm connections, and the worker
        // threads' own clients, which are rebuilt only for a new one.
        let upstream = (format!("{:?}", self.settings.upstream)
            == format!("{:?}", settings.upstream))
        .then(|| self.upstream.clone());
        App::assemble(settings, shared, upstream)
    }

    /// Builds what depends only on the settings around the shared services.
    fn assemble(
        settings: Settings,
        shared: Shared,
        upstream: Option<Upstream>,
    ) -> Result<App, StartError> {
        // The throttles and the pending step keep their counts in the database, so building
        // them again with the new limits loses nothing.
        let portal = Arc::new(crate::portal::PortalState::new(
            &shared.store,
            &settings.security,
        ));
        let templates = Templates::new(
            &settings.portal,
            &[crate::portal::TEMPLATES, crate::admin::TEMPLATES].concat(),
        )?;
        let upstream = match upstream {
            Some(u) => u,
            None => Upstream::new(&settings.upstream)?,
        };
        let strip = StripSet::new(&settings.headers);
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
        let own_cookies = [
            settings.session.cookie_name.as_str(),
            crate::web::csrf::COOKIE_BASE,
            crate::portal::PENDING_COOKIE,
            crate::portal::OIDC_COOKIE,
        ]
        .iter()
        .flat_map(|base| {
            [
                crate::web::cookies::name(base, false),
                crate::web::cookies::name(base, true),
            ]
        })
        .collect();
        let route_metrics = shared
            .metrics
            .routes(settings.routes.iter().map(|r| r.pattern.as_str()));
        Ok(App {
            inner: Arc::new(AppInner {
                settings,
                store: shared.store,
                accounts: shared.accounts,
                sessions: shared.sessions,
                tokens: shared.tokens,
                feed: shared.feed,
                audit: shared.audit,
                keys: shared.keys,
                templates,
                upstream,
                strip,
                clock: shared.clock,
                metrics: shared.metrics,
                mailer: shared.mailer,
                portal,
                session_cookie,
                own_cookies,
                assertions: shared.assertions,
                route_metrics,
                oidc: shared.oidc,
                passkeys,
            }),
        })
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

/// What outlives a configuration: the services that hold state.
struct Shared {
    store: Store,
    accounts: Accounts,
    sessions: SessionService,
    tokens: ApiTokens,
    feed: Arc<crate::feed::Feed>,
    audit: AuditLog,
    keys: Keys,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    mailer: crate::mail::Mailer,
    assertions: Arc<crate::gateway::assertion::Assertions>,
    oidc: Arc<crate::oidc::Oidc>,
}

/// The configuration in force: each request loads it once and keeps that snapshot to the end,
/// so a reload swaps everything at once, between requests.
#[derive(Clone, Debug)]
pub struct Live {
    current: Arc<arc_swap::ArcSwap<AppInner>>,
}

impl Live {
    pub fn new(app: &App) -> Live {
        Live {
            current: Arc::new(arc_swap::ArcSwap::new(app.inner.clone())),
        }
    }

    /// The snapshot for one request (or one connection's deadlines).
    pub fn current(&self) -> App {
        App {
            inner: self.current.load_full(),
        }
    }

    /// Puts `app` in force for every request that starts from now on.
    pub fn replace(&self, app: &App) {
        self.current.store(app.inner.clone());
    }
}
