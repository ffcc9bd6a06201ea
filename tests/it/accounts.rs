//! The accounts library on both backends: creation, sign-in with lockout and legacy hashes,
//! updates, listing, roles, soft delete.

use chrono::Duration;
use gatehouse::accounts::{AccountError, AuthFailure, ClientInfo, NewAccount};
use gatehouse::config::Secret;
use gatehouse::store::{Tier, Ts, UserFilter, UserPatch};

use crate::both_backends;
use crate::harness::{AccountsFixture, Backend};

const PW: &str = "correct horse battery staple";

fn pw(s: &str) -> Secret<String> {
    Secret::new(s.to_string())
}

async fn fixture(b: Backend) -> AccountsFixture {
    AccountsFixture::new(b).await.expect("backend available")
}

async fn create(f: &AccountsFixture, username: &str, email: &str) -> gatehouse::store::UserRow {
    f.accounts
        .create_user(NewAccount::new(username, email, Some(pw(PW))), None)
        .await
        .expect("create user")
}

both_backends! {
    new_user_defaults,
    duplicates_any_case_name_the_field,
    sign_in_by_username_or_email,
    lockout_after_five_failures_then_unlocks,
    unknown_locked_and_wrong_look_the_same,
    legacy_werkzeug_hash_is_upgraded,
    update_and_list_with_filters,
    roles_expire_and_implicit_admin,
    soft_delete_and_restore,
    password_policy_applies,
}

async fn new_user_defaults(b: Backend) {
    let f = fixture(b).await;
    let u = create(&f, "alice", "alice@example.com").await;
    assert_eq!(u.subscription_tier, "free");
    assert_eq!(u.credits_balance, 3);
    assert!(u.is_active && !u.is_verified && !u.is_admin && !u.is_deleted);
    assert!(
        u.password_hash
            .as_deref()
            .is_some_and(|h| h.starts_with("$argon2id$"))
    );
    let by_email = f
        .accounts
        .get_by_email("ALICE@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_email.id, u.id);
    let by_name = f.accounts.get_by_username("Alice").await.unwrap().unwrap();
    assert_eq!(by_name.id, u.id);
    let view = f.accounts.view(&u).await.unwrap();
    let json = serde_json::to_string(&view).unwrap();
    for secret in [
        "password_hash",
        "twofa_secret",
        "recovery",
        "reset_token",
        "verification_token",
    ] {
        assert!(!json.contains(secret), "{secret} leaked: {json}");
    }
}

async fn duplicates_any_case_name_the_field(b: Backend) {
    let f = fixture(b).await;
    create(&f, "alice", "alice@example.com").await;
    let e = f
        .accounts
        .create_user(
            NewAccount::new("ALICE", "other@example.com", Some(pw(PW))),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, AccountError::Duplicate { field: "username" }),
        "{e:?}"
    );
    let e = f
        .accounts
        .create_user(
            NewAccount::new("alice2", "Alice@Example.COM", Some(pw(PW))),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, AccountError::Duplicate { field: "email" }),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "email is already taken");
}

async fn sign_in_by_username_or_email(b: Backend) {
    let f = fixture(b).await;
    let u = create(&f, "alice", "alice@example.com").await;
    let client = ClientInfo {
        ip: Some("192.0.2.7".into()),
        user_agent: Some("test".into()),
    };
    let a = f
        .accounts
        .authenticate("alice", &pw(PW), &client)
        .await
        .unwrap();
    assert_eq!(a.id, u.id);
    assert_eq!(a.login_count, 1);
    assert_eq!(a.last_login_ip.as_deref(), Some("192.0.2.7"));
    let a = f
        .accounts
        .authenticate("ALICE@example.com", &pw(PW), &client)
        .await
        .unwrap();
    assert_eq!(a.login_count, 2);
}

