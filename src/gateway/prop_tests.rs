//! Properties of the canonical path and the route matcher together: every spelling of a
//! request that a framework could read as the same request gets the same decision, a stricter
//! one, or a 400 — never a laxer one.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use http::{Method, Request};
use proptest::prelude::*;

use super::{decide, target};
use crate::config::Settings;

const ROUTES: &str = r#"
[[routes]]
path = "/public/**"
access = "public"
[[routes]]
path = "/reports"
access = "deny"
[[routes]]
path = "/admin/**"
roles = ["admin"]
[[routes]]
path = "/items/*"
methods = ["DELETE"]
roles = ["admin"]
[[routes]]
path = "/export/**"
methods = ["GET"]
roles = ["admin"]
[[routes]]
path = "/Caf\u00e9/x"
access = "deny"
"#;

fn settings(extra: &str) -> Settings {
    crate::config::from_toml(&format!(
        "[server]\ndefault_access = \"public\"\n{extra}\n{ROUTES}"
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

static STRICT: LazyLock<Settings> = LazyLock::new(|| settings(""));
static PARAMS: LazyLock<Settings> = LazyLock::new(|| settings("allow_path_params = true"));

/// Every rule (by line; 0 = the default) that applies to some reading of the request, or
/// `None` when the request is refused as ambiguous.
fn readings(
    s: &Settings,
    method: &str,
    target_str: &str,
) -> Option<BTreeSet<(usize, &'static str)>> {
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).ok()?)
        .uri(target_str)
        .body(())
        .ok()?;
    let t = target::read(&mut req, s).ok()?;
    let mut out = BTreeSet::new();
    for p in t.match_paths() {
        for m in &t.methods {
            let d = decide(&s.routes, s.server.default_access, m, p);
            out.insert((d.rule.map_or(0, |r| r.line), d.access.as_str()));
        }
    }
    Some(out)
}

fn path_strategy() -> impl Strategy<Value = String> {
    let seg = prop::sample::select(vec![
        "admin",
        "reports",
        "items",
        "export",
        "public",
        "x",
        "1",
        "a-b",
        "~u",
        "Caf%C3%A9",
        "caf%C3%A9",
        "REPORTS",
    ]);
    (prop::collection::vec(seg, 1..4), any::<bool>()).prop_map(|(segs, slash)| {
        let mut p = format!("/{}", segs.join("/"));
        if slash {
            p.push('/');
        }
        p
    })
}

/// Flips case and percent-encodes letters, digits and `-_~`, as chosen by `flips`.
fn respell(path: &str, flips: &[u8]) -> String {
    let mut out = String::new();
    let mut in_escape = 0;
    for (i, c) in path.chars().enumerate() {
        let f = flips.get(i % flips.len().max(1)).copied().unwrap_or(0);
        if c == '%' {
            in_escape = 2;
            out.push(c);
            continue;
        }
        if in_escape > 0 {
            in_escape -= 1;
            out.push(if f & 1 == 1 {
                c.to_ascii_lowercase()
            } else {
                c
            });
            continue;
        }
        if c.is_ascii_alphanumeric() || "-_~".contains(c) {
            let c = if f & 1 == 1 {
                if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            } else {
                c
            };
            if f & 2 == 2 {
                if f & 4 == 4 {
                    out.push_str(&format!("%{:02x}", c as u32));
                } else {
                    out.push_str(&format!("%{:02X}", c as u32));
                }
            } else {
                out.push(c);
            }
        } else {
            out.push(c);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    /// Case and unreserved escapes never change the decision (case-insensitive routes).
    #[test]
    fn respelling_keeps_the_decision(
        path in path_strategy(),
        flips in prop::collection::vec(0u8..8, 1..16),
        method in prop::sample::select(vec!["GET", "HEAD", "POST", "DELETE"]),
    ) {
        let s = &*STRICT;
        let original = readings(s, method, &path);
        let variant = readings(s, method, &respell(&path, &flips));
        prop_assert!(original.is_some(), "{path} refused");
        prop_assert!(variant.is_none() || variant == original, "{path}: {original:?} vs {variant:?}");
    }

    /// A trailing slash, HEAD for GET, or a `_method` override only ever add readings.
    #[test]
    fn other_readings_are_at_least_as_strict(
        path in path_strategy(),
        method in prop::sample::select(vec!["GET", "POST", "DELETE", "PUT"]),
        over in prop::sample::select(vec!["GET", "DELETE", "delete", "PUT"]),
    ) {
        let s = &*STRICT;
        let base = readings(s, method, &path).unwrap_or_default();
        let bare = path.trim_end_matches('/');
        let bare = if bare.is_empty() { "/" } else { bare };
        let bare_r = readings(s, method, bare).unwrap_or_default();
        let slashed = readings(s, method, &format!("{bare}/"));
        if let Some(sl) = slashed {
            prop_assert!(sl.is_superset(&bare_r), "{path}");
        }
        if method == "GET" {
            let head = readings(s, "HEAD", &path).unwrap_or_default();
            prop_assert!(head.is_superset(&base), "{path}");
        }
        if let Some(o) = readings(s, method, &format!("{path}?_method={over}")) {
            prop_assert!(o.is_superset(&base), "{path}");
            let upper = readings(s, &over.to_ascii_uppercase(), &path).unwrap_or_default();
            prop_assert!(o.is_superset(&upper), "{path} with _method={over}");
        }
    }

    /// Dot segments, empty segments, encoded separators and parameters are always refused.
    #[test]
    fn ambiguous_forms_are_refused(
        path in path_strategy(),
        insert in prop::sample::select(vec![
            "/./", "/../", "//", "/%2e/", "/%2E%2e/", "%2f", "%5C", "\\", ";x=1", ";", "%3b",
            "/..;/", "%00", "%0A", "%252e", "%25%32%65", "%EF%BD%81", "%EF%BC%8F", ".", " ",
        ]),
        at in 0usize..32,
    ) {
        let s = &*STRICT;
        let cut = path.char_indices().map(|(i, _)| i).filter(|i| *i > 0).nth(at % path.len().max(1)).unwrap_or(path.len());
        let cut = if path[..cut].ends_with('%') || path[..cut].rfind('%').is_some_and(|i| cut - i < 3) { path.len() } else { cut };
        let (a, b) = path.split_at(cut);
        // A trailing "." or " " at the very end of a segment is the Windows case; elsewhere
        // it only joins two characters of a name.
        let target = format!("{a}{insert}{b}");
        let ends_segment = b.is_empty() || b.starts_with('/');
        let must_refuse = !matches!(insert, "." | " ") || ends_segment;
        if must_refuse {
            prop_assert!(readings(s, "GET", &target).is_none(), "{target} accepted");
        }
    }

    /// Whatever the bytes, reading a target never panics.
    #[test]
    fn any_target_is_read_or_refused(raw in "/[ -~\\PC]{0,40}") {
        let _ = readings(&PARAMS, "GET", &raw);
        let _ = readings(&STRICT, "GET", &raw);
    }
}
