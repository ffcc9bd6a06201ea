use serde_json::Value;
use serde_json::value::RawValue;

use crate::store::{NewActivity, Ts, UserId};

/// Kinds of activity, stored as `activity_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityKind {
    Request,
    Login,
    Logout,
    LoginFailed,
    AccountLocked,
    UserCreated,
    ProfileUpdate,
    PasswordChange,
    PasswordResetRequested,
    PasswordReset,
    EmailVerified,
    EmailChangeRequested,
    TwofaEnabled,
    TwofaDisabled,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
    UserLocked,
    UserUnlocked,
    UserDeleted,
    UserRestored,
    RoleGranted,
    RoleRevoked,
    SessionRevoked,
    CreditsAdjusted,
    TokenCreated,
    TokenRevoked,
    UserImported,
    // --- external sign-in ---
    IdentityLinked,
    IdentityUnlinked,
    PasskeyAdded,
    PasskeyRemoved,
}

impl ActivityKind {
    /// Every kind, security events first and requests last (the order the console lists them).
    pub const ALL: [ActivityKind; 31] = {
        use ActivityKind::*;
        [
            Login,
            LoginFailed,
            Logout,
            AccountLocked,
            UserLocked,
            UserUnlocked,
            UserCreated,
            UserImported,
            UserDeleted,
            UserRestored,
            ProfileUpdate,
            PasswordChange,
            PasswordResetRequested,
            PasswordReset,
            EmailVerified,
            EmailChangeRequested,
            TwofaEnabled,
            TwofaDisabled,
            RecoveryCodesRegenerated,
            RecoveryCodeUsed,
            RoleGranted,
            RoleRevoked,
            SessionRevoked,
            CreditsAdjusted,
            TokenCreated,
            TokenRevoked,
            IdentityLinked,
            IdentityUnlinked,
            PasskeyAdded,
            PasskeyRemoved,
            Request,
        ]
    };

    pub fn as_str(self) -> &'static str {
        use ActivityKind::*;
        match self {
            Request => "request",
            Login => "login",
            Logout => "logout",
            LoginFailed => "login_failed",
            AccountLocked => "account_locked",
            UserCreated => "user_created",
            ProfileUpdate => "profile_update",
            PasswordChange => "password_change",
            PasswordResetRequested => "password_reset_requested",
            PasswordReset => "password_reset",
            EmailVerified => "email_verified",
            EmailChangeRequested => "email_change_requested",
            TwofaEnabled => "twofa_enabled",
            TwofaDisabled => "twofa_disabled",
            RecoveryCodesRegenerated => "recovery_codes_regenerated",
            RecoveryCodeUsed => "recovery_code_used",
            UserLocked => "user_locked",
            UserUnlocked => "user_unlocked",
            UserDeleted => "user_deleted",
            UserRestored => "user_restored",
            RoleGranted => "role_granted",
            RoleRevoked => "role_revoked",
            SessionRevoked => "session_revoked",
            CreditsAdjusted => "credits_adjusted",
            TokenCreated => "token_created",
            TokenRevoked => "token_revoked",
            UserImported => "user_imported",
            IdentityLinked => "identity_linked",
            IdentityUnlinked => "identity_unlinked",
            PasskeyAdded => "passkey_added",
            PasskeyRemoved => "passkey_removed",
        }
    }
}

/// One activity row to be written. Never put a password, code, token or session id in it.
#[derive(Debug, Clone)]
pub struct ActivityEvent {
    pub user_id: Option<UserId>,
    pub kind: ActivityKind,
    pub description: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Serialised once, when the event is made; the writer copies it into the row as is.
    pub metadata: Option<Box<RawValue>>,
    pub at: Ts,
}

impl ActivityEvent {
    pub fn new(kind: ActivityKind, user_id: Option<UserId>, at: Ts) -> Self {
        ActivityEvent {
            user_id,
            kind,
            description: None,
            ip: None,
            user_agent: None,
            metadata: None,
            at,
        }
    }

    pub fn describe(mut self, d: impl Into<String>) -> Self {
        self.description = Some(d.into());
        self
    }

    pub fn client(mut self, ip: Option<String>, user_agent: Option<String>) -> Self {
        self.ip = ip;
        self.user_agent = user_agent;
        self
    }

    pub fn meta(mut self, v: Value) -> Self {
        self.metadata = serde_json::value::to_raw_value(&v).ok();
        self
    }

    /// Metadata from any serialisable value, without building a `Value` tree first.
    pub fn meta_from<T: serde::Serialize>(mut self, v: &T) -> Self {
        self.metadata = serde_json::value::to_raw_value(v).ok();
        self
    }

    pub(crate) fn into_row(self) -> NewActivity {
        NewActivity {
            user_id: self.user_id,
            activity_type: self.kind.as_str().to_string(),
            description: self.description,
            ip_address: self.ip,
            user_agent: self.user_agent,
            metadata: self.metadata,
            created_at: self.at,
        }
    }
}
