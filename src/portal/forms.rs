//! Reading form posts and checking where to send the browser next.

use std::collections::HashMap;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;

/// Forms are small; anything bigger is refused before it is read.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub struct Form {
    fields: HashMap<String, String>,
}

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// Reads an `application/x-www-form-urlencoded` body, bounded in size.
pub async fn read(req: Request<Incoming>) -> Result<(http::request::Parts, Form), StatusCode> {
    let (parts, body) = req.into_parts();
    let ctype = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let bytes: Bytes = Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE)?
        .to_bytes();
    let fields = url::form_urlencoded::parse(&bytes).into_owned().collect();
    Ok((parts, Form { fields }))
}

/// Reads the query string into fields.
pub fn query(uri: &http::Uri) -> Form {
    Form {
        fields: url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect(),
    }
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
