//! Typed, validated settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};
use http::Method;
use ipnet::IpNet;

use super::Secret;
use crate::store::Tier;

#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub upstream: UpstreamSettings,
    pub database: DatabaseSettings,
    pub session: SessionSettings,
    pub security: SecuritySettings,
    pub headers: HeaderNames,
    pub audit: AuditSettings,
    pub mail: MailSettings,
    pub portal: PortalSettings,
    pub routes: Vec<RouteRule>,
    /// `[[identity_providers]]`: external OpenID Connect sign-in.
    pub identity_providers: Vec<IdentityProvider>,
    /// Problems that do not stop the server (for example a shadowed route).
    pub warnings: Vec<String>,
    pub log: LogSettings,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Base for links in mail; never taken from the Host header.
    pub public_url: url::Url,
    pub tls: Option<TlsFiles>,
    /// A TLS terminator in front of Gatehouse: cookies get `Secure` and the `__Host-` prefix.
    pub behind_tls_proxy: bool,
    pub trusted_proxies: Vec<IpNet>,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub shutdown_grace: Duration,
    /// 0: one multi-threaded runtime serves all connections. N (default: cores): N
    /// single-threaded workers,
    /// each with its own `SO_REUSEPORT` listener and upstream pool (like nginx's workers), so a
    /// request never hops between threads.
    pub workers: usize,
    pub default_access: Access,
    /// `route_case = "sensitive"`: routes compare paths byte for byte. The default folds case,
    /// because many frameworks route case-insensitively.
    pub route_case_sensitive: bool,
    /// `;params` in path segments are accepted (and ignored for matching) instead of refused.
    pub allow_path_params: bool,
    /// Methods accepted beyond RFC 9110's and PATCH (e.g. WebDAV's).
    pub extra_methods: Vec<http::Method>,
    /// A new connection must complete TLS / send its first request within this.
    pub handshake_timeout: Duration,
    /// An HTTP/1 keep-alive or HTTP/2 connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// Open connections at most; further ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Client networks `/_auth/metrics` answers (default: loopback). A request that came
    /// through a proxy is refused whatever its address.
    pub metrics_allow: Vec<IpNet>,
    /// Serve `/_auth/metrics` on its own listener instead (the main one then answers 404).
    pub metrics_listen: Option<SocketAddr>,
}

