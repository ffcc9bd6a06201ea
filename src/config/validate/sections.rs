//! One function per TOML table: raw values in, typed settings out, every problem recorded in
//! the shared [`Ctx`] with its key and line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::super::Secret;
use super::super::raw::{
    RawAudit, RawDatabase, RawHeaders, RawMail, RawPortal, RawSecurity, RawServer, RawSession,
    RawUpstream,
};
use super::super::settings::*;
use super::{Ctx, parse_access, placeholder_url};

pub(super) fn server(c: &mut Ctx<'_>, s: &RawServer) -> ServerSettings {
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
    let trusted_proxies = networks(c, "server.trusted_proxies", s.trusted_proxies.as_deref());
    let metrics_allow = match &s.metrics_allow {
        None => vec![
            IpNet::from(std::net::IpAddr::from([127, 0, 0, 1])),
            IpNet::from(std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
        ],
        Some(list) => networks(c, "server.metrics_allow", Some(list)),
    };
    let metrics_listen = match c.text(&s.metrics_listen, None) {
        None => None,
        Some((v, line)) => match v.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                c.problem(
                    "server.metrics_listen",
                    line,
                    format!("{v:?} is not an address like \"127.0.0.1:9090\""),
                );
                None
            }
        },
    };
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
        Some(a) => parse_access(c, "server.default_access", a),
    };
    let route_case_sensitive = match &s.route_case {
        None => false,
        Some(v) => match v.get_ref().as_str() {
            "insensitive" => false,
            "sensitive" => true,
            other => {
                let line = c.line(v);
                c.problem(
                    "server.route_case",
                    Some(line),
                    format!("{other:?} is not \"insensitive\" or \"sensitive\""),
                );
                false
            }
        },
    };
    let mut extra_methods = Vec::new();
    for m in s.extra_methods.iter().flatten() {
        let v = m.get_ref();
        let token = !v.is_empty()
            && v.bytes().all(|b| {
                b.is_ascii_uppercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b)
            });
        match http::Method::from_bytes(v.as_bytes()) {
            Ok(meth) if token && meth != http::Method::CONNECT => extra_methods.push(meth),
            _ => {
                let line = c.line(m);
                c.problem(
                    "server.extra_methods",
                    Some(line),
                    format!("{v:?} is not an upper-case method token (CONNECT is never proxied)"),
                );
            }
        }
    }

    ServerSettings {
        listen,
        data_dir,
        public_url: public_url.unwrap_or_else(placeholder_url),
        tls,
        behind_tls_proxy: s.behind_tls_proxy.unwrap_or(false),
        trusted_proxies,
        max_header_bytes,
        header_read_timeout,
        shutdown_grace,
        workers: c.int("server.workers", &s.workers, cores(), 0, 1024) as usize,
        default_access,
        route_case_sensitive,
        allow_path_params: s.allow_path_params.unwrap_or(false),
        extra_methods,
        handshake_timeout: c.duration(
            "server.handshake_timeout",
            &s.handshake_timeout,
            Duration::from_secs(10),
        ),
        idle_timeout: c.duration(
            "server.idle_timeout",
            &s.idle_timeout,
            Duration::from_secs(60),
        ),
        // 0: derived at start from the open-file limit.
        max_connections: c.int(
            "server.max_connections",
            &s.max_connections,
            0,
            0,
            10_000_000,
        ) as usize,
        metrics_allow,
        metrics_listen,
    }
}

/// A list of IP addresses or CIDRs (`key`), each bad entry reported with its line.
fn networks(c: &mut Ctx<'_>, key: &str, list: Option<&[Spanned<String>]>) -> Vec<IpNet> {
    let mut out = Vec::new();
    for p in list.into_iter().flatten() {
        let v = p.get_ref();
        match v
            .parse::<IpNet>()
            .or_else(|_| v.parse::<std::net::IpAddr>().map(IpNet::from))
        {
            Ok(n) => out.push(n),
            Err(_) => {
                let line = c.line(p);
                c.problem(
                    key,
                    Some(line),
                    format!("{v:?} is not an IP address or CIDR"),
                );
            }
        }
    }
    out
}

pub(super) fn upstream(c: &mut Ctx<'_>, u: &RawUpstream) -> UpstreamSettings {
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
    let mut allowed_upgrades = Vec::new();
    match &u.allowed_upgrades {
        None => allowed_upgrades.push("websocket".to_string()),
        Some(list) => {
            for p in list {
                let v = p.get_ref().trim().to_ascii_lowercase();
                let name = v.split('/').next().unwrap_or("");
                if name.is_empty()
                    || name.starts_with("h2")
                    || name.contains(|ch: char| !ch.is_ascii_graphic() || ch == ',')
                {
                    let line = c.line(p);
                    c.problem(
                        "upstream.allowed_upgrades",
                        Some(line),
                        format!("{:?} cannot be bridged (h2c never is; write protocol tokens like \"websocket\")", p.get_ref()),
                    );
                } else {
                    allowed_upgrades.push(name.to_string());
                }
            }
        }
    }

    UpstreamSettings {
        url: upstream_url.unwrap_or_else(placeholder_url),
        ca_file: c.path(&u.ca_file, None),
        connect_timeout,
        response_timeout,
        preserve_host: u.preserve_host.unwrap_or(true),
        pool_max_idle_per_host,
        allowed_upgrades,
    }
}

