//! Passkey rules: registering and removing one (activity rows for both), and signing in with
//! one, where every refusal leaves a `login_failed` row that says why.
//!
//! A passkey whose assertion carries user verification counts as both factors; one without it
//! as a single factor (the first for a passwordless sign-in, the second after a password).

use super::{Accounts, ClientInfo};
use crate::audit::ActivityKind;
use crate::auth::keys::Keys;
use crate::auth::passkey::{
    Asserted, CEREMONY_TTL, Ceremony, NewCredential, PasskeyError, RelyingParty, StoredCredential,
};
use crate::store::{NewPasskey, PasskeyRow, StoreError, Ts, UserId, UserRow};

/// Longest passkey name kept.
pub const MAX_PASSKEY_NAME: usize = 64;

/// Why a passkey step failed.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyFailure {
    #[error(transparent)]
    Refused(#[from] PasskeyError),
    #[error("the account cannot sign in")]
    Inactive,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A passkey that passed: whose it is and what the authenticator said.
#[derive(Debug)]
pub struct PasskeyUse {
    pub user: UserRow,
    pub passkey_name: String,
    pub asserted: Asserted,
}

/// A name for a new passkey: trimmed, control characters dropped, at most
/// [`MAX_PASSKEY_NAME`] characters; "Passkey" when empty.
pub fn passkey_name(raw: &str) -> String {
    let clean: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_PASSKEY_NAME)
        .collect();
    if clean.is_empty() {
        "Passkey".to_string()
    } else {
        clean
    }
}

impl Accounts {
    /// Keeps a started ceremony (`kind`: "reg" or "auth") for whichever instance gets the answer.
    pub async fn keep_ceremony(&self, kind: &str, c: &Ceremony) -> Result<(), StoreError> {
        let now = self.now();
        let expires = Ts(now.0 + chrono::Duration::from_std(CEREMONY_TTL).unwrap_or_default());
        self.store()
            .put_passkey_ceremony(&c.challenge, kind, &c.state, expires, now)
            .await
    }

    /// Takes a kept ceremony: `UnknownChallenge` when it expired, was used, or never existed.
    pub async fn take_ceremony(
        &self,
        kind: &str,
        challenge: &str,
    ) -> Result<Vec<u8>, PasskeyFailure> {
        self.store()
            .take_passkey_ceremony(challenge, kind, self.now())
            .await?
            .ok_or(PasskeyFailure::Refused(PasskeyError::UnknownChallenge))
    }

    /// Stores a passkey that passed registration and records it.
    pub async fn add_passkey(
        &self,
        id: UserId,
        name: &str,
        cred: NewCredential,
        client: &ClientInfo,
    ) -> Result<bool, StoreError> {
        let row = NewPasskey {
            user_id: id,
            credential_id: cred.credential_id,
            public_key: cred.public_key,
            counter: i64::from(cred.counter),
            dynamic_state: cred.dynamic_state,
            transports: i64::from(cred.transports),
            name: name.to_string(),
            created_at: self.now(),
        };
        let added = self.store().insert_passkey(&row).await?;
        if added {
            self.record(
                self.client_event(ActivityKind::PasskeyAdded, Some(id), client)
                    .describe(format!("Passkey \"{name}\" added"))
                    .meta(serde_json::json!({ "user_verified": cred.user_verified })),
            )
            .await;
        }
        Ok(added)
    }

    /// Removes one passkey of `id` (by the user, or by the admin `actor`) and records it.
    /// `false` when there was no such passkey of that user.
    pub async fn remove_passkey(
        &self,
        id: UserId,
        passkey: i64,
        actor: Option<UserId>,
        client: &ClientInfo,
    ) -> Result<bool, StoreError> {
        let Some(name) = self.store().delete_passkey(id, passkey).await? else {
            return Ok(false);
        };
        let by = if actor.is_some_and(|a| a != id) {
            " by an administrator"
        } else {
            ""
        };
        let mut ev = self
            .client_event(ActivityKind::PasskeyRemoved, Some(id), client)
            .describe(format!("Passkey \"{name}\" removed{by}"));
        if let Some(a) = actor {
            ev = ev.meta(serde_json::json!({ "actor_id": a.0 }));
        }
        self.record(ev).await;
        Ok(true)
    }

