//! Two-factor sign-in: enrolment, the code step after the password, replays, recovery codes,
//! the pending step's expiry and attempt limit, admins made to enrol, disabling and new codes.

use super::*;

both_backends! {
    two_factor_sign_in,
    replayed_code_refused,
    recovery_code_single_use,
    pending_step_expires_and_limits_attempts,
    admins_must_enrol,
    disable_and_regenerate,
}

async fn two_factor_sign_in(b: Backend) {
    let Some(s) = server(b, "").await else { return };
    let mut br = s.signed_in("ann").await;
    assert_eq!(br.api("/secure/x", &[]).await.status, StatusCode::FORBIDDEN);
    let (secret, _) = enrol(&s, &mut br).await;
    // The enrolment proved a second factor: the new session may use 2FA routes.
    assert_eq!(br.api("/secure/x", &[]).await.status, StatusCode::OK);
    br.logout().await;

    let r = password_step(&mut br, "ann", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/_auth/login/2fa"));
    assert!(
        !br.cookies.contains_key("gatehouse_session"),
        "no session before the code"
    );
    assert!(br.cookies.contains_key("gatehouse_2fa"));
    assert_eq!(br.api("/app/", &[]).await.status, StatusCode::UNAUTHORIZED);
    let page = br.page("/_auth/login/2fa").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("name=\"code\""));

    next_step(&s);
    let r = code_step(&s, &mut br, &secret).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(r.header("location"), Some("/app/"));
    assert!(br.cookies.contains_key("gatehouse_session"));
    assert!(!br.cookies.contains_key("gatehouse_2fa"));
    let app = br.api("/app/", &[]).await;
    assert_eq!(app.status, StatusCode::OK);
    assert_eq!(app.echoed("x-auth-user"), ["ann"]);
    assert_eq!(br.api("/secure/x", &[]).await.status, StatusCode::OK);
}

async fn replayed_code_refused(b: Backend) {
    let Some(s) = server(b, "").await else { return };
    let mut br = s.signed_in("bob").await;
    let (secret, _) = enrol(&s, &mut br).await;
    br.logout().await;
    // The enrolment used this step already.
    let code = code_at(&secret, now(&s));
    password_step(&mut br, "bob", PASSWORD).await;
    let r = post(&mut br, "/_auth/login/2fa", &[("code", &code)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("already used"), "{}", r.text());
    assert!(!br.cookies.contains_key("gatehouse_session"));
    // A new step's code works once, then not again.
    next_step(&s);
    let code = code_at(&secret, now(&s));
    let r = post(&mut br, "/_auth/login/2fa", &[("code", &code)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let mut other = s.browser();
    password_step(&mut other, "bob", PASSWORD).await;
    let r = post(&mut other, "/_auth/login/2fa", &[("code", &code)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!other.cookies.contains_key("gatehouse_session"));
    // A code of the previous step (inside the ±1 window) is refused after a newer one.
    let old = code_at(&secret, now(&s) - 30);
    let r = post(&mut other, "/_auth/login/2fa", &[("code", &old)]).await;
    assert!(
        !other.cookies.contains_key("gatehouse_session"),
        "{}",
        r.text()
    );
}

async fn recovery_code_single_use(b: Backend) {
    let Some(s) = server(b, "").await else { return };
    let mut br = s.signed_in("cat").await;
    let (_, codes) = enrol(&s, &mut br).await;
    br.logout().await;
    password_step(&mut br, "cat", PASSWORD).await;
    let r = post(
        &mut br,
        "/_auth/login/2fa",
        &[("code", &codes[3].to_uppercase())],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    br.logout().await;
    password_step(&mut br, "cat", PASSWORD).await;
    let r = post(&mut br, "/_auth/login/2fa", &[("code", &codes[3])]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!br.cookies.contains_key("gatehouse_session"));
    let r = post(&mut br, "/_auth/login/2fa", &[("code", &codes[4])]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = br.page("/_auth/account/2fa").await;
    assert!(
        page.text().contains("8 unused recovery codes"),
        "{}",
        page.text()
    );
}

async fn pending_step_expires_and_limits_attempts(b: Backend) {
    let Some(s) = server(b, "").await else { return };
    let mut br = s.signed_in("dan").await;
    let (secret, _) = enrol(&s, &mut br).await;
    br.logout().await;

    password_step(&mut br, "dan", PASSWORD).await;
    s.clock.advance(Duration::minutes(6));
    let r = code_step(&s, &mut br, &secret).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("expired"), "{}", r.text());
    assert!(!br.cookies.contains_key("gatehouse_session"));

    password_step(&mut br, "dan", PASSWORD).await;
    for i in 1..5 {
        let r = post(&mut br, "/_auth/login/2fa", &[("code", "000000")]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            r.text().contains(&format!("{} attempt", 5 - i)),
            "{}",
            r.text()
        );
    }
    let r = post(&mut br, "/_auth/login/2fa", &[("code", "000000")]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Spent: even the right code does not help now.
    next_step(&s);
    let r = code_step(&s, &mut br, &secret).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!br.cookies.contains_key("gatehouse_session"));
}

async fn admins_must_enrol(b: Backend) {
    let Some(s) =
        TestServer::start_with_security(b, "require_2fa_for_admins = true\n", EXTRA).await
    else {
        return;
    };
    s.user("root", |a| a.is_admin = true).await;
    let mut br = s.browser();
    let r = password_step(&mut br, "root", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        r.header("location")
            .unwrap()
            .starts_with("/_auth/account/2fa"),
        "{:?}",
        r.header("location")
    );
    assert_eq!(br.api("/admin/x", &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(br.api("/app/", &[]).await.echoed("x-auth-admin"), ["false"]);
    let (secret, _) = enrol(&s, &mut br).await;
    assert_eq!(br.api("/admin/x", &[]).await.status, StatusCode::OK);
    br.logout().await;
    password_step(&mut br, "root", PASSWORD).await;
    next_step(&s);
    let r = code_step(&s, &mut br, &secret).await;
    assert_eq!(r.header("location"), Some("/app/"));
    assert_eq!(br.api("/admin/x", &[]).await.status, StatusCode::OK);
}

async fn disable_and_regenerate(b: Backend) {
    let Some(s) = server(b, "").await else { return };
    let mut br = s.signed_in("oli").await;
    let (secret, old_codes) = enrol(&s, &mut br).await;
    next_step(&s);
    let r = post(
        &mut br,
        "/_auth/account/2fa/recovery-codes",
        &[
            ("password", "not the password"),
            ("code", &code_at(&secret, now(&s))),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"regenerate-password-error\""));
    let r = post(
        &mut br,
        "/_auth/account/2fa/recovery-codes",
        &[("password", PASSWORD), ("code", &code_at(&secret, now(&s)))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let new_codes = recovery_codes_in(&r.text());
    assert_eq!(new_codes.len(), 10);
    // Old codes no longer work; new ones do (here: to turn 2FA off).
    let r = post(
        &mut br,
        "/_auth/account/2fa/disable",
        &[("password", PASSWORD), ("code", &old_codes[0])],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = post(
        &mut br,
        "/_auth/account/2fa/disable",
        &[("password", PASSWORD), ("code", &new_codes[0])],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    br.logout().await;
    let r = password_step(&mut br, "oli", PASSWORD).await;
    assert_eq!(r.header("location"), Some("/app/"));
}
