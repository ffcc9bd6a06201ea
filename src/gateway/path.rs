//! The one canonical form of a request path: what routes are matched against *and* what the
//! upstream receives, so the rule and the app can never read the path two ways.
//!
//! Frameworks disagree on how to read a path: Tomcat and Spring strip `;params`, IIS trims
//! trailing dots, Express and ASP.NET match case-insensitively, some decode twice, some fold
//! compatibility characters (`ａdmin` → `admin`). Rather than guess which reading the app uses,
//! every spelling whose reading could differ between frameworks is refused with 400:
//!
//! * the raw target must be an origin-form path (`/…`); `\`, `#`, raw control characters,
//!   malformed `%` escapes, empty segments (`//`) and dot segments (`.`, `..`, also as `..;x`)
//!   are refused;
//! * `%` escapes of unreserved characters are decoded (`%41` → `A`); escapes of `/`, `\`, `.`,
//!   `;`, `%` followed by another escape (double encoding) and control characters are refused;
//!   other escapes are kept, with upper-case hex;
//! * `;` in a segment is refused unless `allow_path_params`; then routes see the path with every
//!   `;…` parameter removed and the app gets it unchanged;
//! * non-ASCII characters pass only when no framework could fold them into ASCII: they must be
//!   NFKC-stable and have no ASCII upper- or lower-case mapping (so `ａ`, `／`, `K` (Kelvin) and
//!   `ſ` are refused, `é` passes);
//! * a segment ending in `.` or a space is refused (Windows servers trim them).
//!
//! Matching then ignores case unless `route_case = "sensitive"`.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::GateError;

/// How the path is read; from `[server]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathPolicy {
    pub case_sensitive: bool,
    pub allow_path_params: bool,
}

/// A request path in its two forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalPath {
    /// Sent to the upstream: the raw path with unreserved escapes decoded and hex upper-cased.
    pub forward: String,
    /// Matched against routes: fully decoded, parameters removed, lower-cased unless the
    /// policy is case-sensitive.
    pub matching: String,
}

const UNRESERVED_PUNCT: &[u8] = b"-_~";

fn bad(why: &'static str) -> GateError {
    GateError::BadPath(why)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Reads the raw path (no query) the way described in the module docs.
pub fn canonicalize(raw: &str, policy: PathPolicy) -> Result<CanonicalPath, GateError> {
    if !raw.starts_with('/') {
        return Err(bad("the request target is not a path"));
    }
    let bytes = raw.as_bytes();
    let mut forward = String::with_capacity(raw.len());
    let mut decoded: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(hex_val),
                    bytes.get(i + 2).copied().and_then(hex_val),
                ) else {
                    return Err(bad("malformed percent-encoding in path"));
                };
                let v = hi * 16 + lo;
                match v {
                    b'/' | b'\\' => return Err(bad("encoded slash or backslash in path")),
                    b'.' => return Err(bad("encoded dot in path")),
                    b';' => return Err(bad("encoded semicolon in path")),
                    b'%' => forward.push_str("%25"),
                    v if v < 0x20 || v == 0x7f => {
                        return Err(bad("control character in path"));
                    }
                    v if v.is_ascii_alphanumeric() || UNRESERVED_PUNCT.contains(&v) => {
                        forward.push(v as char);
                    }
                    v => {
                        forward.push('%');
                        forward.push(char::from(b"0123456789ABCDEF"[usize::from(v >> 4)]));
                        forward.push(char::from(b"0123456789ABCDEF"[usize::from(v & 15)]));
                    }
                }
                decoded.push(v);
                i += 3;
            }
            b'\\' => return Err(bad("backslash in path")),
            b'#' => return Err(bad("fragment in request target")),
            b if b < 0x20 || b == 0x7f || b == b' ' => {
                return Err(bad("control character in path"));
            }
            b';' if !policy.allow_path_params => return Err(bad("';' parameter in path")),
            _ => {
                // Raw non-ASCII bytes are forwarded as escapes: the upstream sees one spelling.
                if b >= 0x80 {
                    forward.push('%');
                    forward.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
                    forward.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
                } else {
                    forward.push(b as char);
                }
                decoded.push(b);
                i += 1;
            }
        }
    }
    if decoded
        .windows(3)
        .any(|w| w[0] == b'%' && hex_val(w[1]).is_some() && hex_val(w[2]).is_some())
    {
        // Decoded once it still holds an escape: a second decoding would read another path.
        return Err(bad("double percent-encoding in path"));
    }
    let decoded = String::from_utf8(decoded).map_err(|_| bad("path is not valid UTF-8"))?;
    check_unicode(&decoded)?;

    let mut matching = String::with_capacity(decoded.len());
    let segments: Vec<&str> = decoded.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (n, seg) in segments.iter().enumerate() {
        if seg.is_empty() {
            // Only `/` itself and one trailing slash are allowed to be empty.
            if n == last && (n == 0 || !segments[n - 1].is_empty()) {
                matching.push('/');
                continue;
            }
            return Err(bad("empty segment in path"));
        }
        let name = if policy.allow_path_params {
            seg.split(';').next().unwrap_or("")
        } else {
            seg
        };
        if name == "." || name == ".." {
            return Err(bad("dot segment in path"));
        }
        if name.is_empty() {
            return Err(bad("segment with only parameters in path"));
        }
        if name.ends_with('.') || name.ends_with(' ') {
            return Err(bad("segment ending in a dot or space"));
        }
        if seg.split(';').skip(1).any(str::is_empty) {
            return Err(bad("empty ';' parameter in path"));
        }
        matching.push('/');
        matching.push_str(name);
    }
    if !policy.case_sensitive {
        matching = fold_case(&matching);
    }
    Ok(CanonicalPath { forward, matching })
}

