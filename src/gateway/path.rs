//! The path a route is matched against.
//!
//! Matching must see the path the upstream will act on, or a crafted path slips past a rule
//! (`/public/../admin`, `/%61dmin`). Percent-encoding is decoded and repeated slashes are
//! folded; paths whose meaning depends on the upstream's own normalisation (dot segments,
//! encoded `/` or `\`, backslashes, control characters) are refused with 400.

use percent_encoding::percent_decode_str;

use super::GateError;

pub fn normalize(raw: &str) -> Result<String, GateError> {
    let lower = raw.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || raw.contains('\\') {
        return Err(GateError::BadPath("encoded slash or backslash in path"));
    }
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| GateError::BadPath("path is not valid UTF-8"))?;
    if decoded.chars().any(char::is_control) {
        return Err(GateError::BadPath("control character in path"));
    }
    let mut out = String::with_capacity(decoded.len());
    for seg in decoded.split('/') {
        if seg == "." || seg == ".." {
            return Err(GateError::BadPath("dot segment in path"));
        }
        if seg.is_empty() {
            continue;
        }
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() || decoded.ends_with('/') {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalizes_and_refuses() {
        assert_eq!(normalize("/").unwrap(), "/");
        assert_eq!(normalize("/a//b/").unwrap(), "/a/b/");
        assert_eq!(normalize("/%61dmin/x").unwrap(), "/admin/x");
        assert_eq!(normalize("/caf%C3%A9").unwrap(), "/café");
        for bad in [
            "/a/../admin",
            "/./admin",
            "/a/%2e%2e/admin",
            "/a%2fb",
            "/a\\b",
            "/a%5cb",
            "/%ff",
            "/a%00b",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }
}
