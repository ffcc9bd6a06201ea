//! Why a provider sign-in failed: the browser's fault (a stale or forged callback, a refused
//! ID token: 400) or ours and the provider's (discovery, code exchange, storage: 503).

use super::FLOW_TTL;
use crate::store::StoreError;

/// Why an ID token was refused (the crate's verdict, named for the activity log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTokenProblem {
    Expired,
    Nonce,
    Issuer,
    Audience,
    Signature,
    AccessTokenHash,
    Other,
}

impl IdTokenProblem {
    pub fn as_str(self) -> &'static str {
        match self {
            IdTokenProblem::Expired => "ID token expired",
            IdTokenProblem::Nonce => "ID token nonce does not match",
            IdTokenProblem::Issuer => "ID token issuer does not match",
            IdTokenProblem::Audience => "ID token audience does not match",
            IdTokenProblem::Signature => "ID token signature is not valid",
            IdTokenProblem::AccessTokenHash => "ID token at_hash does not match",
            IdTokenProblem::Other => "ID token is not valid",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("no such identity provider")]
    UnknownProvider,
    #[error("provider discovery failed: {0}")]
    Discovery(String),
    #[error("no sign-in with this provider was started in this browser")]
    NoFlow,
    #[error("the sign-in took longer than {FLOW_TTL:?}")]
    FlowExpired,
    #[error("the state parameter does not match the sign-in this browser started")]
    StateMismatch,
    #[error("the provider answered with error {0:?}")]
    ProviderError(String),
    #[error("the callback has no code")]
    NoCode,
    #[error("the code exchange failed: {0}")]
    Exchange(String),
    #[error("the provider sent no ID token")]
    NoIdToken,
    #[error("{}: {detail}", problem.as_str())]
    IdToken {
        problem: IdTokenProblem,
        detail: String,
    },
    #[error("bad redirect URL: {0}")]
    Config(String),
    #[error("sign-ins in progress cannot be stored or read: {0}")]
    Store(#[from] StoreError),
}

impl OidcError {
    /// Whether this is a fault on our side or the provider's (503), not the browser's (400).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            OidcError::Discovery(_)
                | OidcError::Exchange(_)
                | OidcError::Config(_)
                | OidcError::Store(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_server_side_failures_are_unavailable() {
        assert!(OidcError::Discovery("x".into()).is_unavailable());
        assert!(!OidcError::StateMismatch.is_unavailable());
        let e = OidcError::IdToken {
            problem: IdTokenProblem::Nonce,
            detail: "d".into(),
        };
        assert!(!e.is_unavailable());
        assert!(e.to_string().starts_with("ID token nonce does not match"));
    }
}
