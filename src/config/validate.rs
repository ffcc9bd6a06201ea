//! The one conversion from raw TOML structs to [`Settings`].

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, Method};
use toml::Spanned;

use super::raw::{self, RawRoute, S};
use super::settings::*;
use super::{ConfigError, Document, Problem, line_of};
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

mod identity;
mod sections;

pub(super) fn settings(doc: Document) -> Result<Settings, ConfigError> {
    let raw = &doc.raw;
    let mut c = Ctx {
        source: &doc.source,
        env: &doc.env,
        problems: Vec::new(),
    };
    let server = sections::server(&mut c, &raw.server);
    let upstream = sections::upstream(&mut c, &raw.upstream);
    let database = sections::database(&mut c, &raw.database, &server.data_dir);
    let session = sections::session(&mut c, &raw.session);
    let security = sections::security(&mut c, &raw.security);
    let headers = sections::headers(&mut c, &raw.headers);
    let audit = sections::audit(&mut c, &raw.audit);
    let mail = sections::mail(&mut c, &raw.mail, &server.data_dir);
    let portal = sections::portal(&mut c, &raw.portal);
    let log = log(&mut c, &raw.log);
    let mut routes = Vec::new();
    for (i, r) in raw.routes.iter().enumerate() {
        if let Some(rule) = route(&mut c, i, r, server.route_case_sensitive) {
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
    let mut warnings = shadow_warnings(&routes);
    warnings.extend(method_warnings(&routes));
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

fn route(c: &mut Ctx<'_>, i: usize, r: &RawRoute, case_sensitive: bool) -> Option<RouteRule> {
    let line = c.line(&r.path);
    let key = |k: &str| format!("routes[{i}].{k}");
    let matcher = match PathMatcher::new(r.path.get_ref(), case_sensitive) {
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
        .map(|s| crate::accounts::normalize_role(s.get_ref()))
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

/// A proxy sees the method line and headers, not a `_method` field inside a form body, so a
/// rule that only limits methods can be walked around on apps that honour such fields.
fn method_warnings(routes: &[RouteRule]) -> Vec<String> {
    routes
        .iter()
        .filter(|r| !r.methods.is_empty())
        .map(|r| {
            let methods: Vec<&str> = r.methods.iter().map(http::Method::as_str).collect();
            format!(
                "route {:?} (line {}) applies only to {}: an app that reads a `_method` form field \
                 (Rails, Laravel, Symfony, Express method-override) can be made to run another \
                 method's handler, which Gatehouse cannot see; protect such handlers with path rules",
                r.pattern,
                r.line,
                methods.join(", ")
            )
        })
        .collect()
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
        let one = PathMatcher::new("/a/*", true).unwrap();
        assert!(one.is_match("/a/b") && !one.is_match("/a/b/c"));
        let deep = PathMatcher::new("/a/**", true).unwrap();
        assert!(
            deep.is_match("/a/b/c")
                && deep.is_match("/a")
                && deep.is_match("/a/")
                && !deep.is_match("/ab")
        );
        let exact = PathMatcher::new("/x", true).unwrap();
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
        // The example shows a method-limited rule on purpose, with the warning it earns.
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("_method"), "{:?}", s.warnings);
    }
}
