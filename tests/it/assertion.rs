//! The signed identity assertion, checked by an implementation that is not ours:
//! PyJWT with `cryptography` (tests/fixtures/verify_assertion.py), given only the JWKS URL.
//! Without PyJWT the checks are skipped with a note, unless
//! `GATEHOUSE_REQUIRE_FRONT_PROXIES=1` (CI installs it in the same step).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;

use crate::both_backends;
use crate::harness::server::TestServer;
use crate::harness::{Backend, python_imports, skip_or_require};

both_backends!(
    proxy_mode_assertion_verifies,
    cached_per_session_and_refreshed,
    expired_assertion_is_rejected,
    rotation,
);

/// Whether PyJWT can be run; says why not (or fails when it is required).
pub fn pyjwt_available() -> bool {
    let ok = python_imports("jwt, cryptography");
    if !ok {
        skip_or_require(
            "GATEHOUSE_REQUIRE_FRONT_PROXIES",
            "PyJWT cannot be imported",
            "assertion checks with PyJWT",
            "pip install PyJWT cryptography, or set GATEHOUSE_REQUIRE_FRONT_PROXIES=1 to fail instead",
        );
    }
    ok
}

/// PyJWT's verdict on `token`: the header and claims, or the rejection message.
pub async fn pyjwt(
    jwks_url: &str,
    aud: &str,
    iss: &str,
    token: &str,
) -> Result<serde_json::Value, String> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/verify_assertion.py"
    );
    let out = tokio::process::Command::new("python3")
        .args([script, jwks_url, aud, iss, token])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(serde_json::from_str(&stdout).unwrap())
    } else {
        assert!(
            stdout.starts_with("REJECTED"),
            "verifier failed: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Err(stdout)
    }
}

