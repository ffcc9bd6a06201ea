//! The one conversion from raw TOML structs to [`Settings`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, Method};
use ipnet::IpNet;
use toml::Spanned;

use super::raw::{RawRoute, S};
use super::settings::*;
use super::{ConfigError, Document, Problem, Secret, line_of};
use crate::store::Tier;

struct Ctx<'a> {
    source: &'a str,
    env: &'a [(String, String)],
    problems: Vec<Problem>,
}

impl Ctx<'_> {
    fn problem(&mut self, key: &str, line: Option<usize>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_string(),
            line,
            message: message.into(),
        });
    }

    fn line<T>(&self, s: &Spanned<T>) -> usize {
        line_of(self.source, s.span().start)
    }

    fn env(&self, var: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(k, _)| k == var)
            .map(|(_, v)| v.clone())
    }

    /// A string value with an optional `GATEHOUSE_*` override; returns (value, line).
    fn text(&self, v: &S<String>, env: Option<&str>) -> Option<(String, Option<usize>)> {
        if let Some(var) = env.and_then(|e| self.env(e)) {
            return Some((var, None));
        }
        v.as_ref()
            .map(|s| (s.get_ref().clone(), Some(self.line(s))))
    }

    fn duration(&mut self, key: &str, v: &S<String>, default: Duration) -> Duration {
        match v {
            None => default,
            Some(s) => {
                match humantime::parse_duration(s.get_ref()) {
                    Ok(d) if !d.is_zero() => d,
                    Ok(_) => {
                        let line = self.line(s);
                        self.problem(key, Some(line), "must be longer than zero");
                        default
                    }
                    Err(e) => {
                        let line = self.line(s);
                        self.problem(
                        key,
                        Some(line),
                        format!("{:?} is not a duration ({e}); write e.g. \"30m\", \"12h\", \"250ms\"", s.get_ref()),
                    );
                        default
                    }
                }
            }
        }
    }

    fn int(&mut self, key: &str, v: &S<i64>, default: i64, min: i64, max: i64) -> i64 {
        match v {
            None => default,
            Some(s) if (min..=max).contains(s.get_ref()) => *s.get_ref(),
            Some(s) => {
                let line = self.line(s);
                self.problem(
                    key,
                    Some(line),
                    format!("must be between {min} and {max}, got {}", s.get_ref()),
                );
                default
            }
        }
    }

    fn path(&self, v: &S<String>, env: Option<&str>) -> Option<PathBuf> {
        self.text(v, env)
            .map(|(p, _)| PathBuf::from(p))
            .filter(|p| !p.as_os_str().is_empty())
    }

    fn header(&mut self, key: &str, v: &S<String>, default: &'static str) -> HeaderName {
        match v {
            None => HeaderName::from_static_lower(default),
            Some(s) => match HeaderName::from_str(s.get_ref()) {
                Ok(h) => h,
                Err(_) => {
                    let line = self.line(s);
                    self.problem(
                        key,
                        Some(line),
                        format!("{:?} is not a valid header name", s.get_ref()),
                    );
                    HeaderName::from_static_lower(default)
                }
            },
        }
    }
}

