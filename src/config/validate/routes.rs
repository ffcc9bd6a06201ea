//! `[[routes]]`: each rule's path pattern, access and requirements, checked one by one, then
//! warnings for the table as a whole — rules an earlier one shadows, and method-limited rules an
//! app's `_method` override could walk around.

use http::Method;

use super::super::raw::RawRoute;
use super::super::settings::*;
use super::{Ctx, parse_access};
use crate::store::Tier;

pub(super) fn route(
    c: &mut Ctx<'_>,
    i: usize,
    r: &RawRoute,
    case_sensitive: bool,
) -> Option<RouteRule> {
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
pub(super) fn shadow_warnings(routes: &[RouteRule]) -> Vec<String> {
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
pub(super) fn method_warnings(routes: &[RouteRule]) -> Vec<String> {
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