/// Lower-cases ASCII letters; non-ASCII characters that passed [`check_unicode`] lower-case
/// to non-ASCII, so folding them cannot create a new ASCII spelling.
pub fn fold_case(s: &str) -> String {
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        s.to_lowercase()
    }
}

fn check_unicode(s: &str) -> Result<(), GateError> {
    if s.is_ascii() {
        return Ok(());
    }
    for c in s.chars().filter(|c| !c.is_ascii()) {
        if c.is_control() || c.is_whitespace() || is_combining_mark(c) {
            return Err(bad("invisible or combining character in path"));
        }
        let mut nfkc = std::iter::once(c).nfkc();
        if nfkc.next() != Some(c) || nfkc.next().is_some() {
            return Err(bad("compatibility character in path"));
        }
        if c.to_uppercase()
            .chain(c.to_lowercase())
            .any(|m| m.is_ascii())
        {
            return Err(bad("character that folds to ASCII in path"));
        }
        // Format characters (zero-width joiners, bidi controls) hide what a path says.
        if matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
        {
            return Err(bad("invisible character in path"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSENSITIVE: PathPolicy = PathPolicy {
        case_sensitive: false,
        allow_path_params: false,
    };
    const PARAMS: PathPolicy = PathPolicy {
        case_sensitive: false,
        allow_path_params: true,
    };

    fn m(raw: &str) -> String {
        canonicalize(raw, INSENSITIVE).unwrap().matching
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(m("/"), "/");
        assert_eq!(m("/Admin/X"), "/admin/x");
        assert_eq!(m("/%41dmin/x"), "/admin/x");
        assert_eq!(m("/reports/"), "/reports/");
        let c = canonicalize("/%61b%20c/%7e%c3%a9", INSENSITIVE).unwrap();
        assert_eq!(c.forward, "/ab%20c/~%C3%A9");
        assert_eq!(c.matching, "/ab c/~é");
        let s = canonicalize(
            "/Admin",
            PathPolicy {
                case_sensitive: true,
                allow_path_params: false,
            },
        )
        .unwrap();
        assert_eq!(s.matching, "/Admin");
        let p = canonicalize("/Admin;x=1/secret;jsessionid=2", PARAMS).unwrap();
        assert_eq!(p.matching, "/admin/secret");
        assert_eq!(p.forward, "/Admin;x=1/secret;jsessionid=2");
    }

    #[test]
    fn refuses_ambiguous_spellings() {
        for bad in [
            "/a/../admin",
            "/./admin",
            "/a/%2e%2e/admin",
            "/a/%2E/admin",
            "/a%2fb",
            "/a%2Fb",
            "/a\\b",
            "/a%5cb",
            "/%ff",
            "/a%00b",
            "/a%0ab",
            "/a%09b",
            "/a%7fb",
            "/reports//",
            "//admin",
            "/a//b",
            "/admin;x=1/secret",
            "/reports;a",
            "/public/..;/admin/x",
            "/a%3bb",
            "/%2541dmin",
            "/%25%32%66",
            "/a%zz",
            "/a%4",
            "/ａdmin",
            "/admin／x",
            "/\u{212a}elvin",
            "/\u{17f}ecret",
            "/adm\u{131}n",
            "/a\u{200b}dmin",
            "/a\u{301}",
            "/admin.",
            "/admin%20",
            "/admin./x",
            "admin",
            "*",
        ] {
            assert!(canonicalize(bad, INSENSITIVE).is_err(), "{bad}");
        }
        for bad in ["/public/..;/admin/x", "/;x/admin", "/.;x", "/admin;"] {
            assert!(canonicalize(bad, PARAMS).is_err(), "{bad}");
        }
    }
}
