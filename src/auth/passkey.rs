//! WebAuthn relying party: the ceremonies behind passkeys, on the `webauthn_rp` crate (pure
//! Rust; it parses the CBOR/COSE data and verifies the signatures).
//!
//! ```text
//!  start_* ─▶ options JSON for navigator.credentials.create/get; the server half of the
//!             ceremony waits here, in memory, keyed by its challenge (5 minutes, taken once)
//!  finish_registration ─▶ challenge known? origin = server.public_url's, RP id = its host,
//!             user present, user handle = the signed-in user's ─▶ credential to store
//!  parse_assertion ─▶ credential id (the caller loads the stored credential)
//!  finish_authentication ─▶ same checks + signature + counter strictly rising ─▶ new state
//! ```
//!
//! User verification is *preferred*: the caller decides what an assertion without it is worth.
//! Attestation is "none": Gatehouse trusts the user who registers, not a device maker.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use webauthn_rp::bin::{Decode, Encode};
use webauthn_rp::request::auth::{
    AuthenticationVerificationOptions, DiscoverableAuthenticationServerState,
    DiscoverableCredentialRequestOptions,
};
use webauthn_rp::request::register::{
    CredProtect, PublicKeyCredentialCreationOptions, PublicKeyCredentialUserEntity,
    RegistrationServerState, RegistrationVerificationOptions, UserHandle16,
};
use webauthn_rp::request::{
    AsciiDomain, PublicKeyCredentialDescriptor, RpId, TimedCeremony, UserVerificationRequirement,
};
use webauthn_rp::response::auth::AuthenticatorData;
use webauthn_rp::response::auth::error::AuthCeremonyErr;
use webauthn_rp::response::register::error::RegCeremonyErr;
use webauthn_rp::response::register::{CompressedPubKey, DynamicState, StaticState};
use webauthn_rp::response::{AuthTransports, CredentialId, Origin};
use webauthn_rp::{AuthenticatedCredential, DiscoverableAuthentication16, Registration};

/// How long a ceremony waits for its answer (the library's default timeout).
pub const CEREMONY_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// The server half of a started ceremony, to keep (any instance may finish it) under its
/// challenge until the answer comes.
#[derive(Debug, Clone)]
pub struct Ceremony {
    pub challenge: String,
    pub state: Vec<u8>,
}

/// The key a ceremony is kept under.
fn challenge_key(c: webauthn_rp::response::SentChallenge) -> String {
    format!("{:032x}", c.0)
}

/// Why a passkey ceremony was refused. The text is for the activity log and the person.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error("the answer from the browser could not be read")]
    Malformed,
    #[error("no such ceremony is waiting (expired, already used, or never started)")]
    UnknownChallenge,
    #[error("the page's origin is not {0}")]
    WrongOrigin(String),
    #[error("the credential is for another site (relying party id)")]
    WrongRpId,
    #[error("the signature counter went backwards (a cloned authenticator?)")]
    CounterRegression,
    #[error("the passkey is not registered here")]
    UnknownCredential,
    #[error("the passkey belongs to another account")]
    WrongUser,
    #[error("the authenticator did not confirm the user was present")]
    NotPresent,
    #[error("the ceremony was refused: {0}")]
    Refused(String),
    #[error("too many passkey ceremonies in progress; try again shortly")]
    Busy,
    #[error("server.public_url has no host usable as a relying party id: {0}")]
    Config(String),
}

/// A credential that passed the registration ceremony, ready to store.
#[derive(Debug, Clone)]
pub struct NewCredential {
    /// base64url without padding.
    pub credential_id: String,
    pub public_key: Vec<u8>,
    pub dynamic_state: Vec<u8>,
    pub counter: u32,
    pub transports: u8,
    pub user_verified: bool,
}

/// A stored credential, as the store hands it back.
#[derive(Debug, Clone, Copy)]
pub struct StoredCredential<'a> {
    pub credential_id: &'a str,
    pub public_key: &'a [u8],
    pub dynamic_state: &'a [u8],
    pub user_handle: [u8; 16],
}