trait FromStaticLower {
    fn from_static_lower(s: &'static str) -> HeaderName;
}

impl FromStaticLower for HeaderName {
    fn from_static_lower(s: &'static str) -> HeaderName {
        // Defaults are compile-time constants written in canonical case; HeaderName wants lowercase.
        HeaderName::from_bytes(s.to_ascii_lowercase().as_bytes())
            .unwrap_or(HeaderName::from_static("x-auth"))
    }
}

pub(super) fn settings(doc: Document) -> Result<Settings, ConfigError> {
    let raw = &doc.raw;
    let mut c = Ctx {
        source: &doc.source,
        env: &doc.env,
        problems: Vec::new(),
    };

    // [server]
    let s = &raw.server;
    let listen = match c.text(&s.listen, Some("GATEHOUSE_LISTEN")) {
        None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        Some((v, line)) => v.parse().unwrap_or_else(|_| {
            c.problem(
                "server.listen",
                line,
                format!("{v:?} is not an address like \"127.0.0.1:8080\""),
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        }),
    };
    let data_dir = c
        .path(&s.data_dir, Some("GATEHOUSE_DATA_DIR"))
        .unwrap_or_else(|| PathBuf::from("gatehouse-data"));
    let tls = match (c.path(&s.tls_cert, None), c.path(&s.tls_key, None)) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        _ => {
            c.problem(
                "server.tls_cert",
                None,
                "tls_cert and tls_key must be set together",
            );
            None
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public_url = match c.text(&s.public_url, Some("GATEHOUSE_PUBLIC_URL")) {
        None => url::Url::parse(&format!("{scheme}://{listen}/")).ok(),
        Some((v, line)) => match url::Url::parse(&v) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            _ => {
                c.problem(
                    "server.public_url",
                    line,
                    format!("{v:?} is not an http(s) URL"),
                );
                None
            }
        },
    };
    let mut trusted_proxies = Vec::new();
    for p in s.trusted_proxies.iter().flatten() {
        let v = p.get_ref();
        match v
            .parse::<IpNet>()
            .or_else(|_| v.parse::<std::net::IpAddr>().map(IpNet::from))
        {
            Ok(n) => trusted_proxies.push(n),
            Err(_) => {
                let line = c.line(p);
                c.problem(
                    "server.trusted_proxies",
                    Some(line),
                    format!("{v:?} is not an IP address or CIDR"),
                );
            }
        }
    }
    let max_header_bytes = c.int(
        "server.max_header_bytes",
        &s.max_header_bytes,
        16 * 1024,
        1024,
        1024 * 1024,
    ) as usize;
    let header_read_timeout = c.duration(
        "server.header_read_timeout",
        &s.header_read_timeout,
        Duration::from_secs(10),
    );
    let shutdown_grace = c.duration(
        "server.shutdown_grace",
        &s.shutdown_grace,
        Duration::from_secs(10),
    );
    let default_access = match &s.default_access {
        None => Access::Authenticated,
        Some(a) => parse_access(&mut c, "server.default_access", a),
    };

    // [upstream]
    let u = &raw.upstream;
    let upstream_url = match c.text(&u.url, Some("GATEHOUSE_UPSTREAM_URL")) {
        None => url::Url::parse("http://127.0.0.1:3000/").ok(),
        Some((v, line)) => match url::Url::parse(&v) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(url)
            }
            _ => {
                c.problem(
                    "upstream.url",
                    line,
                    format!("{v:?} is not an http:// or https:// URL"),
                );
                None
            }
        },
    };
    let connect_timeout = c.duration(
        "upstream.connect_timeout",
        &u.connect_timeout,
        Duration::from_secs(5),
    );
    let response_timeout = c.duration(
        "upstream.response_timeout",
        &u.response_timeout,
        Duration::from_secs(60),
    );
    let pool_max_idle_per_host = c.int(
        "upstream.pool_max_idle_per_host",
        &u.pool_max_idle_per_host,
        256,
        0,
        65_536,
    ) as usize;

    // [database]
    let d = &raw.database;
    let db_url = match c.text(&d.url, Some("GATEHOUSE_DATABASE_URL")) {
        None => format!("sqlite://{}", data_dir.join("gatehouse.db").display()),
        Some((v, line)) => {
            if crate::store::Backend::of_url(&v).is_none() {
                c.problem(
                    "database.url",
                    line,
                    format!(
                        "{} is not a sqlite:// or postgres:// URL",
                        crate::store::mask_url(&v)
                    ),
                );
            }
            v
        }
    };
    let max_connections = c.int("database.max_connections", &d.max_connections, 8, 1, 1000) as u32;

