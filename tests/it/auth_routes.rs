//! The `/_auth/` router and the one look of its errors: 405 from the table (with `Allow`),
//! pages for browsers and JSON for programs, a 403 that says what is missing.

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::harness::{Backend, PASSWORD, Resp, TestServer};

const HTML: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

const EXTRA: &str = r#"
[[routes]]
path = "/secure/**"
require_2fa = true
"#;

async fn server() -> TestServer {
    TestServer::start(Backend::Sqlite, EXTRA).await.unwrap()
}

/// Whether the page links to `path` (minijinja escapes the slashes of attribute values).
fn links_to(r: &Resp, path: &str) -> bool {
    r.text()
        .contains(&format!("href=\"{}\"", path.replace('/', "&#x2f;")))
}

fn is_html(r: &Resp) -> bool {
    r.header("content-type")
        .is_some_and(|t| t.starts_with("text/html"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_is_405_from_the_router() {
    let s = server().await;
    let mut br = s.browser();
    // A portal form action, loaded as a page: a styled page that says so.
    let r = br.page("/_auth/account/profile").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(is_html(&r), "{:?}", r.headers);
    assert_eq!(r.header("allow"), Some("POST"));
    assert!(links_to(&r, "/_auth/account"), "{}", r.text());
    assert!(r.header("content-security-policy").is_some());
    // A portal page with a method it does not take, from a program: JSON.
    let r = br
        .send(Method::DELETE, "/_auth/login", &[], Bytes::new())
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
    assert_eq!(r.json()["error"], "method_not_allowed");
    // Operational endpoints.
    for path in ["/_auth/healthz", "/_auth/readyz", "/_auth/metrics"] {
        let r = br.send(Method::POST, path, &[], Bytes::new()).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert!(
            r.header("allow").is_some_and(|a| a.contains("GET")),
            "{path}"
        );
    }
    // A provider's callback is GET alone (it uses its flow up); an unknown provider is no page.
    let r = br
        .send(Method::POST, "/_auth/oidc/nope/start", &[], Bytes::new())
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Unknown paths: 404, a page with a way on for a browser.
    let r = br.page("/_auth/nothing-here").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(is_html(&r));
    assert!(links_to(&r, "/_auth/account"), "{}", r.text());
    let r = br.get("/_auth/nothing-here").await;
    assert_eq!(r.json()["error"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_failure_is_a_page_with_a_way_back() {
    let s = server().await;
    s.plain_user("cas").await;
    let mut br = s.browser();
    let _ = br.page("/_auth/login").await; // the CSRF cookie
    let form = "username=cas&password=x&csrf_token=forged";
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("accept", HTML),
    ];
    let r = br
        .send(Method::POST, "/_auth/login", &headers, Bytes::from(form))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(is_html(&r), "{:?}", r.headers);
    let text = r.text();
    assert!(text.contains("The form expired"), "{text}");
    assert!(links_to(&r, "/_auth/login"), "{text}");
    // An account form goes back to the account page.
    let mut signed_in = s.signed_in("dan").await;
    let r = signed_in
        .send(
            Method::POST,
            "/_auth/account/profile",
            &headers,
            Bytes::from("first_name=D"),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(links_to(&r, "/_auth/account"), "{}", r.text());
    // A program posting the same gets JSON.
    let r = br.post_form("/_auth/login", &[("username", "cas")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["error"], "csrf");
    // The right token still signs in.
    br.login("cas", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_says_what_is_missing() {
    let s = server().await;
    let mut br = s.signed_in("fred").await;
    for (path, missing, says) in [
        ("/admin/x", "role", "admin"),
        ("/premium/x", "tier", "premium"),
        ("/verified/x", "verified_address", "confirmed email address"),
        ("/secure/x", "two_factor", "two-factor sign-in"),
    ] {
        let r = br.api(path, &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        let j = r.json();
        assert_eq!(j["error"], "forbidden", "{path}");
        assert_eq!(j["missing"], missing, "{path}");
        assert!(j["message"].as_str().unwrap().contains(says), "{path}: {j}");
        let r = br.page(path).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert!(is_html(&r), "{path}");
        assert!(r.text().contains(says), "{path}: {}", r.text());
    }
    let r = br.page("/secure/x").await;
    assert!(links_to(&r, "/_auth/account/2fa"), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_is_a_page_or_json() {
    let s = server().await;
    let mut br = s.browser();
    s.app().store.close().await;
    let path = format!(
        "/_auth/reset/confirm?token={}",
        gatehouse::auth::bearer::random_token()
    );
    let r = br.page(&path).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(is_html(&r), "{:?}", r.headers);
    assert!(r.text().contains("Temporarily unavailable"), "{}", r.text());
    let r = br.api(&path, &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"], "unavailable");
    assert!(r.json()["request_id"].is_string());
}
