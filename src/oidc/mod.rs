//! Signing in with an external OpenID Connect provider (`[[identity_providers]]`): the
//! protocol side. The `openidconnect` crate does discovery, PKCE, `state`, `nonce` and the ID
//! token checks (signature against the provider's JWKS, issuer, audience, expiry on our
//! injected clock); this module keeps the flows in progress and hands the portal a checked
//! [`ExternalIdentity`]. Which account that is, is for [`crate::accounts`].
//!
//! ```text
//!  GET /_auth/oidc/<id>/start?next=  ─▶ discovery (cached 1 h) ─▶ flow {state, nonce, PKCE
//!     verifier, next} stored in `oidc_flows` under the hash of a random cookie
//!     (gatehouse_oidc, 10 min) ─▶ 303 to the provider's authorization endpoint
//!  GET /_auth/oidc/<id>/callback?code&state ─▶ flow taken (once) by the cookie ─▶ state
//!     compared ─▶ code + verifier exchanged ─▶ ID token verified (keys refetched once when
//!     the token names a key we do not have) ─▶ ExternalIdentity
//! ```
//!
//! Flows are rows in the database, like pending two-factor sign-ins, so the callback may reach
//! any instance on it (no sticky sessions); taking one is a single `DELETE … RETURNING`, so a
//! flow is used once even when two callbacks race on different instances.

mod http;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use moka::future::Cache;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreProviderMetadata};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError,
    TokenResponse,
};
use subtle::ConstantTimeEq;

pub use http::{ProviderHttp, ProviderHttpError};

use crate::auth::tokens::{hash_token, looks_like_token, random_token};
use crate::config::IdentityProvider;
use crate::store::{OidcFlowRow, Store, StoreError, Ts, UserId};

/// How long a user may take at the provider.
pub const FLOW_TTL: Duration = Duration::from_secs(600);
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A provider sign-in in progress.
#[derive(Debug, Clone)]
pub struct Flow {
    pub provider: String,
    state: String,
    nonce: String,
    pkce_verifier: String,
    /// Where to go afterwards (already checked to be same-site).
    pub next: String,
    /// Set when a signed-in user links this provider from the account page.
    pub link_user: Option<UserId>,
}

/// What a verified ID token says about the user.
#[derive(Debug, Clone)]
pub struct ExternalIdentity {
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub preferred_username: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// Values of the provider's `roles_claim`.
    pub groups: Vec<String>,
    /// The token's `amr` lists several factors (or `mfa`).
    pub mfa: bool,
}

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

/// The providers, their discovered metadata, and the store that keeps flows in progress.
pub struct Oidc {
    http: ProviderHttp,
    /// `server.public_url` without a trailing slash, for callback URLs.
    base: String,
    metadata: Cache<String, Arc<CoreProviderMetadata>>,
    store: Store,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Oidc {
    pub fn new(public_url: &url::Url, store: Store) -> Oidc {
        Oidc {
            http: ProviderHttp::new(),
            base: public_url.as_str().trim_end_matches('/').to_string(),
            metadata: Cache::builder()
                .max_capacity(1_000)
                .time_to_live(DISCOVERY_TTL)
                .build(),
            store,
        }
    }

    pub fn callback_url(&self, provider: &IdentityProvider) -> String {
        format!("{}/_auth/oidc/{}/callback", self.base, provider.id)
    }

    async fn discover(
        &self,
        p: &IdentityProvider,
        fresh: bool,
    ) -> Result<Arc<CoreProviderMetadata>, OidcError> {
        if !fresh && let Some(m) = self.metadata.get(&p.issuer).await {
            return Ok(m);
        }
        let issuer =
            IssuerUrl::new(p.issuer.clone()).map_err(|e| OidcError::Discovery(e.to_string()))?;
        let meta = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Discovery(error_chain(&e)))?;
        let meta = Arc::new(meta);
        self.metadata.insert(p.issuer.clone(), meta.clone()).await;
        Ok(meta)
    }