pub(super) fn database(c: &mut Ctx<'_>, d: &RawDatabase, data_dir: &Path) -> DatabaseSettings {
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

    DatabaseSettings {
        url: db_url,
        max_connections,
    }
}

pub(super) fn session(c: &mut Ctx<'_>, se: &RawSession) -> SessionSettings {
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

    let cookie_domain = c.text(&se.cookie_domain, None).and_then(|(v, line)| {
        // A leading dot is how older browsers wrote it; RFC 6265 ignores it.
        let d = v.trim().trim_start_matches('.').to_ascii_lowercase();
        let valid = !d.is_empty()
            && d.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if valid {
            Some(d)
        } else {
            c.problem(
                "session.cookie_domain",
                line,
                format!("{v:?} is not a domain name (e.g. \"example.com\")"),
            );
            None
        }
    });

    SessionSettings {
        cookie_name,
        idle_timeout,
        absolute_timeout,
        remember_me_timeout,
        cache_capacity,
        touch_interval,
        cookie_domain,
    }
}

pub(super) fn security(c: &mut Ctx<'_>, sec: &RawSecurity) -> SecuritySettings {
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
    let username_rules = match c.text(&sec.username_pattern, None) {
        None => crate::accounts::UsernameRules::default(),
        Some((v, line)) => crate::accounts::UsernameRules::new(&v).unwrap_or_else(|e| {
            c.problem(
                "security.username_pattern",
                line,
                format!("{v:?} is not a valid regular expression: {e}"),
            );
            crate::accounts::UsernameRules::default()
        }),
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as i64;
    SecuritySettings {
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
        // Hashing never takes every core from proxying: one fewer than the cores, at least one.
        hash_concurrency: c.int(
            "security.hash_concurrency",
            &sec.hash_concurrency,
            (cores - 1).max(1),
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
        twofa_attempts_per_account: c.int(
            "security.twofa_attempts_per_account",
            &sec.twofa_attempts_per_account,
            5,
            1,
            1000,
        ) as u32,
        username_rules,
        assertion_key_files: assertion_key_files(c, sec),
        assertion_audience: c
            .text(&sec.assertion_audience, None)
            .map(|(v, _)| v)
            .filter(|v| !v.is_empty()),
        assertion_ttl: assertion_ttl(c, sec),
    }
}

fn assertion_key_files(c: &mut Ctx<'_>, sec: &RawSecurity) -> Vec<PathBuf> {
    use crate::config::raw::OneOrMany;
    let Some(v) = &sec.assertion_key_file else {
        return Vec::new();
    };
    let list: Vec<&String> = match v.get_ref() {
        OneOrMany::One(p) => vec![p],
        OneOrMany::Many(ps) => ps.iter().collect(),
    };
    if list.is_empty() || list.iter().any(|p| p.trim().is_empty()) {
        let line = c.line(v);
        c.problem(
            "security.assertion_key_file",
            Some(line),
            "give a path, or a list of paths (the first signs)",
        );
    }
    list.into_iter()
        .filter(|p| !p.trim().is_empty())
        .map(PathBuf::from)
        .collect()
}

fn assertion_ttl(c: &mut Ctx<'_>, sec: &RawSecurity) -> Duration {
    let default = Duration::from_secs(5 * 60);
    let ttl = c.duration("security.assertion_ttl", &sec.assertion_ttl, default);
    // Tokens are re-signed with a minute left, so a shorter lifetime would mean a signature
    // on nearly every request; a long one widens the window of a leaked token.
    if !(Duration::from_secs(120)..=Duration::from_secs(3600)).contains(&ttl) {
        let line = sec.assertion_ttl.as_ref().map(|s| c.line(s));
        c.problem("security.assertion_ttl", line, "must be between 2m and 1h");
        return default;
    }
    ttl
}

pub(super) fn headers(c: &mut Ctx<'_>, h: &RawHeaders) -> HeaderNames {
    HeaderNames {
        user_id: c.header("headers.user_id", &h.user_id, "X-Auth-User-Id"),
        user: c.header("headers.user", &h.user, "X-Auth-User"),
        email: c.header("headers.email", &h.email, "X-Auth-Email"),
        name: c.header("headers.name", &h.name, "X-Auth-Name"),
        roles: c.header("headers.roles", &h.roles, "X-Auth-Roles"),
        tier: c.header("headers.tier", &h.tier, "X-Auth-Tier"),
        admin: c.header("headers.admin", &h.admin, "X-Auth-Admin"),
        verified: c.header("headers.verified", &h.verified, "X-Auth-Verified"),
        assertion: c.header("headers.assertion", &h.assertion, "X-Auth-Assertion"),
        request_id: c.header("headers.request_id", &h.request_id, "X-Request-Id"),
        allow_method_override: h.allow_method_override.unwrap_or(false),
    }
}

pub(super) fn audit(c: &mut Ctx<'_>, a: &RawAudit) -> AuditSettings {
    AuditSettings {
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
    }
}

pub(super) fn mail(c: &mut Ctx<'_>, m: &RawMail, data_dir: &Path) -> MailSettings {
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
    MailSettings {
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
    }
}

pub(super) fn portal(c: &mut Ctx<'_>, p: &RawPortal) -> PortalSettings {
    PortalSettings {
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
    }
}

/// The default for `server.workers`: one per core.
fn cores() -> i64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as i64
}
