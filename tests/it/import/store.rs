//! The store's batch insert on its own: a clash with a user created after the import read the
//! table is skipped and named, not a failed batch.

use gatehouse::store::import::ImportActivity;
use gatehouse::store::{NewUser, Tier};

use super::Target;
use crate::both_backends;
use crate::harness::Backend;

both_backends! {
    clashing_rows_are_left_out_and_named,
}

fn lead(id: u32, username: &str, email: &str) -> NewUser {
    NewUser {
        username: username.into(),
        email: email.into(),
        password_hash: None,
        first_name: Some("First".into()),
        last_name: Some("Last".into()),
        phone: None,
        company_name: None,
        tier: Tier::Beta,
        subscription_status: "active".into(),
        credits_balance: 7,
        is_active: true,
        is_verified: true,
        is_admin: false,
        is_superuser: false,
        email_notifications: true,
        sms_notifications: false,
        timezone: "UTC".into(),
        language: "en".into(),
        created_at: gatehouse::store::Ts::parse_text("2020-02-03 04:05:06").unwrap(),
        last_login: None,
        legacy_lead_id: Some(id.to_string()),
    }
}

async fn clashing_rows_are_left_out_and_named(b: Backend) {
    let t = Target::new(b).await.with_existing_users().await;
    let activity = ImportActivity {
        activity_type: "user_imported",
        source: "test",
    };
    let now = t.accounts.now();
    let batch = [
        lead(1, "one", "one@example.com"),
        lead(2, "two", "ZED@example.com"),
        lead(3, "FRANK", "three@example.com"),
        lead(4, "four", "four@example.com"),
    ];
    let done = t.store.import_users(&batch, now, activity).await.unwrap();
    assert_eq!(done.written, 2);
    assert_eq!(done.clashed, vec!["2".to_string(), "3".to_string()]);
    // The same lead id again clashes on the unique legacy_lead_id.
    let again = [lead(4, "four2", "four2@example.com")];
    let done = t.store.import_users(&again, now, activity).await.unwrap();
    assert_eq!((done.written, done.clashed), (0, vec!["4".to_string()]));

    assert_eq!(
        t.imported_activity().await,
        2,
        "activity only for written users"
    );
    let one = t.store.user_by_username("one").await.unwrap().unwrap();
    assert_eq!(one.full_name.as_deref(), Some("First Last"));
    assert_eq!(one.subscription_tier, "beta");
    assert_eq!(one.created_at.to_string(), "2020-02-03T04:05:06Z");
    assert_eq!(one.email_verified_at, Some(one.created_at));
    let rows = t
        .store
        .list_activity(&gatehouse::store::ActivityFilter {
            user_id: Some(one.id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].activity_description.as_deref(),
        Some("Imported from lead 1")
    );
    let meta = rows[0].metadata.as_ref().unwrap();
    assert_eq!(meta.0["legacy_lead_id"], "1");
    assert_eq!(meta.0["source"], "test");
}