/// The claims of a token, read without verifying (for tokens PyJWT would call premature).
fn claims_of(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn iss(s: &TestServer) -> String {
    s.app()
        .settings
        .server
        .public_url
        .as_str()
        .trim_end_matches('/')
        .to_string()
}

fn aud(s: &TestServer) -> String {
    format!("http://{}", s.upstream)
}

fn jwks_url(s: &TestServer) -> String {
    format!("{}/_auth/.well-known/jwks.json", s.base)
}

/// The assertion the app received for a request of `b` to `/app/x`.
async fn assertion_seen_by_app(b: &mut crate::harness::server::Browser) -> String {
    let r = b.api("/app/x", &[("x-auth-assertion", "forged")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let seen = r.echoed("x-auth-assertion");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_ne!(seen[0], "forged");
    seen[0].clone()
}

async fn proxy_mode_assertion_verifies(b: Backend) {
    let s = TestServer::start(b, "").await.expect("backend");
    let alice_row = s.plain_user("alice").await;
    let mut alice = s.browser();
    alice.login("alice", crate::harness::server::PASSWORD).await;
    let token = assertion_seen_by_app(&mut alice).await;
    // A client's own assertion never reaches the app.
    let r = s
        .browser()
        .api(
            "/public/x",
            &[
                ("x-auth-assertion", "forged"),
                ("X_Auth_Assertion", "forged"),
            ],
        )
        .await;
    assert!(r.echoed("x-auth-assertion").is_empty(), "{}", r.text());
    // The JWKS is public and cacheable.
    let jwks = s.browser().get("/_auth/.well-known/jwks.json").await;
    assert_eq!(jwks.status, StatusCode::OK);
    assert_eq!(
        jwks.header("content-type"),
        Some("application/jwk-set+json")
    );
    let keys = jwks.json()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert!(keys[0].get("d").is_none(), "private key published");
    if !pyjwt_available() {
        return;
    }
    let v = pyjwt(&jwks_url(&s), &aud(&s), &iss(&s), &token)
        .await
        .unwrap();
    assert_eq!(v["header"]["alg"], "EdDSA");
    assert_eq!(v["header"]["kid"], keys[0]["kid"]);
    let c = &v["claims"];
    assert_eq!(c["sub"], alice_row.id.to_string());
    assert_eq!(c["preferred_username"], "alice");
    assert_eq!(c["email"], "alice@example.com");
    assert_eq!(c["email_verified"], false);
    assert_eq!(c["roles"], serde_json::json!([]));
    assert_eq!(c["tier"], alice_row.subscription_tier);
    assert_eq!(c["amr"], serde_json::json!(["pwd"]));
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 300);
    assert_eq!(c["nbf"], c["iat"]);
    let sid = c["sid"].as_str().unwrap();
    let cookie = alice.cookie_header().unwrap();
    assert!(
        sid.len() >= 16 && !cookie.contains(sid),
        "sid {sid} vs {cookie}"
    );
    // Another audience, a changed claim, a stripped signature: all rejected.
    let e = pyjwt(&jwks_url(&s), "https://other.example", &iss(&s), &token)
        .await
        .unwrap_err();
    assert!(e.contains("InvalidAudience"), "{e}");
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut claims = claims_of(&token);
    claims["roles"] = serde_json::json!(["admin"]);
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let e = pyjwt(&jwks_url(&s), &aud(&s), &iss(&s), &parts.join("."))
        .await
        .unwrap_err();
    assert!(e.contains("InvalidSignature"), "{e}");
    let e = pyjwt(
        &jwks_url(&s),
        &aud(&s),
        &iss(&s),
        &format!("{}.{}.", parts[0], parts[1]),
    )
    .await
    .unwrap_err();
    assert!(e.contains("REJECTED"), "{e}");
}

async fn cached_per_session_and_refreshed(b: Backend) {
    let s = TestServer::start(b, "").await.expect("backend");
    let mut alice = s.signed_in("alice").await;
    let mut bob = s.signed_in("bob").await;
    let first = assertion_seen_by_app(&mut alice).await;
    let signed = s.app().assertions.signed();
    // Many requests, one signature per session.
    for _ in 0..30 {
        assert_eq!(assertion_seen_by_app(&mut alice).await, first);
    }
    let bobs = assertion_seen_by_app(&mut bob).await;
    assert_ne!(bobs, first);
    assert_eq!(s.app().assertions.signed(), signed + 1);
    // With more than a minute left the token is kept; under a minute, re-signed.
    s.clock.advance(chrono::Duration::seconds(230));
    assert_eq!(assertion_seen_by_app(&mut alice).await, first);
    s.clock.advance(chrono::Duration::seconds(20));
    let second = assertion_seen_by_app(&mut alice).await;
    assert_ne!(second, first);
    let (a, b2) = (claims_of(&first), claims_of(&second));
    assert_eq!(
        b2["iat"].as_i64().unwrap() - a["iat"].as_i64().unwrap(),
        250
    );
    assert_eq!(b2["sid"], a["sid"]);
    assert_eq!(s.app().assertions.signed(), signed + 2);
    // A changed identity (the session is reloaded) gets a new token at once.
    let alice_id =
        gatehouse::store::UserId(claims_of(&first)["sub"].as_str().unwrap().parse().unwrap());
    s.app()
        .accounts
        .grant_role(alice_id, "editor", None, None)
        .await
        .unwrap();
    // As the admin API does after a change.
    s.app().sessions.evict_user(alice_id);
    let third = assertion_seen_by_app(&mut alice).await;
    assert_eq!(claims_of(&third)["roles"], serde_json::json!(["editor"]));
}

async fn expired_assertion_is_rejected(b: Backend) {
    if !pyjwt_available() {
        return;
    }
    let s = TestServer::start(b, "").await.expect("backend");
    // Signed ten minutes ago (by Gatehouse's clock): expired five minutes ago for PyJWT.
    // The test clock starts at the real time; PyJWT uses the real time.
    s.clock.advance(chrono::Duration::minutes(-10));
    let mut alice = s.signed_in("alice").await;
    let token = assertion_seen_by_app(&mut alice).await;
    let e = pyjwt(&jwks_url(&s), &aud(&s), &iss(&s), &token)
        .await
        .unwrap_err();
    assert!(e.contains("ExpiredSignature"), "{e}");
}

async fn rotation(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let key = |name: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, gatehouse::gateway::assertion::generate_pem().unwrap()).unwrap();
        p.display().to_string()
    };
    let (a, b_key) = (key("a.pem"), key("b.pem"));
    let with_keys = |keys: &[&str]| {
        let list: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
        format!(
            "assertion_key_file = [{}]\nassertion_audience = \"https://app.example\"\n",
            list.join(", ")
        )
    };
    // Signed with A.
    let s1 = TestServer::start_with_security(
        b,
        &format!("assertion_key_file = {a:?}\nassertion_audience = \"https://app.example\"\n"),
        "",
    )
    .await
    .expect("backend");
    let mut u = s1.signed_in("alice").await;
    let token_a = assertion_seen_by_app(&mut u).await;
    // B signs, A still published: old tokens keep verifying during the changeover.
    let s2 = TestServer::start_with_security(b, &with_keys(&[&b_key, &a]), "")
        .await
        .expect("backend");
    let jwks2 = s2
        .browser()
        .get("/_auth/.well-known/jwks.json")
        .await
        .json();
    assert_eq!(jwks2["keys"].as_array().unwrap().len(), 2);
    let mut u2 = s2.signed_in("alice").await;
    let token_b = assertion_seen_by_app(&mut u2).await;
    let kid = |t: &str| -> serde_json::Value {
        let h = t.split('.').next().unwrap();
        serde_json::from_slice::<serde_json::Value>(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()["kid"].clone()
    };
    assert_eq!(kid(&token_b), jwks2["keys"][0]["kid"]);
    assert_eq!(kid(&token_a), jwks2["keys"][1]["kid"]);
    // A removed.
    let s3 = TestServer::start_with_security(b, &with_keys(&[&b_key]), "")
        .await
        .expect("backend");
    if !pyjwt_available() {
        return;
    }
    let aud = "https://app.example";
    pyjwt(&jwks_url(&s1), aud, &iss(&s1), &token_a)
        .await
        .unwrap();
    pyjwt(&jwks_url(&s2), aud, &iss(&s2), &token_a)
        .await
        .unwrap();
    pyjwt(&jwks_url(&s2), aud, &iss(&s2), &token_b)
        .await
        .unwrap();
    pyjwt(&jwks_url(&s3), aud, &iss(&s3), &token_b)
        .await
        .unwrap();
    let e = pyjwt(&jwks_url(&s3), aud, &iss(&s3), &token_a)
        .await
        .unwrap_err();
    assert!(e.contains("REJECTED"), "{e}");
}
