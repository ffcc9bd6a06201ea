//! The admin console, driven like a browser.

use super::*;
use crate::both_backends;

both_backends! {
    console_pages_and_forms,
}

/// The fields of a destructive action's confirmation form: `confirm=yes` and a reason.
pub(super) fn confirmed(csrf: &str) -> Vec<(&str, &str)> {
    vec![
        ("csrf_token", csrf),
        ("confirm", "yes"),
        ("reason", "support ticket"),
    ]
}

/// The console, driven like a browser: pages render, forms post with CSRF and redirect.
async fn console_pages_and_forms(b: Backend) {
    let s = server(b).await;
    s.user("boss", |a| a.is_admin = true).await;
    let target = s
        .user("jane", |a| a.company_name = Some("Jane Co".into()))
        .await;
    let mut jane = s.browser();
    jane.login("jane", crate::harness::PASSWORD).await;
    let mut br = s.browser();
    // Anonymous: to the sign-in page; non-admin: 403.
    let r = br.page("/_auth/admin/").await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert!(
        r.header("location")
            .unwrap()
            .starts_with("/_auth/login?next=")
    );
    let r = jane.page("/_auth/admin/").await;
    assert_status(&r, StatusCode::FORBIDDEN, "non-admin console");
    // A styled page that leads to the account page, not back into the console (a loop).
    let html = r.text();
    assert!(html.contains("gatehouse.css"), "{html}");
    assert!(
        html.contains("href=\"/_auth/account\"") && !html.contains("Back to the admin console"),
        "{html}"
    );
    br.login("boss", crate::harness::PASSWORD).await;

    let r = br.page("/_auth/admin/users?q=jane").await;
    assert_status(&r, StatusCode::OK, "users page");
    let html = r.text();
    assert!(
        html.contains("jane@example.com") && !html.contains("boss@example.com"),
        "{html}"
    );
    assert!(html.contains("gatehouse.css"));
    assert_status(
        &br.page("/_auth/admin/users?tier=premium&is_active=true")
            .await,
        StatusCode::OK,
        "filters",
    );
    let user_page = format!("/_auth/admin/users/{}", target.id);
    let r = br.page(&user_page).await;
    assert_status(&r, StatusCode::OK, "user page");
    assert!(r.text().contains("jane@example.com"));
    let csrf = crate::harness::server::csrf_in(&r.text()).unwrap();

    let post = |action: &str| format!("{user_page}/{action}");
    let expect_done = |r: &Resp, done: &str| {
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{done}: {}", r.text());
        assert_eq!(
            r.header("location").unwrap(),
            format!("{user_page}?done={done}")
        );
    };
    // Without CSRF: refused.
    let r = br
        .post_form(&post("credits"), &[("delta", "5"), ("reason", "x")])
        .await;
    assert_status(&r, StatusCode::FORBIDDEN, "form without CSRF");
    let r = br
        .post_form(
            &post("credits"),
            &[("csrf_token", &csrf), ("delta", "5"), ("reason", "promo")],
        )
        .await;
    expect_done(&r, "credits");
    let r = br
        .post_form(
            &post("credits"),
            &[
                ("csrf_token", &csrf),
                ("delta", "-100"),
                ("reason", "too much"),
            ],
        )
        .await;
    assert_status(&r, StatusCode::CONFLICT, "overdraw from the console");
    assert!(r.text().contains("below zero"));
    let r = br
        .post_form(
            &post("update"),
            &[
                ("csrf_token", &csrf),
                ("subscription_tier", "enterprise"),
                ("subscription_status", "active"),
                ("timezone", "UTC"),
                ("company_name", "Jane Co"),
                ("is_active", "1"),
                ("email_notifications", "1"),
                ("is_verified", "1"),
            ],
        )
        .await;
    expect_done(&r, "updated");
    let row = s.app().accounts.get(target.id).await.unwrap().unwrap();
    assert_eq!(
        (
            row.subscription_tier.as_str(),
            row.credits_balance,
            row.is_verified
        ),
        ("enterprise", 8, true)
    );
    let r = br
        .post_form(
            &post("roles"),
            &[
                ("csrf_token", &csrf),
                ("role", "editor"),
                ("expires_at", "2099-01-01T00:00"),
            ],
        )
        .await;
    expect_done(&r, "role_granted");
    let page = br
        .page(&format!("{user_page}?done=role_granted"))
        .await
        .text();
    assert!(
        page.contains("Role granted.") && page.contains("editor"),
        "{page}"
    );
    assert_status(
        &jane.api("/editors/x", &[]).await,
        StatusCode::OK,
        "role from the console",
    );
    expect_done(
        &br.post_form(&post("roles/editor/revoke"), &[("csrf_token", &csrf)])
            .await,
        "role_revoked",
    );
    let sid = s
        .app()
        .store
        .sessions_of(target.id, gatehouse::store::Ts(s.clock.now()))
        .await
        .unwrap()[0]
        .id;
    expect_done(
        &br.post_form(
            &post(&format!("sessions/{sid}/revoke")),
            &[("csrf_token", &csrf)],
        )
        .await,
        "session_ended",
    );
    assert_status(
        &jane.api("/app/", &[]).await,
        StatusCode::UNAUTHORIZED,
        "session ended from the console",
    );
    expect_done(
        &br.post_form(&post("sessions/revoke-all"), &confirmed(&csrf))
            .await,
        "sessions_ended",
    );
    let until = gatehouse::store::Ts(s.clock.now() + Duration::hours(1));
    s.app().accounts.lock(target.id, until, None).await.unwrap();
    assert!(br.page(&user_page).await.text().contains("Unlock"));
    expect_done(
        &br.post_form(&post("unlock"), &[("csrf_token", &csrf)])
            .await,
        "unlocked",
    );
    set_twofa(&s, target.id).await;
    expect_done(
        &br.post_form(&post("reset-2fa"), &confirmed(&csrf)).await,
        "twofa_reset",
    );
    expect_done(
        &br.post_form(&post("delete"), &confirmed(&csrf)).await,
        "deleted",
    );
    assert!(
        s.app()
            .accounts
            .get(target.id)
            .await
            .unwrap()
            .unwrap()
            .is_deleted
    );
    assert!(
        br.page("/_auth/admin/users?deleted=true")
            .await
            .text()
            .contains("jane")
    );
    expect_done(
        &br.post_form(&post("restore"), &[("csrf_token", &csrf)])
            .await,
        "restored",
    );
    let row = s.app().accounts.get(target.id).await.unwrap().unwrap();
    assert!(
        !row.is_deleted
            && !row.twofa_enabled
            && !row.is_locked(gatehouse::store::Ts(s.clock.now()))
    );
    // Bad input re-renders the page with the error and its status.
    let r = br
        .post_form(
            &post("roles"),
            &[("csrf_token", &csrf), ("role", "no spaces")],
        )
        .await;
    assert_status(&r, StatusCode::UNPROCESSABLE_ENTITY, "bad role");
    assert!(r.text().contains("aria-invalid=\"true\""));
    // The user's activity shows on their page and in the global view.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert!(
        br.page(&user_page)
            .await
            .text()
            .contains("credits_adjusted")
    );
    let r = br
        .page(&format!(
            "/_auth/admin/activity?user_id={}&type=role_granted",
            target.id
        ))
        .await;
    assert_status(&r, StatusCode::OK, "activity page");
    assert!(
        r.text()
            .contains("<td data-label=\"Type\">role_granted</td>"),
        "{}",
        r.text()
    );
    assert_status(
        &br.page("/_auth/admin/users/999999").await,
        StatusCode::NOT_FOUND,
        "unknown user page",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_need_two_factor_when_configured() {
    let config = format!(
        "require_2fa_for_admins = true\n{}",
        crate::harness::server::ROUTES
    );
    let s = TestServer::start_full(Backend::Sqlite, &config)
        .await
        .unwrap();
    let boss = s.user("boss", |a| a.is_admin = true).await;
    let mut br = s.browser();
    br.login("boss", crate::harness::PASSWORD).await;
    let r = br.page("/_auth/admin/").await;
    assert_status(&r, StatusCode::FORBIDDEN, "console without 2FA");
    assert!(r.text().contains("two-factor"));
    assert!(!r.text().contains("Back to the admin console"));
    assert_status(
        &br.page(&format!("/_auth/admin/users/{}", boss.id)).await,
        StatusCode::FORBIDDEN,
        "console user page without 2FA",
    );
    for path in ["/_auth/api/users", "/_auth/api/activity"] {
        let r = call(&mut br, Method::GET, path, None, None).await;
        assert_status(&r, StatusCode::FORBIDDEN, "API with a session without 2FA");
        assert!(r.json()["message"].as_str().unwrap().contains("two-factor"));
    }
    // Admin rights on someone else's account need the two-factor sign-in too.
    let other = s.plain_user("other").await;
    let r = call(
        &mut br,
        Method::GET,
        &format!("/_auth/api/users/{}", other.id),
        None,
        None,
    )
    .await;
    assert_status(&r, StatusCode::FORBIDDEN, "another account without 2FA");
    // Still their own account.
    let r = call(
        &mut br,
        Method::GET,
        &format!("/_auth/api/users/{}", boss.id),
        None,
        None,
    )
    .await;
    assert_status(&r, StatusCode::OK, "own account");
    // A session that passed 2FA gets in.
    let (cookie, _) = s
        .app()
        .sessions
        .create(
            &boss,
            &ClientInfo::default(),
            SessionOptions {
                remember_me: false,
                twofa_verified: true,
            },
        )
        .await
        .unwrap();
    let mut verified = s.browser();
    verified
        .cookies
        .insert(s.app().session_cookie_name(), cookie);
    assert_status(
        &verified.page("/_auth/admin/").await,
        StatusCode::OK,
        "console with 2FA",
    );
    let r = call(
        &mut verified,
        Method::GET,
        "/_auth/api/activity",
        None,
        None,
    )
    .await;
    assert_status(&r, StatusCode::OK, "API with 2FA");
}