    pub async fn passkeys(&self, id: UserId) -> Result<Vec<PasskeyRow>, StoreError> {
        self.store().passkeys_of(id).await
    }

    /// Whether the user has a second factor: TOTP on, or at least one passkey.
    pub async fn has_second_factor(&self, user: &UserRow) -> Result<bool, StoreError> {
        Ok(user.twofa_enabled || self.store().passkey_count(user.id).await? > 0)
    }

    /// Checks a passkey assertion (`response` is the browser's JSON). With `expected`, the
    /// passkey must be that user's (the second step after a password). Every refusal is
    /// recorded with its reason.
    pub async fn use_passkey(
        &self,
        rp: &RelyingParty,
        keys: &Keys,
        response: &[u8],
        expected: Option<UserId>,
        client: &ClientInfo,
    ) -> Result<PasskeyUse, PasskeyFailure> {
        let result = self.check_passkey(rp, keys, response, expected).await;
        if let Err((user, e)) = &result {
            let ev = self
                .client_event(ActivityKind::LoginFailed, user.or(expected), client)
                .describe(format!("Passkey refused: {e}"));
            self.record(ev).await;
            if matches!(e, PasskeyFailure::Refused(PasskeyError::CounterRegression)) {
                tracing::warn!(user = ?user, "passkey signature counter went backwards");
            }
        }
        result.map_err(|(_, e)| e)
    }

    async fn check_passkey(
        &self,
        rp: &RelyingParty,
        keys: &Keys,
        response: &[u8],
        expected: Option<UserId>,
    ) -> Result<PasskeyUse, (Option<UserId>, PasskeyFailure)> {
        let fail = |u: Option<UserId>| move |e: PasskeyError| (u, PasskeyFailure::Refused(e));
        let store_fail = |u: Option<UserId>| move |e: StoreError| (u, PasskeyFailure::Store(e));
        let assertion = RelyingParty::parse_assertion(response).map_err(fail(None))?;
        let challenge = assertion.challenge().map_err(fail(None))?;
        // Taken first, whatever comes next: an answer is checked at most once.
        let state = self
            .take_ceremony("auth", &challenge)
            .await
            .map_err(|e| (expected, e))?;
        let row = self
            .store()
            .passkey_by_credential(&assertion.credential_id())
            .await
            .map_err(store_fail(None))?;
        let Some(row) = row else {
            return Err((
                None,
                PasskeyFailure::Refused(PasskeyError::UnknownCredential),
            ));
        };
        let owner = Some(row.user_id);
        if expected.is_some_and(|e| e != row.user_id) {
            return Err((expected, PasskeyFailure::Refused(PasskeyError::WrongUser)));
        }
        let asserted = rp
            .finish_authentication(
                &assertion,
                &state,
                StoredCredential {
                    credential_id: &row.credential_id,
                    public_key: &row.public_key,
                    dynamic_state: &row.dynamic_state,
                    user_handle: keys.passkey_user_handle(row.user_id.0),
                },
            )
            .map_err(fail(owner))?;
        let user = self
            .store()
            .user_by_id(row.user_id)
            .await
            .map_err(store_fail(owner))?;
        let user = match user {
            Some(u) if u.is_active && !u.is_deleted && !u.is_locked(self.now()) => u,
            _ => return Err((owner, PasskeyFailure::Inactive)),
        };
        let recorded = self
            .store()
            .record_passkey_use(
                row.id,
                row.counter,
                i64::from(asserted.counter),
                &asserted.dynamic_state,
                self.now(),
            )
            .await
            .map_err(store_fail(owner))?;
        if !recorded {
            // Another assertion with the same counter got there first.
            return Err((
                owner,
                PasskeyFailure::Refused(PasskeyError::CounterRegression),
            ));
        }
        Ok(PasskeyUse {
            user,
            passkey_name: row.name,
            asserted,
        })
    }
}