/// What a verified assertion says.
#[derive(Debug, Clone)]
pub struct Asserted {
    /// The authenticator verified the user (PIN, biometrics): the passkey is both factors.
    pub user_verified: bool,
    pub counter: u32,
    pub dynamic_state: Vec<u8>,
}

/// An assertion read from the browser, not yet verified.
#[derive(Debug)]
pub struct Assertion(DiscoverableAuthentication16);

impl Assertion {
    /// The credential id, base64url without padding, to look the stored credential up by.
    pub fn credential_id(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.raw_id().as_ref())
    }

    /// The key of the ceremony this answers.
    pub fn challenge(&self) -> Result<String, PasskeyError> {
        self.0
            .challenge_relaxed()
            .map(challenge_key)
            .map_err(|_| PasskeyError::Malformed)
    }
}

pub struct RelyingParty {
    rp_id: RpId,
    origin: Origin<'static>,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty")
            .field("origin", &self.origin.0)
            .finish_non_exhaustive()
    }
}

impl RelyingParty {
    /// The relying party of `public_url`: its host is the RP id, its origin the only origin
    /// accepted.
    pub fn new(public_url: &url::Url) -> Result<RelyingParty, PasskeyError> {
        let host = match public_url.host() {
            Some(url::Host::Domain(d)) => d,
            // Browsers refuse an address as a relying-party id: passkeys would be offered on
            // the pages and fail in every ceremony.
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => {
                return Err(PasskeyError::Config(format!(
                    "{public_url}: an IP address cannot be a relying-party id (use a host name, \
                     e.g. localhost)"
                )));
            }
            None => return Err(PasskeyError::Config(public_url.to_string())),
        };
        let domain = AsciiDomain::try_from(host.to_ascii_lowercase())
            .map_err(|e| PasskeyError::Config(format!("{host}: {e}")))?;
        let origin = public_url.origin().ascii_serialization();
        Ok(RelyingParty {
            rp_id: RpId::Domain(domain),
            origin: Origin(origin.into()),
        })
    }

    pub fn rp_id(&self) -> &str {
        match &self.rp_id {
            RpId::Domain(d) => d.as_ref(),
            RpId::Url(u) => u.as_ref(),
        }
    }

    pub fn origin(&self) -> &str {
        &self.origin.0
    }

    /// Starts registering a discoverable credential for the user `handle` (named `username`);
    /// `existing` are the user's credentials (id base64url, transports), which the authenticator is asked
    /// not to register twice. Returns the creation options as JSON.
    pub fn start_registration(
        &self,
        handle: [u8; 16],
        username: &str,
        existing: &[(String, u8)],
    ) -> Result<(String, Ceremony), PasskeyError> {
        let handle = UserHandle16::decode(handle).map_err(|_| PasskeyError::Malformed)?;
        let name = webauthn_rp::request::register::Username::try_from(username).map_err(|e| {
            PasskeyError::Refused(format!("the username cannot name a passkey: {e}"))
        })?;
        let exclude = existing
            .iter()
            .filter_map(|(id, transports)| {
                let raw = URL_SAFE_NO_PAD.decode(id).ok()?;
                Some(PublicKeyCredentialDescriptor {
                    id: CredentialId::decode(raw).ok()?,
                    transports: AuthTransports::decode(*transports).ok()?,
                })
            })
            .collect();
        let user = PublicKeyCredentialUserEntity {
            name,
            id: &handle,
            display_name: None,
        };
        let mut options = PublicKeyCredentialCreationOptions::passkey(&self.rp_id, user, exclude);
        options.authenticator_selection.user_verification = UserVerificationRequirement::Preferred;
        // Without user verification a passkey is still a second factor; protection level 3
        // would hide it from assertions that do not verify the user.
        options.extensions.cred_protect = CredProtect::None;
        let (server, client) = options
            .start_ceremony()
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        let json = serde_json::to_string(&client).map_err(|_| PasskeyError::Malformed)?;
        let ceremony = Ceremony {
            challenge: challenge_key(server.sent_challenge()),
            state: server.encode().map_err(|_| PasskeyError::Malformed)?,
        };
        Ok((json, ceremony))
    }

