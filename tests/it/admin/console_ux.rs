//! The console as an ops person uses it: the home page's counts, the users list's filters,
//! sorting, page size, export and create form, the confirmation step of destructive actions,
//! lock/unlock, and the activity page's filters.

use super::console::confirmed;
use super::*;
use crate::both_backends;
use crate::harness::PASSWORD;

both_backends! {
    home_counts_link_into_lists,
    users_list_filters_sorts_exports_and_creates,
    destructive_actions_need_confirmation_and_a_reason,
}

/// Polls `path` until its page contains `needle` (the activity writer flushes in batches).
pub(super) async fn page_with(br: &mut Browser, path: &str, needle: &str) -> String {
    let mut html = String::new();
    for _ in 0..100 {
        html = br.page(path).await.text();
        if html.contains(needle) {
            return html;
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    panic!("{path} never showed {needle:?}: {html}");
}

/// A count on the home page: `<a … id="{id}"><span class="console-num">{n}</span>`.
fn count(html: &str, id: &str) -> i64 {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id}: {html}"));
    let rest = &html[at..];
    let start = rest.find("console-num\">").unwrap() + "console-num\">".len();
    let end = rest[start..].find('<').unwrap();
    rest[start..start + end].parse().unwrap()
}

pub(super) async fn admin_browser(s: &TestServer) -> Browser {
    s.user("boss", |a| a.is_admin = true).await;
    let mut br = s.browser();
    br.login("boss", PASSWORD).await;
    br
}

async fn home_counts_link_into_lists(b: Backend) {
    let s = server(b).await;
    let mut br = admin_browser(&s).await;
    s.tier_user("p1", gatehouse::store::Tier::Premium).await;
    s.tier_user("p2", gatehouse::store::Tier::Premium).await;
    s.tier_user("b1", gatehouse::store::Tier::Beta).await;
    let locked = s.plain_user("lockme").await;
    let gone = s.tier_user("gone", gatehouse::store::Tier::Premium).await;
    let until = gatehouse::store::Ts(s.clock.now() + Duration::hours(1));
    s.app().accounts.lock(locked.id, until, None).await.unwrap();
    s.app().accounts.soft_delete(gone.id, None).await.unwrap();
    // One more sign-in and one failure.
    s.browser().login("p1", PASSWORD).await;
    let mut bad = s.browser();
    let csrf = bad.csrf("/_auth/login").await;
    bad.post_form(
        "/_auth/login",
        &[
            ("csrf_token", &csrf),
            ("username", "b1"),
            ("password", "wrong password!"),
        ],
    )
    .await;

    let html = page_with(&mut br, "/_auth/admin/", "id=\"count-tier-premium\"").await;
    assert!(html.contains("gatehouse.css"), "{html}");
    assert_eq!(count(&html, "count-tier-premium"), 2, "{html}");
    assert_eq!(count(&html, "count-tier-beta"), 1);
    // boss and lockme.
    assert_eq!(count(&html, "count-tier-free"), 2);
    assert_eq!(count(&html, "count-locked"), 1);
    assert_eq!(count(&html, "count-deleted"), 1);
    assert!(count(&html, "count-sessions") >= 2);
    assert!(
        html.contains("href=\"/_auth/admin/users?tier=premium\""),
        "{html}"
    );
    assert!(html.contains("href=\"/_auth/admin/users?status=locked\""));
    for _ in 0..100 {
        let html = br.page("/_auth/admin/").await.text();
        if count(&html, "count-sign-ins") == 2 && count(&html, "count-sign-in-failures") == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    let html = br.page("/_auth/admin/").await.text();
    assert_eq!(count(&html, "count-sign-ins"), 2, "{html}");
    assert_eq!(count(&html, "count-sign-in-failures"), 1, "{html}");
    // Old links to the list with filters still find it.
    let r = br.page("/_auth/admin/?q=lock&tier=free").await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        r.header("location").unwrap(),
        "/_auth/admin/users?q=lock&tier=free"
    );
    // The links lead to the filtered lists.
    let locked_list = br.page("/_auth/admin/users?status=locked").await.text();
    assert!(
        locked_list.contains("lockme@example.com") && !locked_list.contains("p1@example.com"),
        "{locked_list}"
    );
}

/// The usernames in a users page, in table order.
fn usernames(html: &str) -> Vec<String> {
    html.split("<td data-label=\"Username\"><a href=\"/_auth/admin/users/")
        .skip(1)
        .map(|part| {
            let start = part.find('>').unwrap() + 1;
            let end = part.find("</a>").unwrap();
            part[start..end].to_string()
        })
        .collect()
}

async fn users_list_filters_sorts_exports_and_creates(b: Backend) {
    let s = server(b).await;
    let mut br = admin_browser(&s).await;
    let carol = s
        .user("carol", |a| {
            a.tier = gatehouse::store::Tier::Premium;
            a.company_name = Some("=HYPERLINK(\"http://x\")".into());
        })
        .await;
    s.user("alice", |a| a.company_name = Some("@cmd".into()))
        .await;
    s.tier_user("bob", gatehouse::store::Tier::Premium).await;
    s.app()
        .accounts
        .grant_role(carol.id, "editor", None, None)
        .await
        .unwrap();

    let html = br.page("/_auth/admin/users").await.text();
    for id in [
        "users-filter",
        "id=\"q\"",
        "id=\"status\"",
        "id=\"per_page\"",
        "export-csv",
        "create-user",
        "sort-username",
    ] {
        assert!(html.contains(id), "{id}: {html}");
    }
    // The role filter offers the roles in use.
    assert!(html.contains("<option value=\"editor\""), "{html}");
    assert_eq!(usernames(&html), ["boss", "carol", "alice", "bob"]);

    let html = br.page("/_auth/admin/users?sort=username").await.text();
    assert_eq!(usernames(&html), ["alice", "bob", "boss", "carol"]);
    let html = br
        .page("/_auth/admin/users?sort=username&dir=desc")
        .await
        .text();
    assert_eq!(usernames(&html), ["carol", "boss", "bob", "alice"]);
    assert!(html.contains("aria-sort=\"descending\""));
    let html = br
        .page("/_auth/admin/users?tier=premium&sort=email&per_page=50")
        .await
        .text();
    assert_eq!(usernames(&html), ["bob", "carol"]);
    let html = br.page("/_auth/admin/users?role=editor").await.text();
    assert_eq!(usernames(&html), ["carol"]);
    for bad in [
        "sort=password_hash",
        "dir=sideways",
        "per_page=7",
        "status=asleep",
    ] {
        let r = br.page(&format!("/_auth/admin/users?{bad}")).await;
        assert_status(&r, StatusCode::UNPROCESSABLE_ENTITY, bad);
    }

    // The export: the same selection, every formula defused.
    let r = br.page("/_auth/admin/users.csv?sort=username").await;
    assert_status(&r, StatusCode::OK, "export");
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    assert!(
        r.header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );
    let csv = r.text();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[0].starts_with("id,username,email"));
    assert!(
        lines[1].contains(",alice,alice@example.com,") && lines[1].contains(",'@cmd,"),
        "{csv}"
    );
    assert!(
        lines[4].contains("\"'=HYPERLINK(\"\"http://x\"\")\""),
        "{csv}"
    );
    assert!(!csv.contains(",=") && !csv.contains(",@"), "{csv}");
    let csv = br.page("/_auth/admin/users.csv?tier=premium").await.text();
    assert_eq!(csv.lines().count(), 3, "{csv}");

    // Create user: the account exists without a password, and the user is mailed a link.
    let csrf = br.csrf("/_auth/admin/users").await;
    let r = br
        .post_form(
            "/_auth/admin/users",
            &[
                ("csrf_token", &csrf),
                ("username", "newbie"),
                ("email", "newbie@example.com"),
                ("tier", "beta"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let location = r.header("location").unwrap().to_string();
    assert!(location.ends_with("?done=created"), "{location}");
    let made = s.app().accounts.find("newbie").await.unwrap();
    assert_eq!(made.subscription_tier, "beta");
    assert!(br.page(&location).await.text().contains("mailed"));
    // A clash shows the list again with the form open and the error.
    let r = br
        .post_form(
            "/_auth/admin/users",
            &[
                ("csrf_token", &csrf),
                ("username", "newbie"),
                ("email", "other@example.com"),
                ("tier", "free"),
            ],
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.text());
    assert!(r.text().contains("id=\"create-error\""), "{}", r.text());
    // Without CSRF: refused.
    let r = br
        .post_form(
            "/_auth/admin/users",
            &[("username", "sneaky"), ("email", "sneaky@example.com")],
        )
        .await;
    assert_status(&r, StatusCode::FORBIDDEN, "create without CSRF");
}

async fn destructive_actions_need_confirmation_and_a_reason(b: Backend) {
    let s = server(b).await;
    let mut br = admin_browser(&s).await;
    let (_, token) = admin(&s, "auditor").await;
    let jane = s.plain_user("jane").await;
    let user_page = format!("/_auth/admin/users/{}", jane.id);
    let html = br.page(&user_page).await.text();
    for id in ["delete-link", "lock-form", "lock-submit", "console-cols"] {
        assert!(html.contains(id), "{id}: {html}");
    }
    let csrf = crate::harness::server::csrf_in(&html).unwrap();
    let deleted = || async {
        s.app()
            .accounts
            .get(jane.id)
            .await
            .unwrap()
            .unwrap()
            .is_deleted
    };

    // Straight to the action: refused, nothing done.
    let r = br
        .post_form(&format!("{user_page}/delete"), &[("csrf_token", &csrf)])
        .await;
    assert_status(&r, StatusCode::BAD_REQUEST, "delete without confirmation");
    assert!(r.text().contains("id=\"confirm-reason\""));
    assert!(!deleted().await);
    // The confirmation page asks for a reason; without one nothing runs.
    let r = br.page(&format!("{user_page}/delete")).await;
    assert_status(&r, StatusCode::OK, "confirmation page");
    assert!(r.text().contains("id=\"confirm-form\""));
    let r = br
        .post_form(
            &format!("{user_page}/delete"),
            &[("csrf_token", &csrf), ("confirm", "yes"), ("reason", "  ")],
        )
        .await;
    assert_status(&r, StatusCode::UNPROCESSABLE_ENTITY, "no reason");
    assert!(r.text().contains("aria-invalid=\"true\""));
    assert!(!deleted().await);
    // Without CSRF, even confirmed: refused.
    let r = br
        .post_form(
            &format!("{user_page}/delete"),
            &[("confirm", "yes"), ("reason", "x")],
        )
        .await;
    assert_status(&r, StatusCode::FORBIDDEN, "confirmed without CSRF");
    assert!(!deleted().await);
    // Confirmed with a reason: runs, and the reason is in the activity row.
    let r = br
        .post_form(&format!("{user_page}/delete"), &confirmed(&csrf))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert!(deleted().await);
    let rows = activity_of(
        &s,
        &token,
        &format!("users/{}/activity?type=user_deleted", jane.id),
        1,
    )
    .await;
    assert_eq!(rows[0]["metadata"]["reason"], json!("support ticket"));
    br.post_form(&format!("{user_page}/restore"), &[("csrf_token", &csrf)])
        .await;

    // Sign out everywhere, the same way.
    let mut jane_br = s.browser();
    jane_br.login("jane", PASSWORD).await;
    assert!(
        br.page(&user_page)
            .await
            .text()
            .contains("id=\"revoke-all-link\"")
    );
    let r = br
        .post_form(
            &format!("{user_page}/sessions/revoke-all"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_status(
        &r,
        StatusCode::BAD_REQUEST,
        "revoke-all without confirmation",
    );
    assert_status(
        &jane_br.api("/app/", &[]).await,
        StatusCode::OK,
        "still signed in",
    );
    let r = br
        .post_form(
            &format!("{user_page}/sessions/revoke-all"),
            &confirmed(&csrf),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_status(
        &jane_br.api("/app/", &[]).await,
        StatusCode::UNAUTHORIZED,
        "signed out everywhere",
    );
    let rows = activity_of(
        &s,
        &token,
        &format!("users/{}/activity?type=session_revoked", jane.id),
        1,
    )
    .await;
    assert_eq!(rows[0]["metadata"]["reason"], json!("support ticket"));
    // Reset 2FA without confirmation: refused.
    set_twofa(&s, jane.id).await;
    let r = br
        .post_form(&format!("{user_page}/reset-2fa"), &[("csrf_token", &csrf)])
        .await;
    assert_status(
        &r,
        StatusCode::BAD_REQUEST,
        "reset-2fa without confirmation",
    );
    assert!(
        s.app()
            .accounts
            .get(jane.id)
            .await
            .unwrap()
            .unwrap()
            .twofa_enabled
    );

    // Lock and unlock.
    let now = || gatehouse::store::Ts(s.clock.now());
    let r = br
        .post_form(
            &format!("{user_page}/lock"),
            &[("csrf_token", &csrf), ("lock_for", "24h")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert!(
        s.app()
            .accounts
            .get(jane.id)
            .await
            .unwrap()
            .unwrap()
            .is_locked(now())
    );
    assert!(
        br.page(&user_page)
            .await
            .text()
            .contains("id=\"unlock-submit\"")
    );
    let r = br
        .post_form(&format!("{user_page}/unlock"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert!(
        !s.app()
            .accounts
            .get(jane.id)
            .await
            .unwrap()
            .unwrap()
            .is_locked(now())
    );
}