async fn lockout_after_five_failures_then_unlocks(b: Backend) {
    let f = fixture(b).await;
    create(&f, "alice", "alice@example.com").await;
    let c = ClientInfo::default();
    for _ in 0..4 {
        assert!(
            f.accounts
                .authenticate("alice", &pw("wrong password!"), &c)
                .await
                .is_err()
        );
    }
    // Four failures: the right password still works and resets the count.
    f.accounts.authenticate("alice", &pw(PW), &c).await.unwrap();
    for _ in 0..5 {
        assert!(
            f.accounts
                .authenticate("alice", &pw("wrong password!"), &c)
                .await
                .is_err()
        );
    }
    // Locked: even the right password fails.
    let e = f
        .accounts
        .authenticate("alice", &pw(PW), &c)
        .await
        .unwrap_err();
    assert!(matches!(e, AuthFailure::InvalidCredentials));
    f.clock.advance(Duration::minutes(29));
    assert!(f.accounts.authenticate("alice", &pw(PW), &c).await.is_err());
    f.clock.advance(Duration::minutes(2));
    f.accounts
        .authenticate("alice", &pw(PW), &c)
        .await
        .expect("unlocked after 30 minutes");
    let locked = f
        .store
        .count_activity(Some("account_locked"))
        .await
        .unwrap();
    assert_eq!(locked, 1);
    assert!(f.store.count_activity(Some("login_failed")).await.unwrap() >= 10);
}

async fn unknown_locked_and_wrong_look_the_same(b: Backend) {
    let f = fixture(b).await;
    create(&f, "alice", "alice@example.com").await;
    let c = ClientInfo::default();
    let unknown = f
        .accounts
        .authenticate("nobody", &pw(PW), &c)
        .await
        .unwrap_err()
        .to_string();
    let wrong = f
        .accounts
        .authenticate("alice", &pw("nope nope nope"), &c)
        .await
        .unwrap_err()
        .to_string();
    let u = f.accounts.find("alice").await.unwrap();
    f.accounts
        .lock(u.id, Ts(f.accounts.now().0 + Duration::hours(1)), None)
        .await
        .unwrap();
    let locked = f
        .accounts
        .authenticate("alice", &pw(PW), &c)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(unknown, wrong);
    assert_eq!(wrong, locked);
}

async fn legacy_werkzeug_hash_is_upgraded(b: Backend) {
    let f = fixture(b).await;
    let u = f
        .accounts
        .create_user(NewAccount::new("legacy", "legacy@example.com", None), None)
        .await
        .unwrap();
    // Made by Werkzeug 3.1.9 (tests/fixtures/werkzeug).
    let fixtures: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("../fixtures/werkzeug/hashes.json")).unwrap();
    let fx = fixtures
        .iter()
        .find(|f| {
            f["hash"]
                .as_str()
                .is_some_and(|h| h.starts_with("pbkdf2:sha256:1000$"))
        })
        .expect("a pbkdf2 fixture");
    let hash = fx["hash"].as_str().unwrap();
    let password = fx["password"].as_str().unwrap();
    f.store
        .set_password_hash(u.id, Some(hash), f.accounts.now())
        .await
        .unwrap();
    let c = ClientInfo::default();
    assert!(
        f.accounts
            .authenticate("legacy", &pw("not it at all"), &c)
            .await
            .is_err()
    );
    f.accounts
        .authenticate("legacy", &pw(password), &c)
        .await
        .unwrap();
    let after = f.accounts.get(u.id).await.unwrap().unwrap();
    assert!(
        after
            .password_hash
            .as_deref()
            .unwrap()
            .starts_with("$argon2id$")
    );
    f.accounts
        .authenticate("legacy", &pw(password), &c)
        .await
        .expect("new hash verifies");
}