    // [session]
    let se = &raw.session;
    let idle_timeout = c.duration(
        "session.idle_timeout",
        &se.idle_timeout,
        Duration::from_secs(30 * 60),
    );
    let absolute_timeout = c.duration(
        "session.absolute_timeout",
        &se.absolute_timeout,
        Duration::from_secs(12 * 3600),
    );
    if idle_timeout > absolute_timeout {
        let line = se.idle_timeout.as_ref().map(|s| c.line(s));
        c.problem(
            "session.idle_timeout",
            line,
            "must not be longer than session.absolute_timeout",
        );
    }
    let remember_me_timeout = se.remember_me.unwrap_or(false).then(|| {
        c.duration(
            "session.remember_me_timeout",
            &se.remember_me_timeout,
            Duration::from_secs(30 * 24 * 3600),
        )
    });
    let cookie_name = match c.text(&se.cookie_name, None) {
        None => "gatehouse_session".to_string(),
        Some((v, line)) => {
            if v.is_empty()
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                c.problem(
                    "session.cookie_name",
                    line,
                    "use letters, digits, '_' and '-' only",
                );
            }
            v
        }
    };
    let cache_capacity = c.int(
        "session.cache_capacity",
        &se.cache_capacity,
        100_000,
        1,
        100_000_000,
    ) as u64;
    let touch_interval = c.duration(
        "session.touch_interval",
        &se.touch_interval,
        Duration::from_secs(60),
    );

    // [security]
    let sec = &raw.security;
    let argon2 = Argon2Params {
        memory_kib: c.int(
            "security.argon2_memory_kib",
            &sec.argon2_memory_kib,
            19_456,
            8,
            4 * 1024 * 1024,
        ) as u32,
        iterations: c.int(
            "security.argon2_iterations",
            &sec.argon2_iterations,
            2,
            1,
            100,
        ) as u32,
        parallelism: c.int(
            "security.argon2_parallelism",
            &sec.argon2_parallelism,
            1,
            1,
            64,
        ) as u32,
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as i64;
    let security = SecuritySettings {
        lockout_threshold: c.int(
            "security.lockout_threshold",
            &sec.lockout_threshold,
            5,
            1,
            1000,
        ) as u32,
        lockout_duration: c.duration(
            "security.lockout_duration",
            &sec.lockout_duration,
            Duration::from_secs(30 * 60),
        ),
        argon2,
        hash_concurrency: c.int(
            "security.hash_concurrency",
            &sec.hash_concurrency,
            cores,
            1,
            1024,
        ) as usize,
        min_password_length: c.int(
            "security.min_password_length",
            &sec.min_password_length,
            12,
            8,
            128,
        ) as usize,
        secret_key: c
            .text(&sec.secret_key, Some("GATEHOUSE_SECRET_KEY"))
            .map(|(v, _)| Secret::new(v)),
        secret_key_file: c.path(&sec.secret_key_file, Some("GATEHOUSE_SECRET_KEY_FILE")),
        require_2fa_for_admins: sec.require_2fa_for_admins.unwrap_or(false),
        login_attempts_per_ip: c.int(
            "security.login_attempts_per_ip",
            &sec.login_attempts_per_ip,
            20,
            1,
            1_000_000,
        ) as u32,
        login_throttle_window: c.duration(
            "security.login_throttle_window",
            &sec.login_throttle_window,
            Duration::from_secs(15 * 60),
        ),
        // --- portal flows (issue 4) ---
        reset_token_ttl: c.duration(
            "security.reset_token_ttl",
            &sec.reset_token_ttl,
            Duration::from_secs(3600),
        ),
        verification_token_ttl: c.duration(
            "security.verification_token_ttl",
            &sec.verification_token_ttl,
            Duration::from_secs(24 * 3600),
        ),
        reset_requests_per_account: c.int(
            "security.reset_requests_per_account",
            &sec.reset_requests_per_account,
            3,
            1,
            1_000_000,
        ) as u32,
        reset_requests_per_ip: c.int(
            "security.reset_requests_per_ip",
            &sec.reset_requests_per_ip,
            10,
            1,
            1_000_000,
        ) as u32,
        reset_throttle_window: c.duration(
            "security.reset_throttle_window",
            &sec.reset_throttle_window,
            Duration::from_secs(3600),
        ),
        twofa_pending_ttl: c.duration(
            "security.twofa_pending_ttl",
            &sec.twofa_pending_ttl,
            Duration::from_secs(5 * 60),
        ),
        twofa_max_attempts: c.int(
            "security.twofa_max_attempts",
            &sec.twofa_max_attempts,
            5,
            1,
            100,
        ) as u32,
    };

    // [headers]
    let h = &raw.headers;
    let headers = HeaderNames {
        user_id: c.header("headers.user_id", &h.user_id, "X-Auth-User-Id"),
        user: c.header("headers.user", &h.user, "X-Auth-User"),
        email: c.header("headers.email", &h.email, "X-Auth-Email"),
        name: c.header("headers.name", &h.name, "X-Auth-Name"),
        roles: c.header("headers.roles", &h.roles, "X-Auth-Roles"),
        tier: c.header("headers.tier", &h.tier, "X-Auth-Tier"),
        admin: c.header("headers.admin", &h.admin, "X-Auth-Admin"),
        verified: c.header("headers.verified", &h.verified, "X-Auth-Verified"),
        request_id: c.header("headers.request_id", &h.request_id, "X-Request-Id"),
    };

    // [audit]
    let a = &raw.audit;
    let audit = AuditSettings {
        queue_capacity: c.int(
            "audit.queue_capacity",
            &a.queue_capacity,
            65_536,
            1,
            10_000_000,
        ) as usize,
        batch_size: c.int("audit.batch_size", &a.batch_size, 512, 1, 100_000) as usize,
        flush_interval: c.duration(
            "audit.flush_interval",
            &a.flush_interval,
            Duration::from_millis(200),
        ),
        on_full: match &a.on_full {
            None => QueueFullPolicy::Wait,
            Some(s) => match s.get_ref().as_str() {
                "wait" => QueueFullPolicy::Wait,
                "drop" => QueueFullPolicy::Drop,
                other => {
                    let line = c.line(s);
                    c.problem(
                        "audit.on_full",
                        Some(line),
                        format!("{other:?} is not \"wait\" or \"drop\""),
                    );
                    QueueFullPolicy::Wait
                }
            },
        },
    };

    // [mail]
    let m = &raw.mail;
    let smtp = match c.text(&m.smtp_host, None) {
        None => None,
        Some((host, _)) => {
            let tls = match m
                .smtp_tls
                .as_ref()
                .map(|s| (s.get_ref().as_str(), c.line(s)))
            {
                None | Some(("starttls", _)) => SmtpTls::StartTls,
                Some(("implicit", _)) | Some(("tls", _)) => SmtpTls::Implicit,
                Some(("none", _)) => SmtpTls::None,
                Some((other, line)) => {
                    c.problem(
                        "mail.smtp_tls",
                        Some(line),
                        format!("{other:?} is not \"starttls\", \"implicit\" or \"none\""),
                    );
                    SmtpTls::StartTls
                }
            };
            let default_port = match tls {
                SmtpTls::Implicit => 465,
                SmtpTls::StartTls => 587,
                SmtpTls::None => 25,
            };
            let password = match (
                c.text(&m.smtp_password, None),
                c.path(&m.smtp_password_file, None),
            ) {
                (Some((p, _)), _) => Some(Secret::new(p)),
                (None, Some(path)) => match std::fs::read_to_string(&path) {
                    Ok(p) => Some(Secret::new(p.trim_end().to_string())),
                    Err(e) => {
                        c.problem(
                            "mail.smtp_password_file",
                            None,
                            format!("cannot read {}: {e}", path.display()),
                        );
                        None
                    }
                },
                (None, None) => None,
            };
            Some(SmtpSettings {
                host,
                port: c.int("mail.smtp_port", &m.smtp_port, default_port, 1, 65_535) as u16,
                tls,
                username: c.text(&m.smtp_username, None).map(|(u, _)| u),
                password,
            })
        }
    };
    let mail = MailSettings {
        from: c
            .text(&m.from, None)
            .map_or_else(|| "Gatehouse <gatehouse@localhost>".to_string(), |(v, _)| v),
        outbox_dir: c
            .path(&m.outbox_dir, None)
            .unwrap_or_else(|| data_dir.join("outbox")),
        smtp,
        // --- portal flows (issue 4) ---
        send_timeout: c.duration(
            "mail.send_timeout",
            &m.send_timeout,
            Duration::from_secs(15),
        ),
    };

    // [portal]
    let p = &raw.portal;
    let portal = PortalSettings {
        product_name: c
            .text(&p.product_name, None)
            .map_or_else(|| "Gatehouse".to_string(), |(v, _)| v),
        logo_url: c.text(&p.logo_url, None).map(|(v, _)| v),
        accent_color: match c.text(&p.accent_color, None) {
            None => "#2457c5".to_string(),
            Some((v, line)) => {
                let ok = v.len() == 7
                    && v.starts_with('#')
                    && v[1..].bytes().all(|b| b.is_ascii_hexdigit());
                if !ok {
                    c.problem(
                        "portal.accent_color",
                        line,
                        format!("{v:?} is not a colour like \"#2457c5\""),
                    );
                }
                v
            }
        },
        registration: match c.text(&p.registration, None) {
            None => Registration::Closed,
            Some((v, line)) => match v.as_str() {
                "closed" => Registration::Closed,
                "open" => Registration::Open,
                _ => {
                    c.problem(
                        "portal.registration",
                        line,
                        format!("{v:?} is not \"closed\" or \"open\""),
                    );
                    Registration::Closed
                }
            },
        },
    };

    // [[routes]]
    let mut routes = Vec::new();
    for (i, r) in raw.routes.iter().enumerate() {
        if let Some(rule) = route(&mut c, i, r) {
            routes.push(rule);
        }
    }
    let warnings = shadow_warnings(&routes);

    let origin = doc.origin.clone();
    if !c.problems.is_empty() {
        return Err(ConfigError::Invalid {
            origin,
            problems: c.problems,
        });
    }
    let (Some(public_url), Some(upstream_url)) = (public_url, upstream_url) else {
        return Err(ConfigError::Invalid {
            origin,
            problems: vec![Problem {
                key: "server.public_url".into(),
                line: None,
                message: "cannot be derived".into(),
            }],
        });
    };
    Ok(Settings {
        server: ServerSettings {
            listen,
            data_dir,
            public_url,
            tls,
            behind_tls_proxy: s.behind_tls_proxy.unwrap_or(false),
            trusted_proxies,
            max_header_bytes,
            header_read_timeout,
            shutdown_grace,
            default_access,
        },
        upstream: UpstreamSettings {
            url: upstream_url,
            ca_file: c.path(&u.ca_file, None),
            connect_timeout,
            response_timeout,
            preserve_host: u.preserve_host.unwrap_or(true),
            pool_max_idle_per_host,
        },
        database: DatabaseSettings {
            url: db_url,
            max_connections,
        },
        session: SessionSettings {
            cookie_name,
            idle_timeout,
            absolute_timeout,
            remember_me_timeout,
            cache_capacity,
            touch_interval,
        },
        security,
        headers,
        audit,
        mail,
        portal,
        routes,
        warnings,
    })
}

