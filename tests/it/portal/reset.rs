//! Password reset by mailed link: the whole flow, expiry, unknown addresses, and the same mail
//! over SMTP instead of the outbox.

use super::*;

both_backends! {
    password_reset_flow,
    reset_link_expires_and_unknown_address,
}

async fn password_reset_flow(b: Backend) {
    let Some(s) = server(b, "").await else { return };
    let mut elsewhere = s.signed_in("gus").await;
    let (secret, _) = enrol(&s, &mut elsewhere).await;
    let mut br = s.browser();
    let r = post(&mut br, "/_auth/reset", &[("email", "gus@example.com")]).await;
    assert_eq!(r.status, StatusCode::OK);
    let answer = r.text();
    let mail = wait_for_mail(&outbox(&s), "gus@example.com", 1).await;
    assert!(mail.text.contains("Subject: Reset your"), "{}", mail.text);
    let link = mail.link_path();
    assert!(link.starts_with("/_auth/reset/confirm?token="), "{link}");
    let token = mail.token();
    assert!(token.len() >= 22, "at least 128 bits");

    let form = br.page(&link).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.text().contains(&format!("value=\"{token}\"")));
    // The password rules apply.
    let r = post(
        &mut br,
        "/_auth/reset/confirm",
        &[
            ("token", &token),
            ("password", "short"),
            ("password_confirm", "short"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("at least"), "{}", r.text());
    let r = post(
        &mut br,
        "/_auth/reset/confirm",
        &[
            ("token", &token),
            ("password", NEW_PASSWORD),
            ("password_confirm", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("Password changed"));
    // Every session of the user ended; a notice went out.
    assert_eq!(
        elsewhere.api("/app/", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let notice = wait_for_mail(&outbox(&s), "gus@example.com", 2).await;
    assert!(notice.text.contains("was changed"), "{}", notice.text);
    assert!(!notice.text.contains(&token));
    // The link works once.
    let again = br.page(&link).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    let r = post(
        &mut br,
        "/_auth/reset/confirm",
        &[
            ("token", &token),
            ("password", "yet another long passphrase"),
            ("password_confirm", "yet another long passphrase"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // The old password is gone; the new one still needs the second factor.
    let r = password_step(&mut br, "gus", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = password_step(&mut br, "gus", NEW_PASSWORD).await;
    assert_eq!(r.header("location"), Some("/_auth/login/2fa"));
    next_step(&s);
    let r = code_step(&s, &mut br, &secret).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);

    // An unknown address gets the very same answer, and no mail.
    let mut stranger = s.browser();
    let r = post(
        &mut stranger,
        "/_auth/reset",
        &[("email", "nobody@example.com")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), answer);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(mails_to(&outbox(&s), "nobody@example.com").is_empty());

    // No token, code, password or session id reaches the activity log.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let rows = s.activity().await;
    let dump = serde_json::to_string(&rows).unwrap();
    for secret_text in [token.as_str(), NEW_PASSWORD, PASSWORD] {
        assert!(!dump.contains(secret_text), "activity leaks {secret_text}");
    }
    let kinds: Vec<&str> = rows.iter().map(|r| r.activity_type.as_str()).collect();
    for k in [
        "password_reset_requested",
        "password_reset",
        "twofa_enabled",
        "login",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
}

async fn reset_link_expires_and_unknown_address(b: Backend) {
    let Some(s) = server(b, "").await else { return };
    s.plain_user("hal").await;
    let mut br = s.browser();
    post(&mut br, "/_auth/reset", &[("email", "hal@example.com")]).await;
    let mail = wait_for_mail(&outbox(&s), "hal@example.com", 1).await;
    s.clock.advance(Duration::minutes(61));
    assert_eq!(
        br.page(&mail.link_path()).await.status,
        StatusCode::BAD_REQUEST
    );
    // Per account: 3 mails per window; the 4th request is answered alike but sends nothing.
    for _ in 0..3 {
        let r = post(&mut br, "/_auth/reset", &[("email", "hal@example.com")]).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    // (The first, expired link was in an earlier window.)
    wait_for_mail(&outbox(&s), "hal@example.com", 4).await;
    let r = post(&mut br, "/_auth/reset", &[("email", "hal@example.com")]).await;
    assert_eq!(r.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(mails_to(&outbox(&s), "hal@example.com").len(), 4);
    // Per address: 10 requests per window, then 429.
    for _ in 0..6 {
        post(&mut br, "/_auth/reset", &[("email", "x@example.com")]).await;
    }
    let r = post(&mut br, "/_auth/reset", &[("email", "x@example.com")]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_over_smtp() {
    let Some(sink) = SmtpSink::start().await else {
        return;
    };
    let extra = format!(
        "[mail]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsmtp_tls = \"none\"\nfrom = \"Gatehouse <noreply@example.com>\"\n",
        sink.port
    );
    let s = server(Backend::Sqlite, &extra).await.unwrap();
    s.plain_user("pam").await;
    let mut br = s.browser();
    let r = post(&mut br, "/_auth/reset", &[("email", "pam@example.com")]).await;
    assert_eq!(r.status, StatusCode::OK);
    let mail = wait_for_mail(sink.dir.path(), "pam@example.com", 1).await;
    assert!(mail.text.contains("noreply@example.com"));
    assert!(br.page(&mail.link_path()).await.status == StatusCode::OK);
    assert!(
        mails_to(&outbox(&s), "pam@example.com").is_empty(),
        "SMTP, not the outbox"
    );
    sink.stop().await;
}
