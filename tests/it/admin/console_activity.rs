//! The console's activity page and a user's recent activity: request rows hidden unless
//! asked for, the user named by username or email, plain days, names with links, details as
//! key/value pairs.

use super::console_ux::{admin_browser, page_with};
use super::*;
use crate::both_backends;
use crate::harness::PASSWORD;

both_backends! {
    activity_hides_requests_and_takes_names_and_days,
}

async fn activity_hides_requests_and_takes_names_and_days(b: Backend) {
    let s = server(b).await;
    let mut br = admin_browser(&s).await;
    let jane = s.plain_user("jane").await;
    s.plain_user("other").await;
    let mut jane_br = s.browser();
    jane_br.login("jane", PASSWORD).await;
    assert_status(
        &jane_br.api("/app/", &[]).await,
        StatusCode::OK,
        "a request",
    );
    let boss = s.app().accounts.find("boss").await.unwrap();
    s.app()
        .accounts
        .adjust_credits(jane.id, 5, "promo", Some(boss.id))
        .await
        .unwrap();

    let with_requests = "/_auth/admin/activity?requests=1&type=request";
    page_with(
        &mut br,
        with_requests,
        "<td data-label=\"Type\">request</td>",
    )
    .await;
    let html = page_with(
        &mut br,
        "/_auth/admin/activity",
        "<td data-label=\"Type\">credits_adjusted</td>",
    )
    .await;
    assert!(
        !html.contains("<td data-label=\"Type\">request</td>"),
        "{html}"
    );
    for id in [
        "activity-filter",
        "id=\"type\"",
        "id=\"activity-user\"",
        "id=\"from\"",
        "id=\"requests\"",
    ] {
        assert!(html.contains(id), "{id}: {html}");
    }
    // Actor and target by name, with links; details as pairs.
    assert!(
        html.contains(&format!(
            "<a href=\"/_auth/admin/users/{}\">boss</a>",
            boss.id
        )),
        "{html}"
    );
    assert!(html.contains(&format!(
        "<a href=\"/_auth/admin/users/{}\">jane</a>",
        jane.id
    )));
    assert!(html.contains("<dt>reason</dt><dd>promo</dd>"), "{html}");
    assert!(!html.contains("{&quot;actor&quot;"), "{html}");

    // By username or email, with plain days.
    let today = s.clock.now().format("%Y-%m-%d").to_string();
    let html = br
        .page(&format!(
            "/_auth/admin/activity?user=jane&from={today}&to={today}"
        ))
        .await
        .text();
    assert!(
        html.contains("<td data-label=\"Type\">credits_adjusted</td>")
            && html.contains("<td data-label=\"Type\">login</td>"),
        "{html}"
    );
    assert!(!html.contains(">other</a>"), "{html}");
    let html = br
        .page("/_auth/admin/activity?user=jane%40example.com&type=credits_adjusted")
        .await
        .text();
    assert!(
        html.contains("<td data-label=\"Type\">credits_adjusted</td>"),
        "{html}"
    );
    let html = br
        .page(&format!(
            "/_auth/admin/activity?user_id={}&type=login",
            jane.id
        ))
        .await
        .text();
    assert!(
        html.contains("<td data-label=\"Type\">login</td>"),
        "{html}"
    );
    let html = br
        .page("/_auth/admin/activity?user=jane&to=2000-01-01")
        .await
        .text();
    assert!(html.contains("No activity."), "{html}");
    let r = br.page("/_auth/admin/activity?user=nobody").await;
    assert_status(&r, StatusCode::UNPROCESSABLE_ENTITY, "unknown user");
    let r = br.page("/_auth/admin/activity?from=yesterday").await;
    assert_status(&r, StatusCode::UNPROCESSABLE_ENTITY, "bad date");
    // The user page's recent activity: security events, no requests.
    let page = br
        .page(&format!("/_auth/admin/users/{}", jane.id))
        .await
        .text();
    assert!(
        page.contains("<td data-label=\"Type\">credits_adjusted</td>")
            && !page.contains("<td data-label=\"Type\">request</td>"),
        "{page}"
    );
    // The numeric filter of the API still works.
    let r = br
        .page(&format!(
            "/_auth/admin/activity?user_id={}&requests=1",
            jane.id
        ))
        .await;
    assert!(
        r.text().contains("<td data-label=\"Type\">request</td>"),
        "{}",
        r.text()
    );
}
