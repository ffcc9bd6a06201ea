//! Sign-in with an external OpenID Connect provider, against a real one: the npm package
//! `oidc-provider`, started per test by `tests/oidc/provider.js` on a loopback port. The test
//! plays the browser with plain HTTP: it follows the redirects between Gatehouse and the
//! provider and posts the provider's login form. Needs `npm ci` in `tests/oidc` (CI does it and
//! sets `GATEHOUSE_REQUIRE_OIDC=1`); skipped with a note otherwise.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use gatehouse::clock::Clock;
use gatehouse::store::{ActivityFilter, ActivityRow, Store};
use http::StatusCode;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::harness::{Backend, Browser, PASSWORD, Resp, TestServer, skip_or_require};

const SECRET: &str = "gatehouse-test-client-secret";

/// One running provider process.
struct Idp {
    issuer: String,
    _child: Child,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Starts a provider whose client `gatehouse` may return to `redirects`.
async fn idp(redirects: &[String], id_token_ttl: Option<u64>) -> Option<Idp> {
    if !dir().join("node_modules/oidc-provider").is_dir() {
        skip_or_require(
            "GATEHOUSE_REQUIRE_OIDC",
            "tests/oidc/node_modules is missing (run `npm ci` there)",
            "the OpenID Connect sign-in tests",
            "run `npm ci` in tests/oidc (needs Node.js; CI does it, see .ci/run)",
        );
        return None;
    }
    let options = serde_json::json!({
        "clients": [{
            "client_id": "gatehouse",
            "client_secret": SECRET,
            "redirect_uris": redirects,
        }],
        "id_token_ttl": id_token_ttl.unwrap_or(3600),
    });
    let mut child = Command::new("node")
        .arg(dir().join("provider.js"))
        .arg(options.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the provider prints its port")
        .unwrap()
        .expect("the provider exited before printing its port");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Some(Idp {
        issuer: format!("http://127.0.0.1:{}", port.trim()),
        _child: child,
    })
}

fn provider_toml(id: &str, name: &str, issuer: &str, extra: &str) -> String {
    format!(
        "[[identity_providers]]\nid = \"{id}\"\nname = \"{name}\"\nissuer = \"{issuer}\"\n\
         client_id = \"gatehouse\"\nclient_secret = \"{SECRET}\"\n{extra}\n"
    )
}

/// Gatehouse with the providers `ids` (each `(id, extra keys)`) at one provider process.
async fn setup(
    b: Backend,
    ids: &[(&str, &str)],
    id_token_ttl: Option<u64>,
) -> Option<(TestServer, Idp)> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let redirects: Vec<String> = ids
        .iter()
        .map(|(id, _)| format!("{base}/_auth/oidc/{id}/callback"))
        .collect();
    let p = idp(&redirects, id_token_ttl).await?;
    let toml: String = ids
        .iter()
        .map(|(id, extra)| provider_toml(id, &format!("{id} ID"), &p.issuer, extra))
        .collect();
    let s = TestServer::start_on(b, listener, &format!("public_url = \"{base}/\""), &toml).await?;
    Some((s, p))
}

fn location(r: &Resp) -> String {
    r.header("location")
        .unwrap_or_else(|| panic!("no Location ({}): {}", r.status, r.text()))
        .to_string()
}

/// Path and query of an absolute URL.
fn local(url: &url::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// Signs in at the provider, from Gatehouse's `start` path to (but not including) the
/// callback: `login` are the provider's login form fields, `edit_auth` may change the
/// authorization request. Returns the callback URL the provider sent the browser to.
async fn at_provider(
    gh: &mut Browser,
    start: &str,
    login: &[(&str, &str)],
    edit_auth: impl FnOnce(url::Url) -> url::Url,
) -> url::Url {
    let r = gh.get(start).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let auth = url::Url::parse(&location(&r)).unwrap();
    assert_eq!(auth.path(), "/auth");
    let q: Vec<(String, String)> = auth.query_pairs().into_owned().collect();
    let has = |k: &str| q.iter().any(|(n, _)| n == k);
    assert!(
        has("state") && has("nonce") && has("code_challenge"),
        "{auth}"
    );
    assert!(q.contains(&("code_challenge_method".into(), "S256".into())));
    follow_provider(edit_auth(auth), login).await
}

/// The whole round trip; returns Gatehouse's answer to the callback.
async fn sign_in(gh: &mut Browser, id: &str, next: &str, login: &[(&str, &str)]) -> Resp {
    let start = format!(
        "/_auth/oidc/{id}/start?next={}",
        percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
    );
    let cb = at_provider(gh, &start, login, |u| u).await;
    assert_eq!(cb.path(), format!("/_auth/oidc/{id}/callback"));
    gh.get(&local(&cb)).await
}

/// Every activity row, after a graceful shutdown flushed the writer (read over a new pool:
/// the server's closed with it).
async fn activity(s: &mut TestServer) -> Vec<ActivityRow> {
    s.shutdown().await;
    let store = Store::connect(&s.db.url, 2).await.unwrap();
    store
        .list_activity(&ActivityFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
}

fn described(rows: &[ActivityRow], kind: &str, text: &str) -> bool {
    rows.iter().any(|r| {
        r.activity_type == kind
            && r.activity_description
                .as_deref()
                .is_some_and(|d| d.contains(text))
    })
}

async fn full_flow_links_by_verified_email(b: Backend) {
    let Some((mut s, _idp)) = setup(b, &[("corp", "")], None).await else {
        return;
    };
    let alice = s.user("alice", |a| a.is_verified = true).await;
    let mut gh = s.browser();

    // The login page offers the provider, carrying `next`.
    let page = gh.page("/_auth/login?next=/app/page%3Fx%3D1").await;
    // (minijinja writes '/' as "&#x2f;" in attributes)
    let html = page.text().replace("&#x2f;", "/");
    assert!(
        html.contains(
            "id=\"provider-corp\" href=\"/_auth/oidc/corp/start?next=%2Fapp%2Fpage%3Fx%3D1\""
        ),
        "{html}"
    );

    let login = [
        ("login", "a-1001"),
        ("email", "alice@example.com"),
        ("email_verified", "true"),
    ];
    let r = sign_in(&mut gh, "corp", "/app/page?x=1", &login).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(
        location(&r),
        "/app/page?x=1",
        "next survives the round trip"
    );
    let app = gh.api("/app/page?x=1", &[]).await;
    assert_eq!(app.status, StatusCode::OK, "{}", app.text());
    assert_eq!(app.echoed("x-auth-user"), ["alice"]);
    assert_eq!(app.echoed("x-auth-user-id"), [alice.id.0.to_string()]);
    assert!(
        !gh.cookies.contains_key("gatehouse_oidc"),
        "the flow cookie is cleared"
    );

    // Next time the link wins, whatever address the provider gives; `next` stays same-site.
    let mut again = s.browser();
    let r = sign_in(
        &mut again,
        "corp",
        "//evil.example/x",
        &[("login", "a-1001"), ("email", "renamed@elsewhere.example")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(location(&r), "/");
    assert_eq!(
        again.api("/app/", &[]).await.echoed("x-auth-user"),
        ["alice"]
    );

    let links = s.app().store.identities_of(alice.id).await.unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(
        (
            links[0].provider.as_str(),
            links[0].subject.as_str(),
            links[0].email.as_deref()
        ),
        ("corp", "a-1001", Some("alice@example.com"))
    );
    assert!(links[0].last_used_at.is_some());
    let account = gh.page("/_auth/account").await;
    assert!(
        account.text().contains("corp ID: linked"),
        "{}",
        account.text()
    );

    let rows = activity(&mut s).await;
    assert!(described(&rows, "identity_linked", "Linked to corp ID"));
    let logins: Vec<&ActivityRow> = rows
        .iter()
        .filter(|r| r.activity_type == "login" && r.user_id == Some(alice.id))
        .collect();
    assert_eq!(logins.len(), 2, "{rows:?}");
    let meta = logins[0].metadata.as_ref().unwrap();
    assert_eq!(meta.0["provider"], "corp");
    assert_eq!(meta.0["subject"], "a-1001");
    let dump = serde_json::to_string(&rows).unwrap();
    assert!(
        !dump.contains(SECRET) && !dump.contains("eyJ"),
        "no secrets or tokens"
    );
}

async fn create_refuse_and_second_provider(b: Backend) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let cb = |id: &str| vec![format!("{base}/_auth/oidc/{id}/callback")];
    let Some(corp) = idp(&cb("corp"), None).await else {
        return;
    };
    let Some(partner) = idp(&cb("partner"), None).await else {
        return;
    };
    let toml = provider_toml(
        "corp",
        "Corp",
        &corp.issuer,
        "create_users = true\nallowed_email_domains = [\"corp.example\"]\nscopes = \"openid email profile groups\"\nroles_claim = \"groups\"\nrole_map = { staff = \"editor\" }",
    ) + &provider_toml("partner", "Partner", &partner.issuer, "");
    let Some(mut s) =
        TestServer::start_on(b, listener, &format!("public_url = \"{base}/\""), &toml).await
    else {
        return;
    };
    let page = s.browser().page("/_auth/login").await.text();
    assert!(page.contains("id=\"provider-corp\"") && page.contains("id=\"provider-partner\""));

    // Created when allowed: free tier, 3 credits, verified, mapped role.
    let mut gh = s.browser();
    let r = sign_in(
        &mut gh,
        "corp",
        "/editors/x",
        &[
            ("login", "c-7"),
            ("email", "newbie@corp.example"),
            ("given_name", "New"),
            ("family_name", "Bie"),
            ("groups", "staff,other"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let app = gh.api("/editors/x", &[]).await;
    assert_eq!(app.status, StatusCode::OK, "{}", app.text());
    assert_eq!(app.echoed("x-auth-user"), ["c-7"]);
    assert_eq!(app.echoed("x-auth-roles"), ["editor"]);
    let u = s
        .app()
        .accounts
        .get_by_email("newbie@corp.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            u.subscription_tier.as_str(),
            u.credits_balance,
            u.is_verified
        ),
        ("free", 3, true)
    );
    assert!(u.password_hash.is_none());
    assert_eq!(u.first_name.as_deref(), Some("New"));

    // Refused: a domain outside the list; an unverified address.
    let mut other = s.browser();
    let r = sign_in(
        &mut other,
        "corp",
        "/app/",
        &[("login", "c-8"), ("email", "x@gmail.example")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(r.text().contains("domains"), "{}", r.text());
    let r = sign_in(
        &mut other,
        "corp",
        "/app/",
        &[
            ("login", "c-9"),
            ("email", "late@corp.example"),
            ("email_verified", "false"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(r.text().contains("verified"), "{}", r.text());
    assert!(!other.cookies.contains_key("gatehouse_session"));

    // The second provider at the same time: no account creation there.
    let r = sign_in(
        &mut other,
        "partner",
        "/app/",
        &[("login", "p-1"), ("email", "stranger@partner.example")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(r.text().contains("no account here"), "{}", r.text());
    assert!(
        s.app()
            .accounts
            .get_by_email("stranger@partner.example")
            .await
            .unwrap()
            .is_none()
    );
    // An account whose address is not confirmed here is not linked by that address (it may
    // have been registered by someone else); a confirmed one is.
    s.plain_user("bob").await;
    let r = sign_in(
        &mut other,
        "partner",
        "/app/",
        &[("login", "p-2"), ("email", "bob@example.com")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(r.text().contains("not confirmed"), "{}", r.text());
    s.user("ben", |a| a.is_verified = true).await;
    let r = sign_in(
        &mut other,
        "partner",
        "/app/",
        &[("login", "p-3"), ("email", "ben@example.com")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(other.api("/app/", &[]).await.echoed("x-auth-user"), ["ben"]);

    let rows = activity(&mut s).await;
    assert!(rows.iter().any(|r| r.activity_type == "user_created"));
    assert!(described(
        &rows,
        "login_failed",
        "Sign-in with Partner refused"
    ));
    assert!(described(&rows, "login_failed", "domain is not allowed"));
}

async fn tampered_state_wrong_nonce_expired_token(b: Backend) {
    let Some((mut s, _idp)) = setup(b, &[("corp", "")], Some(60)).await else {
        return;
    };
    s.user("carol", |a| a.is_verified = true).await;
    let login = [("login", "k-1"), ("email", "carol@example.com")];

    // A tampered state.
    let mut gh = s.browser();
    let cb = at_provider(&mut gh, "/_auth/oidc/corp/start", &login, |u| u).await;
    let mut bad = cb.clone();
    let pairs: Vec<(String, String)> = cb
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == "state" {
                (k, format!("{v}x"))
            } else {
                (k, v)
            }
        })
        .collect();
    bad.query_pairs_mut().clear().extend_pairs(pairs);
    let r = gh.get(&local(&bad)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(!gh.cookies.contains_key("gatehouse_session"));
    // The flow is spent: the real state does not help afterwards either.
    let r = gh.get(&local(&cb)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());

    // A nonce other than the one Gatehouse asked for.
    let mut gh = s.browser();
    let cb = at_provider(&mut gh, "/_auth/oidc/corp/start", &login, |mut u| {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .into_owned()
            .map(|(k, v)| {
                if k == "nonce" {
                    (k, "chosen-by-someone-else".into())
                } else {
                    (k, v)
                }
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
        u
    })
    .await;
    let r = gh.get(&local(&cb)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(!gh.cookies.contains_key("gatehouse_session"));

    // The same round trip without tampering works.
    let mut gh = s.browser();
    let r = sign_in(&mut gh, "corp", "/app/", &login).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());

    // An ID token that expired (it lives 60 s; Gatehouse's clock moves 5 minutes on).
    let mut gh = s.browser();
    let cb = at_provider(&mut gh, "/_auth/oidc/corp/start", &login, |u| u).await;
    s.clock.advance(chrono::Duration::minutes(5));
    let r = gh.get(&local(&cb)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(!gh.cookies.contains_key("gatehouse_session"));

    let rows = activity(&mut s).await;
    assert!(described(
        &rows,
        "login_failed",
        "state parameter does not match"
    ));
    assert!(described(&rows, "login_failed", "nonce does not match"));
    assert!(described(&rows, "login_failed", "ID token expired"));
}

async fn twofa_lockout_and_deactivation(b: Backend) {
    let Some((mut s, _idp)) = setup(
        b,
        &[("corp", ""), ("corp-mfa", "trust_provider_mfa = true")],
        None,
    )
    .await
    else {
        return;
    };
    let dave = s.user("dave", |a| a.is_verified = true).await;
    let app = s.app();
    let enrol = app
        .accounts
        .twofa_enrolment(&app.keys, &dave, "Gatehouse")
        .await
        .unwrap();
    let secret = crate::harness::otp::base32_decode(enrol.secret_base32.expose());
    let code = crate::harness::otp::code_at(&secret, s.clock.now().timestamp());
    app.accounts
        .confirm_twofa(&app.keys, dave.id, &code, &Default::default())
        .await
        .unwrap();
    let login = [
        ("login", "d-1"),
        ("email", "dave@example.com"),
        ("amr", "pwd,otp"),
    ];

    // Gatehouse's own code step still comes after the provider...
    let mut gh = s.browser();
    let r = sign_in(&mut gh, "corp", "/app/after", &login).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(location(&r), "/_auth/login/2fa");
    assert!(!gh.cookies.contains_key("gatehouse_session"));
    s.clock.advance(chrono::Duration::seconds(30));
    let code = crate::harness::otp::code_at(&secret, s.clock.now().timestamp());
    let token = gh.csrf("/_auth/login/2fa").await;
    let r = gh
        .post_form(
            "/_auth/login/2fa",
            &[("csrf_token", &token), ("code", &code)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(location(&r), "/app/after");

    // ...unless the provider is trusted for MFA and its amr shows several factors,
    let mut gh = s.browser();
    let r = sign_in(&mut gh, "corp-mfa", "/app/", &login).await;
    assert_eq!(location(&r), "/app/");
    assert_eq!(gh.api("/app/", &[]).await.echoed("x-auth-user"), ["dave"]);
    // but not when it shows one.
    let mut gh = s.browser();
    let r = sign_in(
        &mut gh,
        "corp-mfa",
        "/app/",
        &[("login", "d-1"), ("amr", "pwd")],
    )
    .await;
    assert_eq!(location(&r), "/_auth/login/2fa");
    assert!(!gh.cookies.contains_key("gatehouse_session"));

    // A locked account is refused, and so is a deactivated one.
    let erin = s.user("erin", |a| a.is_verified = true).await;
    let erin_login = [("login", "e-1"), ("email", "erin@example.com")];
    let mut gh = s.browser();
    assert_eq!(
        sign_in(&mut gh, "corp", "/app/", &erin_login).await.status,
        StatusCode::SEE_OTHER
    );
    let until = gatehouse::store::Ts(s.clock.now() + chrono::Duration::hours(1));
    app.accounts.lock(erin.id, until, None).await.unwrap();
    let mut gh = s.browser();
    let r = sign_in(&mut gh, "corp", "/app/", &erin_login).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    app.accounts.unlock(erin.id, None).await.unwrap();
    app.accounts
        .update(
            erin.id,
            gatehouse::store::UserPatch {
                is_active: Some(false),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let r = sign_in(&mut gh, "corp", "/app/", &erin_login).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(!gh.cookies.contains_key("gatehouse_session"));

    // A passkey is a second factor too: a user whose only one is a passkey gets the code
    // step (where the passkey is offered) after the provider, as after a password.
    let pia = s.user("pia", |a| a.is_verified = true).await;
    let stored = app
        .store
        .insert_passkey(&gatehouse::store::NewPasskey {
            user_id: pia.id,
            credential_id: "cGlhLWtleQ".into(),
            public_key: vec![1, 2, 3],
            counter: 0,
            dynamic_state: vec![],
            transports: 0,
            name: "Pia's key".into(),
            created_at: gatehouse::store::Ts(s.clock.now()),
        })
        .await
        .unwrap();
    assert!(stored);
    let mut gh = s.browser();
    let r = sign_in(
        &mut gh,
        "corp",
        "/app/",
        &[("login", "p-1"), ("email", "pia@example.com")],
    )
    .await;
    assert_eq!(location(&r), "/_auth/login/2fa", "{}", r.text());
    assert!(!gh.cookies.contains_key("gatehouse_session"));

    let rows = activity(&mut s).await;
    assert!(described(
        &rows,
        "login",
        "Signed in with corp ID and authenticator code"
    ));
    let skipped = rows
        .iter()
        .filter_map(|r| r.metadata.as_ref())
        .any(|m| m.0["provider"] == "corp-mfa" && m.0["twofa_skipped"] == true);
    assert!(skipped, "{rows:?}");
    assert!(described(
        &rows,
        "login_failed",
        "deactivated, deleted or locked"
    ));
}

async fn account_page_link_and_unlink(b: Backend) {
    let Some((s, _idp)) = setup(b, &[("corp", "create_users = true")], None).await else {
        return;
    };
    // A password account links the provider from its account page...
    s.plain_user("fred").await;
    let mut gh = s.browser();
    gh.login("fred", PASSWORD).await;
    let token = gh.csrf("/_auth/account").await;
    let start = gh
        .post_form(
            "/_auth/account/identities/link",
            &[("csrf_token", &token), ("provider", "corp")],
        )
        .await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.text());
    let auth = url::Url::parse(&location(&start)).unwrap();
    let cb = follow_provider(auth, &[("login", "f-1"), ("email", "someone@else.example")]).await;
    let r = gh.get(&local(&cb)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(location(&r), "/_auth/account?done=linked");
    let page = gh.page("/_auth/account").await.text();
    assert!(
        page.contains("corp ID: linked (someone@else.example)"),
        "{page}"
    );
    // ...and can sign in with it, though the provider's address is not fred's.
    let mut other = s.browser();
    let r = sign_in(
        &mut other,
        "corp",
        "/app/",
        &[("login", "f-1"), ("email", "someone@else.example")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(
        other.api("/app/", &[]).await.echoed("x-auth-user"),
        ["fred"]
    );
    // Unlinking is fine: fred still has a password.
    let token = gh.csrf("/_auth/account").await;
    let r = gh
        .post_form(
            "/_auth/account/identities/unlink",
            &[("csrf_token", &token), ("provider", "corp")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert!(
        gh.page("/_auth/account")
            .await
            .text()
            .contains("corp ID: not linked")
    );

    // An account made by the provider has no password: unlinking would lock it out.
    let mut made = s.browser();
    let r = sign_in(
        &mut made,
        "corp",
        "/app/",
        &[("login", "g-1"), ("email", "gina@example.com")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let token = made.csrf("/_auth/account").await;
    let r = made
        .post_form(
            "/_auth/account/identities/unlink",
            &[("csrf_token", &token), ("provider", "corp")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert!(r.text().contains("no way to sign in"), "{}", r.text());
}

/// Two instances on one database behind one address (the same `public_url`): a provider
/// sign-in started on A has its callback answered by B, and the Gatehouse code step it opens
/// is finished on A again. The flow is used once, whichever instance sees it.
async fn sign_in_started_on_one_instance_finishes_on_another(b: Backend) {
    let Some((mut s, idp)) = setup(b, &[("corp", "")], None).await else {
        return;
    };
    let mut second = s
        .second_with_server_keys(
            &format!("public_url = \"{}/\"", s.base),
            &provider_toml("corp", "corp ID", &idp.issuer, ""),
        )
        .await;
    second.clock.set(s.clock.now());
    let gina = s.user("gina", |a| a.is_verified = true).await;
    let app = s.app();
    let enrol = app
        .accounts
        .twofa_enrolment(&app.keys, &gina, "Gatehouse")
        .await
        .unwrap();
    let secret = crate::harness::otp::base32_decode(enrol.secret_base32.expose());
    let code = crate::harness::otp::code_at(&secret, s.clock.now().timestamp());
    app.accounts
        .confirm_twofa(&app.keys, gina.id, &code, &Default::default())
        .await
        .unwrap();
    let store = app.store.clone();
    let moved = |to: &TestServer, from: &Browser| {
        let mut b = to.browser();
        b.cookies = from.cookies.clone();
        b
    };

    // Started on A: the flow is a row, not A's memory.
    let mut on_a = s.browser();
    let login = [("login", "g-1"), ("email", "gina@example.com")];
    let cb = at_provider(
        &mut on_a,
        "/_auth/oidc/corp/start?next=%2Fapp%2Fx",
        &login,
        |u| u,
    )
    .await;
    assert_eq!(cb.path(), "/_auth/oidc/corp/callback");
    assert!(on_a.cookies.contains_key("gatehouse_oidc"));
    assert_eq!(store.oidc_flow_rows().await.unwrap(), 1);

    // The callback reaches B, which finishes the flow and opens the code step.
    let mut on_b = moved(&second, &on_a);
    let r = on_b.get(&local(&cb)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(location(&r), "/_auth/login/2fa");
    assert!(!on_b.cookies.contains_key("gatehouse_oidc"));
    assert_eq!(store.oidc_flow_rows().await.unwrap(), 0, "used once");

    // The same callback replayed on A finds no flow.
    let r = on_a.get(&local(&cb)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(
        r.text().contains("not started in this browser"),
        "{}",
        r.text()
    );

    // The code step, on A, knows it was the provider that opened it.
    let mut back_on_a = moved(&s, &on_b);
    s.clock.advance(chrono::Duration::seconds(30));
    let code = crate::harness::otp::code_at(&secret, s.clock.now().timestamp());
    let token = back_on_a.csrf("/_auth/login/2fa").await;
    let r = back_on_a
        .post_form(
            "/_auth/login/2fa",
            &[("csrf_token", &token), ("code", &code)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(location(&r), "/app/x", "next survives both instances");
    let mut then_on_b = moved(&second, &back_on_a);
    let r = then_on_b.api("/app/x", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.echoed("x-auth-user"), ["gina"]);

    // Flows left unfinished on A expire: B reports one as such, and once expired rows are an
    // hour old the next provider sign-in on B prunes them.
    let mut idle = s.browser();
    for _ in 0..3 {
        let r = idle.get("/_auth/oidc/corp/start").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    }
    assert_eq!(store.oidc_flow_rows().await.unwrap(), 3);
    second
        .clock
        .set(s.clock.now() + chrono::Duration::minutes(11));
    let r = moved(&second, &idle)
        .get("/_auth/oidc/corp/callback?code=x&state=y")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("took too long"), "{}", r.text());
    assert_eq!(store.oidc_flow_rows().await.unwrap(), 2);
    second
        .clock
        .set(s.clock.now() + chrono::Duration::minutes(71));
    let r = second.browser().get("/_auth/oidc/corp/start").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(store.oidc_flow_rows().await.unwrap(), 1, "only the new one");

    second.shutdown().await;
    let rows = activity(&mut s).await;
    let login = rows
        .iter()
        .find(|r| r.activity_type == "login" && r.user_id == Some(gina.id))
        .unwrap_or_else(|| panic!("no login row: {rows:?}"));
    assert!(
        login
            .activity_description
            .as_deref()
            .is_some_and(|d| d.contains("Signed in with corp ID and authenticator code")),
        "{login:?}"
    );
    let meta = &login.metadata.as_ref().unwrap().0;
    assert_eq!(
        (&meta["provider"], &meta["subject"]),
        (&"corp".into(), &"g-1".into())
    );
}

/// The provider's part of a flow that Gatehouse already sent the browser into.
async fn follow_provider(auth: url::Url, login: &[(&str, &str)]) -> url::Url {
    let origin = auth.origin().ascii_serialization();
    let mut idp = Browser::new(&origin);
    let mut url = auth;
    let mut logged_in = false;
    for _ in 0..12 {
        if url.origin().ascii_serialization() != origin {
            return url;
        }
        let r = if url.path().starts_with("/interaction/") && !logged_in {
            logged_in = true;
            idp.post_form(&format!("{}/login", url.path()), login).await
        } else {
            idp.get(&local(&url)).await
        };
        assert!(r.status.is_redirection(), "{}: {}", r.status, r.text());
        url = url.join(&location(&r)).unwrap();
    }
    panic!("too many redirects at the provider");
}

crate::both_backends!(
    full_flow_links_by_verified_email,
    create_refuse_and_second_provider,
    tampered_state_wrong_nonce_expired_token,
    twofa_lockout_and_deactivation,
    account_page_link_and_unlink,
    sign_in_started_on_one_instance_finishes_on_another,
);