async fn update_and_list_with_filters(b: Backend) {
    let f = fixture(b).await;
    let a = create(&f, "alice", "alice@example.com").await;
    let mut n = NewAccount::new("bob", "bob@corp.example", Some(pw(PW)));
    n.tier = Tier::Premium;
    n.company_name = Some("Acme Corp".into());
    let bob = f.accounts.create_user(n, None).await.unwrap();
    create(&f, "carol", "carol@example.com").await;
    let patch = UserPatch {
        first_name: Some(Some("Alice".into())),
        last_name: Some(Some("Liddell".into())),
        phone: Some(Some("555-1234".into())),
        ..Default::default()
    };
    let updated = f.accounts.update(a.id, patch, None).await.unwrap();
    assert_eq!(updated.full_name.as_deref(), Some("Alice Liddell"));
    assert!(updated.updated_at >= a.updated_at);

    let all = UserFilter {
        limit: 10,
        ..Default::default()
    };
    let (rows, total) = f.accounts.list(&all).await.unwrap();
    assert_eq!((rows.len(), total), (3, 3));
    let premium = UserFilter {
        tier: Some(Tier::Premium),
        limit: 10,
        ..Default::default()
    };
    let (rows, _) = f.accounts.list(&premium).await.unwrap();
    assert_eq!(rows.iter().map(|u| u.id).collect::<Vec<_>>(), vec![bob.id]);
    let search = UserFilter {
        search: Some("ACME".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(f.accounts.list(&search).await.unwrap().0.len(), 1);
    let liddell = UserFilter {
        search: Some("liddell".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(f.accounts.list(&liddell).await.unwrap().0[0].id, a.id);
    let wildcard = UserFilter {
        search: Some("%".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        f.accounts.list(&wildcard).await.unwrap().1,
        0,
        "LIKE wildcards are escaped"
    );
    let page = UserFilter {
        limit: 2,
        offset: 2,
        ..Default::default()
    };
    let (rows, total) = f.accounts.list(&page).await.unwrap();
    assert_eq!((rows.len(), total), (1, 3));
}

async fn roles_expire_and_implicit_admin(b: Backend) {
    let f = fixture(b).await;
    let a = create(&f, "alice", "alice@example.com").await;
    let mut n = NewAccount::new("root", "root@example.com", Some(pw(PW)));
    n.is_superuser = true;
    let root = f.accounts.create_user(n, None).await.unwrap();
    assert_eq!(
        f.accounts.effective_roles(&root).await.unwrap(),
        vec!["admin", "superuser"]
    );

    let until = Ts(f.accounts.now().0 + Duration::hours(1));
    let r = f
        .accounts
        .grant_role(a.id, "editor", Some(until), Some(root.id))
        .await
        .unwrap();
    assert_eq!(r.granted_by, Some(root.id));
    f.accounts
        .grant_role(a.id, "moderator", None, None)
        .await
        .unwrap();
    assert_eq!(
        f.accounts.effective_roles(&a).await.unwrap(),
        vec!["editor", "moderator"]
    );
    // A listing's roles come in one statement, whatever the number of users.
    let before = f.store.query_count();
    let by_user = f.store.roles_of_users(&[a.id, root.id]).await.unwrap();
    assert_eq!(f.store.query_count() - before, 1);
    let names: Vec<&str> = by_user[&a.id]
        .iter()
        .map(|r| r.role_name.as_str())
        .collect();
    assert_eq!(names, ["editor", "moderator"]);
    assert!(by_user[&root.id].is_empty());
    let editors = UserFilter {
        role: Some("editor".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(f.accounts.list(&editors).await.unwrap().1, 1);
    f.clock.advance(Duration::hours(2));
    assert_eq!(
        f.accounts.effective_roles(&a).await.unwrap(),
        vec!["moderator"]
    );
    assert_eq!(f.accounts.list(&editors).await.unwrap().1, 0);
    let admins = UserFilter {
        role: Some("admin".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(f.accounts.list(&admins).await.unwrap().0[0].id, root.id);
    f.accounts
        .revoke_role(a.id, "moderator", None)
        .await
        .unwrap();
    assert!(f.accounts.effective_roles(&a).await.unwrap().is_empty());
    assert!(
        f.accounts
            .revoke_role(a.id, "moderator", None)
            .await
            .is_err()
    );
}

async fn soft_delete_and_restore(b: Backend) {
    let f = fixture(b).await;
    let a = create(&f, "alice", "alice@example.com").await;
    f.accounts.soft_delete(a.id, None).await.unwrap();
    let c = ClientInfo::default();
    assert!(f.accounts.authenticate("alice", &pw(PW), &c).await.is_err());
    let live = UserFilter {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(f.accounts.list(&live).await.unwrap().1, 0);
    let deleted = UserFilter {
        deleted: Some(true),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(f.accounts.list(&deleted).await.unwrap().1, 1);
    assert!(f.accounts.soft_delete(a.id, None).await.is_err());
    f.accounts.restore(a.id, None).await.unwrap();
    f.accounts.authenticate("alice", &pw(PW), &c).await.unwrap();
    let row = f.accounts.get(a.id).await.unwrap().unwrap();
    assert!(!row.is_deleted && row.deleted_at.is_none());
}

async fn password_policy_applies(b: Backend) {
    let f = fixture(b).await;
    for (bad, why) in [
        ("short", "at least 12"),
        ("password1234", "common"),
        ("alice@example.com", "same as"),
    ] {
        let e = f
            .accounts
            .create_user(
                NewAccount::new("alice", "alice@example.com", Some(pw(bad))),
                None,
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains(why), "{bad}: {e}");
    }
    let long = "x".repeat(128) + "y";
    f.accounts
        .create_user(
            NewAccount::new("alice", "alice@example.com", Some(pw(&long))),
            None,
        )
        .await
        .expect("128+ characters accepted");
}
