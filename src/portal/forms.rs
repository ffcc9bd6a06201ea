//! Reading form posts and checking where to send the browser next.

use http::{Request, StatusCode};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;

pub use crate::web::form::{Form, query};

/// Reads a form body; the error is the status to answer with.
pub async fn read(req: Request<Incoming>) -> Result<(http::request::Parts, Form), StatusCode> {
    crate::web::form::read(req).await.map_err(|e| e.status())
}

/// The sign-in page, coming back to `next` afterwards: every `/_auth/login?next=` link and
/// redirect is built here.
pub fn login_url(next: &str) -> String {
    let next = percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC);
    format!("/_auth/login?next={next}")
}

/// `next` if it is a same-site relative path, else `/`. Refuses `//host`, `/\host`, schemes
/// and control characters, also when percent-encoded (decoded up to three times).
pub fn safe_next(next: Option<&str>) -> String {
    let Some(raw) = next.filter(|n| !n.is_empty()) else {
        return "/".into();
    };
    let mut cur = raw.to_string();
    for _ in 0..4 {
        if !is_local_path(&cur) {
            return "/".into();
        }
        let decoded = percent_decode_str(&cur).decode_utf8_lossy().into_owned();
        if decoded == cur {
            return raw.to_string();
        }
        cur = decoded;
    }
    "/".into()
}

fn is_local_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && !p.contains('\\')
        && !p.chars().any(char::is_control)
        && !p.starts_with("/_auth/login")
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next(Some("/app/page?x=1")), "/app/page?x=1");
        assert_eq!(safe_next(None), "/");
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "%2F%2Fevil.example",
            "/%2F%2Fevil.example",
            "/%252F%252Fevil.example",
            "/%5Cevil.example",
            "/a%0d%0aSet-Cookie:x",
            "evil",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
    }
}
