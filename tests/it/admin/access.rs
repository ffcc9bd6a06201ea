//! CSRF on cookie writes, credits, sessions, roles and activity through the API.

use super::*;
use crate::both_backends;

both_backends! {
    cookie_writes_need_the_csrf_header,
    credits_never_go_below_zero_under_concurrency,
    revoked_sessions_end_the_next_proxied_request,
    roles_with_expiry_take_effect_at_once,
    activity_names_actor_and_fields,
}

async fn cookie_writes_need_the_csrf_header(b: Backend) {
    let s = server(b).await;
    let mut br = s.signed_in("carol").await;
    let carol = s
        .app()
        .accounts
        .get_by_username("carol")
        .await
        .unwrap()
        .unwrap();
    let path = format!("/_auth/api/users/{}", carol.id);
    // Reads work with the cookie alone.
    let r = call(&mut br, Method::GET, &path, None, None).await;
    assert_status(&r, StatusCode::OK, "cookie read");
    assert_eq!(r.json()["user"]["username"], "carol");
    let r = call(
        &mut br,
        Method::PATCH,
        &path,
        None,
        Some(json!({"first_name": "C"})),
    )
    .await;
    assert_status(&r, StatusCode::FORBIDDEN, "cookie write without CSRF");
    assert_eq!(r.json()["error"], "csrf_failed");
    let bad = br
        .send(
            Method::PATCH,
            &path,
            &[
                ("content-type", "application/json"),
                ("x-csrf-token", "forged"),
            ],
            Bytes::from(r#"{"first_name":"C"}"#),
        )
        .await;
    assert_status(&bad, StatusCode::FORBIDDEN, "wrong CSRF token");
    let token = call(&mut br, Method::GET, "/_auth/api/csrf", None, None)
        .await
        .json()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let ok = br
        .send(
            Method::PATCH,
            &path,
            &[
                ("content-type", "application/json"),
                ("X-CSRF-Token", &token),
            ],
            Bytes::from(r#"{"first_name":"C"}"#),
        )
        .await;
    assert_status(&ok, StatusCode::OK, "with CSRF header");
    // The session lists itself as current.
    let r = call(
        &mut br,
        Method::GET,
        &format!("{path}/sessions"),
        None,
        None,
    )
    .await;
    assert_eq!(r.json()["sessions"][0]["current"], true);
}

async fn credits_never_go_below_zero_under_concurrency(b: Backend) {
    let s = server(b).await;
    let (_, t) = admin(&s, "boss").await;
    let u = s.plain_user("spender").await; // 3 free credits
    let path = format!("/_auth/api/users/{}/credits", u.id);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (base, t, path) = (s.base.clone(), t.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            let mut br = Browser::new(&base);
            call(
                &mut br,
                Method::POST,
                &path,
                Some(&t),
                Some(json!({"delta": -1, "reason": "spend"})),
            )
            .await
            .status
        }));
    }
    let mut ok = 0;
    let mut conflict = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT => conflict += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, conflict), (3, 7));
    let v = api(
        &s,
        Method::GET,
        &format!("/_auth/api/users/{}", u.id),
        Some(&t),
        None,
    )
    .await
    .json();
    assert_eq!(v["user"]["credits_balance"], 0);
    let r = api(
        &s,
        Method::POST,
        &path,
        Some(&t),
        Some(json!({"delta": -1, "reason": "spend"})),
    )
    .await;
    assert_status(&r, StatusCode::CONFLICT, "overdraw");
    assert!(r.json()["message"].as_str().unwrap().contains("below zero"));
    let r = api(
        &s,
        Method::POST,
        &path,
        Some(&t),
        Some(json!({"delta": 5, "reason": "refund"})),
    )
    .await;
    assert_status(&r, StatusCode::OK, "top up");
    assert_eq!(r.json()["credits_balance"], 5);
    for (body, field) in [
        (json!({"delta": 0, "reason": "x"}), "delta"),
        (json!({"delta": i64::MIN, "reason": "x"}), "delta"),
        (json!({"delta": i64::MAX, "reason": "x"}), "delta"),
        (json!({"delta": 1_000_000_001, "reason": "x"}), "delta"),
        (json!({"delta": -1_000_000_001, "reason": "x"}), "delta"),
        (json!({"delta": 1}), "reason"),
        (json!({"delta": 1.5, "reason": "x"}), "delta"),
        (json!({"delta": 1, "reason": "x", "balance": 9}), "balance"),
    ] {
        let r = api(&s, Method::POST, &path, Some(&t), Some(body)).await;
        assert_status(&r, StatusCode::UNPROCESSABLE_ENTITY, field);
        assert_eq!(r.json()["fields"], json!([field]));
    }
}

