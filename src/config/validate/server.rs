//! Where Gatehouse listens and what it connects to: `[server]`, `[upstream]` and `[database]`.
//! Addresses, URLs and networks are parsed here, so the rest of the crate holds typed values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::super::raw::{RawDatabase, RawServer, RawUpstream};
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

/// The default for `server.workers`: one per core.
fn cores() -> i64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as i64
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
