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
//!
//! Here: discovery, the flows and the code exchange. `claims` verifies the ID token and reads
//! the identity out of it; `error` says whose fault a failure is (the browser's: 400; ours or
//! the provider's: 503); `http` is the client that talks to providers.

mod claims;
mod error;
mod http;

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse,
};
use subtle::ConstantTimeEq;

pub use error::{IdTokenProblem, OidcError};
pub use http::{ProviderHttp, ProviderHttpError};

use crate::auth::bearer::{hash_token, looks_like_token, random_token};
use crate::config::IdentityProvider;
use crate::store::{OidcFlowRow, Store, Ts, UserId};

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
            |client: &Rp| claims::verify(p, client, id_token, resp.access_token(), &nonce, now);
        match verify(&client) {
            // The provider rotated its keys since discovery: fetch them again, once.
            Err(OidcError::IdToken {
                problem: IdTokenProblem::Signature,
                ..
            }) if claims::names_unknown_key(id_token, &client) => {
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
