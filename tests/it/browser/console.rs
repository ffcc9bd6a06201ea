//! The admin console in Chromium, as an ops person uses it: the home page's counts and their
//! links into the filtered users list; filtering (tier, role, search) and sorting the list;
//! deleting through the confirmation step (a reason is required and recorded, and a post
//! straight to the action is refused); Lock and Unlock; and the activity log with request
//! rows hidden and a plain date filter. Every page state is checked as in `audit`.

use gatehouse::clock::Clock;
use gatehouse::store::Tier;
use serde_json::{Value, json};

use super::audit::Auditor;
use super::sign_in;
use super::webdriver::WebDriver;

use crate::harness::{Backend, PASSWORD, TestServer};

/// The usernames in the users table, top to bottom.
async fn listed(wd: &WebDriver) -> Vec<String> {
    let v = wd
        .exec(
            "return Array.from(document.querySelectorAll('#users-table tbody tr td:nth-child(2)'))\
             .map((td) => td.textContent.trim());",
            json!([]),
        )
        .await;
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// The `aria-sort` of the column header holding the sort link `key`.
async fn aria_sort(wd: &WebDriver, key: &str) -> Value {
    wd.exec(
        "return document.getElementById(arguments[0]).closest('th').getAttribute('aria-sort');",
        json!([format!("sort-{key}")]),
    )
    .await
}

async fn deleted(s: &TestServer, id: gatehouse::store::UserId) -> bool {
    let u = s.app().accounts.get(id).await.unwrap().unwrap();
    u.is_deleted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_home_lists_confirmations_and_activity_in_chromium() {
    let Some(wd) = WebDriver::start().await else {
        return;
    };
    let audit = Auditor::load();
    let s = TestServer::start(Backend::Sqlite, "").await.unwrap();
    s.user("boss", |a| a.is_admin = true).await;
    let carol = s.tier_user("carol", Tier::Premium).await;
    s.tier_user("bob", Tier::Premium).await;
    s.plain_user("alice").await;
    let jane = s.plain_user("jane").await;
    let lucy = s.tier_user("lucy", Tier::Enterprise).await;
    s.app()
        .accounts
        .grant_role(carol.id, "editor", None, None)
        .await
        .unwrap();
    // A session of lucy's, for her page to list.
    s.browser().login("lucy", PASSWORD).await;
    let base = s.base.clone();

    // Home: the counts, each a link into the list it counts.
    sign_in(&wd, None, &base, "boss", PASSWORD, "/_auth/admin/").await;
    wd.wait_path("/_auth/admin/").await;
    wd.find("#count-sessions").await;
    audit.check(&wd, "the console home").await;
    for (id, n) in [
        ("count-tier-free", "3"),
        ("count-tier-premium", "2"),
        ("count-tier-enterprise", "1"),
        ("count-tier-beta", "0"),
        ("count-locked", "0"),
        ("count-deleted", "0"),
    ] {
        let t = wd.text(&format!("#{id}")).await;
        assert!(t.starts_with(n), "{id}: {t}");
    }
    wd.click("#count-tier-premium").await;
    wd.wait_path("/_auth/admin/users").await;
    wd.find("#users-table").await;
    assert!(wd.url().await.contains("tier=premium"));
    let mut got = listed(&wd).await;
    got.sort();
    assert_eq!(got, ["bob", "carol"]);
    assert_eq!(
        wd.exec("return document.getElementById('tier').value;", json!([]))
            .await,
        json!("premium")
    );
    audit.check(&wd, "the users list by tier").await;

    // The role filter is a list of the roles in use.
    wd.goto(&format!("{base}/_auth/admin/users")).await;
    wd.click("#role option[value='editor']").await;
    wd.click("#users-filter-submit").await;
    wd.wait_query("role=editor").await;
    wd.find("#users-table").await;
    assert_eq!(listed(&wd).await, ["carol"]);
    audit.check(&wd, "the users list by role").await;

    wd.goto(&format!("{base}/_auth/admin/users")).await;
    wd.type_into("#q", "jane").await;
    wd.click("#users-filter-submit").await;
    wd.wait_query("q=jane").await;
    wd.find("#users-table").await;
    assert_eq!(listed(&wd).await, ["jane"]);
    assert!(wd.text("#users-count").await.contains("of 1"));
    audit.check(&wd, "the users list searched").await;

    // Sorting: by username, then the other way on a second click.
    wd.goto(&format!("{base}/_auth/admin/users")).await;
    wd.click("#sort-username").await;
    wd.find("th[aria-sort] #sort-username").await;
    assert_eq!(
        listed(&wd).await,
        ["alice", "bob", "boss", "carol", "jane", "lucy"]
    );
    assert_eq!(aria_sort(&wd, "username").await, json!("ascending"));
    assert_eq!(aria_sort(&wd, "email").await, Value::Null);
    audit.check(&wd, "the users list sorted").await;
    wd.click("#sort-username").await;
    wd.find("th[aria-sort='descending'] #sort-username").await;
    assert_eq!(
        listed(&wd).await,
        ["lucy", "jane", "carol", "boss", "bob", "alice"]
    );

    // Delete: the confirmation asks for a reason; without one nothing happens.
    let jane_page = format!("{base}/_auth/admin/users/{}", jane.id.0);
    wd.goto(&jane_page).await;
    wd.click("#delete-link").await;
    wd.wait_path(&format!("/_auth/admin/users/{}/delete", jane.id.0))
        .await;
    wd.find("#confirm-form").await;
    audit.check(&wd, "the delete confirmation").await;
    // Blanks pass the browser's `required` but are no reason.
    wd.type_into("#confirm-reason", "   ").await;
    wd.click("#confirm-submit").await;
    wd.find("#confirm-error").await;
    assert!(wd.text("#confirm-error").await.contains("reason"));
    assert_eq!(
        wd.exec(
            "return document.getElementById('confirm-reason').getAttribute('aria-invalid');",
            json!([])
        )
        .await,
        json!("true")
    );
    audit
        .check(&wd, "the delete confirmation without a reason")
        .await;
    assert!(!deleted(&s, jane.id).await);
    wd.type_into("#confirm-reason", "support ticket 4711").await;
    wd.click("#confirm-submit").await;
    wd.find("p.notice").await;
    assert!(deleted(&s, jane.id).await);
    // The activity row (written in the background) carries the reason.
    let mut found = String::new();
    for _ in 0..50 {
        wd.goto(&jane_page).await;
        found = wd.text("#activity ~ .table-wrap, #activity ~ p").await;
        if found.contains("support ticket 4711") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(found.contains("support ticket 4711"), "{found}");
    audit.check(&wd, "a deleted user's page").await;

    // Straight to the action, with the session and the CSRF token but no confirmation:
    // refused, and nothing done.
    let lucy_page = format!("{base}/_auth/admin/users/{}", lucy.id.0);
    wd.goto(&lucy_page).await;
    wd.find("#delete-link").await;
    audit.check(&wd, "a user's page").await;
    let status = wd
        .exec(
            "const token = document.querySelector('input[name=csrf_token]').value;\
             return fetch(arguments[0], { method: 'POST', credentials: 'same-origin',\
               body: new URLSearchParams({ csrf_token: token }) }).then((r) => r.status);",
            json!([format!("/_auth/admin/users/{}/delete", lucy.id.0)]),
        )
        .await;
    assert_eq!(status, json!(400));
    assert!(!deleted(&s, lucy.id).await);

    // Lock, then Unlock.
    wd.click("#lock_for option[value='24h']").await;
    wd.click("#lock-submit").await;
    wd.find("#unlock-submit").await;
    let u = s.app().accounts.get(lucy.id).await.unwrap().unwrap();
    assert!(
        u.is_locked(gatehouse::store::Ts(s.clock.now())),
        "{:?}",
        u.account_locked_until
    );
    audit.check(&wd, "a locked user's page").await;
    wd.click("#unlock-submit").await;
    wd.find("#lock-submit").await;
    let u = s.app().accounts.get(lucy.id).await.unwrap().unwrap();
    assert!(
        !u.is_locked(gatehouse::store::Ts(s.clock.now())),
        "{:?}",
        u.account_locked_until
    );

    // Activity: request rows hidden by default; a plain date is a filter.
    wd.goto(&format!("{base}/_auth/admin/activity")).await;
    wd.find("#activity-filter").await;
    assert_eq!(
        wd.exec(
            "return document.getElementById('requests').checked;",
            json!([])
        )
        .await,
        json!(false)
    );
    assert!(
        wd.text("#dates-hint")
            .await
            .contains("Request rows are hidden")
    );
    audit.check(&wd, "the activity log").await;
    let today = s.clock.now().format("%Y-%m-%d").to_string();
    wd.type_into("#from", &today).await;
    wd.type_into("#to", &today).await;
    wd.click("#activity-filter-submit").await;
    wd.wait_query(&format!("from={today}")).await;
    wd.find(".activity-table").await;
    assert_eq!(wd.count("#form-error").await, 0);
    assert!(wd.text(".activity-table").await.contains("jane"));
    audit.check(&wd, "the activity log of a day").await;
    wd.quit().await;
}
