//! Is this request a browser page load (answer with a redirect or an HTML page) or a program
//! (answer with a status and JSON)?

use http::{HeaderMap, Method, header};

static X_REQUESTED_WITH: http::HeaderName = http::HeaderName::from_static("x-requested-with");

/// A page load is a GET or HEAD whose `Accept` prefers `text/html` and that carries no
/// `X-Requested-With` (which XHR libraries add).
pub fn is_page_load(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    if headers.contains_key(&X_REQUESTED_WITH) {
        return false;
    }
    prefers_html(headers)
}

/// Whether an error should be a page rather than JSON on `/_auth/`: a page load, or a form a
/// browser posted (it navigates to the answer, so it reads the error as a page).
pub fn wants_page(method: &Method, headers: &HeaderMap) -> bool {
    is_page_load(method, headers)
        || (method == Method::POST
            && !headers.contains_key(&X_REQUESTED_WITH)
            && prefers_html(headers))
}

/// Whether `text/html` has the highest quality among the media ranges in `Accept`
/// (ties go to HTML: browsers list it first).
pub fn prefers_html(headers: &HeaderMap) -> bool {
    let mut html_q: Option<f32> = None;
    let mut other_q: f32 = 0.0;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(s) = value.to_str() else { continue };
        for range in s.split(',') {
            let mut parts = range.split(';');
            // Compared ignoring case, without a lowered copy: this runs on every request.
            let media = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if media.eq_ignore_ascii_case("text/html")
                || media.eq_ignore_ascii_case("application/xhtml+xml")
            {
                html_q = Some(html_q.map_or(q, |h: f32| h.max(q)));
            } else if !media.is_empty() && media != "*/*" {
                other_q = other_q.max(q);
            }
        }
    }
    html_q.is_some_and(|h| h > 0.0 && h >= other_q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(accept: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::ACCEPT, accept.parse().unwrap());
        m
    }

    #[test]
    fn browsers_and_programs() {
        let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";
        assert!(is_page_load(&Method::GET, &h(chrome)));
        assert!(!is_page_load(&Method::POST, &h(chrome)));
        assert!(!is_page_load(&Method::GET, &h("application/json")));
        assert!(!is_page_load(&Method::GET, &h("*/*")));
        assert!(!is_page_load(&Method::GET, &HeaderMap::new()));
        assert!(!is_page_load(
            &Method::GET,
            &h("application/json, text/html;q=0.5")
        ));
        let mut xhr = h(chrome);
        xhr.insert("x-requested-with", "XMLHttpRequest".parse().unwrap());
        assert!(!is_page_load(&Method::GET, &xhr));
        assert!(wants_page(&Method::POST, &h(chrome)));
        assert!(!wants_page(&Method::POST, &h("application/json")));
        assert!(!wants_page(&Method::POST, &HeaderMap::new()));
    }
}
