use crate::auth::{PasswordError, PolicyError};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{field} is already taken")]
    Duplicate { field: &'static str },
    #[error("{0}")]
    Policy(PolicyError),
    #[error("no user matches {0:?}")]
    UnknownUser(String),
    #[error("user not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate { field } => AccountError::Duplicate { field },
            other => AccountError::Store(other),
        }
    }
}

impl From<crate::store::UnknownTier> for AccountError {
    fn from(e: crate::store::UnknownTier) -> Self {
        AccountError::Invalid {
            field: "subscription_tier",
            message: e.to_string(),
        }
    }
}

/// Why a sign-in failed. Callers show one message for every credential problem.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("account service unavailable: {0}")]
    Unavailable(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
}
