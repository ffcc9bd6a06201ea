//! `user_passkeys`: a user's WebAuthn credentials. The credential id is stored base64url (no
//! padding), the key and the changing state as the relying-party library encodes them. A use
//! is recorded with one conditional `UPDATE` on the counter read before the check, so two
//! assertions racing with the same counter cannot both be taken.

use super::events::{Change, ChangeKind, append_change, in_tx};
use super::{Store, StoreError, Ts, UserId, execute, on_pool};

/// One stored passkey.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PasskeyRow {
    pub id: i64,
    pub user_id: UserId,
    pub credential_id: String,
    pub public_key: Vec<u8>,
    pub counter: i64,
    pub dynamic_state: Vec<u8>,
    pub transports: i64,
    pub name: String,
    pub created_at: Ts,
    pub last_used_at: Option<Ts>,
}

/// A passkey to store after a registration ceremony.
#[derive(Debug, Clone)]
pub struct NewPasskey {
    pub user_id: UserId,
    pub credential_id: String,
    pub public_key: Vec<u8>,
    pub counter: i64,
    pub dynamic_state: Vec<u8>,
    pub transports: i64,
    pub name: String,
    pub created_at: Ts,
}

impl Store {
    /// Stores a new passkey; `false` when its credential id is already registered (to anyone).
    pub async fn insert_passkey(&self, p: &NewPasskey) -> Result<bool, StoreError> {
        let change = Change::user(ChangeKind::PasskeyAdded, p.user_id);
        let n = in_tx!(self, |tx| {
            let n = sqlx::query(
                "INSERT INTO user_passkeys (user_id, credential_id, public_key, counter, \
                 dynamic_state, transports, name, created_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8 \
                 WHERE NOT EXISTS (SELECT 1 FROM user_passkeys WHERE credential_id = $2)",
            )
            .bind(p.user_id)
            .bind(&p.credential_id)
            .bind(&p.public_key)
            .bind(p.counter)
            .bind(&p.dynamic_state)
            .bind(p.transports)
            .bind(&p.name)
            .bind(p.created_at)
            .execute(tx.conn())
            .await?
            .rows_affected();
            if n > 0 {
                append_change!(tx, &change).await?;
            }
            n
        })?;
        Ok(n > 0)
    }

    /// A user's passkeys, oldest first.
    pub async fn passkeys_of(&self, user: UserId) -> Result<Vec<PasskeyRow>, StoreError> {
        let rows = on_pool!(self, |p| {
            sqlx::query_as::<_, PasskeyRow>(
                "SELECT * FROM user_passkeys WHERE user_id = $1 ORDER BY id",
            )
            .bind(user)
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
    }

    /// How many passkeys a user has.
    pub async fn passkey_count(&self, user: UserId) -> Result<i64, StoreError> {
        let n = on_pool!(self, |p| {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM user_passkeys WHERE user_id = $1")
                .bind(user)
                .fetch_one(p)
                .await
        })?;
        Ok(n)
    }

    /// The passkey with this credential id (base64url), whoever owns it.
    pub async fn passkey_by_credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<PasskeyRow>, StoreError> {
        let row = on_pool!(self, |p| {
            sqlx::query_as::<_, PasskeyRow>("SELECT * FROM user_passkeys WHERE credential_id = $1")
                .bind(credential_id)
                .fetch_optional(p)
                .await
        })?;
        Ok(row)
    }

    /// Records a successful use: the new counter and state, if the counter is still the one read
    /// before the check. `false` means another use won the race.
    pub async fn record_passkey_use(
        &self,
        id: i64,
        old_counter: i64,
        new_counter: i64,
        dynamic_state: &[u8],
        now: Ts,
    ) -> Result<bool, StoreError> {
        let n = execute!(
            self,
            "UPDATE user_passkeys SET counter = $1, dynamic_state = $2, last_used_at = $3 \
             WHERE id = $4 AND counter = $5",
            new_counter,
            dynamic_state,
            now,
            id,
            old_counter
        )?;
        Ok(n > 0)
    }

    /// Removes one passkey of `user`; returns its name when it existed. Other instances hear of
    /// it through the change feed and drop the user's cached sessions.
    pub async fn delete_passkey(
        &self,
        user: UserId,
        id: i64,
    ) -> Result<Option<String>, StoreError> {
        let change = Change::user(ChangeKind::PasskeyRemoved, user);
        let name = in_tx!(self, |tx| {
            let name: Option<String> = sqlx::query_scalar(
                "DELETE FROM user_passkeys WHERE id = $1 AND user_id = $2 RETURNING name",
            )
            .bind(id)
            .bind(user)
            .fetch_optional(tx.conn())
            .await?;
            if name.is_some() {
                append_change!(tx, &change).await?;
            }
            name
        })?;
        Ok(name)
    }

    /// Keeps a passkey ceremony's server state until its answer comes (any instance may take
    /// it); drops ceremonies that expired on the way.
    pub async fn put_passkey_ceremony(
        &self,
        challenge: &str,
        kind: &str,
        state: &[u8],
        expires_at: Ts,
        now: Ts,
    ) -> Result<(), StoreError> {
        execute!(
            self,
            "DELETE FROM passkey_ceremonies WHERE expires_at < $1",
            now
        )?;
        execute!(
            self,
            "INSERT INTO passkey_ceremonies (challenge, kind, state, expires_at) VALUES ($1, $2, $3, $4)",
            challenge,
            kind,
            state,
            expires_at
        )?;
        Ok(())
    }

    /// Takes (deletes and returns) a live ceremony's state: an answer is checked once.
    pub async fn take_passkey_ceremony(
        &self,
        challenge: &str,
        kind: &str,
        now: Ts,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let state = on_pool!(self, |p| {
            sqlx::query_scalar::<_, Vec<u8>>(
                "DELETE FROM passkey_ceremonies WHERE challenge = $1 AND kind = $2 \
                 AND expires_at > $3 RETURNING state",
            )
            .bind(challenge)
            .bind(kind)
            .bind(now)
            .fetch_optional(p)
            .await
        })?;
        Ok(state)
    }
}