    /// Reads the browser's `RegistrationResponseJSON`; returns it with the key of the
    /// ceremony it answers.
    pub fn parse_registration(response: &[u8]) -> Result<(Registration, String), PasskeyError> {
        let reg = Registration::from_json_relaxed(response).map_err(|_| PasskeyError::Malformed)?;
        let challenge = reg
            .challenge_relaxed()
            .map_err(|_| PasskeyError::Malformed)?;
        Ok((reg, challenge_key(challenge)))
    }

    /// Finishes a registration started for `handle` with the browser's
    /// `RegistrationResponseJSON`.
    pub fn finish_registration(
        &self,
        handle: [u8; 16],
        reg: &Registration,
        state: &[u8],
    ) -> Result<NewCredential, PasskeyError> {
        let server =
            RegistrationServerState::<16>::decode(state).map_err(|_| PasskeyError::Malformed)?;
        let origins = [Origin(self.origin.0.clone())];
        let options = RegistrationVerificationOptions::<Origin<'static>, Origin<'static>> {
            allowed_origins: &origins,
            ..RegistrationVerificationOptions::default()
        };
        let cred = server
            .verify(&self.rp_id, reg, &options)
            .map_err(|e| self.reg_error(e))?;
        if cred.user_id().as_ref() != handle.as_slice() {
            return Err(PasskeyError::WrongUser);
        }
        let (id, transports, _user, static_state, dynamic_state, _meta) = cred.into_parts();
        let public_key = static_state.encode().map_err(|_| PasskeyError::Malformed)?;
        let dyn_bytes = dynamic_state
            .encode()
            .map_err(|_| PasskeyError::Malformed)?;
        Ok(NewCredential {
            credential_id: URL_SAFE_NO_PAD.encode(id.as_ref()),
            public_key,
            dynamic_state: dyn_bytes.to_vec(),
            counter: dynamic_state.sign_count,
            transports: transports.encode().unwrap_or(0),
            user_verified: dynamic_state.user_verified,
        })
    }

    /// Starts a sign-in with any passkey of this site (the browser lets the person pick one).
    pub fn start_authentication(&self) -> Result<(String, Ceremony), PasskeyError> {
        let mut options = DiscoverableCredentialRequestOptions::passkey(&self.rp_id);
        options.0.user_verification = UserVerificationRequirement::Preferred;
        let (server, client) = options
            .start_ceremony()
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        let json = serde_json::to_string(&client).map_err(|_| PasskeyError::Malformed)?;
        let ceremony = Ceremony {
            challenge: challenge_key(server.sent_challenge()),
            state: server.encode().map_err(|_| PasskeyError::Malformed)?,
        };
        Ok((json, ceremony))
    }

    /// Reads the browser's `AuthenticationResponseJSON`.
    pub fn parse_assertion(response: &[u8]) -> Result<Assertion, PasskeyError> {
        DiscoverableAuthentication16::from_json_relaxed(response)
            .map(Assertion)
            .map_err(|_| PasskeyError::Malformed)
    }

