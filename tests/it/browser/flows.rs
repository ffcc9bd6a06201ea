//! No dead ends, in Chromium: `/_auth/` and a signed-in visit to the sign-in page lead on, a
//! CSRF failure is a styled page with a way back, a 403 names the role that is missing, and
//! sign-up lists every problem at once, then signs in and keeps `next`. Every page state on the
//! way goes through the axe and no-sideways-scroll checks at both widths.

use http::Method;

use super::audit::Auditor;
use super::sign_in;
use super::webdriver::WebDriver;

use crate::harness::{Backend, PASSWORD, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_dead_ends_in_chromium() {
    let Some(wd) = WebDriver::start().await else {
        return;
    };
    let audit = Auditor::load();
    // The harness's routes: `/admin/**` needs the `admin` role.
    let s = TestServer::start(Backend::Sqlite, "[portal]\nregistration = \"open\"\n")
        .await
        .unwrap();
    s.plain_user("nora").await;
    let base = s.base.clone();

    // Signed out, `/_auth/` is the sign-in page (coming back to the account page).
    wd.goto(&format!("{base}/_auth/")).await;
    wd.wait_path("/_auth/login").await;
    assert!(wd.url().await.ends_with("next=%2F%5Fauth%2Faccount"));

    // A form whose CSRF cookie is gone: a styled 403 that says what to do, with a way back.
    wd.find("#username").await;
    wd.type_into("#username", "nora").await;
    wd.type_into("#password", PASSWORD).await;
    wd.cmd(Method::DELETE, &wd.s("/cookie/gatehouse_csrf"), None)
        .await;
    wd.click("form[action='/_auth/login'] button[type=submit]")
        .await;
    wd.find("a[href='/_auth/login']").await;
    let page = wd.source().await;
    assert!(page.contains("The form expired"), "{page}");
    assert!(page.contains("/_auth/static/gatehouse.css"), "{page}");
    audit.check(&wd, "the CSRF failure page").await;
    wd.click("a[href='/_auth/login']").await;
    wd.find("#username").await;

    // Signed in: `/_auth/` is the account page; the sign-in page goes on to `next`, or to the
    // account page without one. No console link for a plain user.
    sign_in(&wd, None, &base, "nora", PASSWORD, "/app/").await;
    wd.wait_path("/app/").await;
    wd.goto(&format!("{base}/_auth/")).await;
    wd.wait_path("/_auth/account").await;
    assert_eq!(wd.count("#console-link").await, 0);
    wd.goto(&format!("{base}/_auth/login?next=/app/page")).await;
    wd.wait_path("/app/page").await;
    wd.goto(&format!("{base}/_auth/login")).await;
    wd.wait_path("/_auth/account").await;

    // A page for admins: the 403 names the role and links on.
    wd.goto(&format!("{base}/admin/page")).await;
    wd.find("main a").await;
    let text = wd.text("main").await;
    assert!(text.contains("admin"), "{text}");
    assert!(text.contains("Access denied"), "{text}");
    audit.check(&wd, "the 403 page for a missing role").await;

    // An address under /_auth/ that does not exist: a styled 404 with a way on.
    wd.goto(&format!("{base}/_auth/no-such-page")).await;
    wd.find("main a[href='/_auth/account']").await;
    let text = wd.text("main").await;
    assert!(text.contains("Not found"), "{text}");
    audit.check(&wd, "the 404 page").await;

    // The account password form: every problem at once.
    wd.goto(&format!("{base}/_auth/account")).await;
    wd.type_into("#current_password", "not the password").await;
    wd.type_into("#new_password", "short").await;
    wd.type_into("#new_password_confirm", "other").await;
    wd.click("form[action='/_auth/account/password'] button[type=submit]")
        .await;
    wd.find("#new_password_confirm-error").await;
    assert_eq!(wd.count("#form-error li").await, 3);
    audit
        .check(&wd, "the account page with three refused fields")
        .await;

    // Sign out; sign up from the sign-in page's link, keeping `next`.
    wd.goto(&format!("{base}/_auth/logout")).await;
    wd.click("form[action='/_auth/logout'] button[type=submit]")
        .await;
    wd.find("a[href='/_auth/login']").await;
    wd.goto(&format!("{base}/_auth/login?next=/app/welcome"))
        .await;
    wd.click("a[href='/_auth/signup?next=%2Fapp%2Fwelcome']")
        .await;
    wd.wait_path("/_auth/signup").await;
    audit.check(&wd, "the sign-up page").await;
    wd.type_into("#username", "o k").await;
    wd.type_into("#email", "not-an-address").await;
    wd.type_into("#password", "short").await;
    wd.type_into("#password_confirm", "other").await;
    wd.click("form[action='/_auth/signup'] button[type=submit]")
        .await;
    wd.find("#form-error").await;
    assert_eq!(wd.count("#form-error li").await, 4);
    for id in ["username", "email", "password", "password_confirm"] {
        wd.find(&format!("#{id}-error")).await;
    }
    audit
        .check(&wd, "the sign-up page with four problems")
        .await;
    wd.type_into("#username", "olga").await;
    wd.type_into("#email", "olga@example.com").await;
    wd.type_into("#password", PASSWORD).await;
    wd.type_into("#password_confirm", PASSWORD).await;
    wd.click("form[action='/_auth/signup'] button[type=submit]")
        .await;
    wd.wait_path("/app/welcome").await;
    assert!(wd.source().await.contains("<strong>olga</strong>"));
    wd.goto(&format!("{base}/_auth/account?done=welcome")).await;
    wd.find("p.notice").await;
    audit.check(&wd, "the account page after sign-up").await;
    wd.quit().await;
}
