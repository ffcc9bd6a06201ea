//! What the request asks the app to do, read the way the app will read it: which host, which
//! path (see [`super::path`]) and every method the app might run a handler for. Anything that
//! could be read two ways is refused here, before any rule is looked at.

use http::header::{self, HeaderMap};
use http::{Method, Request, Uri};

use super::GateError;
use super::path::{CanonicalPath, PathPolicy, canonicalize};
use crate::config::Settings;
use crate::proxy::headers::METHOD_OVERRIDE;

/// The methods of RFC 9110 that are proxied, plus PATCH (RFC 5789). CONNECT never is.
const STANDARD_METHODS: [Method; 8] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
    Method::PATCH,
];

/// The request target in its canonical form.
#[derive(Debug)]
pub struct Target {
    pub path: CanonicalPath,
    /// The method on the request line, then every other method the app could act on: `GET`
    /// for `HEAD`, and any override (header when allowed, `_method` query parameter).
    pub methods: Vec<Method>,
}

impl Target {
    /// The paths rules are evaluated on: the path, and without its trailing slash (Flask,
    /// Express and most routers treat `/x/` as `/x`).
    pub fn match_paths(&self) -> impl Iterator<Item = &str> {
        let p = self.path.matching.as_str();
        let bare = p.strip_suffix('/').filter(|b| !b.is_empty());
        std::iter::once(p).chain(bare)
    }
}

/// Reads the target of a proxied request and rewrites its URI to the canonical path, which is
/// what the upstream receives.
pub fn read<B>(req: &mut Request<B>, s: &Settings) -> Result<Target, GateError> {
    let method = req.method().clone();
    if method == Method::CONNECT {
        return Err(GateError::MethodNotAllowed);
    }
    check_method(&method, s)?;
    check_host(req.uri(), req.headers())?;
    let policy = PathPolicy {
        case_sensitive: s.server.route_case_sensitive,
        allow_path_params: s.server.allow_path_params,
    };
    let path = canonicalize(req.uri().path(), policy)?;
    if path.matching == "/_auth" || path.matching.starts_with("/_auth/") {
        // Only the exact spelling reaches the portal; another one must not reach the app.
        return Err(GateError::BadPath("reserved path in another spelling"));
    }
    let mut methods = vec![method.clone()];
    if method == Method::HEAD {
        methods.push(Method::GET);
    }
    if s.headers.allow_method_override {
        for name in METHOD_OVERRIDE {
            for v in req.headers().get_all(name) {
                let v = v.to_str().map_err(|_| bad_override())?;
                for m in v.split(',') {
                    methods.push(override_method(m, s)?);
                }
            }
        }
    }
    if let Some(q) = req.uri().query() {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            if is_method_param(&k) {
                methods.push(override_method(&v, s)?);
            }
        }
    }
    methods.dedup();
    // Most paths are already canonical; only a respelled one needs a new URI.
    if path.forward != req.uri().path() {
        let uri = rebuild(req.uri(), &path.forward)?;
        *req.uri_mut() = uri;
    }
    Ok(Target { path, methods })
}

fn bad_override() -> GateError {
    GateError::BadRequest("method override is not a method")
}

/// `_method`, in any case, and the array and hash spellings that qs (Express), Rack and PHP
/// fold into it (`_method[]`, `_method[0]`): the framework may take any of them as the method.
fn is_method_param(name: &str) -> bool {
    let name = name.trim();
    name.get(..7)
        .is_some_and(|head| head.eq_ignore_ascii_case("_method"))
        && (name.len() == 7 || name[7..].starts_with('['))
}

/// Overrides are upper-cased as the frameworks that honour them do (`_method=delete` runs the
/// DELETE handler in Rails and Laravel).
fn override_method(v: &str, s: &Settings) -> Result<Method, GateError> {
    let upper = v.trim().to_ascii_uppercase();
    let m = Method::from_bytes(upper.as_bytes()).map_err(|_| bad_override())?;
    if m == Method::CONNECT || check_method(&m, s).is_err() {
        return Err(bad_override());
    }
    Ok(m)
}

/// Method names are case-sensitive (RFC 9110 §9.1), but Werkzeug and others upper-case them:
/// only the canonical upper-case spelling of a known method is accepted.
fn check_method(m: &Method, s: &Settings) -> Result<(), GateError> {
    if STANDARD_METHODS.contains(m) || s.server.extra_methods.contains(m) {
        Ok(())
    } else {
        Err(GateError::BadRequest("unknown or lower-case method"))
    }
}

/// One `Host`, agreeing with the authority of an absolute-form target or HTTP/2 `:authority`.
fn check_host(uri: &Uri, headers: &HeaderMap) -> Result<(), GateError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(GateError::BadRequest("more than one Host header"));
    }
    if let (Some(h), Some(a)) = (host, uri.authority()) {
        let h = h
            .to_str()
            .map_err(|_| GateError::BadRequest("Host is not ASCII"))?;
        if !h.trim().eq_ignore_ascii_case(a.as_str()) {
            return Err(GateError::BadRequest(
                "Host disagrees with the request target",
            ));
        }
    }
    if let Some(scheme) = uri.scheme_str()
        && !scheme.eq_ignore_ascii_case("http")
        && !scheme.eq_ignore_ascii_case("https")
    {
        return Err(GateError::BadRequest("request target has another scheme"));
    }
    Ok(())
}

fn rebuild(uri: &Uri, path: &str) -> Result<Uri, GateError> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(
        pq.parse()
            .map_err(|_| GateError::BadPath("path cannot be forwarded"))?,
    );
    Uri::from_parts(parts).map_err(|_| GateError::BadPath("path cannot be forwarded"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn method_params_in_every_spelling() {
        for k in [
            "_method",
            "_METHOD",
            " _method",
            "_method[]",
            "_method[0]",
            "_Method[x]",
        ] {
            assert!(super::is_method_param(k), "{k}");
        }
        for k in ["method", "_methods", "x_method", "_metho", "a[_method]"] {
            assert!(!super::is_method_param(k), "{k}");
        }
    }
}