    /// Verifies `assertion` against the stored credential it names. The ceremony is used up
    /// whatever the outcome, so a refused answer cannot be tried again.
    pub fn finish_authentication(
        &self,
        assertion: &Assertion,
        state: &[u8],
        stored: StoredCredential<'_>,
    ) -> Result<Asserted, PasskeyError> {
        let auth = &assertion.0;
        let server = DiscoverableAuthenticationServerState::decode(state)
            .map_err(|_| PasskeyError::Malformed)?;
        if auth.response().user_handle().as_ref() != stored.user_handle.as_slice() {
            return Err(PasskeyError::WrongUser);
        }
        let handle =
            UserHandle16::decode(stored.user_handle).map_err(|_| PasskeyError::Malformed)?;
        let static_state =
            StaticState::<CompressedPubKey<[u8; 32], [u8; 32], [u8; 48], Vec<u8>>>::decode(
                stored.public_key,
            )
            .map_err(|_| PasskeyError::Malformed)?;
        let dyn_in: [u8; 7] = stored
            .dynamic_state
            .try_into()
            .map_err(|_| PasskeyError::Malformed)?;
        let dynamic_state = DynamicState::decode(dyn_in).map_err(|_| PasskeyError::Malformed)?;
        let raw_id = URL_SAFE_NO_PAD
            .decode(stored.credential_id)
            .map_err(|_| PasskeyError::Malformed)?;
        let id = CredentialId::<&[u8]>::decode(raw_id.as_slice())
            .map_err(|_| PasskeyError::Malformed)?;
        let mut cred = AuthenticatedCredential::new(id, &handle, static_state, dynamic_state)
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        let origins = [Origin(self.origin.0.clone())];
        let options = AuthenticationVerificationOptions::<Origin<'static>, Origin<'static>> {
            allowed_origins: &origins,
            update_uv: true,
            ..AuthenticationVerificationOptions::default()
        };
        server
            .verify(&self.rp_id, auth, &mut cred, &options)
            .map_err(|e| self.auth_error(e))?;
        // The library checked the signature over these bytes; the flags are read from them.
        let flags = AuthenticatorData::try_from(auth.response().authenticator_data())
            .map_err(|_| PasskeyError::Malformed)?
            .flags();
        let state = cred.dynamic_state();
        let bytes = state.encode().map_err(|_| PasskeyError::Malformed)?;
        Ok(Asserted {
            user_verified: flags.user_verified,
            counter: state.sign_count,
            dynamic_state: bytes.to_vec(),
        })
    }

    fn reg_error(&self, e: RegCeremonyErr) -> PasskeyError {
        match e {
            RegCeremonyErr::OriginMismatch
            | RegCeremonyErr::CrossOrigin
            | RegCeremonyErr::TopOriginMismatch => {
                PasskeyError::WrongOrigin(self.origin.0.to_string())
            }
            RegCeremonyErr::RpIdHashMismatch => PasskeyError::WrongRpId,
            RegCeremonyErr::ChallengeMismatch | RegCeremonyErr::Timeout => {
                PasskeyError::UnknownChallenge
            }
            RegCeremonyErr::UserNotPresent => PasskeyError::NotPresent,
            other => PasskeyError::Refused(other.to_string()),
        }
    }

    fn auth_error(&self, e: AuthCeremonyErr) -> PasskeyError {
        match e {
            AuthCeremonyErr::OriginMismatch
            | AuthCeremonyErr::CrossOrigin
            | AuthCeremonyErr::TopOriginMismatch => {
                PasskeyError::WrongOrigin(self.origin.0.to_string())
            }
            AuthCeremonyErr::RpIdHashMismatch => PasskeyError::WrongRpId,
            AuthCeremonyErr::ChallengeMismatch | AuthCeremonyErr::Timeout => {
                PasskeyError::UnknownChallenge
            }
            AuthCeremonyErr::SignatureCounter => PasskeyError::CounterRegression,
            AuthCeremonyErr::UserHandleMismatch => PasskeyError::WrongUser,
            AuthCeremonyErr::CredentialIdMismatch => PasskeyError::UnknownCredential,
            other => PasskeyError::Refused(other.to_string()),
        }
    }
}

/// Parses a stored dynamic state; for tests and the admin view (counter, user verified).
pub fn describe_state(bytes: &[u8]) -> Option<DynamicState> {
    let arr: [u8; 7] = bytes.try_into().ok()?;
    DynamicState::decode(arr).ok()
}

#[cfg(test)]
mod tests {
    use super::RelyingParty;

    #[test]
    fn an_address_is_no_relying_party_id() {
        let rp = |u: &str| RelyingParty::new(&url::Url::parse(u).unwrap());
        assert!(rp("http://127.0.0.1:8080/").is_err());
        assert!(rp("http://[::1]:8080/").is_err());
        assert_eq!(rp("http://localhost:8080/").unwrap().rp_id(), "localhost");
        assert_eq!(
            rp("https://Auth.Example.com/").unwrap().rp_id(),
            "auth.example.com"
        );
    }
}
