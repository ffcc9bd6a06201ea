//! The one conversion from raw TOML structs to [`Settings`]: a `Ctx` collects every problem
//! with its key and line while one function per table group (`server`, `security`, `outputs`,
//! `routes`, `identity`) turns raw values into typed ones; only when no problem was found are
//! the settings returned, with warnings for what is valid but likely a mistake.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use http::HeaderName;
use toml::Spanned;

use super::raw::{self, S};
use super::settings::*;
use super::{ConfigError, Document, Problem, line_of};

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

mod identity;
mod outputs;
mod routes;
mod security;
mod server;

pub(super) fn settings(doc: Document) -> Result<Settings, ConfigError> {
    let raw = &doc.raw;
    let mut c = Ctx {
        source: &doc.source,
        env: &doc.env,
        problems: Vec::new(),
    };
    let server = server::server(&mut c, &raw.server);
    let upstream = server::upstream(&mut c, &raw.upstream);
    let database = server::database(&mut c, &raw.database, &server.data_dir);
    let session = security::session(&mut c, &raw.session);
    let security = security::security(&mut c, &raw.security);
    let headers = outputs::headers(&mut c, &raw.headers);
    let audit = outputs::audit(&mut c, &raw.audit);
    let mail = outputs::mail(&mut c, &raw.mail, &server.data_dir);
    let portal = outputs::portal(&mut c, &raw.portal);
    let log = log(&mut c, &raw.log);
    let mut routes = Vec::new();
    for (i, r) in raw.routes.iter().enumerate() {
        if let Some(rule) = routes::route(&mut c, i, r, server.route_case_sensitive) {
            routes.push(rule);
        }
    }
    let identity_providers = identity::providers(&mut c, &raw.identity_providers);
    if !c.problems.is_empty() {
        return Err(ConfigError::Invalid {
            origin: doc.origin.clone(),
            problems: c.problems,
        });
    }
    let mut warnings = routes::shadow_warnings(&routes);
    warnings.extend(routes::method_warnings(&routes));
    Ok(Settings {
        server,
        upstream,
        database,
        session,
        security,
        headers,
        audit,
        mail,
        portal,
        routes,
        identity_providers,
        warnings,
        log,
    })
}

fn log(c: &mut Ctx<'_>, l: &raw::RawLog) -> LogSettings {
    let format = match c.text(&l.format, Some("GATEHOUSE_LOG_FORMAT")) {
        None => LogFormat::Text,
        Some((f, line)) => match f.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                c.problem(
                    "log.format",
                    line,
                    format!("{other:?} is not \"text\" or \"json\""),
                );
                LogFormat::Text
            }
        },
    };
    LogSettings {
        format,
        access: l.access.unwrap_or(false),
    }
}

/// Stands in for a URL whose problem is already recorded; the settings are then discarded.
fn placeholder_url() -> url::Url {
    url::Url::from_file_path("/").unwrap_or_else(|()| unreachable!("\"/\" is an absolute path"))
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

#[cfg(test)]
mod tests;
