//! serde structs that mirror the TOML file. Nothing outside `config/` reads them; they are
//! turned into [`super::Settings`] by one `TryFrom`, which reports every problem at once.

use serde::Deserialize;
use toml::Spanned;

pub type S<T> = Option<Spanned<T>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub database: RawDatabase,
    #[serde(default)]
    pub session: RawSession,
    #[serde(default)]
    pub security: RawSecurity,
    #[serde(default)]
    pub headers: RawHeaders,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub mail: RawMail,
    #[serde(default)]
    pub portal: RawPortal,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub log: RawLog,
    // --- external sign-in ---
    #[serde(default)]
    pub identity_providers: Vec<RawIdentityProvider>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: S<String>,
    pub data_dir: S<String>,
    pub public_url: S<String>,
    pub tls_cert: S<String>,
    pub tls_key: S<String>,
    pub behind_tls_proxy: Option<bool>,
    pub trusted_proxies: Option<Vec<Spanned<String>>>,
    pub max_header_bytes: S<i64>,
    pub header_read_timeout: S<String>,
    pub shutdown_grace: S<String>,
    pub workers: S<i64>,
    pub default_access: S<String>,
    // --- trust boundary ---
    pub route_case: S<String>,
    pub allow_path_params: Option<bool>,
    pub extra_methods: Option<Vec<Spanned<String>>>,
    // --- connection deadlines ---
    pub handshake_timeout: S<String>,
    pub idle_timeout: S<String>,
    pub max_connections: S<i64>,
    // --- abuse resistance ---
    pub metrics_allow: Option<Vec<Spanned<String>>>,
    pub metrics_listen: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub url: S<String>,
    pub ca_file: S<String>,
    pub connect_timeout: S<String>,
    pub response_timeout: S<String>,
    pub preserve_host: Option<bool>,
    pub pool_max_idle_per_host: S<i64>,
    pub allowed_upgrades: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub url: S<String>,
    pub max_connections: S<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    pub cookie_name: S<String>,
    pub idle_timeout: S<String>,
    pub absolute_timeout: S<String>,
    pub remember_me: Option<bool>,
    pub remember_me_timeout: S<String>,
    pub cache_capacity: S<i64>,
    pub touch_interval: S<String>,
    pub cookie_domain: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecurity {
    pub lockout_threshold: S<i64>,
    pub lockout_duration: S<String>,
    pub argon2_memory_kib: S<i64>,
    pub argon2_iterations: S<i64>,
    pub argon2_parallelism: S<i64>,
    pub hash_concurrency: S<i64>,
    pub min_password_length: S<i64>,
    pub secret_key: S<String>,
    pub secret_key_file: S<String>,
    pub require_2fa_for_admins: Option<bool>,
    pub login_attempts_per_ip: S<i64>,
    pub login_throttle_window: S<String>,
    // --- portal flows ---
    pub reset_token_ttl: S<String>,
    pub verification_token_ttl: S<String>,
    pub reset_requests_per_account: S<i64>,
    pub reset_requests_per_ip: S<i64>,
    pub reset_throttle_window: S<String>,
    pub twofa_pending_ttl: S<String>,
    pub twofa_max_attempts: S<i64>,
    // --- abuse resistance ---
    pub twofa_attempts_per_account: S<i64>,
    pub username_pattern: S<String>,
    // --- identity assertion ---
    pub assertion_key_file: S<OneOrMany>,
    pub assertion_audience: S<String>,
    pub assertion_ttl: S<String>,
}

/// A value written either as one string or as a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaders {
    pub user_id: S<String>,
    pub user: S<String>,
    pub email: S<String>,
    pub name: S<String>,
    pub roles: S<String>,
    pub tier: S<String>,
    pub admin: S<String>,
    pub verified: S<String>,
    pub assertion: S<String>,
    pub request_id: S<String>,
    pub allow_method_override: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub queue_capacity: S<i64>,
    pub batch_size: S<i64>,
    pub flush_interval: S<String>,
    pub on_full: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMail {
    pub from: S<String>,
    pub outbox_dir: S<String>,
    pub smtp_host: S<String>,
    pub smtp_port: S<i64>,
    pub smtp_tls: S<String>,
    pub smtp_username: S<String>,
    pub smtp_password: S<String>,
    pub smtp_password_file: S<String>,
    // --- portal flows ---
    pub send_timeout: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPortal {
    pub product_name: S<String>,
    pub logo_url: S<String>,
    pub accent_color: S<String>,
    pub registration: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub path: Spanned<String>,
    pub access: S<String>,
    pub roles: Option<Vec<Spanned<String>>>,
    pub tiers: Option<Vec<Spanned<String>>>,
    pub methods: Option<Vec<Spanned<String>>>,
    pub require_verified: Option<bool>,
    pub require_2fa: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: S<String>,
    pub access: Option<bool>,
}

/// One `[[identity_providers]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentityProvider {
    pub id: Spanned<String>,
    pub name: S<String>,
    pub issuer: S<String>,
    pub client_id: S<String>,
    pub client_secret: S<String>,
    pub client_secret_file: S<String>,
    pub scopes: S<OneOrMany>,
    pub create_users: Option<bool>,
    pub allowed_email_domains: Option<Vec<Spanned<String>>>,
    pub roles_claim: S<String>,
    /// Provider value (in `roles_claim`) -> Gatehouse role(s).
    pub role_map: Option<Spanned<std::collections::BTreeMap<String, OneOrMany>>>,
    pub trust_provider_mfa: Option<bool>,
}
