//! The bypass corpus: spellings of protected requests sent through Gatehouse to real Flask and
//! Express apps. The apps' own logs say which handler ran; a protected handler may run only
//! when the rule allows it. Each spelling is also sent to the app directly, which shows what it
//! would have reached without Gatehouse.

mod apps;
mod raw;

use std::collections::BTreeMap;

use crate::harness::{Backend, PASSWORD, TestServer};
use apps::AppProcess;
use raw::{Probe, h2_probe};

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
path = "/items/**"
methods = ["DELETE"]
roles = ["admin"]
[[routes]]
path = "/export/**"
methods = ["GET"]
roles = ["admin"]
"#;

/// Handlers a signed-in user without the admin role must never reach.
const ADMIN_ONLY: [&str; 4] = ["admin", "reports", "item-delete", "export"];

fn corpus() -> Vec<Probe> {
    let mut v = Vec::new();
    let get = |t: &str| Probe::new("GET", t);
    // Case, encodings of letters, trailing slashes, parameters, dots, slashes, controls.
    for t in [
        "/admin/x",
        "/ADMIN/x",
        "/Admin/x",
        "/aDmIn/x",
        "/%41dmin/x",
        "/%61dmin/x",
        "/%41DMIN/x",
        "/ad%6Din/x",
        "/ad%6din/x",
        "/%2561dmin/x",
        "/%252561dmin/x",
        "/admin;x=1/secret",
        "/admin;/x",
        "/ADMIN;jsessionid=1/x",
        "/public/..;/admin/x",
        "/public/../admin/x",
        "/public/./../admin/x",
        "/public/%2e%2e/admin/x",
        "/public/%2E%2E/admin/x",
        "/public/.%2e/admin/x",
        "/public/%2e./admin/x",
        "/public/%252e%252e/admin/x",
        "/public%2f..%2fadmin/x",
        "/public/..%2fadmin/x",
        "/public/..%2Fadmin/x",
        "/public/..%5cadmin/x",
        "/public/..\\admin/x",
        "/public\\..\\admin\\x",
        "/public/%c0%ae%c0%ae/admin/x",
        "//admin/x",
        "///admin/x",
        "/./admin/x",
        "/admin//x",
        "/admin/./x",
        "/admin%2fx",
        "/admin%00/x",
        "/admin%09/x",
        "/admin%0a/x",
        "/admin%0d%0a/x",
        "/admin/x#frag",
        "/admin./x",
        "/admin%2e/x",
        "/admin%20/x",
        "/admin /x",
        "/%EF%BD%81dmin/x",
        "/%EF%BC%8Fadmin/x",
        "/public/%EF%BC%8E%EF%BC%8E/admin/x",
        "/adm%C4%B1n/x",
        "/%E2%80%8Badmin/x",
        "/public/x?/../../admin/x",
        "/reports",
        "/Reports",
        "/REPORTS",
        "/reports/",
        "/Reports/",
        "/reports//",
        "/reports;a",
        "/reports;",
        "/reports%3b",
        "/reports%3Ba",
        "/%72eports",
        "/%52eports",
        "/reports.",
        "/reports%2e",
        "/reports%2f",
        "/reports%20",
        "/reports?x=1",
        "/reports/?x",
        "/reports%23",
        "/reports#x",
        "/./reports",
        "/public/../reports",
        "/export/x",
        "/Export/x",
        "/EXPORT/x/",
        "/%61%64%6d%69%6e/x",
        "/%41%44%4D%49%4E/x",
        "/admin%c0%af/x",
        "/admin%c0%afx",
        "/admin%e2%80%8b/x",
        "/%EF%BC%A1dmin/x",
        "/admin%ef%bc%8fx",
        "/admin%252fx",
        "/admin%u002fx",
        "/admin%C2%A0/x",
        "/public/%2e%2e;/admin/x",
        "/REPORTS;jsessionid=1",
        "/reports%3f",
        // The edges of a `/x/**` rule, matched by prefix: the bare directory, its trailing
        // slash, a longer name, the prefix deeper in the path, the directory's name encoded.
        "/admin",
        "/ADMIN",
        "/admin/",
        "/Admin/",
        "/admin/x/",
        "/adminx/y",
        "/admin-/x",
        "/admin_/x",
        "/admin.json/x",
        "/ADMIN%2E/x",
        "/public/admin/x",
        "/admin/public/x",
        "/public",
        "/publicx/../admin/x",
        "/export",
        "/EXPORT/",
        "/export/x/y",
        "/%65xport/x",
    ] {
        v.push(get(t));
    }
    // Raw bytes a lenient parser might accept.
    v.push(get("/admin\t/x"));
    v.push(get("/ａdmin/x"));
    v.push(get("/admin\u{0}/x"));
    // Methods: spelling, HEAD as GET, overrides in headers (any spelling) and in the query.
    for (m, t) in [
        ("DELETE", "/items/1"),
        ("delete", "/items/1"),
        ("Delete", "/items/1"),
        ("DELETE", "/Items/1"),
        ("DELETE", "/ITEMS/1/"),
        ("DELETE", "/items/1/"),
        ("DELETE", "/items/1;x"),
        ("DELETE", "/%69tems/1"),
        ("DELETE", "/items"),
        ("DELETE", "/ITEMS/"),
        ("DELETE", "/Items/1/x"),
        ("POST", "/items/1?_method=DELETE"),
        ("POST", "/items/1?_method=delete"),
        ("POST", "/items/1?_METHOD=DELETE"),
        ("POST", "/items/1?x=1&_method=DeLeTe"),
        ("GET", "/items/1?_method=DELETE"),
        ("POST", "/items/1?_method=DELETE&_method=POST"),
        ("POST", "/items/1?%5Fmethod=DELETE"),
        ("POST", "/items/1?%5fmethod=delete"),
        ("POST", "/items/1?_method=%44ELETE"),
        ("POST", "/items/1?_method=+DELETE+"),
        ("POST", "/items/1?_method=DELETE%00"),
        ("POST", "/items/1?_method[]=DELETE"),
        ("POST", "/items/1?x=1;_method=DELETE"),
        ("HEAD", "/export/x"),
        ("head", "/export/x"),
        ("HEAD", "/EXPORT/x"),
        ("get", "/export/x"),
        ("Get", "/export/x"),
        ("POST", "/export/x?_method=GET"),
        ("POST", "/export/x?_method=get"),
        ("GETS", "/export/x"),
        ("CONNECT", "/admin/x"),
        ("TRACE", "/admin/x"),
        ("OPTIONS", "/admin/x"),
        ("PROPFIND", "/admin/x"),
    ] {
        v.push(Probe::new(m, t));
    }
    for h in [
        "X-HTTP-Method-Override",
        "x-http-method-override",
        "X_HTTP_Method_Override",
        "X-HTTP-Method",
        "X-Method-Override",
    ] {
        v.push(Probe::new("POST", "/items/1").header(h, "DELETE"));
        v.push(Probe::new("POST", "/items/1").header(h, "delete"));
        v.push(Probe::new("POST", "/export/x").header(h, "GET"));
    }
    v.push(
        Probe::new("POST", "/items/1")
            .header("X-HTTP-Method-Override", "PATCH")
            .header("X-HTTP-Method-Override", "DELETE"),
    );
    // Hosts and request-target forms.
    v.push(Probe::new("GET", "/admin/x").header("Host", "other.example"));
    v.push(Probe::new("GET", "http://other.example/admin/x"));
    v.push(Probe::new("GET", "http://{host}/ADMIN/x"));
    v.push(Probe::new("GET", "http://{host}/reports/"));
    v.push(Probe::new("GET", "*"));
    v.push(Probe::new("GET", "admin/x"));
    // Headers that some frameworks route on instead of the path.
    for h in ["X-Original-URL", "X-Rewrite-URL", "X-Original-URI"] {
        v.push(Probe::new("GET", "/public/x").header(h, "/admin/x"));
        v.push(Probe::new("GET", "/items/1").header(h, "/reports"));
    }
    v.push(Probe::new("GET", "/public/x").header("X-Forwarded-Prefix", "/admin"));
    // The same, with `Connection` naming them (or our own headers) as hop-by-hop.
    v.push(
        Probe::new("GET", "/public/x")
            .header("Connection", "keep-alive, X-Original-URL, X-Forwarded-For")
            .header("X-Original-URL", "/admin/x"),
    );
    v.push(
        Probe::new("POST", "/items/1")
            .header("Connection", "X-HTTP-Method-Override, x-auth-user")
            .header("X-HTTP-Method-Override", "DELETE"),
    );
    // Upgrades: h2c must never be bridged.
    v.push(
        Probe::new("GET", "/public/x")
            .header("Connection", "Upgrade, HTTP2-Settings")
            .header("Upgrade", "h2c")
            .header("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),
    );
    v
}

/// HTTP/2 `:path` and `:method` spellings (h2c with prior knowledge).
const H2_PROBES: [(&str, &str); 10] = [
    ("GET", "/ADMIN/x"),
    ("GET", "/%41dmin/x"),
    ("GET", "/admin;x=1/y"),
    ("GET", "/reports/"),
    ("GET", "/Reports"),
    ("GET", "/public/..;/admin/x"),
    ("delete", "/items/1"),
    ("DELETE", "/Items/1/"),
    ("HEAD", "/export/x"),
    ("POST", "/items/1?_method=DELETE"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bypass_corpus_against_flask() {
    if let Some(app) = apps::flask().await {
        run_corpus(app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bypass_corpus_against_express() {
    if let Some(app) = apps::express().await {
        run_corpus(app).await;
    }
}

async fn run_corpus(app: AppProcess) {
    let s = TestServer::start_in_front_of(
        Backend::Sqlite,
        &format!("http://127.0.0.1:{}", app.port),
        ROUTES,
    )
    .await
    .unwrap();
    s.plain_user("mallory").await;
    s.user("root", |a| a.is_admin = true).await;
    let mut mallory = s.browser();
    mallory.login("mallory", PASSWORD).await;
    let mut root = s.browser();
    root.login("root", PASSWORD).await;
    let mallory_cookie = mallory.cookie_header().unwrap();
    let root_cookie = root.cookie_header().unwrap();
    let gate = s.addr;
    let direct: std::net::SocketAddr = ([127, 0, 0, 1], app.port).into();

    // What must still work: the rules allow these, and the app runs the handler.
    for (who, cookie, m, t, handler) in [
        ("root", Some(&root_cookie), "GET", "/admin/x", "admin"),
        ("root", Some(&root_cookie), "GET", "/admin/x/y", "admin"),
        (
            "root",
            Some(&root_cookie),
            "DELETE",
            "/items/1",
            "item-delete",
        ),
        ("root", Some(&root_cookie), "GET", "/export/x", "export"),
        ("root", Some(&root_cookie), "HEAD", "/export/x", "export"),
        (
            "mallory",
            Some(&mallory_cookie),
            "GET",
            "/items/1",
            "item-other",
        ),
        (
            "mallory",
            Some(&mallory_cookie),
            "GET",
            "/private/x",
            "private",
        ),
        ("anonymous", None, "GET", "/public/x", "public"),
    ] {
        let id = format!("ok-{who}-{m}-{t}");
        let status = Probe::new(m, t)
            .send(gate, &id, cookie.map(String::as_str))
            .await;
        assert_eq!(
            app.handler_for(&id).as_deref(),
            Some(handler),
            "{}: {who} {m} {t} should reach {handler} (status {status})",
            app.name
        );
    }

    let mut report = BTreeMap::new();
    let mut direct_hits = 0;
    let mut breaches = Vec::new();
    for (n, probe) in corpus().iter().enumerate() {
        let d_id = format!("direct-{n}");
        probe.send(direct, &d_id, None).await;
        let d = app.handler_for(&d_id);
        if d.as_deref().is_some_and(|h| h != "public") {
            direct_hits += 1;
        }
        for (who, cookie) in [("mallory", Some(&mallory_cookie)), ("anon", None)] {
            let id = format!("{who}-{n}");
            let status = probe.send(gate, &id, cookie.map(String::as_str)).await;
            let ran = app.handler_for(&id);
            let forbidden = match who {
                "anon" => ran.as_deref().is_some_and(|h| h != "public"),
                _ => ran.as_deref().is_some_and(|h| ADMIN_ONLY.contains(&h)),
            };
            if forbidden {
                breaches.push(format!("{who}: {probe} → {status}, app ran {ran:?}"));
            }
            report.insert(
                format!("{n:03} {who:7} {probe}"),
                format!("gatehouse {status} ran {ran:?} | direct ran {d:?}"),
            );
        }
    }
    for (n, (m, t)) in H2_PROBES.iter().enumerate() {
        let id = format!("h2-{n}");
        let status = h2_probe(gate, m, t, &id, &mallory_cookie).await;
        let ran = app.handler_for(&id);
        if ran.as_deref().is_some_and(|h| ADMIN_ONLY.contains(&h)) {
            breaches.push(format!("h2 mallory: {m} {t} → {status}, app ran {ran:?}"));
        }
        report.insert(
            format!("h2 {n:02} {m} {t}"),
            format!("gatehouse {status} ran {ran:?}"),
        );
    }
    for (k, v) in &report {
        println!("{}: {k}: {v}", app.name);
    }
    assert!(
        breaches.is_empty(),
        "{}: bypasses:\n{}",
        app.name,
        breaches.join("\n")
    );
    // The corpus is meaningful: many of its spellings reach protected handlers when the app
    // is asked directly.
    assert!(
        direct_hits >= 20,
        "{}: only {direct_hits} spellings reach a protected handler directly",
        app.name
    );
}
