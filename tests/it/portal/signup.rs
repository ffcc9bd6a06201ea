//! Open and closed sign-up, and proving an address: the verification link and changing the
//! address.

use super::*;

both_backends! {
    sign_up_open_and_closed,
    verification_and_email_change,
}

async fn sign_up_open_and_closed(b: Backend) {
    let Some(closed) = server(b, "").await else {
        return;
    };
    let mut br = closed.browser();
    assert_eq!(br.page("/_auth/signup").await.status, StatusCode::NOT_FOUND);
    let login = br.page("/_auth/login").await.text();
    assert!(!login.contains("Create an account"));
    let Some(open) = server(b, "[portal]\nregistration = \"open\"\n").await else {
        return;
    };
    let mut br = open.browser();
    assert!(
        br.page("/_auth/login")
            .await
            .text()
            .contains("Create an account")
    );
    let r = sign_up(&mut br, "kim", "kim@example.com", "other").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"password_confirm-error\""));
    let r = sign_up(&mut br, "kim", "kim@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK);
    let u = open
        .app()
        .accounts
        .get_by_username("kim")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.subscription_tier, "free");
    assert_eq!(u.credits_balance, 3);
    assert!(!u.is_verified && !u.is_admin);
    wait_for_mail(&outbox(&open), "kim@example.com", 1).await;
    let r = sign_up(&mut br, "KIM", "kim2@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"username-error\""), "{}", r.text());
}

async fn verification_and_email_change(b: Backend) {
    let Some(s) = server(b, "[portal]\nregistration = \"open\"\n").await else {
        return;
    };
    let mut br = s.browser();
    let r = sign_up(&mut br, "ivy", "ivy@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mail = wait_for_mail(&outbox(&s), "ivy@example.com", 1).await;
    br.login("ivy", PASSWORD).await;
    assert_eq!(
        br.api("/verified/x", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    let r = br.page(&mail.link_path()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(br.api("/verified/x", &[]).await.status, StatusCode::OK);
    assert_eq!(
        br.page(&mail.link_path()).await.status,
        StatusCode::BAD_REQUEST
    );

    // Change of address: nothing changes until the new address confirms.
    let r = change_email(&mut br, "ivy@new.example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let mail = wait_for_mail(&outbox(&s), "ivy@new.example.com", 1).await;
    assert_eq!(
        br.api("/app/", &[]).await.echoed("x-auth-email"),
        ["ivy@example.com"]
    );
    let r = br.page(&mail.link_path()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        br.api("/app/", &[]).await.echoed("x-auth-email"),
        ["ivy@new.example.com"]
    );
    // A wrong password or a taken address is refused next to its field.
    s.plain_user("jon").await;
    let r = change_email(&mut br, "jon@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"email-error\""), "{}", r.text());
    // Verification links expire too.
    let r = change_email(&mut br, "ivy@third.example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let mail = wait_for_mail(&outbox(&s), "ivy@third.example.com", 1).await;
    s.clock.advance(Duration::hours(25));
    assert_eq!(
        br.page(&mail.link_path()).await.status,
        StatusCode::BAD_REQUEST
    );
}

/// Asks to change the signed-in account's address, confirming with `password`.
async fn change_email(b: &mut Browser, email: &str, password: &str) -> crate::harness::Resp {
    post(
        b,
        "/_auth/account/email",
        &[("email", email), ("email_password", password)],
    )
    .await
}

/// Fills in the sign-up form with the usual password, confirmed as `confirm`.
async fn sign_up(
    b: &mut Browser,
    username: &str,
    email: &str,
    confirm: &str,
) -> crate::harness::Resp {
    post(
        b,
        "/_auth/signup",
        &[
            ("username", username),
            ("email", email),
            ("password", PASSWORD),
            ("password_confirm", confirm),
        ],
    )
    .await
}
