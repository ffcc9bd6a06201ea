//! Two-factor rules: enrolment, the code check at sign-in (TOTP or a recovery code), turning it
//! off, new recovery codes. The math lives in [`crate::auth::totp`]; this module decides and
//! records. Every success and refusal is one activity row without the code in it.

use crate::audit::ActivityKind;
use crate::auth::keys::Keys;
use crate::auth::totp::{self, TotpError};
use crate::config::Secret;
use crate::store::{UserId, UserRow};

use super::{AccountError, Accounts, ClientInfo};

#[derive(Debug, thiserror::Error)]
pub enum TwofaError {
    #[error("the code is not right")]
    WrongCode,
    #[error("the code was already used")]
    Replayed,
    #[error("the password is not right")]
    WrongPassword,
    /// The account is locked (too many wrong codes or passwords): no code is checked.
    #[error("the account is locked")]
    Locked,
    #[error("two-factor sign-in is not turned on")]
    NotEnabled,
    #[error("two-factor sign-in is already turned on")]
    AlreadyEnabled,
    #[error(transparent)]
    Totp(#[from] TotpError),
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl From<crate::store::StoreError> for TwofaError {
    fn from(e: crate::store::StoreError) -> Self {
        TwofaError::Account(e.into())
    }
}

/// What a user needs to add the account to an authenticator app.
#[derive(Debug)]
pub struct Enrolment {
    pub secret_base32: Secret<String>,
    pub otpauth_uri: Secret<String>,
}

/// Which second factor passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    Totp,
    RecoveryCode { remaining: usize },
}

fn unix_secs(now: crate::store::Ts) -> u64 {
    u64::try_from(now.0.timestamp()).unwrap_or(0)
}

fn parse_codes(json: Option<&str>) -> Vec<String> {
    json.and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

impl Accounts {
    async fn user(&self, id: UserId) -> Result<UserRow, AccountError> {
        self.get(id).await?.ok_or(AccountError::NotFound)
    }

    /// Starts (or resumes) enrolment: a pending secret is stored encrypted; 2FA stays off until
    /// [`Accounts::confirm_twofa`] sees a valid code for it.
    pub async fn twofa_enrolment(
        &self,
        keys: &Keys,
        user: &UserRow,
        issuer: &str,
    ) -> Result<Enrolment, TwofaError> {
        if user.twofa_enabled {
            return Err(TwofaError::AlreadyEnabled);
        }
        let existing = user
            .twofa_secret
            .as_deref()
            .and_then(|s| totp::open(&keys.totp, s, user.id).ok());
        let secret = match existing {
            Some(s) => s,
            None => {
                let s = totp::new_secret();
                let sealed = totp::seal(&keys.totp, s.expose(), user.id)?;
                if !self
                    .store()
                    .set_twofa_pending_secret(user.id, &sealed, self.now())
                    .await?
                {
                    return Err(TwofaError::AlreadyEnabled);
                }
                s
            }
        };
        Ok(Enrolment {
            secret_base32: Secret::new(totp::base32(secret.expose())),
            otpauth_uri: Secret::new(totp::otpauth_uri(secret.expose(), issuer, &user.email)?),
        })
    }

    /// Turns 2FA on when `code` is valid for the pending secret; returns the recovery codes,
    /// to be shown once.
    pub async fn confirm_twofa(
        &self,
        keys: &Keys,
        id: UserId,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Vec<Secret<String>>, TwofaError> {
        let user = self.user(id).await?;
        if user.twofa_enabled {
            return Err(TwofaError::AlreadyEnabled);
        }
        let sealed = user.twofa_secret.as_deref().ok_or(TwofaError::WrongCode)?;
        let secret = totp::open(&keys.totp, sealed, id)?;
        let code = totp::normalize_code(code);
        let step = totp::matching_step(secret.expose(), &code, unix_secs(self.now()))
            .ok_or(TwofaError::WrongCode)?;
        let codes = totp::new_recovery_codes();
        let hashes = recovery_json(keys, id, &codes);
        if !self
            .store()
            .enable_twofa(id, step, &hashes, self.now())
            .await?
        {
            return Err(TwofaError::Replayed);
        }
        self.record(
            self.client_event(ActivityKind::TwofaEnabled, Some(id), client)
                .describe("Two-factor sign-in turned on"),
        )
        .await;
        Ok(codes)
    }

    /// Checks a second factor for a user with 2FA on: a TOTP code whose step was not used
    /// before, or an unused recovery code (spent by this call).
    pub async fn verify_second_factor(
        &self,
        keys: &Keys,
        id: UserId,
        code: &str,
        client: &ClientInfo,
    ) -> Result<SecondFactor, TwofaError> {
        let code = totp::normalize_code(code);
        let result = self.check_factor(keys, id, &code, client).await;
        if let Err(e @ (TwofaError::WrongCode | TwofaError::Replayed)) = &result {
            self.record(
                self.client_event(ActivityKind::LoginFailed, Some(id), client)
                    .describe(format!("Second factor refused: {e}")),
            )
            .await;
        }
        result
    }

    async fn check_factor(
        &self,
        keys: &Keys,
        id: UserId,
        code: &str,
        client: &ClientInfo,
    ) -> Result<SecondFactor, TwofaError> {
        let user = self.user(id).await?;
        if !user.twofa_enabled {
            return Err(TwofaError::NotEnabled);
        }
        // Reserve the attempt in the database before checking the code: one budget per
        // account, whichever pending sign-in, form or instance the codes come from.
        let now = self.now();
        let budget = i64::from(self.security().twofa_attempts_per_account);
        let until = self.lock_until(now);
        let Some(attempt) = self
            .store()
            .reserve_twofa_attempt(id, budget, now, until)
            .await?
        else {
            return Err(TwofaError::Locked);
        };
        let result = self.check_code(keys, user, code, client).await;
        match &result {
            Ok(_) => {
                let set_lock = (attempt >= budget).then_some(until);
                self.store().release_twofa_attempts(id, set_lock).await?;
            }
            Err(TwofaError::WrongCode | TwofaError::Replayed) if attempt >= budget => {
                self.record(
                    self.client_event(ActivityKind::AccountLocked, Some(id), client)
                        .describe(format!("Locked until {until} after {budget} wrong codes")),
                )
                .await;
            }
            Err(_) => {}
        }
        result
    }

    /// The code check proper: TOTP (a step not used before) or an unused recovery code.
    async fn check_code(
        &self,
        keys: &Keys,
        user: UserRow,
        code: &str,
        client: &ClientInfo,
    ) -> Result<SecondFactor, TwofaError> {
        let id = user.id;
        if totp::is_totp_shaped(code) {
            let sealed = user.twofa_secret.as_deref().ok_or(TwofaError::NotEnabled)?;
            let secret = totp::open(&keys.totp, sealed, id)?;
            let step = totp::matching_step(secret.expose(), code, unix_secs(self.now()))
                .ok_or(TwofaError::WrongCode)?;
            if !self.store().claim_totp_step(id, step).await? {
                return Err(TwofaError::Replayed);
            }
            return Ok(SecondFactor::Totp);
        }
        if !totp::is_recovery_shaped(code) {
            return Err(TwofaError::WrongCode);
        }
        let hash = totp::recovery_hash(&keys.totp, id, code);
        let mut current = user;
        // A concurrent use of another code changes the list under us: re-read and retry.
        for _ in 0..3 {
            let old = current.twofa_recovery_codes.clone().unwrap_or_default();
            let mut list = parse_codes(Some(&old));
            let i = totp::find_hash(&list, &hash).ok_or(TwofaError::WrongCode)?;
            list.remove(i);
            let new = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
            if self.store().swap_recovery_codes(id, &old, &new).await? {
                self.record(
                    self.client_event(ActivityKind::RecoveryCodeUsed, Some(id), client)
                        .describe(format!("Recovery code used; {} left", list.len()))
                        .meta(serde_json::json!({ "remaining": list.len() })),
                )
                .await;
                return Ok(SecondFactor::RecoveryCode {
                    remaining: list.len(),
                });
            }
            current = self.user(id).await?;
        }
        Err(TwofaError::WrongCode)
    }

    /// Checks the password and a second factor, as turning 2FA off or renewing codes needs.
    async fn confirm_both(
        &self,
        keys: &Keys,
        id: UserId,
        password: &Secret<String>,
        code: &str,
        client: &ClientInfo,
    ) -> Result<(), TwofaError> {
        let user = self.user(id).await?;
        if !user.twofa_enabled {
            return Err(TwofaError::NotEnabled);
        }
        if !self.password_matches(&user, password).await? {
            return Err(TwofaError::WrongPassword);
        }
        self.verify_second_factor(keys, id, code, client).await?;
        Ok(())
    }

    pub async fn disable_twofa(
        &self,
        keys: &Keys,
        id: UserId,
        password: &Secret<String>,
        code: &str,
        client: &ClientInfo,
    ) -> Result<(), TwofaError> {
        self.confirm_both(keys, id, password, code, client).await?;
        self.store().disable_twofa(id, self.now()).await?;
        self.record(
            self.client_event(ActivityKind::TwofaDisabled, Some(id), client)
                .describe("Two-factor sign-in turned off"),
        )
        .await;
        Ok(())
    }

    /// Replaces the recovery codes; returns the new ones, to be shown once.
    pub async fn regenerate_recovery_codes(
        &self,
        keys: &Keys,
        id: UserId,
        password: &Secret<String>,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Vec<Secret<String>>, TwofaError> {
        self.confirm_both(keys, id, password, code, client).await?;
        let codes = totp::new_recovery_codes();
        let json = recovery_json(keys, id, &codes);
        if !self
            .store()
            .set_recovery_codes(id, &json, self.now())
            .await?
        {
            return Err(TwofaError::NotEnabled);
        }
        self.record(
            self.client_event(ActivityKind::RecoveryCodesRegenerated, Some(id), client)
                .describe("New recovery codes made"),
        )
        .await;
        Ok(codes)
    }

    /// How many unused recovery codes a user has.
    pub fn recovery_codes_left(user: &UserRow) -> usize {
        parse_codes(user.twofa_recovery_codes.as_deref()).len()
    }
}

fn recovery_json(keys: &Keys, id: UserId, codes: &[Secret<String>]) -> String {
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| totp::recovery_hash(&keys.totp, id, c.expose()))
        .collect();
    serde_json::to_string(&hashes).unwrap_or_else(|_| "[]".into())
}
