//! The account page: profile and password edits, and the list of sessions with revoking.

use super::*;

both_backends! {
    account_edits,
    sessions_list_and_revoke,
}

async fn account_edits(b: Backend) {
    let Some(s) = server(b, "").await else { return };
    let mut br = s.signed_in("lea").await;
    let mut other = s.browser();
    other.login("lea", PASSWORD).await;
    let page = br.page("/_auth/account").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("for=\"first_name\""));
    let r = post(
        &mut br,
        "/_auth/account/profile",
        &[
            ("first_name", "Lea"),
            ("last_name", "Lind"),
            ("phone", "+49 30 1234"),
            ("company_name", "Acme"),
            ("timezone", "Europe/Berlin"),
            ("language", "de"),
            ("sms_notifications", "1"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    // Identity headers refresh at once.
    assert_eq!(
        br.api("/app/", &[]).await.echoed("x-auth-name"),
        ["Lea Lind"]
    );
    let u = s
        .app()
        .accounts
        .get_by_username("lea")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.timezone, "Europe/Berlin");
    assert!(u.sms_notifications && !u.email_notifications);
    let r = post(
        &mut br,
        "/_auth/account/profile",
        &[
            ("timezone", "not a zone!"),
            ("language", "de"),
            ("first_name", "Lea"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text()
            .contains("aria-describedby=\"timezone-help timezone-error\""),
        "{}",
        r.text()
    );

    // Password change: the current one is required; other sessions end, this one stays.
    let r = post(
        &mut br,
        "/_auth/account/password",
        &[
            ("current_password", "wrong wrong wrong"),
            ("new_password", NEW_PASSWORD),
            ("new_password_confirm", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = post(
        &mut br,
        "/_auth/account/password",
        &[
            ("current_password", PASSWORD),
            ("new_password", NEW_PASSWORD),
            ("new_password_confirm", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(br.api("/app/", &[]).await.status, StatusCode::OK);
    assert_eq!(
        other.api("/app/", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let page = br.page("/_auth/account?done=password").await.text();
    assert!(page.contains("Your password is changed"), "{page}");
    // The activity list shows the profile update (rows are written in the background).
    let mut listed = false;
    for _ in 0..40 {
        if br
            .page("/_auth/account")
            .await
            .text()
            .contains("Updated: first_name")
        {
            listed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(listed, "the profile update is in the activity list");
}

async fn sessions_list_and_revoke(b: Backend) {
    let Some(s) = server(b, "").await else { return };
    let mut a = s.signed_in("max").await;
    let mut c = s.browser();
    c.login("max", PASSWORD).await;
    let mut d = s.browser();
    d.login("max", PASSWORD).await;
    let page = a.page("/_auth/account").await.text();
    assert_eq!(page.matches("name=\"session_id\"").count(), 2, "{page}");
    assert_eq!(page.matches("(this session)").count(), 1);
    // Someone else's session cannot be revoked.
    let mut intruder = s.signed_in("nia").await;
    let first = between(&page, "name=\"session_id\" value=\"", "\"")
        .unwrap()
        .to_string();
    let r = post(
        &mut intruder,
        "/_auth/account/sessions/revoke",
        &[("session_id", &first)],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = post(
        &mut a,
        "/_auth/account/sessions/revoke",
        &[("session_id", &first)],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let alive = [
        c.api("/app/", &[]).await.status,
        d.api("/app/", &[]).await.status,
    ];
    assert_eq!(
        alive.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{alive:?}"
    );
    let r = post(&mut a, "/_auth/account/sessions/revoke-others", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(c.api("/app/", &[]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(d.api("/app/", &[]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.api("/app/", &[]).await.status, StatusCode::OK);
    let page = a.page("/_auth/account").await.text();
    assert_eq!(page.matches("name=\"session_id\"").count(), 0);
}