fn parse_access(c: &mut Ctx<'_>, key: &str, a: &Spanned<String>) -> Access {
    match a.get_ref().as_str() {
        "public" => Access::Public,
        "authenticated" => Access::Authenticated,
        "deny" => Access::Deny,
        other => {
            let line = c.line(a);
            c.problem(
                key,
                Some(line),
                format!("{other:?} is not \"public\", \"authenticated\" or \"deny\""),
            );
            Access::Authenticated
        }
    }
}

fn route(c: &mut Ctx<'_>, i: usize, r: &RawRoute) -> Option<RouteRule> {
    let line = c.line(&r.path);
    let key = |k: &str| format!("routes[{i}].{k}");
    let matcher = match PathMatcher::new(r.path.get_ref()) {
        Ok(m) => Some(m),
        Err(e) => {
            c.problem(&key("path"), Some(line), e);
            None
        }
    };
    if r.path.get_ref().starts_with("/_auth/") || r.path.get_ref() == "/_auth" {
        c.problem(
            &key("path"),
            Some(line),
            "/_auth/ is reserved for Gatehouse's own pages",
        );
    }
    let access = r.access.as_ref().map_or(Access::Authenticated, |a| {
        parse_access(c, &key("access"), a)
    });
    let roles: Vec<String> = r
        .roles
        .iter()
        .flatten()
        .map(|s| s.get_ref().trim().to_string())
        .collect();
    if roles.iter().any(String::is_empty) {
        c.problem(&key("roles"), Some(line), "role names must not be empty");
    }
    let mut tiers = Vec::new();
    for t in r.tiers.iter().flatten() {
        match t.get_ref().parse::<Tier>() {
            Ok(t) => tiers.push(t),
            Err(e) => {
                let l = c.line(t);
                c.problem(&key("tiers"), Some(l), e.to_string());
            }
        }
    }
    let mut methods = Vec::new();
    for m in r.methods.iter().flatten() {
        match Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes()) {
            Ok(meth) => methods.push(meth),
            Err(_) => {
                let l = c.line(m);
                c.problem(
                    &key("methods"),
                    Some(l),
                    format!("{:?} is not an HTTP method", m.get_ref()),
                );
            }
        }
    }
    let require_verified = r.require_verified.unwrap_or(false);
    let require_2fa = r.require_2fa.unwrap_or(false);
    if access != Access::Authenticated
        && (!roles.is_empty() || !tiers.is_empty() || require_verified || require_2fa)
    {
        c.problem(
            &key("access"),
            Some(line),
            format!("roles, tiers, require_verified and require_2fa need access = \"authenticated\", not {:?}", access.as_str()),
        );
    }
    Some(RouteRule {
        pattern: r.path.get_ref().clone(),
        matcher: matcher?,
        access,
        roles,
        tiers,
        methods,
        require_verified,
        require_2fa,
        line,
    })
}

