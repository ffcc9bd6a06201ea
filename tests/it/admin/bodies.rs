//! Typed request bodies (field paths in errors) and the cost of listing users.

use super::*;
use crate::both_backends;

both_backends! {
    wrong_types_and_missing_fields_name_the_field,
    listing_users_costs_a_bounded_number_of_queries,
}

/// Bodies parse into typed shapes: a value of the wrong type, or a missing required field, is
/// refused (422) naming the field, and the message starts with its path.
async fn wrong_types_and_missing_fields_name_the_field(b: Backend) {
    let s = server(b).await;
    let (_, t) = admin(&s, "boss").await;
    let u = s.plain_user("mia").await;
    let user = format!("/_auth/api/users/{}", u.id);
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            "/_auth/api/users".into(),
            json!({"username": "x", "email": "x@example.com", "is_verified": "yes"}),
            "is_verified",
        ),
        (
            Method::POST,
            "/_auth/api/users".into(),
            json!({"email": "x@example.com"}),
            "username",
        ),
        (
            Method::PATCH,
            user.clone(),
            json!({"company_name": {"name": "Acme"}}),
            "company_name",
        ),
        (
            Method::PATCH,
            user.clone(),
            json!({"credits_balance": "many"}),
            "credits_balance",
        ),
        (
            Method::POST,
            format!("{user}/roles"),
            json!({"role": ["editor"]}),
            "role",
        ),
        (
            Method::POST,
            format!("{user}/roles"),
            json!({"role": "editor", "expires_at": "next week"}),
            "expires_at",
        ),
        (
            Method::POST,
            format!("{user}/credits"),
            json!({"delta": "5", "reason": "x"}),
            "delta",
        ),
    ];
    for (method, path, body, field) in cases {
        let r = api(&s, method.clone(), &path, Some(&t), Some(body.clone())).await;
        let what = format!("{method} {path} {body}");
        assert_status(&r, StatusCode::UNPROCESSABLE_ENTITY, &what);
        let e = r.json();
        assert_eq!(e["error"], "validation_failed", "{what}");
        assert_eq!(e["fields"], json!([field]), "{what}: {e}");
        let message = e["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("{field}: ")), "{what}: {e}");
    }
    // The time a grant could not read is quoted back.
    let r = api(
        &s,
        Method::POST,
        &format!("{user}/roles"),
        Some(&t),
        Some(json!({"role": "editor", "expires_at": "soon"})),
    )
    .await;
    assert_eq!(
        r.json()["message"],
        "expires_at: \"soon\" is not an RFC 3339 time"
    );
    // `null` clears a nullable text field; an absent one stays.
    let r = api(
        &s,
        Method::PATCH,
        &user,
        Some(&t),
        Some(json!({"first_name": "Mia", "company_name": "Mia Co"})),
    )
    .await;
    assert_status(&r, StatusCode::OK, "set names");
    let r = api(
        &s,
        Method::PATCH,
        &user,
        Some(&t),
        Some(json!({"company_name": null})),
    )
    .await;
    assert_status(&r, StatusCode::OK, "clear the company");
    let v = r.json();
    assert_eq!(v["changed"], json!(["company_name"]));
    assert_eq!(
        (
            v["user"]["first_name"].clone(),
            v["user"]["company_name"].clone()
        ),
        (json!("Mia"), Value::Null)
    );
    // A body that is JSON but not an object is malformed (400), as before.
    let r = api(
        &s,
        Method::PATCH,
        &user,
        Some(&t),
        Some(json!(["first_name"])),
    )
    .await;
    assert_status(&r, StatusCode::BAD_REQUEST, "array body");
}

/// The users list reads the roles of the whole page in one query: listing many users costs no
/// more queries than listing a few.
async fn listing_users_costs_a_bounded_number_of_queries(b: Backend) {
    let s = server(b).await;
    let (_, t) = admin(&s, "boss").await;
    async fn cost(s: &TestServer, t: &str) -> (u64, usize) {
        let before = s.app().store.query_count();
        let r = api(s, Method::GET, "/_auth/api/users?limit=200", Some(t), None).await;
        assert_status(&r, StatusCode::OK, "list");
        let n = r.json()["users"].as_array().unwrap().len();
        (s.app().store.query_count() - before, n)
    }
    for i in 0..2 {
        s.user(&format!("few{i}"), |a| a.is_verified = true).await;
    }
    // Warm up the token cache, then measure.
    cost(&s, &t).await;
    let (few, listed) = cost(&s, &t).await;
    assert_eq!(listed, 3);
    for i in 0..12 {
        let u = s.plain_user(&format!("many{i}")).await;
        s.app()
            .accounts
            .grant_role(u.id, "editor", None, None)
            .await
            .unwrap();
    }
    let (many, listed) = cost(&s, &t).await;
    assert_eq!(listed, 15);
    assert_eq!(few, many, "listing more users made more queries");
    assert!(many <= 4, "{many} queries to list users");
    // The roles still come through.
    let r = api(
        &s,
        Method::GET,
        "/_auth/api/users?role=editor",
        Some(&t),
        None,
    )
    .await;
    let users = r.json()["users"].as_array().unwrap().clone();
    assert_eq!(users.len(), 12);
    assert!(
        users.iter().all(|u| u["roles"] == json!(["editor"])),
        "{users:?}"
    );
}