async fn revoked_sessions_end_the_next_proxied_request(b: Backend) {
    let s = server(b).await;
    let (_, t) = admin(&s, "boss").await;
    let mut br = s.signed_in("dave").await;
    let mut other = s.browser();
    other.login("dave", crate::harness::PASSWORD).await;
    let dave = s
        .app()
        .accounts
        .get_by_username("dave")
        .await
        .unwrap()
        .unwrap();
    assert_status(&br.api("/app/", &[]).await, StatusCode::OK, "signed in");
    let sessions = api(
        &s,
        Method::GET,
        &format!("/_auth/api/users/{}/sessions", dave.id),
        Some(&t),
        None,
    )
    .await
    .json();
    let list = sessions["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    // Newest first: the second browser's session.
    let newest = list[0]["id"].as_i64().unwrap();
    let r = api(
        &s,
        Method::DELETE,
        &format!("/_auth/api/sessions/{newest}"),
        Some(&t),
        None,
    )
    .await;
    assert_status(&r, StatusCode::OK, "end one session");
    assert_status(
        &other.api("/app/", &[]).await,
        StatusCode::UNAUTHORIZED,
        "ended session",
    );
    assert_status(
        &br.api("/app/", &[]).await,
        StatusCode::OK,
        "other session lives",
    );
    let r = api(
        &s,
        Method::DELETE,
        &format!("/_auth/api/sessions/{newest}"),
        Some(&t),
        None,
    )
    .await;
    assert_status(&r, StatusCode::CONFLICT, "already ended");
    let r = api(
        &s,
        Method::DELETE,
        &format!("/_auth/api/users/{}/sessions", dave.id),
        Some(&t),
        None,
    )
    .await;
    assert_status(&r, StatusCode::OK, "sign out everywhere");
    assert_eq!(r.json()["sessions_ended"], 1);
    assert_status(
        &br.api("/app/", &[]).await,
        StatusCode::UNAUTHORIZED,
        "signed out everywhere",
    );
    assert_status(
        &api(
            &s,
            Method::DELETE,
            "/_auth/api/sessions/999999",
            Some(&t),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "no such session",
    );
}

async fn roles_with_expiry_take_effect_at_once(b: Backend) {
    let s = server(b).await;
    let (boss, t) = admin(&s, "boss").await;
    let mut br = s.signed_in("erin").await;
    let erin = s
        .app()
        .accounts
        .get_by_username("erin")
        .await
        .unwrap()
        .unwrap();
    assert_status(
        &br.api("/editors/x", &[]).await,
        StatusCode::FORBIDDEN,
        "no role yet",
    );
    let expires = (s.clock.now() + Duration::minutes(5)).to_rfc3339();
    let roles = format!("/_auth/api/users/{}/roles", erin.id);
    let r = api(
        &s,
        Method::POST,
        &roles,
        Some(&t),
        Some(json!({"role": "editor", "expires_at": expires})),
    )
    .await;
    assert_status(&r, StatusCode::CREATED, "grant");
    let g = r.json();
    assert_eq!(g["role"]["role"], "editor");
    assert_eq!(g["role"]["granted_by"], boss.id.0);
    assert!(g["role"]["expires_at"].is_string());
    assert_status(
        &br.api("/editors/x", &[]).await,
        StatusCode::OK,
        "role in force",
    );
    let v = api(&s, Method::GET, &roles, Some(&t), None).await.json();
    assert_eq!(v["effective"], json!(["editor"]));
    s.clock.advance(Duration::minutes(6));
    assert_status(
        &br.api("/editors/x", &[]).await,
        StatusCode::FORBIDDEN,
        "role expired",
    );
    let v = api(&s, Method::GET, &roles, Some(&t), None).await.json();
    assert_eq!(v["roles"][0]["in_force"], false);
    // Renew without expiry, then revoke.
    assert_status(
        &api(
            &s,
            Method::POST,
            &roles,
            Some(&t),
            Some(json!({"role": "editor"})),
        )
        .await,
        StatusCode::CREATED,
        "renew",
    );
    assert_status(&br.api("/editors/x", &[]).await, StatusCode::OK, "renewed");
    assert_status(
        &api(
            &s,
            Method::DELETE,
            &format!("{roles}/editor"),
            Some(&t),
            None,
        )
        .await,
        StatusCode::OK,
        "revoke",
    );
    assert_status(
        &br.api("/editors/x", &[]).await,
        StatusCode::FORBIDDEN,
        "revoked",
    );
    // Past expiry, bad names, admin roles from a plain admin.
    let past = (s.clock.now() - Duration::hours(1)).to_rfc3339();
    let r = api(
        &s,
        Method::POST,
        &roles,
        Some(&t),
        Some(json!({"role": "editor", "expires_at": past})),
    )
    .await;
    assert_eq!(r.json()["fields"], json!(["expires_at"]));
    let r = api(
        &s,
        Method::POST,
        &roles,
        Some(&t),
        Some(json!({"role": "bad role"})),
    )
    .await;
    assert_eq!(r.json()["fields"], json!(["role"]));
    let r = api(
        &s,
        Method::POST,
        &roles,
        Some(&t),
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_status(&r, StatusCode::FORBIDDEN, "plain admin grants admin");
    // Role names are normalised: no spelling of a reserved role gets past the check.
    for spelling in ["Admin", "ADMIN", " admin ", "SuperUser"] {
        let r = api(
            &s,
            Method::POST,
            &roles,
            Some(&t),
            Some(json!({ "role": spelling })),
        )
        .await;
        assert_status(&r, StatusCode::FORBIDDEN, spelling);
    }
    let r = api(
        &s,
        Method::POST,
        &roles,
        Some(&t),
        Some(json!({"role": " Editor "})),
    )
    .await;
    assert_status(&r, StatusCode::CREATED, "editor in another spelling");
    assert_eq!(r.json()["role"]["role"], "editor");
    let r = api(
        &s,
        Method::DELETE,
        &format!("{roles}/EDITOR"),
        Some(&t),
        None,
    )
    .await;
    assert_status(&r, StatusCode::OK, "revoked in another spelling");
}

async fn activity_names_actor_and_fields(b: Backend) {
    let s = server(b).await;
    let (boss, t) = admin(&s, "boss").await;
    let u = s.plain_user("ivy").await;
    let u_t = token_for(&s, &u).await;
    let path = format!("/_auth/api/users/{}", u.id);
    api(
        &s,
        Method::PATCH,
        &path,
        Some(&t),
        Some(json!({"subscription_tier": "premium", "company_name": "Ivy Ltd"})),
    )
    .await;
    api(
        &s,
        Method::POST,
        &format!("{path}/credits"),
        Some(&t),
        Some(json!({"delta": 7, "reason": "promo"})),
    )
    .await;
    api(
        &s,
        Method::POST,
        &format!("{path}/roles"),
        Some(&t),
        Some(json!({"role": "editor"})),
    )
    .await;
    let rows = activity_of(
        &s,
        &t,
        &format!("users/{}/activity?type=profile_update", u.id),
        1,
    )
    .await;
    let m = &rows[0]["metadata"];
    assert_eq!(m["actor"], boss.id.0);
    let mut fields: Vec<&str> = m["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, ["company_name", "subscription_tier"]);
    let rows = activity_of(
        &s,
        &t,
        &format!("users/{}/activity?type=credits_adjusted", u.id),
        1,
    )
    .await;
    assert_eq!(
        (
            rows[0]["metadata"]["delta"].as_i64(),
            rows[0]["metadata"]["actor"].as_i64()
        ),
        (Some(7), Some(boss.id.0))
    );
    // The user sees their own activity; paging with the cursor; time range.
    let page = activity_of(&s, &u_t, &format!("users/{}/activity?limit=1", u.id), 1).await;
    assert_eq!(page.len(), 1);
    let first = api(
        &s,
        Method::GET,
        &format!("{path}/activity?limit=1"),
        Some(&u_t),
        None,
    )
    .await
    .json();
    let before = first["next_before"].as_i64().unwrap();
    let second = api(
        &s,
        Method::GET,
        &format!("{path}/activity?limit=1&before={before}"),
        Some(&u_t),
        None,
    )
    .await
    .json();
    assert!(second["activity"][0]["id"].as_i64().unwrap() < before);
    let future = (s.clock.now() + Duration::hours(1))
        .to_rfc3339()
        .replace('+', "%2B");
    let later = api(
        &s,
        Method::GET,
        &format!("{path}/activity?since={future}"),
        Some(&u_t),
        None,
    )
    .await
    .json();
    assert_eq!(later["activity"].as_array().unwrap().len(), 0);
    // Global view: admins only, filter by type and user.
    let rows = activity_of(
        &s,
        &t,
        &format!("activity?type=role_granted&user_id={}", u.id),
        1,
    )
    .await;
    assert_eq!(rows[0]["user_id"], u.id.0);
    assert_status(
        &api(&s, Method::GET, "/_auth/api/activity", Some(&u_t), None).await,
        StatusCode::FORBIDDEN,
        "user reads global activity",
    );
    let r = api(
        &s,
        Method::GET,
        "/_auth/api/activity?since=yesterday",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(r.json()["fields"], json!(["since"]));
}