/// Warns about rules that can never match because an earlier rule catches all their paths.
fn shadow_warnings(routes: &[RouteRule]) -> Vec<String> {
    let mut out = Vec::new();
    for (j, later) in routes.iter().enumerate() {
        // A sample path the later rule matches; if an earlier rule also takes it, the later rule
        // is (at least partly) unreachable.
        let sample = later.pattern.replace("**", "a/b/c").replace('*', "a");
        for earlier in &routes[..j] {
            let methods_cover = earlier.methods.is_empty()
                || (!later.methods.is_empty()
                    && later.methods.iter().all(|m| earlier.methods.contains(m)));
            if methods_cover
                && earlier.matcher.is_match(&sample)
                && covers(&earlier.pattern, &later.pattern)
            {
                out.push(format!(
                    "route {:?} (line {}) is shadowed by {:?} (line {}), which comes first and matches all its paths",
                    later.pattern, later.line, earlier.pattern, earlier.line
                ));
                break;
            }
        }
    }
    out
}

/// Whether pattern `a` matches at least every path `b` does (conservative).
fn covers(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if let Some(prefix) = a.strip_suffix("/**")
        && !prefix.contains('*')
    {
        return b == prefix || b.starts_with(&format!("{prefix}/"));
    }
    !b.contains('*')
}