    fn client(&self, p: &IdentityProvider, meta: &CoreProviderMetadata) -> Result<Rp, OidcError> {
        let redirect =
            RedirectUrl::new(self.callback_url(p)).map_err(|e| OidcError::Config(e.to_string()))?;
        Ok(CoreClient::from_provider_metadata(
            meta.clone(),
            ClientId::new(p.client_id.clone()),
            Some(ClientSecret::new(p.client_secret.expose().clone())),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a flow: returns the provider URL to send the browser to and the cookie value
    /// that ties the callback to this browser.
    pub async fn start(
        &self,
        p: &IdentityProvider,
        next: String,
        link_user: Option<UserId>,
        now: Ts,
    ) -> Result<(url::Url, String), OidcError> {
        let meta = self.discover(p, false).await?;
        let client = self.client(p, &meta)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for s in p.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        let (url, state, nonce) = req.set_pkce_challenge(challenge).url();
        let token = random_token();
        let ttl = chrono::Duration::from_std(FLOW_TTL).unwrap_or(chrono::Duration::minutes(10));
        let row = OidcFlowRow {
            provider: p.id.clone(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            next_path: next,
            link_user_id: link_user,
            created_at: now,
            expires_at: Ts(now.0 + ttl),
        };
        self.store
            .insert_oidc_flow(&hash_token(&token), &row)
            .await?;
        Ok((url, token))
    }

    /// Takes the flow behind a cookie value (a flow is used once, whatever the outcome).
    pub async fn take_flow(&self, token: &str, now: Ts) -> Result<Flow, OidcError> {
        if !looks_like_token(token) {
            return Err(OidcError::NoFlow);
        }
        let row = self
            .store
            .take_oidc_flow(&hash_token(token))
            .await?
            .ok_or(OidcError::NoFlow)?;
        if now > row.expires_at {
            return Err(OidcError::FlowExpired);
        }
        Ok(Flow {
            provider: row.provider,
            state: row.state,
            nonce: row.nonce,
            pkce_verifier: row.pkce_verifier,
            next: row.next_path,
            link_user: row.link_user_id,
        })
    }

    /// The callback: checks `state` against the flow, exchanges the code with the PKCE
    /// verifier and verifies the ID token against the flow's nonce, at time `now`.
    pub async fn finish(
        &self,
        p: &IdentityProvider,
        flow: &Flow,
        callback: &Callback,
        now: Ts,
    ) -> Result<ExternalIdentity, OidcError> {
        let state_ok = flow.provider == p.id
            && callback
                .state
                .as_deref()
                .is_some_and(|s| bool::from(s.as_bytes().ct_eq(flow.state.as_bytes())));
        if !state_ok {
            return Err(OidcError::StateMismatch);
        }
        if let Some(e) = &callback.error {
            return Err(OidcError::ProviderError(e.clone()));
        }
        let code = callback.code.clone().ok_or(OidcError::NoCode)?;
        let meta = self.discover(p, false).await?;
        let client = self.client(p, &meta)?;
        let resp = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(error_chain(&e)))?;
        let id_token = resp.id_token().ok_or(OidcError::NoIdToken)?;
        let nonce = Nonce::new(flow.nonce.clone());
        let verify =
            |client: &Rp| -> Result<ExternalIdentity, OidcError> {
                let verifier = client.id_token_verifier().set_time_fn(move || now.0);
                let claims = id_token
                    .claims(&verifier, &nonce)
                    .map_err(|e| id_token_error(&e))?;
                if let Some(expected) = claims.access_token_hash() {
                    let alg = id_token.signing_alg().map_err(|e| OidcError::IdToken {
                        problem: IdTokenProblem::Signature,
                        detail: e.to_string(),
                    })?;
                    let key = id_token
                        .signing_key(&verifier)
                        .map_err(|e| OidcError::IdToken {
                            problem: IdTokenProblem::Signature,
                            detail: e.to_string(),
                        })?;
                    let actual = AccessTokenHash::from_token(resp.access_token(), alg, key)
                        .map_err(|e| OidcError::IdToken {
                            problem: IdTokenProblem::AccessTokenHash,
                            detail: e.to_string(),
                        })?;
                    if actual != *expected {
                        return Err(OidcError::IdToken {
                            problem: IdTokenProblem::AccessTokenHash,
                            detail: "the access token was swapped".into(),
                        });
                    }
                }
                let extra = payload(id_token);
                let groups = p
                    .roles_claim
                    .as_deref()
                    .map(|c| strings(extra.get(c)))
                    .unwrap_or_default();
                let amr = strings(extra.get("amr"));
                Ok(ExternalIdentity {
                    provider: p.id.clone(),
                    subject: claims.subject().to_string(),
                    email: claims.email().map(|e| e.to_string()),
                    email_verified: claims.email_verified().unwrap_or(false),
                    preferred_username: claims.preferred_username().map(|u| u.to_string()),
                    given_name: claims
                        .given_name()
                        .and_then(|n| n.get(None))
                        .map(|n| n.to_string()),
                    family_name: claims
                        .family_name()
                        .and_then(|n| n.get(None))
                        .map(|n| n.to_string()),
                    groups,
                    mfa: shows_mfa(&amr),
                })
            };
        match verify(&client) {
            // The provider rotated its keys since discovery: fetch them again, once.
            Err(OidcError::IdToken {
                problem: IdTokenProblem::Signature,
                ..
            }) if names_unknown_key(id_token, &client) => {
                let meta = self.discover(p, true).await?;
                verify(&self.client(p, &meta)?)
            }
            other => other,
        }
    }
}

/// What the provider sent back to the callback URL.
#[derive(Debug, Clone, Default)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

fn names_unknown_key(token: &CoreIdToken, client: &Rp) -> bool {
    matches!(
        token.signing_key(&client.id_token_verifier()),
        Err(SignatureVerificationError::NoMatchingKey)
    )
}

fn id_token_error(e: &ClaimsVerificationError) -> OidcError {
    let problem = match e {
        ClaimsVerificationError::Expired(_) => IdTokenProblem::Expired,
        ClaimsVerificationError::InvalidNonce(_) => IdTokenProblem::Nonce,
        ClaimsVerificationError::InvalidIssuer(_) => IdTokenProblem::Issuer,
        ClaimsVerificationError::InvalidAudience(_) => IdTokenProblem::Audience,
        ClaimsVerificationError::SignatureVerification(_) => IdTokenProblem::Signature,
        _ => IdTokenProblem::Other,
    };
    OidcError::IdToken {
        problem,
        detail: e.to_string(),
    }
}

/// The claims of a token the crate has already verified, as JSON, for the claims it does not
/// model (`amr` as a list of strings, the configured roles claim).
fn payload(token: &CoreIdToken) -> serde_json::Map<String, serde_json::Value> {
    let compact = token.to_string();
    compact
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Whether an `amr` claim (RFC 8176) shows more than one factor: `mfa` itself, or methods
/// from two different factor classes (something known, held, or inherent). Methods that are
/// not factors of their own (`kba` aside, `rba`, `geo`, `user`, `wia`...) never count, so
/// `["pwd", "rba"]` is one factor.
fn shows_mfa(amr: &[String]) -> bool {
    #[derive(PartialEq)]
    enum Class {
        Know,
        Have,
        Are,
    }
    let class = |m: &str| match m {
        "pwd" | "pin" | "kba" => Some(Class::Know),
        "otp" | "sms" | "tel" | "hwk" | "swk" | "sc" | "pop" => Some(Class::Have),
        "fpt" | "face" | "iris" | "retina" | "vbm" => Some(Class::Are),
        _ => None,
    };
    if amr.iter().any(|m| m == "mfa") {
        return true;
    }
    let classes: Vec<Class> = amr.iter().filter_map(|m| class(m)).collect();
    classes.iter().any(|a| classes.iter().any(|b| a != b))
}

/// A claim that is a string or a list of strings.
fn strings(v: Option<&serde_json::Value>) -> Vec<String> {
    match v {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amr_shows_mfa() {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(shows_mfa(&v(&["mfa"])));
        assert!(shows_mfa(&v(&["pwd", "otp"])));
        assert!(!shows_mfa(&v(&["pwd"])));
        assert!(!shows_mfa(&v(&["pwd", "pwd"])));
        assert!(!shows_mfa(&[]));
        // Not factors of their own, or two of one class: one factor.
        assert!(!shows_mfa(&v(&["pwd", "rba"])));
        assert!(!shows_mfa(&v(&["pwd", "kba"])));
        assert!(!shows_mfa(&v(&["pwd", "user", "geo"])));
        assert!(!shows_mfa(&v(&["otp", "hwk"])));
        assert!(shows_mfa(&v(&["hwk", "fpt"])));
    }

    #[test]
    fn claims_as_string_lists() {
        let j = serde_json::json!({ "a": "x", "b": ["y", 3, "z"], "c": 1 });
        assert_eq!(strings(j.get("a")), ["x"]);
        assert_eq!(strings(j.get("b")), ["y", "z"]);
        assert!(strings(j.get("c")).is_empty() && strings(j.get("d")).is_empty());
    }

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