impl ServerSettings {
    /// Whether browsers reach us over TLS, directly or through a terminator.
    pub fn secure_cookies(&self) -> bool {
        self.tls.is_some() || self.behind_tls_proxy
    }
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub url: url::Url,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub preserve_host: bool,
    pub pool_max_idle_per_host: usize,
    /// `Upgrade` protocols bridged after a `101` (lower-case); others are removed.
    pub allowed_upgrades: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub cookie_name: String,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    /// Longer absolute lifetime offered by a "remember me" box; `None` hides the box.
    pub remember_me_timeout: Option<Duration>,
    pub cache_capacity: u64,
    /// `last_activity` is written back at most this often per session.
    pub touch_interval: Duration,
    /// `Domain` of the session cookie, for several hosts on one parent domain (forward-auth
    /// mode); the cookie then has no `__Host-` prefix, which forbids `Domain`.
    pub cookie_domain: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// OWASP's recommendation for argon2id.
    fn default() -> Self {
        Argon2Params {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SecuritySettings {
    pub lockout_threshold: u32,
    pub lockout_duration: Duration,
    pub argon2: Argon2Params,
    pub hash_concurrency: usize,
    pub min_password_length: usize,
    /// Key for encrypting TOTP secrets at rest.
    pub secret_key: Option<Secret<String>>,
    pub secret_key_file: Option<PathBuf>,
    pub require_2fa_for_admins: bool,
    pub login_attempts_per_ip: u32,
    pub login_throttle_window: Duration,
    // --- portal flows ---
    /// How long a password-reset link works.
    pub reset_token_ttl: Duration,
    /// How long an email-verification link works.
    pub verification_token_ttl: Duration,
    /// Reset (and other mail-sending) requests allowed per account, and per client address,
    /// within `reset_throttle_window`.
    pub reset_requests_per_account: u32,
    pub reset_requests_per_ip: u32,
    pub reset_throttle_window: Duration,
    /// How long the code step of a two-factor sign-in waits, and how many wrong codes it takes.
    pub twofa_pending_ttl: Duration,
    pub twofa_max_attempts: u32,
    /// Wrong second-factor codes per account, counted in the database across every pending
    /// sign-in and instance, before the account locks for `lockout_duration`.
    pub twofa_attempts_per_account: u32,
    /// New usernames: NFKC-normalised, then matched whole against `security.username_pattern`.
    pub username_rules: crate::accounts::UsernameRules,
    // --- identity assertion ---
    /// Ed25519 keys (PKCS#8 PEM) for `X-Auth-Assertion`: the first signs, all are published.
    /// Empty: a key generated into the data folder.
    pub assertion_key_files: Vec<PathBuf>,
    /// `aud` of the assertion; `None`: the upstream URL.
    pub assertion_audience: Option<String>,
    /// Lifetime of an assertion (at least two minutes: tokens are re-signed with a minute left).
    pub assertion_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct HeaderNames {
    pub user_id: http::HeaderName,
    pub user: http::HeaderName,
    pub email: http::HeaderName,
    pub name: http::HeaderName,
    pub roles: http::HeaderName,
    pub tier: http::HeaderName,
    pub admin: http::HeaderName,
    pub verified: http::HeaderName,
    /// The signed identity assertion (a JWT); stripped from clients like the others.
    pub assertion: http::HeaderName,
    pub request_id: http::HeaderName,
    /// Keep `X-HTTP-Method-Override` and its kin for the app (rules then also apply to the
    /// overriding method).
    pub allow_method_override: bool,
}

impl HeaderNames {
    /// The identity headers, which clients may never send.
    pub fn identity(&self) -> [&http::HeaderName; 9] {
        [
            &self.user_id,
            &self.user,
            &self.email,
            &self.name,
            &self.roles,
            &self.tier,
            &self.admin,
            &self.verified,
            &self.assertion,
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueFullPolicy {
    /// The request waits for room in the queue (back-pressure).
    Wait,
    /// The row is dropped and counted.
    Drop,
}

#[derive(Debug, Clone)]
pub struct AuditSettings {
    pub queue_capacity: usize,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub on_full: QueueFullPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Implicit,
    None,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret<String>>,
}

#[derive(Debug, Clone)]
pub struct MailSettings {
    pub from: String,
    pub outbox_dir: PathBuf,
    pub smtp: Option<SmtpSettings>,
    // --- portal flows ---
    /// Upper bound for handing one mail to the SMTP server (or writing it to the outbox).
    pub send_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Closed,
    Open,
}

#[derive(Debug, Clone)]
pub struct PortalSettings {
    pub product_name: String,
    pub logo_url: Option<String>,
    pub accent_color: String,
    pub registration: Registration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Authenticated,
    Deny,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Authenticated => "authenticated",
            Access::Deny => "deny",
        }
    }
}

/// One `[[routes]]` entry.
#[derive(Debug, Clone)]
pub struct RouteRule {
    pub pattern: String,
    pub matcher: PathMatcher,
    pub access: Access,
    pub roles: Vec<String>,
    pub tiers: Vec<Tier>,
    pub methods: Vec<Method>,
    pub require_verified: bool,
    pub require_2fa: bool,
    /// Line in the config file, for messages.
    pub line: usize,
}

impl RouteRule {
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.contains(method)) && self.matcher.is_match(path)
    }
}

/// A route's path: exact, or a glob where `*` is one segment and `**` any depth.
#[derive(Debug, Clone)]
pub enum PathMatcher {
    Exact(String),
    /// `/x/**` with a plain ASCII `/x`, the commonest shape, matched on every request without
    /// a regex: `/x` itself and every path under `/x/` (what the glob matches, checked by a
    /// property test against it).
    Under {
        /// `/x/` (`/` for `/**`).
        dir: String,
        /// `/x`.
        bare: String,
    },
    Glob {
        glob: GlobMatcher,
        /// `/x/**` also covers `/x` itself.
        bare_prefix: Option<String>,
    },
}

impl PathMatcher {
    /// A matcher for paths in the gateway's canonical form, which is lower-cased unless
    /// `case_sensitive`.
    pub fn new(pattern: &str, case_sensitive: bool) -> Result<PathMatcher, String> {
        if !pattern.starts_with('/') {
            return Err(format!("route path {pattern:?} must start with '/'"));
        }
        if pattern.contains([';', '%', '\\', '#']) || pattern.contains("//") {
            return Err(format!(
                "route path {pattern:?} must be a plain path: no ';', '%', '\\', '#' or '//' \
                 (requests are decoded before matching)"
            ));
        }
        let fold = |p: &str| fold_pattern(p, case_sensitive);
        if !pattern.contains(GLOB_CHARS) {
            return Ok(PathMatcher::Exact(fold(pattern)));
        }
        // ASCII only: there the glob's case-insensitive match and the path's folding agree
        // letter for letter.
        if let Some(prefix) = literal_prefix(pattern).filter(|p| p.is_ascii()) {
            return Ok(PathMatcher::Under {
                dir: fold(&format!("{prefix}/")),
                bare: fold(or_root(prefix)),
            });
        }
        Self::glob(pattern, case_sensitive)
    }

    /// The pattern as a glob, whatever its shape.
    fn glob(pattern: &str, case_sensitive: bool) -> Result<PathMatcher, String> {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .case_insensitive(!case_sensitive)
            .build()
            .map_err(|e| format!("bad glob {pattern:?}: {}", e.kind()))?
            .compile_matcher();
        let bare_prefix = literal_prefix(pattern).map(|p| fold_pattern(or_root(p), case_sensitive));
        Ok(PathMatcher::Glob { glob, bare_prefix })
    }

    pub fn is_match(&self, path: &str) -> bool {
        match self {
            PathMatcher::Exact(p) => p == path,
            PathMatcher::Under { dir, bare } => path.starts_with(dir.as_str()) || path == bare,
            PathMatcher::Glob { glob, bare_prefix } => {
                glob.is_match(path) || bare_prefix.as_deref() == Some(path)
            }
        }
    }
}

/// What makes a route path a glob.
const GLOB_CHARS: [char; 4] = ['*', '?', '[', '{'];

/// `/x` of a `/x/**` whose `/x` is plain (empty for `/**`).
fn literal_prefix(pattern: &str) -> Option<&str> {
    pattern
        .strip_suffix("/**")
        .filter(|p| !p.contains(GLOB_CHARS))
}

fn or_root(prefix: &str) -> &str {
    if prefix.is_empty() { "/" } else { prefix }
}

/// A pattern's literal part in the canonical path's form: folded unless case-sensitive.
fn fold_pattern(p: &str, case_sensitive: bool) -> String {
    if case_sensitive {
        p.to_string()
    } else {
        crate::gateway::fold_case(p)
    }
}

#[cfg(test)]
mod path_matcher_tests {
    use proptest::prelude::*;

    use super::PathMatcher;

    /// Paths as the gateway matches them: segments of letters (either case), digits and a
    /// few punctuation marks, folded to lower case unless case-sensitive.
    fn path() -> impl Strategy<Value = String> {
        prop::collection::vec("[aAbB0._-]{0,3}", 0..5)
            .prop_map(|segs| format!("/{}", segs.join("/")))
    }

    proptest! {
        #[test]
        fn under_matches_as_the_glob_does(
            prefix in prop::collection::vec("[aAbB0._-]{1,3}", 0..3),
            near in any::<bool>(),
            tail in "[aAbB0._/-]{0,4}",
            other in path(),
            case_sensitive in any::<bool>(),
        ) {
            let bare: String = prefix.iter().map(|s| format!("/{s}")).collect();
            let pattern = format!("{bare}/**");
            // Half the paths start with the prefix (in any case), where the edges are.
            let path = if near { format!("/{}{tail}", bare.trim_start_matches('/')) } else { other };
            let fast = PathMatcher::new(&pattern, case_sensitive).unwrap();
            prop_assert!(matches!(fast, PathMatcher::Under { .. }), "{pattern}");
            let glob = PathMatcher::glob(&pattern, case_sensitive).unwrap();
            let path = if case_sensitive { path } else { crate::gateway::fold_case(&path) };
            prop_assert_eq!(fast.is_match(&path), glob.is_match(&path), "{} against {}", pattern, path);
        }
    }

    #[test]
    fn only_plain_ascii_prefixes_skip_the_glob() {
        for (pattern, under) in [
            ("/**", true),
            ("/App/**", true),
            ("/a/b-c.d/**", true),
            ("/caf\u{e9}/**", false),
            ("/a/*/**", false),
            ("/a/**/b", false),
            ("/a/*", false),
        ] {
            let m = PathMatcher::new(pattern, false).unwrap();
            assert_eq!(matches!(m, PathMatcher::Under { .. }), under, "{pattern}");
        }
        let m = PathMatcher::new("/App/**", false).unwrap();
        assert!(m.is_match("/app") && m.is_match("/app/") && m.is_match("/app/x/y"));
        assert!(!m.is_match("/apps") && !m.is_match("/ap"));
        let m = PathMatcher::new("/App/**", true).unwrap();
        assert!(m.is_match("/App/x") && !m.is_match("/app/x"));
    }
}

/// `[log]`: how lines are written, and whether each proxied request gets one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// One line per proxied request: method, path, status, duration, user id, request id.
    pub access: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, fields at the top level.
    Json,
}

/// One external OpenID Connect provider users may sign in with.
#[derive(Debug, Clone)]
pub struct IdentityProvider {
    /// In paths (`/_auth/oidc/<id>/callback`) and in `user_identities.provider`.
    pub id: String,
    /// The button label.
    pub name: String,
    /// Where the discovery document lives (as written: it must equal the `iss` the provider
    /// reports); `http` only for a loopback host.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret<String>,
    pub scopes: Vec<String>,
    /// A verified address that matches no account creates one (free tier, verified).
    pub create_users: bool,
    /// Lower-case domains; empty: any. Sign-in needs a verified address in one of them.
    pub allowed_email_domains: Vec<String>,
    /// A claim of the ID token holding the user's groups or roles at the provider.
    pub roles_claim: Option<String>,
    /// Provider value -> Gatehouse roles, granted at each sign-in when the claim has the value.
    pub role_map: Vec<(String, Vec<String>)>,
    /// A provider sign-in whose `amr` shows several factors skips Gatehouse's own 2FA step.
    pub trust_provider_mfa: bool,
}

impl Settings {
    pub fn identity_provider(&self, id: &str) -> Option<&IdentityProvider> {
        self.identity_providers.iter().find(|p| p.id == id)
    }
}