#[cfg(test)]
mod tests {
    use super::super::from_toml;
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = from_toml("").unwrap();
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.session.idle_timeout, Duration::from_secs(1800));
        assert_eq!(s.security.lockout_threshold, 5);
        assert_eq!(s.headers.user.as_str(), "x-auth-user");
        assert!(s.database.url.starts_with("sqlite://"));
    }

    #[test]
    fn every_problem_is_reported_with_key_and_line() {
        let src = "[session]\nidle_timeout = \"soon\"\n\n[[routes]]\npath = \"/a/[\"\n\n[[routes]]\npath = \"/b\"\ntiers = [\"gold\"]\n";
        let err = from_toml(src).unwrap_err().to_string();
        assert!(err.contains("session.idle_timeout (line 2)"), "{err}");
        assert!(err.contains("routes[0].path (line 5)"), "{err}");
        assert!(
            err.contains("routes[1].tiers (line 9)")
                && err.contains("free, beta, premium, enterprise"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_names_its_line() {
        let err = from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3") && err.contains("lisen"), "{err}");
    }

    #[test]
    fn globs_match_segments() {
        let one = PathMatcher::new("/a/*").unwrap();
        assert!(one.is_match("/a/b") && !one.is_match("/a/b/c"));
        let deep = PathMatcher::new("/a/**").unwrap();
        assert!(
            deep.is_match("/a/b/c")
                && deep.is_match("/a")
                && deep.is_match("/a/")
                && !deep.is_match("/ab")
        );
        let exact = PathMatcher::new("/x").unwrap();
        assert!(exact.is_match("/x") && !exact.is_match("/x/"));
    }

    #[test]
    fn shadowed_route_is_a_warning() {
        let s = from_toml("[[routes]]\npath = \"/a/**\"\n[[routes]]\npath = \"/a/b\"\naccess = \"public\"\n[[routes]]\npath = \"/c\"\n").unwrap();
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("\"/a/b\" (line 4)"));
    }

    #[test]
    fn portal_flow_keys() {
        let s = from_toml(
            "[security]\nreset_token_ttl = \"2h\"\nverification_token_ttl = \"3d\"\n\
             reset_requests_per_account = 2\nreset_requests_per_ip = 4\n\
             reset_throttle_window = \"30m\"\ntwofa_pending_ttl = \"2m\"\ntwofa_max_attempts = 3\n\
             [mail]\nsend_timeout = \"3s\"\n",
        )
        .unwrap();
        assert_eq!(s.security.reset_token_ttl, Duration::from_secs(7200));
        assert_eq!(
            s.security.verification_token_ttl,
            Duration::from_secs(3 * 86400)
        );
        assert_eq!(s.security.reset_requests_per_account, 2);
        assert_eq!(s.security.twofa_max_attempts, 3);
        assert_eq!(s.mail.send_timeout, Duration::from_secs(3));
        let d = from_toml("").unwrap();
        assert_eq!(d.security.reset_token_ttl, Duration::from_secs(3600));
        assert_eq!(d.security.twofa_pending_ttl, Duration::from_secs(300));
        let err = from_toml("[security]\ntwofa_max_attempts = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("security.twofa_max_attempts (line 2)"),
            "{err}"
        );
    }

    /// The example file parses, and so does its portal section with every key uncommented.
    #[test]
    fn example_config_documents_real_keys() {
        let example = include_str!("../../config/gatehouse.example.toml");
        from_toml(example).unwrap();
        let section = example
            .split("# Sign-in portal:")
            .nth(1)
            .expect("the portal section");
        let uncommented: String = section
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                l.starts_with('[')
                    || l.split_once(" = ")
                        .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(uncommented.contains("send_timeout"), "{uncommented}");
        from_toml(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    }

    #[test]
    fn env_overrides_file() {
        let doc = Document::parse("t", "[database]\nurl = \"sqlite://a.db\"\n")
            .unwrap()
            .with_env(vec![(
                "GATEHOUSE_DATABASE_URL".into(),
                "postgres://u:pw@h/db".into(),
            )]);
        let s = Settings::try_from(doc).unwrap();
        assert_eq!(s.database.url, "postgres://u:pw@h/db");
    }
}

#[cfg(test)]
mod example {
    #[test]
    fn the_example_config_is_valid() {
        let s =
            super::super::from_toml(include_str!("../../config/gatehouse.example.toml")).unwrap();
        assert_eq!(s.routes.len(), 4);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }
}
